"""A real Prometheus (Debian's; `make test` installs it) scraping both `make serve` instances of the
deployment on their own ports and a `make worker` beside them on its metrics port, with the README's
scrape configuration: its query API sees the logins made through nginx, summed over the instances
and their workers; and a scripted flow through nginx moves every counter a flow can move without
harming the shared deployment, by exactly what it did, the mails the worker sent included."""

import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psycopg
import pytest
from django_tasks_db.models import DBTaskResult

from benchmarks.servers import BASE_DIR, free_ports, wait_for_port

from ..helpers import PASSWORD, process_group_stop, throttle_window_fresh
from .conftest import METRICS_TOKEN, needs_shared_services

PROMETHEUS = os.environ.get("PROMETHEUS", "/usr/bin/prometheus")
SCRAPE_CONFIG = """
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: authproject
    authorization: {{credentials_file: {token_file}}}
    static_configs: [{{targets: [{targets}]}}]
  - job_name: authproject-worker
    authorization: {{credentials_file: {token_file}}}
    static_configs: [{{targets: [{worker_targets}]}}]
"""
JOBS = 'job=~"authproject|authproject-worker"'  # the app servers' and the mail worker's

pytestmark = pytest.mark.skipif(
    not Path(PROMETHEUS).exists(), reason=f"no Prometheus at {PROMETHEUS} (`make test` installs it)"
)


class Prometheus:
    """A Prometheus server on a free loopback port, its data in a temporary directory."""

    def __init__(self, root: Path, targets: list[str], worker_targets: list[str]):
        self.root, (self.port,) = root, free_ports(1)
        token_file = root / "metrics-token"
        token_file.write_text(METRICS_TOKEN)
        token_file.chmod(0o600)
        quoted = {
            "targets": ", ".join(f'"{target}"' for target in targets),
            "worker_targets": ", ".join(f'"{target}"' for target in worker_targets),
        }
        (root / "prometheus.yml").write_text(SCRAPE_CONFIG.format(token_file=token_file, **quoted))
        self.log = root / "prometheus.log"

    def __enter__(self) -> "Prometheus":
        with self.log.open("w") as output:
            self.process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={self.root / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.root / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, self.process, self.log)
        # Listening is not ready: until its storage is open, the query API answers 503.
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=10):
                    return self
            except urllib.error.HTTPError:
                assert time.monotonic() < deadline, self.log.read_text()[-3000:]
                time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)

    def query(self, expression: str) -> list[dict]:
        """The result of an instant query (``/api/v1/query``)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        with urllib.request.urlopen(url, timeout=10) as response:
            answer = json.load(response)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def value(self, expression: str) -> float | None:
        """A query's single value, or None while it has none."""
        result = self.query(expression)
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, expression: str, check, timeout: float = 60) -> float | None:
        """Poll the query until ``check(value)`` holds; its last value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.value(expression)
            if check(value) or time.monotonic() > deadline:
                return value
            time.sleep(0.5)


@pytest.fixture(scope="module")
def worker(deployment, tmp_path_factory):
    """`make worker` beside the deployment, with the servers' environment (the README's) and a free
    WORKER_METRICS_PORT; that port. It sends what the deployment queued so far, then what it queues."""
    (port,) = free_ports(1)
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "worker"],
            cwd=BASE_DIR,
            env={**deployment.environment, "WORKER_METRICS_PORT": str(port)},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # SIGTERM to the group reaches the worker, not only make
        )
    wait_for_port(port, process, log)
    yield port
    process_group_stop(process)


@pytest.fixture
def prometheus(stack, worker, tmp_path):
    # The instances' own ports, by a name in DJANGO_ALLOWED_HOSTS (the README: "by an address in
    # DJANGO_ALLOWED_HOSTS"); plain http, which SECURE_SSL_REDIRECT lets through for /metrics. The
    # worker's port, as a job of its own.
    targets = [f"localhost:{instance.port}" for instance in stack.instances]
    with Prometheus(tmp_path, targets, [f"127.0.0.1:{worker}"]) as server:
        yield server


def test_prometheus_scrapes_both_instances_and_the_worker_and_sees_logins_summed(stack, prometheus):
    up = 'sum(up{job="authproject"})'
    assert prometheus.wait_for(up, lambda v: v == 2) == 2, prometheus.log.read_text()[-3000:]
    worker_up = 'sum(up{job="authproject-worker"})'
    assert prometheus.wait_for(worker_up, lambda v: v == 1) == 1, prometheus.log.read_text()[-3000:]
    sent = 'sum(authproject_mails_total{job="authproject-worker",result="sent"})'
    assert prometheus.wait_for(sent, lambda v: v is not None) is not None
    failed = 'sum(authproject_logins_total{job="authproject",result="failed"})'
    before = prometheus.wait_for(failed, lambda v: v is not None)
    assert before is not None

    username = stack.new_user()
    wrong = {"username": username, "password": "wrong"}
    statuses = [stack.client().request("POST", "/api/auth/login/", wrong).status for _ in range(4)]

    assert statuses == [401] * 4
    after = prometheus.wait_for(failed, lambda v: v is not None and v >= before + 4)
    assert after == before + 4
    # Both instances counted some of the requests nginx spread over them (round robin).
    requests = 'sum by (instance) (authproject_request_duration_seconds_count{job="authproject"})'
    by_instance = prometheus.query(requests)
    assert len(by_instance) == 2 and all(float(r["value"][1]) > 0 for r in by_instance)


def counted(metric: str, **labels: str) -> str:
    """The query for ``metric`` summed over instances, their workers and the mail worker; 0 while no
    series exists yet."""
    selector = ",".join([JOBS, *(f'{name}="{value}"' for name, value in labels.items())])
    return f"sum({metric}{{{selector}}}) or vector(0)"


def mails_waiting(database_url: str) -> int:
    """Mails queued in the deployment's database and not yet sent (or being sent)."""
    query = f"SELECT count(*) FROM {DBTaskResult._meta.db_table} WHERE status IN ('READY', 'RUNNING')"
    with psycopg.connect(database_url) as connection:
        return connection.execute(query).fetchone()[0]


def mails_sent_by_the_worker(port: int) -> float:
    """authproject_mails_total{result="sent"} as the worker answers it now (its own /metrics)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        lines = response.read().decode().splitlines()
    [line] = [line for line in lines if line.startswith('authproject_mails_total{result="sent"}')]
    return float(line.rpartition(" ")[2])


def queue_drained(stack, worker: int, prometheus) -> None:
    """Wait until the worker has sent everything queued (earlier tests' mails too), and Prometheus
    has scraped its count since."""
    deadline = time.monotonic() + 60
    while mails_waiting(stack.database_url) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert mails_waiting(stack.database_url) == 0, "the worker left mails unsent"
    sent = mails_sent_by_the_worker(worker)
    query = 'sum(authproject_mails_total{job="authproject-worker",result="sent"})'
    assert prometheus.wait_for(query, lambda v: v == sent) == sent


def scripted_flow(stack) -> dict[tuple[str, str, str], int]:
    """Through nginx, spread over both instances, the requests that move each counter a flow can move
    without harming the shared deployment; by how much each moved them ((metric, label, value): n).

    The mails: the app servers queue them in the database (TASKS_BACKEND's default with DEBUG off)
    and the `make worker` beside them sends them. Not here: a mail given up (it takes 4 failed sends
    over 12 minutes), and the database and cache errors (moving them would take the services that
    every test here shares down)."""
    owner = stack.new_user()
    browser = stack.client(page=True)
    assert browser.sign_in(owner, "wrong password").status == 401  # failed
    assert browser.sign_in(owner, PASSWORD).status == 200  # ok
    oldest = browser.cookies["refresh_token"]
    assert browser.refresh().status == 200  # rotated
    previous = browser.cookies["refresh_token"]
    assert browser.refresh().status == 200  # rotated
    current = browser.cookies["refresh_token"]
    browser.cookies["refresh_token"] = previous
    assert browser.refresh().status == 200  # grace: the previous token at once (REFRESH_GRACE_SECONDS 10)
    assert browser.cookies["refresh_token"] == current  # ...answered with the current one, no rotation
    browser.cookies["refresh_token"] = oldest
    answer = browser.refresh()  # two rotations old: reuse at once, whatever the grace; session revoked
    assert (answer.status, answer.json()["code"]) == (401, "token_revoked"), answer.body
    browser.cookies["refresh_token"] = current
    answer = browser.refresh()  # the revoked session's current token: refused
    assert (answer.status, answer.json()["code"]) == (401, "token_revoked"), answer.body

    leaving = stack.client(page=True)
    assert leaving.sign_in(stack.new_user(), PASSWORD).status == 200  # ok
    answer = leaving.request("POST", "/api/auth/logout/", {}, {"X-CSRFToken": leaving.fetch_csrf()})
    assert answer.status == 200 and "refresh_token" not in leaving.cookies, answer.body

    everywhere = stack.new_user()
    for _ in range(2):
        answer = stack.client(page=True).sign_in(everywhere, PASSWORD)  # ok, on two devices
        assert answer.status == 200, answer.body
    bearer = {"Authorization": f"Bearer {answer.json()['access']}"}
    answer = stack.client(page=True).request("POST", "/api/auth/logout-all/", {}, bearer)
    assert (answer.status, answer.json()) == (200, {"revoked": 2}), answer.body

    # A fresh username (no account), tried until the deployment's per-username limit refuses it.
    limit = int(stack.environment.get("LOGIN_THROTTLE_RATE", "5/min").partition("/")[0])
    stranger, client = f"nobody_{secrets.token_hex(3)}", stack.client()
    throttle_window_fresh()  # all of them counted in one window of the limit
    statuses = [client.sign_in(stranger, "wrong password").status for _ in range(limit + 1)]
    assert statuses == [401] * limit + [429]  # failed up to the limit, then throttled

    # Mails: the three registrations' verification links (EMAIL_VERIFICATION=optional), the owner's
    # notice of the reuse above (SECURITY_NOTICES), and a password reset link (the sign-ins above
    # send none: a first sign-in, then the same device again).
    answer = stack.client().request("POST", "/api/auth/password/reset/", {"email": f"{owner}@example.com"})
    assert answer.status == 202, answer.body

    return {
        ("authproject_logins_total", "result", "ok"): 4,
        ("authproject_logins_total", "result", "failed"): 1 + limit,
        ("authproject_logins_total", "result", "throttled"): 1,
        ("authproject_refreshes_total", "result", "rotated"): 2,
        ("authproject_refreshes_total", "result", "grace"): 1,
        ("authproject_refreshes_total", "result", "reuse_detected"): 1,
        ("authproject_refreshes_total", "result", "refused"): 1,
        ("authproject_sessions_revoked_total", "reason", "logout"): 1,
        ("authproject_sessions_revoked_total", "reason", "logout_all"): 2,
        ("authproject_sessions_revoked_total", "reason", "reuse_detected"): 1,
        ("authproject_request_duration_seconds_count", "route", "accounts:login"): 6 + limit,
        ("authproject_request_duration_seconds_count", "route", "accounts:refresh"): 5,
        ("authproject_mails_total", "result", "sent"): 3 + 1 + 1,
        ("authproject_mails_total", "result", "failed"): 0,
    }


# Every series the flow moves, so that the values before it can be read first.
FLOW_SERIES = (
    *(("authproject_logins_total", "result", result) for result in ("ok", "failed", "throttled")),
    *(
        ("authproject_refreshes_total", "result", result)
        for result in ("rotated", "grace", "reuse_detected", "refused")
    ),
    *(
        ("authproject_sessions_revoked_total", "reason", reason)
        for reason in ("logout", "logout_all", "reuse_detected")
    ),
    ("authproject_request_duration_seconds_count", "route", "accounts:login"),
    ("authproject_request_duration_seconds_count", "route", "accounts:refresh"),
    *(("authproject_mails_total", "result", result) for result in ("sent", "failed")),
)


@needs_shared_services
def test_a_scripted_flow_moves_each_counter_by_exactly_what_it_did(stack, worker, prometheus):
    up = f"sum(up{{{JOBS}}})"
    assert prometheus.wait_for(up, lambda v: v == 3) == 3, prometheus.log.read_text()[-3000:]
    queries = {series: counted(series[0], **{series[1]: series[2]}) for series in FLOW_SERIES}

    def scrape() -> dict[tuple[str, str, str], float]:
        return {series: prometheus.value(query) for series, query in queries.items()}

    queue_drained(stack, worker, prometheus)  # the earlier tests' mails, sent before the flow's
    before = scrape()
    expected = scripted_flow(stack)
    assert set(expected) == set(FLOW_SERIES)

    deadline = time.monotonic() + 60
    while not all(v >= before[s] + expected[s] for s, v in scrape().items()) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)  # two more scrapes, so that an over-count shows too
    after = scrape()
    heading = "counter (summed over instances, their workers and the mail worker)"
    rows = [f"{heading:<72} {'before':>6} {'after':>6} {'moved':>5}"]
    for metric, label, value in FLOW_SERIES:
        old, new = before[(metric, label, value)], after[(metric, label, value)]
        name = f'{metric}{{{label}="{value}"}}'
        rows.append(f"{name:<72} {old:>6g} {new:>6g} {new - old:>+5g}")
    table = "\n".join(rows)
    print("\n" + table)
    assert {s: after[s] - before[s] for s in FLOW_SERIES} == expected, table
