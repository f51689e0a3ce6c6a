"""The hot paths against the floor (issue 13): me, refresh and login as a fraction of what a request that
does nothing costs, beside dj-rest-auth + simplejwt set up the same way, in one run over HTTP.

Subjects, each served with gunicorn (2 sync workers by default), DEBUG off, PostgreSQL and Redis:

- this project: `make serve` in this checkout (migrate, collectstatic, gunicorn with
  authproject/gunicorn.conf.py), DJANGO_SETTINGS_MODULE=benchmarks.floor.settings so that the floor
  view (benchmarks/floor/) is mounted;
- dj-rest-auth: the project in benchmarks/peer/ (dj-rest-auth with USE_JWT and the refresh token in an
  httpOnly cookie, simplejwt with rotation and the token blacklist, Argon2 with Django's parameters,
  the same middleware less WhiteNoise), in benchmarks/.peer-venv, which this script installs from
  benchmarks/peer/requirements.txt; the same gunicorn configuration;
- with ``--compare-ref REF``, that git ref of this repository too: `make serve` in a temporary
  `git worktree` sharing .venv, on its own database. It has no floor view: its ratios are taken
  against this checkout's floor.

Workloads, each a wrk run of ``--duration`` seconds with one thread per connection (2 by default):

- floor: GET /api/bench/floor/, a bare DRF view behind the subject's middleware;
- me: GET the user with a Bearer access token (/api/users/me/; dj-rest-auth's /api/auth/user/);
- refresh: POST the refresh endpoint with the refresh cookie, CSRF cookie, header and Origin, each wrk
  thread following its own session's rotating cookie chain (benchmarks/wrk/refresh_chain.lua);
- login: POST /api/auth/login/ with a JSON username and password (Argon2 each time; the project's
  login throttles are raised through the environment, as every request comes from one address).

Rounds alternate the subjects (a workload's subjects back to back, their order turned each round) so
that other load on the machine falls on all alike. A workload's ratio is its requests/s over the floor's
requests/s of the same subject in the same round; the report gives the medians over the rounds.
Any answer other than 2xx (or a request without an answer) in a measured run fails the run, loudly.

    .venv/bin/python benchmarks/hot_paths.py [--duration 10] [--rounds 3] [--compare-ref 84c7f80]
        [--output benchmarks/RESULTS.md]

`make bench` runs it with ``--output benchmarks/RESULTS.md`` (and BENCH_ARGS). The databases named by
the --*database-url options are dropped and created afresh, and the Redis databases emptied.
"""

import argparse
import hashlib
import json
import os
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import _common
from _common import PAGE_ORIGIN, PASSWORD, ROOT, write_section
from servers import Client, Serve

PEER_DIR = ROOT / "benchmarks" / "peer"
PEER_VENV = ROOT / "benchmarks" / ".peer-venv"
WORKLOADS = ("floor", "me", "refresh", "login")
USERNAME = "bench"
SECTION = "## Hot paths (issue 13)"

CREATE_USER = f"""
from django.contrib.auth import get_user_model
user, _ = get_user_model().objects.get_or_create(username={USERNAME!r})
user.set_password({PASSWORD!r})
user.save()
"""


@dataclass
class Subject:
    """One app measured: its server, its endpoints, and its runs ({workload: [run per round]})."""

    key: str
    label: str
    server: Serve
    paths: dict[str, str]
    refresh_cookie: str
    workloads: tuple[str, ...]
    floor_of: str  # the subject whose floor its ratios are taken against
    note: str = ""  # said under the table
    runs: dict[str, list[dict]] = field(default_factory=dict)

    def url(self, workload: str) -> str:
        return self.server.base + self.paths[workload]

    def client(self) -> Client:
        return Client(self.server.base, page_origin=PAGE_ORIGIN)

    def sign_in(self) -> tuple[Client, str]:
        """A new session: the client (holding its cookies) and the access token."""
        client = self.client()
        answer = client.request("POST", self.paths["login"], {"username": USERNAME, "password": PASSWORD})
        if answer.status != 200:
            sys.exit(f"{self.label}: login answered {answer.status}: {answer.body[:300]!r}")
        return client, answer.json()["access"]


# --- setting up -----------------------------------------------------------------------------------
def pins(path: Path) -> dict[str, str]:
    """The ``name==version`` lines of a requirements file, by lower-case name (extras dropped)."""
    found = {}
    for text in path.read_text().splitlines():
        line = text.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[name.split("[")[0].strip().lower()] = version.strip()
    return found


def peer_python() -> Path:
    """benchmarks/.peer-venv's Python, the venv made and installed from PyPI when missing or when
    benchmarks/peer/requirements.txt changed; refuses a pin that differs from the project's."""
    ours, peers = pins(ROOT / "requirements.txt"), pins(PEER_DIR / "requirements.txt")
    differ = {
        name: (ours[name], version) for name, version in peers.items() if ours.get(name, version) != version
    }
    if differ:
        sys.exit(f"benchmarks/peer/requirements.txt pins differ from requirements.txt: {differ}")
    python = PEER_VENV / "bin" / "python"
    stamp = PEER_VENV / ".installed"
    digest = hashlib.sha256((PEER_DIR / "requirements.txt").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        print("installing the peer into benchmarks/.peer-venv ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "-r", str(PEER_DIR / "requirements.txt")], check=True)
        stamp.write_text(digest)
    return python


def reset(database_url: str, cache_url: str) -> None:
    _common.database_reset(database_url)
    _common.cache_flush(cache_url)


def serve_checkout(
    key: str, checkout: Path, *, workers: int, services: tuple[str, str], secret: str, logs: Path, **variables
) -> Serve:
    """A checkout of this project under `make serve`, on fresh databases (``services``: the database
    and cache URLs) with the benchmark's user, ``variables`` added to its environment."""
    database_url, cache_url = services
    reset(database_url, cache_url)
    environment = _common.app_environment(
        database_url=database_url, cache_url=cache_url, secret=secret, **variables
    )
    server = _common.make_serve(key, cwd=checkout, environment=environment, log_dir=logs, workers=workers)
    run_python([sys.executable, "manage.py", "shell", "-v", "0", "-c", CREATE_USER], checkout, environment)
    return server


def start_ours(options, secret: str, logs: Path, static: Path) -> Subject:
    """This checkout under `make serve`, with the floor view mounted."""
    server = serve_checkout(
        "ours",
        ROOT,
        workers=options.workers,
        services=(options.database_url, options.cache_url),
        secret=secret,
        logs=logs,
        DJANGO_SETTINGS_MODULE="benchmarks.floor.settings",
        STATIC_ROOT=str(static / "ours"),
    )
    return Subject(
        key="ours",
        label="this project",
        server=server,
        paths=OUR_PATHS,
        refresh_cookie="refresh_token",
        workloads=WORKLOADS,
        floor_of="ours",
    )


OUR_PATHS = {
    "floor": "/api/bench/floor/",
    "me": "/api/users/me/",
    "refresh": "/api/auth/refresh/",
    "login": "/api/auth/login/",
}


def start_peer(options, secret: str, logs: Path) -> Subject:
    """benchmarks/peer under gunicorn with the project's gunicorn configuration."""
    python = str(peer_python())
    reset(options.peer_database_url, options.peer_cache_url)
    environment = _common.app_environment(
        database_url=options.peer_database_url,
        cache_url=options.peer_cache_url,
        secret=secret,
        DJANGO_SETTINGS_MODULE="peer.settings",
        WEB_CONCURRENCY=str(options.workers),
    )
    cwd = ROOT / "benchmarks"
    run_python([python, "-m", "django", "migrate", "--noinput", "-v", "0"], cwd, environment)
    run_python([python, "-m", "django", "shell", "-v", "0", "-c", CREATE_USER], cwd, environment)
    command = [python, "-m", "gunicorn", "-c", str(ROOT / "authproject" / "gunicorn.conf.py"), "peer.wsgi"]
    server = Serve("peer", _common.free_ports(1)[0], environment, logs, command=command, cwd=cwd).start()
    return Subject(
        key="peer",
        label="dj-rest-auth",
        server=server,
        paths={
            "floor": "/api/bench/floor/",
            "me": "/api/auth/user/",
            "refresh": "/api/auth/token/refresh/",
            "login": "/api/auth/login/",
        },
        refresh_cookie="peer-refresh",
        workloads=WORKLOADS,
        floor_of="peer",
    )


def start_ref(options, secret: str, logs: Path, static: Path, worktree: Path) -> Subject:
    """The given git ref, checked out into ``worktree`` (sharing .venv), under `make serve`."""
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(worktree), options.compare_ref],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    note = ""
    if (worktree / "requirements.txt").read_bytes() != (ROOT / "requirements.txt").read_bytes():
        note = (
            f" {options.compare_ref}'s requirements.txt differs from this checkout's: it ran on this .venv."
        )
        print("!!!" + note, flush=True)
    venv = (ROOT / ".venv").resolve()
    (worktree / ".venv").symlink_to(venv)
    # The ref runs on this checkout's .venv: its requirements.txt is made as old as the venv's stamp, so
    # that `make serve` never runs pip there (which would install the ref's pins into the shared venv).
    installed = (venv / ".installed").stat().st_mtime
    os.utime(worktree / "requirements.txt", (installed, installed))
    server = serve_checkout(
        "ref",
        worktree,
        workers=options.workers,
        services=(options.before_database_url, options.before_cache_url),
        secret=secret,
        logs=logs,
        STATIC_ROOT=str(static / "ref"),
    )
    return Subject(
        key="ref",
        label=f"before ({options.compare_ref})",
        note=note,
        server=server,
        paths=OUR_PATHS,
        refresh_cookie="refresh_token",
        workloads=("me", "refresh", "login"),
        floor_of="ours",
    )


def run_python(command: list[str], cwd: Path, environment: dict) -> None:
    result = subprocess.run(
        command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode:
        sys.exit(f"{shlex.join(command)} failed in {cwd}:\n{result.stdout}{result.stderr}")


# --- measuring ------------------------------------------------------------------------------------
def measure(options, subject: Subject, workload: str, duration: float, scratch: Path) -> dict:
    """One wrk run of this workload against this subject, and the CPU time its server processes
    spent per request meanwhile (``cpu_ms``)."""
    url, extra = subject.url(workload), {}
    if workload == "me":
        _, access = subject.sign_in()
        extra = {"headers": [f"Authorization: Bearer {access}"]}
    elif workload == "login":
        body = json.dumps({"username": USERNAME, "password": PASSWORD})
        extra = {"script": "post_json.lua", "script_args": [body]}
    elif workload == "refresh":
        # One new session per wrk thread, its first refresh token in a file. One CSRF secret serves
        # every chain (the check does not tie it to a session): the same value as cookie and header.
        tokens = [subject.sign_in()[0].cookies[subject.refresh_cookie] for _ in range(options.connections)]
        token_file = scratch / f"refresh_tokens_{subject.key}.txt"
        token_file.write_text("\n".join(tokens) + "\n")
        csrf = secrets.token_hex(16)
        url = subject.server.base + "/"
        chain = [str(token_file), csrf, csrf, PAGE_ORIGIN, subject.paths["refresh"], subject.refresh_cookie]
        extra = {"script": "refresh_chain.lua", "script_args": chain}
    cpu_before = _common.descendants_cpu_seconds(subject.server.process.pid)
    result = _common.wrk(url, duration=duration, connections=options.connections, **extra)
    cpu = _common.descendants_cpu_seconds(subject.server.process.pid) - cpu_before
    result["cpu_ms"] = cpu * 1000 / max(result["requests"], 1)
    return result


def check(subject: Subject) -> None:
    """Each workload once, outside wrk: a set-up that cannot answer 2xx stops the run here."""
    client, access = subject.sign_in()
    answers = {"login": 200}
    if "floor" in subject.workloads:
        answers["floor"] = client.request("GET", subject.paths["floor"]).status
    answers["me"] = client.request(
        "GET", subject.paths["me"], headers={"Authorization": f"Bearer {access}"}
    ).status
    csrf = secrets.token_hex(16)
    client.cookies["csrftoken"] = csrf
    refreshed = client.request("POST", subject.paths["refresh"], {}, {"X-CSRFToken": csrf})
    answers["refresh"] = refreshed.status
    if answers != dict.fromkeys(answers, 200):
        sys.exit(f"{subject.label}: a workload does not answer 200 outside wrk: {answers}")
    if not (refreshed.headers.get_all("Set-Cookie") or [""])[-1].startswith(subject.refresh_cookie + "="):
        sys.exit(f"{subject.label}: the refresh cookie is not the last Set-Cookie; wrk would lose the chain")


def run(options, subjects: list[Subject], scratch: Path) -> None:
    """A 1 s warm-up of every workload (not recorded), then the rounds."""
    for subject in subjects:
        check(subject)
        for workload in subject.workloads:
            measure(options, subject, workload, 1, scratch)
    for round_no in range(options.rounds):
        order = subjects[round_no % len(subjects) :] + subjects[: round_no % len(subjects)]
        for workload in WORKLOADS:
            for subject in order:
                if workload not in subject.workloads:
                    continue
                result = measure(options, subject, workload, options.duration, scratch)
                subject.runs.setdefault(workload, []).append(result)
                failed = result["non_2xx"] + result["socket_errors"]
                warning = (
                    f"  !!! {result['non_2xx']} non-2xx, {result['socket_errors']} socket errors"
                    if failed
                    else ""
                )
                print(
                    f"round {round_no + 1} {workload:8} {subject.label:22} {result['rps']:8.1f} req/s "
                    f"p50 {result['p50']:7.2f} ms p99 {result['p99']:7.2f} ms{warning}",
                    flush=True,
                )


# --- reporting ------------------------------------------------------------------------------------
def ratios(subject: Subject, workload: str, by_key: dict[str, Subject], *, cpu: bool = False) -> list[float]:
    """Per round: this workload's requests/s over the floor's requests/s in the same round; with
    ``cpu``, the floor's server CPU per request over this workload's."""
    floors = by_key[subject.floor_of].runs["floor"]
    pairs = zip(subject.runs[workload], floors, strict=True)
    if cpu:
        return [floor["cpu_ms"] / max(run["cpu_ms"], 1e-9) for run, floor in pairs]
    return [run["rps"] / floor["rps"] for run, floor in pairs]


def versions(options, python: Path) -> str:
    """The software measured, the peer's dj-rest-auth as its venv has it."""
    from importlib.metadata import version

    peer = subprocess.run(
        [str(python), "-c", "from importlib.metadata import version; print(version('dj-rest-auth'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return ", ".join(
        [
            f"Python {sys.version.split()[0]}",
            f"Django {version('django')}",
            f"DRF {version('djangorestframework')}",
            f"simplejwt {version('djangorestframework-simplejwt')}",
            f"dj-rest-auth {peer}",
            f"gunicorn {version('gunicorn')}",
            _common.postgresql_version(options.database_url),
            _common.redis_version(options.cache_url),
            _common.wrk_version(),
        ]
    )


def report(
    options, subjects: list[Subject], started: str, load: list[float], software: str
) -> tuple[str, int]:
    """The Markdown section, and how many measured requests failed."""
    by_key = {s.key: s for s in subjects}
    measured = [(s, w) for s in subjects for w in s.workloads if w != "floor"]
    median_ratio = {(s.key, w): statistics.median(ratios(s, w, by_key)) for s, w in measured}
    cpu_ratio = {(s.key, w): statistics.median(ratios(s, w, by_key, cpu=True)) for s, w in measured}
    failed = sum(
        r["non_2xx"] + r["socket_errors"] for s in subjects for runs in s.runs.values() for r in runs
    )
    lines = [
        SECTION,
        "",
        f"- Machine: {_common.machine()}",
        f"- Software: {software}",
        f"- Command: `{shlex.join(['python', 'benchmarks/hot_paths.py', *sys.argv[1:]])}` at {_common.checkout()}",
        f"- Date: {started}; the machine's 1-minute load average was {load[0]:.1f} before the run and "
        f"{load[1]:.1f} after it",
        "",
        f"gunicorn with {options.workers} sync workers per subject, DEBUG off, PostgreSQL and Redis; wrk "
        f"with {options.connections} connections (one per thread), {options.duration:g} s per run after a "
        f"1 s warm-up, {options.rounds} round{'s' if options.rounds > 1 else ''} alternating the subjects. "
        "Figures are medians over the rounds. "
        "Ratio = the subject's requests/s for the workload over the same subject's floor requests/s in the "
        "same round (the median of the rounds' ratios); the floor is a bare DRF view (no authentication, "
        "permission or throttle) behind the subject's middleware. Server CPU ms/request: user + system "
        "time of the subject's gunicorn processes (from /proc) over the requests wrk completed, which "
        "other load on the machine moves far less than requests/s (PostgreSQL's and Redis's own time is "
        "not in it); "
        "ratio by CPU = the floor's CPU per request over the workload's, the same ratio read from CPU time."
        + (
            f" {options.compare_ref} has no floor view: its ratios use this checkout's floor."
            + "".join(s.note for s in subjects)
            if options.compare_ref
            else ""
        ),
        "",
        "| workload | subject | req/s (rounds) | p50 ms | p99 ms | non-2xx | socket errors "
        "| ratio to floor | server CPU ms/request | ratio by CPU |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for workload in WORKLOADS:
        for s in subjects:
            if workload not in s.workloads:
                continue
            runs = s.runs[workload]
            rps = statistics.median(r["rps"] for r in runs)
            each = ", ".join(figure(r["rps"]) for r in runs)
            non_2xx = sum(r["non_2xx"] for r in runs)
            errors = sum(r["socket_errors"] for r in runs)
            ratio = "1" if workload == "floor" else figure(median_ratio[(s.key, workload)])
            by_cpu = "1" if workload == "floor" else figure(cpu_ratio[(s.key, workload)])
            loud = " **FAILED**" if non_2xx or errors else ""
            p50, p99, cpu = (statistics.median(r[p] for r in runs) for p in ("p50", "p99", "cpu_ms"))
            lines.append(
                f"| {workload} | {s.label} | {figure(rps)} ({each}) | {p50:.2f} | {p99:.2f} "
                f"| {non_2xx}{loud} | {errors}{loud} | {ratio} | {cpu:.2f} | {by_cpu} |"
            )

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    me, peer_me = median_ratio[("ours", "me")], median_ratio[("peer", "me")]
    refresh = median_ratio[("ours", "refresh")]
    me_cpu, peer_me_cpu = cpu_ratio[("ours", "me")], cpu_ratio[("peer", "me")]
    refresh_cpu = cpu_ratio[("ours", "refresh")]
    lines += [
        "",
        "Targets (issue 13):",
        "",
        "| target (ratios of requests/s) | figure | | the same by CPU |",
        "|---|---|---|---|",
        f"| me >= 0.5 x floor | {me:.2f} x floor | {verdict(me >= 0.5)} | {me_cpu:.2f} |",
        f"| me ratio >= 1.5 x dj-rest-auth's me ratio | {me:.2f} / {peer_me:.2f} = {me / peer_me:.2f} x "
        f"| {verdict(me >= 1.5 * peer_me)} "
        f"| {me_cpu:.2f} / {peer_me_cpu:.2f} = {me_cpu / peer_me_cpu:.2f} x |",
        f"| refresh >= 0.3 x floor | {refresh:.2f} x floor | {verdict(refresh >= 0.3)} | {refresh_cpu:.2f} |",
    ]
    if options.compare_ref:
        login, before = median_ratio[("ours", "login")], median_ratio[("ref", "login")]
        login_cpu, before_cpu = cpu_ratio[("ours", "login")], cpu_ratio[("ref", "login")]
        lines.append(
            f"| login ratio no lower than {options.compare_ref}'s | {figure(login)} vs {figure(before)} "
            f"| {verdict(login >= before)} | {figure(login_cpu)} vs {figure(before_cpu)} |"
        )
    if failed:
        lines += [
            "",
            f"**{failed} MEASURED REQUESTS FAILED (non-2xx or no answer): these figures do not count.**",
        ]
    return "\n".join(lines) + "\n", failed


def figure(value: float) -> str:
    """Three significant digits, or the whole number when it has more: 0.0312, 0.58, 6.74, 1204."""
    return f"{value:.0f}" if value >= 100 else f"{value:#.3g}".rstrip(".")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3); medians are reported")
    parser.add_argument(
        "--workers", type=int, default=2, help="gunicorn sync workers per subject (default 2)"
    )
    parser.add_argument("--connections", type=int, default=2, help="wrk connections = threads (default 2)")
    parser.add_argument(
        "--compare-ref",
        help="also measure this git ref of the repository (one with `make serve`, e.g. 84c7f80)",
    )
    parser.add_argument(
        "--output", type=Path, help="write the section into this Markdown file (replacing its own)"
    )
    database = "postgres://postgres@127.0.0.1:5432/"
    parser.add_argument(
        "--database-url", default=database + "bench_hot", help="this checkout's (dropped first)"
    )
    parser.add_argument(
        "--cache-url", default="redis://127.0.0.1:6379/8", help="this checkout's (emptied first)"
    )
    parser.add_argument("--peer-database-url", default=database + "bench_peer")
    parser.add_argument("--peer-cache-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--before-database-url", default=database + "bench_before", help="--compare-ref's")
    parser.add_argument("--before-cache-url", default="redis://127.0.0.1:6379/11", help="--compare-ref's")
    options = parser.parse_args()

    python = peer_python()
    scratch = Path(tempfile.mkdtemp(prefix="hot_paths_"))
    (scratch / "logs").mkdir()
    worktree = scratch / "ref"
    secret = secrets.token_urlsafe(50)
    subjects: list[Subject] = []
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    try:
        subjects.append(start_ours(options, secret, scratch / "logs", scratch / "static"))
        subjects.append(start_peer(options, secret, scratch / "logs"))
        if options.compare_ref:
            subjects.append(start_ref(options, secret, scratch / "logs", scratch / "static", worktree))
        serving = ", ".join(f"{s.label} {s.server.base}" for s in subjects)
        print(f"serving: {serving}; logs in {scratch / 'logs'}", flush=True)
        load = [os.getloadavg()[0]]
        run(options, subjects, scratch)
        load.append(os.getloadavg()[0])
    finally:
        for subject in subjects:
            subject.server.stop()
        shutil.rmtree(scratch / "static", ignore_errors=True)  # collectstatic's copies; the logs stay
        if worktree.exists():
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)
    raw = {s.label: s.runs for s in subjects}
    (scratch / "runs.json").write_text(json.dumps(raw, indent=1))  # the figures, whatever happens next
    section, failed = report(options, subjects, started, load, versions(options, python))
    print("\n" + section)
    if options.output:
        write_section(options.output, section)
        print(f"written to {options.output}")
    if failed:
        sys.exit(f"!!! {failed} measured requests failed (non-2xx or no answer): see the table above")


if __name__ == "__main__":
    main()
