"""What does one password hash cost under each Argon2id parameter set, on this machine?

For each candidate (Django's default, OWASP's minimum and its equivalents, RFC 9106's second
recommendation, and the one this project uses, ``accounts.hashers.Argon2idHasher``) it measures,
with argon2-cffi as Django calls it:

- one hash at a time, in one process: the median time of ``--hashes`` hashes (what one login costs
  when nothing else runs);
- two hashes at a time, in two processes started together (two logins at once on the two cores of
  the machines this project is measured on): the median time of each;
- the peak memory one hash adds to a fresh process (its ``memory_cost``, give or take).

    .venv/bin/python benchmarks/argon2_parameters.py [--hashes 15] [--output /tmp/argon2.md]
"""

import argparse
import multiprocessing
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"


def candidates() -> list[tuple[str, int, int, int]]:
    """(name, time_cost, memory_cost KiB, parallelism)."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "authproject.settings")
    import django

    django.setup()
    from django.contrib.auth.hashers import Argon2PasswordHasher

    from accounts.hashers import Argon2idHasher

    ours = Argon2idHasher
    return [
        ("Django 5.2's default", *_params(Argon2PasswordHasher)),
        ("OWASP minimum (19 MiB, t=2, p=1)", 2, 19456, 1),
        ("OWASP equivalent (46 MiB, t=1, p=1)", 1, 47104, 1),
        ("RFC 9106 second choice (64 MiB, t=3, p=4)", 3, 65536, 4),
        ("this project (accounts.hashers)", *_params(ours)),
    ]


def _params(hasher) -> tuple[int, int, int]:
    return hasher.time_cost, hasher.memory_cost, hasher.parallelism


def _hash_times(params: tuple[int, int, int], count: int, start, out) -> None:
    import argon2

    time_cost, memory_cost, parallelism = params
    hasher = argon2.PasswordHasher(
        time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=argon2.Type.ID
    )
    before = _peak_rss_kib()
    start.wait()
    times = []
    for _ in range(count):
        began = time.perf_counter()
        hasher.hash(PASSWORD)
        times.append((time.perf_counter() - began) * 1000)
    out.put((times, (_peak_rss_kib() - before) / 1024))


def _peak_rss_kib() -> int:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def measure(params: tuple[int, int, int], count: int, processes: int) -> tuple[float, float]:
    """Median ms per hash with ``processes`` hashing at once, and the peak MiB one process added."""
    context = multiprocessing.get_context("spawn")
    start, out = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_hash_times, args=(params, count, start, out)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    return statistics.median(t for times, _ in results for t in times), max(rss for _, rss in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hashes", type=int, default=15)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    import argon2

    rows = []
    for name, *params in candidates():
        one, memory = measure(tuple(params), args.hashes, 1)
        two, _ = measure(tuple(params), args.hashes, 2)
        rows.append((name, *params, one, two, memory))
        print(
            f"{name}: one at a time {one:.1f} ms, two at once {two:.1f} ms each, +{memory:.0f} MiB",
            flush=True,
        )

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    lines = [
        "## Argon2id parameters (issue 13): hash time and memory",
        "",
        "`benchmarks/argon2_parameters.py` hashes one password with argon2-cffi (as Django's hasher",
        f"calls it) {args.hashes} times per candidate: in one process, then in two processes at once",
        "(two logins at the same time on a 2-core machine). Medians; memory is the peak RSS one hash adds.",
        "",
        f"- Machine: {cpu}, {os.cpu_count()} cores; Linux {platform.release()};"
        f" Python {platform.python_version()}; argon2-cffi {argon2.__version__}",
        f"- Command: `.venv/bin/python benchmarks/argon2_parameters.py --hashes {args.hashes}`",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        "| parameters | t | m (MiB) | p | one at a time, ms | two at once, ms each | memory, MiB |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {name} | {t} | {m / 1024:.0f} | {p} | {one:.1f} | {two:.1f} | {memory:.0f} |"
            for name, t, m, p, one, two, memory in rows
        ),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
