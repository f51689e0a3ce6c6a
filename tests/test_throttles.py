"""Login throttling per username and per client IP, and answers that do not reveal accounts."""

import os
import threading
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.cache.backends.redis import RedisCache

from accounts.models import Session
from accounts.tokens import RefreshToken
from accounts.throttles import CountingThrottle, ip_bucket, name_digest

from .helpers import PASSWORD, BrowserClient

pytestmark = pytest.mark.django_db

WRONG = "not the password"


def assert_throttled(response, up_to: int = 60) -> None:
    assert response.status_code == 429, response.content
    body = response.json()
    assert set(body) == {"detail", "code"} and body["code"] == "throttled"
    assert 0 < int(response["Retry-After"]) <= up_to


def with_proxies(settings, count: int) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": count}


# --- per username and IP, and the per-username ceiling ------------------------------------
def test_fourth_attempt_for_one_username_from_one_ip_is_throttled(browser, user, settings):
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "3/min"
    for _ in range(3):
        response = browser.sign_in(password=WRONG, REMOTE_ADDR="203.0.113.1")
        assert response.status_code == 401, response.content
    assert_throttled(browser.sign_in(password=WRONG, REMOTE_ADDR="203.0.113.1"))


def test_a_throttled_username_is_refused_even_with_the_right_password(browser, user, settings):
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "3/min"
    for _ in range(3):
        browser.sign_in(password=WRONG, REMOTE_ADDR="203.0.113.1")
    assert_throttled(browser.sign_in(password=PASSWORD, REMOTE_ADDR="203.0.113.1"))
    assert not Session.objects.exists()
    assert "refresh_token" not in browser.cookies


def test_a_strangers_wrong_guesses_do_not_lock_the_real_user_out(browser, user, settings):
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "3/min"
    stranger = BrowserClient()
    for _ in range(10):
        stranger.sign_in(password=WRONG, REMOTE_ADDR="203.0.113.66")
    assert_throttled(stranger.sign_in(password=PASSWORD, REMOTE_ADDR="203.0.113.66"))
    assert browser.sign_in(password=PASSWORD, REMOTE_ADDR="198.51.100.20").status_code == 200


def test_200_wrong_attempts_from_one_address_do_not_lock_the_real_user_out(browser, user, client):
    """The default limits: the attempts the narrow limits refuse (all but five) never reach the
    per-username ceiling, so the real user, elsewhere, signs in through the API and the admin."""
    stranger = BrowserClient()
    answers = [stranger.sign_in(password=WRONG, REMOTE_ADDR="203.0.113.66").status_code for _ in range(200)]
    assert 5 <= answers.count(401) <= 10  # five a minute: ten if a window ended meanwhile
    assert browser.sign_in(password=PASSWORD, REMOTE_ADDR="198.51.100.20").status_code == 200
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    response = client.post(
        "/admin/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="198.51.100.21"
    )
    assert response.status_code == 302 and response.wsgi_request.user.is_authenticated


def test_155_requests_from_one_address_lock_out_none_of_five_users(browser, user_factory, settings):
    """The issue's rerun: 31 wrong logins for each of five names from one address (155 requests)
    once locked all five out everywhere; now each signs in from another address."""
    settings.ACCOUNTS_LOGIN_GLOBAL_THROTTLE_RATE = None  # the flood budget is another test's matter
    names = [f"victim{i}" for i in range(5)]
    for name in names:
        user_factory(username=name)
    stranger = BrowserClient()
    for name in names:
        for _ in range(31):
            stranger.sign_in(username=name, password=WRONG, REMOTE_ADDR="203.0.113.66")
    for i, name in enumerate(names):
        response = browser.sign_in(username=name, password=PASSWORD, REMOTE_ADDR=f"198.51.100.{i + 1}")
        assert response.status_code == 200, (name, response.content)


def test_attempts_refused_by_the_per_ip_limit_do_not_count_toward_the_ceiling(browser, user, settings):
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "100/min"  # only the per-IP limit refuses here
    settings.ACCOUNTS_LOGIN_IP_THROTTLE_RATE = "2/min"
    settings.ACCOUNTS_LOGIN_USERNAME_THROTTLE_RATE = "3/min"
    stranger = BrowserClient()
    for _ in range(20):
        stranger.sign_in(password=WRONG, REMOTE_ADDR="203.0.113.66")
    assert browser.sign_in(password=PASSWORD, REMOTE_ADDR="198.51.100.20").status_code == 200


def test_attempts_the_narrow_limits_let_through_still_fill_the_ceiling(browser, user, settings):
    """Five addresses at their full narrow budget: the sixth address meets the ceiling."""
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "2/min"
    settings.ACCOUNTS_LOGIN_USERNAME_THROTTLE_RATE = "10/min"
    for i in range(5):
        for _ in range(4):  # two let through, two refused by the per-username+IP limit
            browser.sign_in(password=WRONG, REMOTE_ADDR=f"203.0.113.{i + 1}")
    assert_throttled(browser.sign_in(password=PASSWORD, REMOTE_ADDR="198.51.100.20"))


def test_guesses_at_one_username_from_many_ips_meet_the_per_username_ceiling(browser, user, settings):
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "3/min"
    settings.ACCOUNTS_LOGIN_USERNAME_THROTTLE_RATE = "6/min"
    for i in range(6):
        response = browser.sign_in(password=WRONG, REMOTE_ADDR=f"203.0.113.{i + 1}")
        assert response.status_code == 401, response.content
    assert_throttled(browser.sign_in(password=PASSWORD, REMOTE_ADDR="203.0.113.99"))


def test_the_username_throttle_counts_each_username_apart(browser, user_factory, settings):
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "3/min"
    user_factory(username="alice")
    user_factory(username="bob")
    for _ in range(3):
        browser.sign_in(username="alice", password=WRONG)
    assert_throttled(browser.sign_in(username="alice", password=WRONG))
    assert browser.sign_in(username="bob", password=PASSWORD).status_code == 200


def test_the_username_throttle_ignores_case_and_surrounding_space(browser, user, settings):
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "2/min"
    browser.sign_in(username="alice", password=WRONG)
    browser.sign_in(username="ALICE", password=WRONG)
    assert_throttled(browser.sign_in(username=" Alice ", password=WRONG))


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


# --- addresses: IPv4-mapped IPv6 is IPv4, IPv6 counts by /64 --------------------------------
@pytest.mark.parametrize(
    "addresses",
    [
        ["198.51.100.7", "::ffff:198.51.100.7", "198.51.100.7"],
        ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:ffff"],
    ],
    ids=["ipv4-mapped-ipv6-is-ipv4", "ipv6-by-64"],
)
def test_addresses_of_one_client_share_one_ip_bucket(browser, settings, addresses):
    settings.ACCOUNTS_LOGIN_IP_THROTTLE_RATE = "3/min"
    for i, address in enumerate(addresses):
        response = browser.sign_in(username=f"nobody{i}", password=WRONG, REMOTE_ADDR=address)
        assert response.status_code == 401, response.content
    assert_throttled(browser.sign_in(username="x", password=WRONG, REMOTE_ADDR=addresses[1]))


def test_another_ipv6_64_has_its_own_bucket(browser, settings):
    settings.ACCOUNTS_LOGIN_IP_THROTTLE_RATE = "2/min"
    for i in range(2):
        browser.sign_in(username=f"nobody{i}", password=WRONG, REMOTE_ADDR="2001:db8:1:2::1")
    assert_throttled(browser.sign_in(username="x", password=WRONG, REMOTE_ADDR="2001:db8:1:2::9"))
    assert browser.sign_in(username="x", password=WRONG, REMOTE_ADDR="2001:db8:1:3::1").status_code == 401


def test_a_session_records_an_ipv4_mapped_address_as_ipv4(browser, user):
    assert browser.sign_in(REMOTE_ADDR="::ffff:198.51.100.7").status_code == 200
    assert Session.objects.get(user=user).ip == "198.51.100.7"


@pytest.mark.parametrize(
    ("ip", "bucket"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        (None, "unknown"),
        ("not an address", "unknown"),
    ],
)
def test_ip_bucket(ip, bucket):
    assert ip_bucket(ip) == bucket


# --- registration and password change -------------------------------------------------------
def register(client, name: str, **extra):
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    return client.post("/api/auth/register/", body, format="json", **extra)


def test_registrations_from_one_ip_are_throttled_and_no_user_is_made(browser, settings):
    settings.ACCOUNTS_REGISTER_THROTTLE_RATE = "2/hour"
    assert register(browser, "first", REMOTE_ADDR="203.0.113.1").status_code == 201
    assert register(browser, "first", REMOTE_ADDR="203.0.113.1").status_code == 400  # taken: counted too
    response = register(browser, "third", REMOTE_ADDR="203.0.113.1")
    assert_throttled(response, up_to=3600)
    assert not get_user_model().objects.filter(username="third").exists()
    assert register(browser, "third", REMOTE_ADDR="203.0.113.2").status_code == 201


def test_password_changes_are_throttled_per_user_wrong_old_passwords_counted(api, user, settings):
    settings.ACCOUNTS_PASSWORD_CHANGE_THROTTLE_RATE = "2/min"
    new = "another horse battery staple"
    for _ in range(2):
        response = api.post(
            "/api/auth/password/change/", {"old_password": WRONG, "new_password": new}, format="json"
        )
        assert response.status_code == 400, response.content
    response = api.post(
        "/api/auth/password/change/", {"old_password": PASSWORD, "new_password": new}, format="json"
    )
    assert_throttled(response)
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_the_password_change_limit_is_per_user(api, user_factory, settings):
    settings.ACCOUNTS_PASSWORD_CHANGE_THROTTLE_RATE = "1/min"
    new = "another horse battery staple"
    body = {"old_password": WRONG, "new_password": new}
    api.post("/api/auth/password/change/", body, format="json")
    assert_throttled(api.post("/api/auth/password/change/", body, format="json"))
    user_factory(username="bob")
    bob = BrowserClient()
    access = bob.sign_in(username="bob").json()["access"]
    response = bob.bearer(access).post("/api/auth/password/change/", body, format="json")
    assert response.status_code == 400, response.content


def test_a_username_with_a_lone_surrogate_still_makes_a_throttle_key():
    """Nothing that reaches the throttles can fail to hash (the API's parser refuses such names
    first, with 400)."""
    assert name_digest("\ud800") != name_digest("\ud801")
    assert name_digest(" Alice ") == name_digest("alice")


# --- load shedding: a global budget of password checks ----------------------------------------
@pytest.fixture
def password_checks():
    """How many times Django's authenticate() refused a password (each one an Argon2 hash)."""
    from django.contrib.auth.signals import user_login_failed

    tries = []

    def count(sender, credentials, **kwargs):
        tries.append(1)

    user_login_failed.connect(count)
    yield tries
    user_login_failed.disconnect(count)


def test_a_flood_from_many_addresses_is_shed_past_the_global_budget_without_hashing(
    browser, user, settings, password_checks
):
    settings.ACCOUNTS_LOGIN_GLOBAL_THROTTLE_RATE = "5/hour"
    answers = [
        browser.sign_in(username=f"name{i}", password=WRONG, REMOTE_ADDR=f"2001:db8:{i}::1")
        for i in range(12)
    ]
    assert [a.status_code for a in answers] == [401] * 5 + [429] * 7
    for refused in answers[5:]:
        assert_throttled(refused, up_to=3600)
    assert len(password_checks) == 5  # the shed attempts were never hashed
    # Bearer calls and refreshes are not part of the budget.
    signed_in = BrowserClient()
    assert signed_in.sign_in(REMOTE_ADDR="198.51.100.9").status_code == 429
    access = str(RefreshToken.for_session(make_live_session(user)).access_token)
    assert BrowserClient().bearer(access).get("/api/users/me/").status_code == 200


def make_live_session(user):
    from accounts.services import session_create

    return session_create(user=user, ip=None, user_agent="test")


def test_attempts_refused_by_the_other_limits_spend_none_of_the_global_budget(browser, user, settings):
    settings.ACCOUNTS_LOGIN_GLOBAL_THROTTLE_RATE = "6/hour"
    for _ in range(30):  # one address: five let through, the rest refused per username and IP
        browser.sign_in(password=WRONG, REMOTE_ADDR="203.0.113.66")
    assert browser.sign_in(password=PASSWORD, REMOTE_ADDR="198.51.100.20").status_code == 200
    assert_throttled(browser.sign_in(password=PASSWORD, REMOTE_ADDR="198.51.100.21"), up_to=3600)


def test_the_global_budget_sheds_the_admin_form_too(client, user, settings, password_checks):
    settings.ACCOUNTS_LOGIN_GLOBAL_THROTTLE_RATE = "2/hour"
    for i in range(4):
        client.post("/admin/login/", {"username": f"n{i}", "password": WRONG}, REMOTE_ADDR=f"203.0.113.{i}")
    assert len(password_checks) == 2


def test_the_global_budget_can_be_turned_off(browser, settings, password_checks):
    settings.ACCOUNTS_LOGIN_GLOBAL_THROTTLE_RATE = None
    for i in range(15):
        response = browser.sign_in(username=f"n{i}", password=WRONG, REMOTE_ADDR=f"2001:db8:{i}::1")
        assert response.status_code == 401
    assert len(password_checks) == 15


# --- counting ----------------------------------------------------------------------------------
def shared_redis_cache(prefix: str) -> RedisCache:
    """The Redis the tests' CACHE_URL names (or this machine's), under a key prefix of the test's own."""
    url = os.environ.get("CACHE_URL", "")
    location = url if url.startswith("redis://") else "redis://127.0.0.1:6379/0"
    cache = RedisCache(location, {"KEY_PREFIX": prefix})
    try:
        cache.get("ping")
    except Exception as error:  # noqa: BLE001 - any failure to reach it
        pytest.skip(f"needs a Redis server at {location}: {error}")
    return cache


def test_concurrent_attempts_are_each_counted_once_by_a_shared_cache():
    """CountingThrottle counts with the cache's atomic add and incr: 16 threads, each attempt
    against one real Redis (threads on the local-memory cache hardly ever interleave a get and a
    set, so a get-then-set count would pass there), number 1 to N, each number given once."""
    cache = shared_redis_cache(prefix=f"test-throttle-{uuid.uuid4().hex}")

    class Counted(CountingThrottle):
        scope = "test_counting"

        def get_rate(self):
            return "100000/hour"

    threads, per_thread = 16, 40
    counted: list[tuple[float, int]] = []  # (the window's end, the attempt's number in it)
    barrier = threading.Barrier(threads)

    def attempts() -> None:
        barrier.wait(timeout=30)
        for _ in range(per_thread):
            throttle = Counted()  # DRF makes one per request
            throttle.cache, throttle.key = cache, "one-address"
            counted.append((throttle.count_attempt(), throttle.window_ends)[::-1])

    workers = [threading.Thread(target=attempts) for _ in range(threads)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert len(counted) == threads * per_thread
        for end in {end for end, _ in counted}:  # two, if the run crossed the hour
            numbers = sorted(number for window_end, number in counted if window_end == end)
            assert numbers == list(range(1, len(numbers) + 1)), "an attempt was counted twice or not at all"
    finally:
        cache.delete_many([f"one-address:{int(end // 3600) - 1}" for end in {end for end, _ in counted}])
