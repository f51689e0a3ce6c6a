"""accounts in another project: tests/second_project, with its own settings and user model (members.Member,
signing in by email) and none of authproject's wiring, checked, migrated and driven in a fresh process.

On SQLite it uses a temporary file; with DATABASE_URL set, that server with a database of its own.
"""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_second_project(*args: str) -> subprocess.CompletedProcess:
    """Run tests/second_project/flow.py in a new interpreter, as that project's manage.py would."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.second_project.settings"}
    return subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "tests.second_project.flow", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def assert_passed(result: subprocess.CompletedProcess, last_line: str) -> None:
    output = f"exit status {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode == 0, output
    assert result.stdout.rstrip().endswith(last_line), output


def test_second_project_checks_migrates_and_runs_login_refresh_logout_and_the_admin():
    assert_passed(run_second_project(), "second project: all steps passed")


def test_second_project_starts_without_this_repos_project_package():
    result = run_second_project("--checks-only", "--without-authproject")
    assert_passed(result, "System check identified no issues (0 silenced).")
