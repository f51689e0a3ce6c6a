"""A real Prometheus (Debian's; `make test` installs it) scraping both `make serve` instances of the
deployment on their own ports, with the README's scrape configuration: its query API sees the
logins made through nginx, summed over the instances and their workers."""

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from benchmarks.servers import free_ports, wait_for_port

from .conftest import METRICS_TOKEN

PROMETHEUS = os.environ.get("PROMETHEUS", "/usr/bin/prometheus")
SCRAPE_CONFIG = """
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: authproject
    authorization: {{credentials_file: {token_file}}}
    static_configs: [{{targets: [{targets}]}}]
"""

pytestmark = pytest.mark.skipif(
    not Path(PROMETHEUS).exists(), reason=f"no Prometheus at {PROMETHEUS} (`make test` installs it)"
)


class Prometheus:
    """A Prometheus server on a free loopback port, its data in a temporary directory."""

    def __init__(self, root: Path, targets: list[str]):
        self.root, (self.port,) = root, free_ports(1)
        token_file = root / "metrics-token"
        token_file.write_text(METRICS_TOKEN)
        token_file.chmod(0o600)
        quoted = ", ".join(f'"{target}"' for target in targets)
        (root / "prometheus.yml").write_text(SCRAPE_CONFIG.format(token_file=token_file, targets=quoted))
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
        return self

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


@pytest.fixture
def prometheus(stack, tmp_path):
    # The instances' own ports, by a name in DJANGO_ALLOWED_HOSTS (the README: "by an address in
    # DJANGO_ALLOWED_HOSTS"); plain http, which SECURE_SSL_REDIRECT lets through for /metrics.
    targets = [f"localhost:{instance.port}" for instance in stack.instances]
    with Prometheus(tmp_path, targets) as server:
        yield server


def test_prometheus_scrapes_both_instances_and_sees_logins_summed(stack, prometheus):
    up = 'sum(up{job="authproject"})'
    assert prometheus.wait_for(up, lambda v: v == 2) == 2, prometheus.log.read_text()[-3000:]
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
