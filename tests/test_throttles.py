"""Login throttling per username and per client IP, and answers that do not reveal accounts."""

import pytest

from accounts.models import Session

from .helpers import PASSWORD

pytestmark = pytest.mark.django_db

WRONG = "not the password"


def assert_throttled(response) -> None:
    assert response.status_code == 429, response.content
    body = response.json()
    assert set(body) == {"detail", "code"} and body["code"] == "throttled"
    assert 0 < int(response["Retry-After"]) <= 60


def with_proxies(settings, count: int) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": count}


# --- per username ---------------------------------------------------------------------------
def test_fourth_attempt_for_one_username_is_throttled_even_from_other_ips(browser, user, settings):
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "3/min"
    for i in range(3):
        response = browser.sign_in(password=WRONG, REMOTE_ADDR=f"203.0.113.{i + 1}")
        assert response.status_code == 401, response.content
    assert_throttled(browser.sign_in(password=WRONG, REMOTE_ADDR="203.0.113.99"))


def test_a_throttled_username_is_refused_even_with_the_right_password(browser, user, settings):
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "3/min"
    for i in range(3):
        browser.sign_in(password=WRONG, REMOTE_ADDR=f"203.0.113.{i + 1}")
    assert_throttled(browser.sign_in(password=PASSWORD, REMOTE_ADDR="203.0.113.99"))
    assert not Session.objects.exists()
    assert "refresh_token" not in browser.cookies


def test_the_username_throttle_counts_each_username_apart(browser, user_factory, settings):
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "3/min"
    user_factory(username="alice")
    user_factory(username="bob")
    for _ in range(3):
        browser.sign_in(username="alice", password=WRONG)
    assert_throttled(browser.sign_in(username="alice", password=WRONG))
    assert browser.sign_in(username="bob", password=PASSWORD).status_code == 200


def test_the_username_rate_setting_applies_without_restart(browser, user, settings):
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "2/min"
    for _ in range(2):
        assert browser.sign_in(password=WRONG).status_code == 401
    assert_throttled(browser.sign_in(password=WRONG))


# --- per client IP --------------------------------------------------------------------------
def test_fourth_attempt_from_one_ip_across_usernames_is_throttled(browser, settings):
    settings.ACCOUNTS_LOGIN_IP_THROTTLE_RATE = "3/min"
    for i in range(3):
        response = browser.sign_in(username=f"nobody{i}", password=WRONG, REMOTE_ADDR="198.51.100.7")
        assert response.status_code == 401, response.content
    assert_throttled(browser.sign_in(username="someone-else", password=WRONG, REMOTE_ADDR="198.51.100.7"))
    # Another address still gets through.
    assert browser.sign_in(username="nobody", password=WRONG, REMOTE_ADDR="198.51.100.8").status_code == 401


def test_behind_one_proxy_the_client_ip_comes_from_x_forwarded_for(browser, settings):
    settings.ACCOUNTS_LOGIN_IP_THROTTLE_RATE = "3/min"
    with_proxies(settings, 1)
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    for i in range(3):
        response = browser.sign_in(
            username=f"nobody{i}", password=WRONG, HTTP_X_FORWARDED_FOR="198.51.100.1", **proxy
        )
        assert response.status_code == 401
    assert_throttled(
        browser.sign_in(username="x", password=WRONG, HTTP_X_FORWARDED_FOR="198.51.100.1", **proxy)
    )
    # A different client behind the same proxy has its own bucket.
    other = browser.sign_in(username="y", password=WRONG, HTTP_X_FORWARDED_FOR="198.51.100.2", **proxy)
    assert other.status_code == 401


def test_without_proxies_x_forwarded_for_is_ignored_for_throttling(browser, settings):
    settings.ACCOUNTS_LOGIN_IP_THROTTLE_RATE = "3/min"
    with_proxies(settings, 0)
    for i in range(3):
        response = browser.sign_in(
            username=f"nobody{i}",
            password=WRONG,
            REMOTE_ADDR="203.0.113.5",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{i}",
        )
        assert response.status_code == 401
    assert_throttled(
        browser.sign_in(
            username="x", password=WRONG, REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR="198.51.100.50"
        )
    )


@pytest.mark.parametrize(
    "proxies, remote_addr, forwarded_for, recorded",
    [
        # Behind one proxy: it appends the address it saw; what the client wrote before is not believed.
        (1, "10.0.0.1", "1.2.3.4, 198.51.100.9", "198.51.100.9"),
        # Without proxies X-Forwarded-For is ignored: the socket's address is the client's.
        (0, "203.0.113.5", "198.51.100.9", "203.0.113.5"),
    ],
    ids=["behind-one-proxy", "no-proxies"],
)
def test_the_session_records_the_client_ip_by_the_proxy_setting(
    browser, user, settings, proxies, remote_addr, forwarded_for, recorded
):
    with_proxies(settings, proxies)
    response = browser.sign_in(REMOTE_ADDR=remote_addr, HTTP_X_FORWARDED_FOR=forwarded_for)
    assert response.status_code == 200
    assert Session.objects.get(user=user).ip == recorded


# --- failures that reveal nothing -----------------------------------------------------------
def test_unknown_user_wrong_password_and_inactive_user_get_byte_identical_401s(browser, user_factory):
    user_factory(username="alice")
    user_factory(username="carol", is_active=False)
    responses = {
        "wrong password": browser.sign_in(username="alice", password=WRONG),
        "unknown user": browser.sign_in(username="nobody", password=PASSWORD),
        "inactive user": browser.sign_in(username="carol", password=PASSWORD),
    }
    for response in responses.values():
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_credentials"
        assert set(response.json()) == {"detail", "code"}
    bodies = {case: response.content for case, response in responses.items()}
    assert len(set(bodies.values())) == 1, bodies
    headers = {case: response.get("WWW-Authenticate") for case, response in responses.items()}
    assert len(set(headers.values())) == 1, headers
    assert not Session.objects.exists()
