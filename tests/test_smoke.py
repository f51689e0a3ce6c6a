def test_login_then_me(api, query_budget):
    with query_budget(1):
        response = api.get("/api/users/me/")
    assert response.status_code == 200
    assert response.json()["username"] == "alice"
