"""The lockout of issue 25, rerun against `make serve`: can a stranger at one address lock users out?

One app server (DEBUG off, PostgreSQL and Redis, NUM_PROXIES=1, the login limits at their
defaults: 5/min per username and address, 60/min per address, 30/min per username everywhere) on a
database of its own, with five users, the first a superuser. From one address (X-Forwarded-For),
``--per-user`` wrong logins for each of them (31 each, 155 in all: what once locked all five out
everywhere for the rest of the minute). Then, in the same minute, each user signs in from another
address with the right password through the API, and the superuser through /admin/login/ too.

    .venv/bin/python benchmarks/lockout.py [--per-user 31] [--output benchmarks/RESULTS.md]

The database named by --database-url is dropped and created afresh, and the Redis database emptied.
"""

import argparse
import http.cookiejar
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import _common
from _common import PASSWORD, ROOT
from servers import Client

SECTION = "## The lockout rerun (issue 25)"
USERS = ["root", "alice", "bob", "carol", "dave"]
STRANGER = "203.0.113.66"
LIMITS = {
    "LOGIN_THROTTLE_RATE": "5/min",
    "LOGIN_USERNAME_THROTTLE_RATE": "30/min",
    "LOGIN_IP_THROTTLE_RATE": "60/min",
}
CREATE_USERS = f"""
from django.contrib.auth import get_user_model
User = get_user_model()
for number, name in enumerate({USERS!r}):
    user = User.objects.create_user(name, password={PASSWORD!r})
    if number == 0:
        user.is_staff = user.is_superuser = True
        user.save()
"""


def admin_sign_in(base: str, username: str, address: str) -> bool:
    """The admin's login form, as a browser fills it in; True if it signs in."""
    cookies = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies), _NoRedirect)
    page = browser.open(
        urllib.request.Request(f"{base}/admin/login/", headers={"X-Forwarded-For": address}), timeout=30
    )
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.read().decode()).group(1)
    form = {"csrfmiddlewaretoken": token, "username": username, "password": PASSWORD, "next": "/admin/"}
    request = urllib.request.Request(
        f"{base}/admin/login/",
        data=urllib.parse.urlencode(form).encode(),
        headers={"X-Forwarded-For": address, "Referer": f"{base}/admin/login/"},
    )
    try:
        status = browser.open(request, timeout=30).status
    except urllib.error.HTTPError as answer:  # the redirect, not followed, or a refusal
        status = answer.code
    return status == 302 and any(cookie.name == "sessionid" for cookie in cookies)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-user", type=int, default=31, help="wrong logins per user (default 31)")
    parser.add_argument("--output", type=Path, help="write the section into this Markdown file")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/bench_lockout")
    parser.add_argument("--cache-url", default="redis://127.0.0.1:6379/10", help="(emptied first)")
    options = parser.parse_args()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")

    with _common.fresh_server(
        "lockout",
        database_url=options.database_url,
        cache_url=options.cache_url,
        workers=2,
        NUM_PROXIES="1",
        # Plain http here (TLS is the proxy's): the admin's cookies must travel without it.
        CSRF_COOKIE_SECURE="0",
        SESSION_COOKIE_SECURE="0",
        **LIMITS,
    ) as server:
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-v", "0", "-c", CREATE_USERS],
            cwd=ROOT,
            env=server.environment,
            check=True,
        )
        # All of it inside one minute's window of the limits, as the attack was.
        if 60 - time.time() % 60 < 40:
            time.sleep(60 - time.time() % 60 + 0.1)
        stranger = Client(server.base)
        answers = Counter()
        for name in USERS:
            for _ in range(options.per_user):
                answer = stranger.request(
                    "POST",
                    "/api/auth/login/",
                    {"username": name, "password": "not the password"},
                    {"X-Forwarded-For": STRANGER},
                )
                answers[answer.status] += 1
        api = {}
        for number, name in enumerate(USERS):
            answer = Client(server.base).request(
                "POST",
                "/api/auth/login/",
                {"username": name, "password": PASSWORD},
                {"X-Forwarded-For": f"198.51.100.{number + 10}"},
            )
            api[name] = answer.status
        admin = admin_sign_in(server.base, USERS[0], "198.51.100.30")

    sent = options.per_user * len(USERS)
    lines = [
        SECTION,
        "",
        f"Run {started} on {_common.machine()}; commit {_common.checkout()}.",
        "",
        f"    benchmarks/lockout.py --per-user {options.per_user}",
        "",
        f"The stranger's {sent} wrong logins from {STRANGER} ({options.per_user} for each of "
        f"{len(USERS)} users) were answered: "
        + ", ".join(f"{count} x {status}" for status, count in sorted(answers.items()))
        + ". Then, in the same minute, from other addresses:",
        "",
        "| user | API login | admin form |",
        "|---|---|---|",
    ]
    for name in USERS:
        lines.append(f"| {name} | {api[name]} | {('signed in' if admin else 'refused') if name == USERS[0] else ''} |")
    met = all(status == 200 for status in api.values()) and admin
    lines += ["", f"Locked out: {'none' if met else 'some (see above)'}.", ""]
    section = "\n".join(lines)
    print(section)
    if options.output:
        _common.write_section(options.output, section)
        print(f"written to {options.output}")
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
