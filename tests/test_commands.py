"""The manage.py commands: their effect, their output, dry runs that change nothing, and clear errors."""

import io
import json
import os
import stat
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from accounts import keys
from accounts.management.commands.list_sessions import COLUMNS
from accounts.management.commands.migrate_once import MIGRATION_LOCK_KEY
from accounts.models import (
    AuditEvent,
    AuditEventType,
    Passkey,
    RecoveryCode,
    RevokeReason,
    Session,
    TotpDevice,
)
from accounts.services import session_create

from .helpers import BASE_DIR, MAC_CHROME, manage_py, second_factors_give, served_database_url

pytestmark = pytest.mark.django_db


def run(name, *args, stdin: str | None = None, monkeypatch=None) -> tuple[str, str]:
    """Run a command; its stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def table_fields(line: str) -> dict[str, str]:
    """A list_sessions table row, cut at its columns."""
    fields, start = {}, 0
    for header, width in COLUMNS:
        fields[header] = line[start : start + width if width else None].strip()
        start += width + 2
    return fields


@pytest.fixture
def bob(user_factory):
    return user_factory(username="bob")


# --- list_sessions ------------------------------------------------------------------------------
def test_list_sessions_shows_active_sessions_as_a_table_with_a_count(make_session, bob):
    active = make_session(user=bob, ip="203.0.113.4", user_agent=MAC_CHROME)
    revoked = make_session(user=bob, state="revoked")
    out, _ = run("list_sessions")
    header, *rows, summary = out.strip().splitlines()
    assert header.split() == "SESSION USER STATUS CREATED LAST USED ENDS AMR IP DEVICE".split()
    [row] = rows
    assert row.split()[:3] == [str(active.pk)[:8], "bob", "active"]
    assert table_fields(row)["AMR"] == "pwd"
    assert row.endswith("203.0.113.4      Chrome 131 on macOS")
    assert f"{timezone.localtime(active.expires_at):%Y-%m-%d %H:%M}" in row
    assert summary == "1 active session"
    assert str(revoked.pk)[:8] not in out and active.refresh_jti not in out and MAC_CHROME not in out


def test_list_sessions_rows_stay_short_whatever_the_user_agent(make_session, user_factory):
    long_name = user_factory(username="a_rather_long_username_indeed")
    make_session(user=long_name, ip="2001:db8:ffff:ffff:ffff:ffff:ffff:1", user_agent=MAC_CHROME + " x" * 200)
    out, _ = run("list_sessions")
    assert max(len(line) for line in out.splitlines()) <= 160


@pytest.mark.parametrize("flag", [("--status", "all"), ("--all",)])
def test_list_sessions_all_includes_expired_and_revoked_with_the_reason(make_session, flag):
    sessions = [make_session(state=state) for state in ("active", "expired", "revoked")]
    out, _ = run("list_sessions", *flag)
    statuses = {
        table_fields(line)["SESSION"]: table_fields(line)["STATUS"] for line in out.splitlines()[1:-1]
    }
    states = ("active", "expired", "revoked: logout")
    assert statuses == {str(s.pk)[:8]: state for s, state in zip(sessions, states, strict=True)}
    assert out.strip().endswith("3 sessions")


@pytest.mark.parametrize("status", ["active", "expired", "revoked"])
def test_list_sessions_status_shows_only_that_state(make_session, status):
    sessions = {state: make_session(state=state) for state in ("active", "expired", "revoked")}
    out, _ = run("list_sessions", "--status", status)
    [row] = out.splitlines()[1:-1]
    assert row.startswith(str(sessions[status].pk)[:8])
    assert out.strip().endswith(f"1 {status} session")


def test_list_sessions_limit_shows_the_newest_and_says_there_may_be_more(make_session):
    sessions = [make_session() for _ in range(3)]
    Session.objects.filter(pk=sessions[0].pk).update(created_at=timezone.now() - timedelta(hours=1))
    out, _ = run("list_sessions", "--limit", "2")
    rows = out.splitlines()[1:-1]
    assert {row[:8] for row in rows} == {str(s.pk)[:8] for s in sessions[1:]}
    assert out.strip().endswith("2 active sessions (--limit 2: there may be more)")


def test_list_sessions_verbosity_0_prints_the_rows_alone(make_session):
    session = make_session()
    out, err = run("list_sessions", "-v", "0")
    assert out.splitlines() == [out.strip()] and out.startswith(str(session.pk)[:8])
    out, err = run("list_sessions", "--json", "--verbosity", "0")
    assert len(json.loads(out)) == 1 and err == ""


def test_list_sessions_for_one_user(make_session, bob):
    mine = make_session(user=bob)
    make_session()
    out, _ = run("list_sessions", "--user", "bob")
    assert str(mine.pk)[:8] in out and out.strip().endswith("1 active session")


def test_list_sessions_json_is_pure_json_on_stdout_with_the_count_on_stderr(make_session, bob):
    session = make_session(user=bob, ip="203.0.113.4")
    out, err = run("list_sessions", "--json")
    [row] = json.loads(out)
    assert row["id"] == str(session.pk) and row["user"] == "bob" and row["status"] == "active"
    assert row["ip"] == "203.0.113.4" and row["revoked_at"] is None
    assert (row["device"], row["user_agent"]) == ("Firefox", "Firefox")
    assert (row["amr"], row["auth_time"]) == (["pwd"], session.auth_time.isoformat())
    assert not any("jti" in key for key in row)
    assert err.strip() == "1 active session"


def test_list_sessions_shows_how_each_session_signed_in(bob):
    second_step = session_create(user=bob, ip="203.0.113.4", user_agent="Firefox", amr=("pwd", "otp"))
    passkey = session_create(user=bob, ip="203.0.113.4", user_agent="Firefox", amr=("hwk", "user"))
    out, _ = run("list_sessions")
    shown = {table_fields(line)["SESSION"]: table_fields(line)["AMR"] for line in out.splitlines()[1:-1]}
    assert shown == {str(second_step.pk)[:8]: "pwd+otp", str(passkey.pk)[:8]: "hwk+user"}
    out, _ = run("list_sessions", "--json")
    assert {row["id"]: row["amr"] for row in json.loads(out)} == {
        str(second_step.pk): ["pwd", "otp"],
        str(passkey.pk): ["hwk", "user"],
    }


def test_list_sessions_json_with_no_sessions_is_an_empty_array(db):
    out, _ = run("list_sessions", "--json")
    assert json.loads(out) == []


def test_list_sessions_for_an_unknown_user_is_a_clear_error(db):
    with pytest.raises(CommandError, match="No user with username 'nobody'"):
        run("list_sessions", "--user", "nobody")


# --- revoke_sessions ----------------------------------------------------------------------------
def test_revoke_sessions_for_one_user_revokes_only_theirs_and_records_the_reason(make_session, bob):
    bobs = [make_session(user=bob) for _ in range(2)]
    other = make_session()
    out, _ = run("revoke_sessions", "--user", "bob", "--reason", "ticket 42")
    assert out.strip() == "Revoked 2 sessions of bob."
    assert {s.revoke_reason for s in Session.objects.filter(pk__in=[s.pk for s in bobs])} == {
        RevokeReason.REVOKED_BY_COMMAND
    }
    assert Session.objects.get(pk=other.pk).revoked_at is None
    event = AuditEvent.objects.get(type=AuditEventType.REVOKED_BY_COMMAND)
    assert event.user == bob and event.actor is None
    assert event.detail == "2 sessions revoked; manage.py revoke_sessions; ticket 42"


@pytest.mark.parametrize(
    "given", [str, lambda pk: str(pk)[:8], lambda pk: str(pk).replace("-", "")[:12].upper()]
)
def test_revoke_one_session_by_its_id_or_the_start_of_it_stops_its_tokens(signed_in, api, given):
    session = Session.objects.get()
    out, _ = run("revoke_sessions", "--session", given(session.pk))
    assert out.strip() == "Revoked 1 session of alice."
    assert api.get("/api/users/me/").status_code == 401
    assert signed_in.refresh().status_code == 401
    event = AuditEvent.objects.get(type=AuditEventType.REVOKED_BY_COMMAND)
    assert (event.session_id, event.detail) == (session.pk, "session revoked; manage.py revoke_sessions")


def test_an_ambiguous_session_id_prefix_is_refused_with_the_number_of_matches(make_session):
    sessions = [make_session() for _ in range(3)]
    for n, session in enumerate(sessions):
        Session.objects.filter(pk=session.pk).update(id=uuid.UUID(f"abcdef12-0000-4000-8000-00000000000{n}"))
    with pytest.raises(CommandError, match="3 sessions have an id starting 'abcdef12'; give more of it"):
        run("revoke_sessions", "--session", "abcdef12")
    assert Session.objects.active().count() == 3
    out, _ = run("revoke_sessions", "--session", "abcdef12-0000-4000-8000-000000000001")
    assert out.strip().startswith("Revoked 1 session of")


def test_revoking_an_already_revoked_session_revokes_nothing_and_records_nothing(make_session):
    session = make_session(state="revoked")
    out, _ = run("revoke_sessions", "--session", str(session.pk)[:8])
    assert (
        out.strip()
        == f"Session {session.pk} of {session.user.username} was already revoked (revoked: logout)."
    )
    assert not AuditEvent.objects.filter(type=AuditEventType.REVOKED_BY_COMMAND).exists()


@pytest.mark.parametrize("which", [("--all-users", "--noinput"), ("--user", "bob")])
def test_revoking_nothing_records_nothing(bob, which):
    out, _ = run("revoke_sessions", *which)
    assert out.strip().startswith("Revoked 0 sessions of")
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    ("which", "said"),
    [
        (("--user", "bob"), "Would revoke 2 sessions of bob (dry run: nothing revoked)."),
        (("--all-users",), "Would revoke 3 sessions of every user (dry run: nothing revoked)."),
    ],
)
def test_revoke_dry_run_counts_and_changes_nothing(make_session, bob, which, said):
    make_session(user=bob)
    make_session(user=bob, state="expired")  # not revoked yet: revoking would mark it too
    make_session(user=bob, state="revoked")
    make_session()
    active_before = set(Session.objects.unrevoked().values_list("pk", flat=True))
    out, _ = run("revoke_sessions", *which, "--dry-run")
    assert out.strip() == said.replace("3 sessions", f"{len(active_before)} sessions")
    assert set(Session.objects.unrevoked().values_list("pk", flat=True)) == active_before
    assert not AuditEvent.objects.filter(type=AuditEventType.REVOKED_BY_COMMAND).exists()


@pytest.mark.parametrize("args", [("--user", "bob"), ("--all-users", "--noinput", "--batch-size", "1")])
def test_revoke_sessions_at_verbosity_0_prints_nothing(make_session, bob, args):
    make_session(user=bob)
    make_session(user=bob)
    out, err = run("revoke_sessions", *args, "-v", "0")
    assert (out, err) == ("", "")
    assert not Session.objects.active().exists()


@pytest.mark.parametrize("no_question", ["--noinput", "--no-input", "--yes"])
def test_revoke_all_users_with_noinput_revokes_everything_in_batches(make_session, no_question):
    for _ in range(5):
        make_session()
    out, err = run("revoke_sessions", "--all-users", no_question, "--batch-size", "2")
    assert out.strip() == "Revoked 5 sessions of every user."
    assert err.split() == ["...", "2", "revoked", "...", "4", "revoked", "...", "5", "revoked"]
    assert not Session.objects.active().exists()
    assert AuditEvent.objects.get(type=AuditEventType.REVOKED_BY_COMMAND).detail == (
        "all users: 5 sessions revoked; manage.py revoke_sessions"
    )


def test_revoke_all_users_asks_first_and_goes_on_when_told_yes(make_session, monkeypatch):
    make_session()
    out, _ = run("revoke_sessions", "--all-users", stdin="yes\n", monkeypatch=monkeypatch)
    assert "Revoked 1 session of every user." in out


@pytest.mark.parametrize("answer", ["no\n", "\n", ""])  # "" is end of input: cron, a pipe
def test_revoke_all_users_without_confirmation_revokes_nothing(make_session, monkeypatch, answer):
    make_session()
    with pytest.raises(CommandError, match="Nothing revoked: not confirmed"):
        run("revoke_sessions", "--all-users", stdin=answer, monkeypatch=monkeypatch)
    assert Session.objects.active().count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "one of the arguments --user --session --all-users is required"),
        (("--user", "bob", "--all-users"), "not allowed with argument"),
        (("--user", "nobody"), "No user with username 'nobody'"),
        (("--session", "not-a-uuid"), "Not a session id"),
        (("--session", "abc-123"), "Give at least 8 characters of the session id"),
        (("--session", str(uuid.UUID(int=7))), "No session with an id starting"),
        (("--all-users", "--noinput", "--batch-size", "0"), "must be at least 1"),
    ],
)
def test_revoke_sessions_bad_arguments_give_a_clear_error(db, args, message):
    with pytest.raises(CommandError, match=message):
        run("revoke_sessions", *args)


# --- reset_mfa ----------------------------------------------------------------------------------
def test_reset_mfa_with_noinput_removes_every_factor_audits_and_mails_the_user(
    bob, make_session, django_capture_on_commit_callbacks, mailoutbox
):
    second_factors_give(bob, recovery_codes=10, used_codes=1, passkeys=("Laptop", "Phone"))
    session = make_session(user=bob)
    with django_capture_on_commit_callbacks(execute=True):
        out, _ = run("reset_mfa", "--user", "bob", "--noinput")
    assert out.strip() == (
        "Removed the authenticator app, 9 recovery codes and 2 passkeys of bob. Their sessions stay."
    )
    assert not any(model.objects.filter(user=bob).exists() for model in (TotpDevice, RecoveryCode, Passkey))
    [event] = AuditEvent.objects.filter(type=AuditEventType.MFA_RESET)
    assert (event.user, event.actor) == (bob, None)
    assert event.detail == (
        "removed the authenticator app, 9 recovery codes and 2 passkeys; manage.py reset_mfa"
    )
    [mail] = mailoutbox
    assert mail.to == ["bob@example.com"] and "removed every second factor" in mail.body
    assert Session.objects.active().filter(pk=session.pk).exists()


def test_reset_mfa_says_what_it_will_remove_and_goes_on_when_told_yes(bob, monkeypatch, capsys):
    second_factors_give(bob, totp="pending", recovery_codes=0, passkeys=())
    out, _ = run("reset_mfa", "--user", "bob", stdin="yes\n", monkeypatch=monkeypatch)
    asked = capsys.readouterr().out  # input() writes its question to the terminal
    assert asked == "Remove the authenticator app (not yet confirmed) of bob? Type 'yes' to go on: "
    assert "Removed the authenticator app (not yet confirmed) of bob." in out
    assert not TotpDevice.objects.filter(user=bob).exists()


@pytest.mark.parametrize("answer", ["no\n", "\n", ""])  # "" is end of input: cron, a pipe
def test_reset_mfa_without_confirmation_removes_nothing(bob, monkeypatch, answer):
    second_factors_give(bob)
    with pytest.raises(CommandError, match="Nothing removed: not confirmed"):
        run("reset_mfa", "--user", "bob", stdin=answer, monkeypatch=monkeypatch)
    assert TotpDevice.objects.filter(user=bob).exists() and Passkey.objects.filter(user=bob).exists()
    assert not AuditEvent.objects.filter(type=AuditEventType.MFA_RESET).exists()


@pytest.mark.parametrize("noinput", [(), ("--noinput",)])
def test_reset_mfa_for_a_user_with_no_factor_asks_nothing_and_records_nothing(bob, noinput):
    out, _ = run("reset_mfa", "--user", "bob", *noinput)  # no stdin: a question would fail
    assert out.strip() == "bob has no second factor: nothing removed."
    assert not AuditEvent.objects.filter(type=AuditEventType.MFA_RESET).exists()


def test_reset_mfa_at_verbosity_0_prints_nothing(bob):
    second_factors_give(bob)
    out, err = run("reset_mfa", "--user", "bob", "--noinput", "-v", "0")
    assert (out, err) == ("", "")
    assert not TotpDevice.objects.filter(user=bob).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "the following arguments are required: --user"),
        (("--user", "nobody", "--noinput"), "No user with username 'nobody'"),
    ],
)
def test_reset_mfa_bad_arguments_give_a_clear_error(db, args, message):
    with pytest.raises(CommandError, match=message):
        run("reset_mfa", *args)


# --- flush_expired_sessions ---------------------------------------------------------------------
@pytest.fixture
def dead_and_alive(make_session):
    """Sessions on both sides of a 7-day retention, plus audit events on both sides of 180 days."""
    now = timezone.now()
    alive = make_session()
    recently_revoked = make_session(state="revoked")
    long_revoked = make_session(state="revoked")
    Session.objects.filter(pk=long_revoked.pk).update(revoked_at=now - timedelta(days=8))
    long_expired = make_session(state="expired")  # created 60 days ago, idle expiry 53 days ago
    recently_expired = make_session()
    Session.objects.filter(pk=recently_expired.pk).update(idle_expires_at=now - timedelta(days=1))
    old_event = AuditEvent.objects.create(type=AuditEventType.LOGOUT, created_at=now - timedelta(days=181))
    new_event = AuditEvent.objects.create(type=AuditEventType.LOGOUT, created_at=now - timedelta(days=179))
    return {
        "kept": {alive.pk, recently_revoked.pk, recently_expired.pk},
        "flushed": {long_revoked.pk, long_expired.pk},
        "old_event": old_event.pk,
        "new_event": new_event.pk,
    }


def test_flush_deletes_only_sessions_dead_for_longer_than_the_retention(dead_and_alive):
    out, _ = run("flush_expired_sessions")
    assert set(Session.objects.values_list("pk", flat=True)) == dead_and_alive["kept"]
    assert "Deleted 2 sessions and" in out


def test_flush_prunes_audit_events_past_their_retention(dead_and_alive):
    run("flush_expired_sessions")
    remaining = set(AuditEvent.objects.values_list("pk", flat=True))
    assert dead_and_alive["new_event"] in remaining and dead_and_alive["old_event"] not in remaining


def test_flush_older_than_0_deletes_every_dead_session_but_never_an_active_one(dead_and_alive):
    out, _ = run("flush_expired_sessions", "--older-than", "0")
    [(survivor, revoked_at)] = Session.objects.values_list("pk", "revoked_at")
    assert survivor in dead_and_alive["kept"] and revoked_at is None
    assert Session.objects.get().is_active()
    assert out.startswith("Deleted 4 sessions")


def test_flush_dry_run_counts_and_changes_nothing(dead_and_alive):
    sessions_before = Session.objects.count()
    events_before = AuditEvent.objects.count()
    out, _ = run("flush_expired_sessions", "--dry-run", "--older-than", "0")
    assert out.strip() == ("Would delete 4 sessions and 1 audit event (dry run: nothing deleted).")
    assert (Session.objects.count(), AuditEvent.objects.count()) == (sessions_before, events_before)


def test_flush_works_in_batches_and_reports_progress_on_stderr(make_session):
    for _ in range(5):
        make_session(state="expired")
    out, err = run("flush_expired_sessions", "--batch-size", "2")
    assert err.split("\n")[:3] == [
        "... 2 sessions deleted",
        "... 4 sessions deleted",
        "... 5 sessions deleted",
    ]
    assert out.strip() == "Deleted 5 sessions and 0 audit events."
    assert not Session.objects.exists()


def test_flush_in_batches_never_deletes_an_active_session_past_the_first_batch(make_session):
    """Every batch is cut from the dead sessions, not from the whole table: with live sessions
    spread over several windows of two keys, the flush takes only the expired ones."""
    dead = {make_session(state="expired").pk for _ in range(3)}
    alive = {make_session().pk for _ in range(6)}  # at most two can fall into the first window
    out, _ = run("flush_expired_sessions", "--batch-size", "2")
    assert set(Session.objects.values_list("pk", flat=True)) == alive
    assert out.strip() == f"Deleted {len(dead)} sessions and 0 audit events."


def test_flush_audit_retention_setting_applies(make_session, settings):
    settings.ACCOUNTS_AUDIT_RETENTION = timedelta(days=1)
    AuditEvent.objects.create(type=AuditEventType.LOGOUT, created_at=timezone.now() - timedelta(days=2))
    out, _ = run("flush_expired_sessions")
    assert out.strip() == "Deleted 0 sessions and 1 audit event."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--older-than", "-1"), "must not be negative"),
        (("--older-than", "soon"), "not a whole number"),
        (("--batch-size", "0"), "must be at least 1"),
    ],
)
def test_flush_bad_arguments_give_a_clear_error(db, args, message):
    with pytest.raises(CommandError, match=message):
        run("flush_expired_sessions", *args)


def test_flush_at_verbosity_0_prints_nothing(make_session):
    make_session(state="expired")
    assert run("flush_expired_sessions", "--batch-size", "1", "-v", "0") == ("", "")
    assert not Session.objects.exists()


def pg_reltuples(table: str) -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        return cursor.fetchone()[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="ANALYZE and pg_class are PostgreSQL's")
def test_flush_analyzes_a_table_it_shrank_by_a_large_part_and_leaves_the_others(make_session):
    for _ in range(8):
        make_session(state="expired")
    keep = [make_session() for _ in range(2)]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE accounts_session")
    assert pg_reltuples("accounts_session") == 10
    out, _ = run("flush_expired_sessions", "-v", "2")
    assert "Analyzed accounts_session (it shrank by a large part)." in out
    assert "Analyzed accounts_auditevent" not in out  # nothing deleted there
    assert pg_reltuples("accounts_session") == len(keep)  # the planner now knows what is left
    for _ in range(20):
        make_session()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE accounts_session")
    Session.objects.filter(pk=keep[0].pk).update(idle_expires_at=timezone.now() - timedelta(days=30))
    out, _ = run("flush_expired_sessions", "-v", "2")  # 1 of 22 rows: autovacuum's business
    assert out.strip() == "Deleted 1 session and 0 audit events."


APP_COMMANDS = (
    "list_sessions",
    "revoke_sessions",
    "reset_mfa",
    "flush_expired_sessions",
    "generate_signing_key",
    "send_test_mail",
    "migrate_once",
    "rotate_mfa_keys",
    "accounts_worker",
)


def test_the_app_commands_are_all_listed_here():
    from django.core.management import find_commands

    assert sorted(find_commands(str(BASE_DIR / "accounts" / "management"))) == sorted(APP_COMMANDS)


@pytest.mark.parametrize("name", APP_COMMANDS)
def test_each_commands_help_documents_its_exit_statuses(name):
    result = manage_py(name, "--help", check=True)
    text = " ".join(result.stdout.split())
    assert "Exit status: 0 when done (also when nothing matched); 1 on an error, said on stderr" in text
    assert "2 on bad usage" in text
    assert "141 when the reader of the output stopped early" in text


def test_the_exit_statuses_are_the_documented_ones(tmp_path):
    database = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_SECRET_KEY": "k" * 50,
        "EMAIL_URL": "consolemail://",  # DEBUG off needs a mail server (accounts.E018)
    }
    manage_py("migrate", "--noinput", check=True, **database)
    assert manage_py("revoke_sessions", "--all-users", "--noinput", **database).returncode == 0
    assert manage_py("revoke_sessions", "--user", "nobody", **database).returncode == 1
    assert manage_py("reset_mfa", "--user", "nobody", "--noinput", **database).returncode == 1
    done = manage_py("revoke_sessions", "--all-users", "--batch-size", "none", **database)
    assert done.returncode == 2, done.stderr
    assert manage_py("list_sessions", "--status", "asleep", **database).returncode == 2


@pytest.fixture
def many_sessions(user_factory, make_session):
    """More sessions than fit in the buffers between list_sessions and its reader (its stdout's 8 KiB
    and a pipe's 64 KiB), on the test database that a manage.py process can read."""
    owner = user_factory(username="many")
    for _ in range(1000):
        make_session(user=owner)
    return {
        "DATABASE_URL": served_database_url(),
        "DJANGO_SECRET_KEY": "k" * 50,
        "EMAIL_URL": "consolemail://",  # DEBUG off needs a mail server (accounts.E018)
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("options", [(), ("--json",)], ids=["table", "json"])
def test_list_sessions_ends_quietly_with_141_when_its_reader_has_gone(many_sessions, options):
    # The read end is closed before the command writes anything: every write fails with EPIPE.
    process = subprocess.Popen(
        [sys.executable, "manage.py", "list_sessions", *options],
        cwd=BASE_DIR,
        env={**os.environ, **many_sessions},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 141
    assert stderr == ""


@pytest.mark.django_db(transaction=True)
def test_list_sessions_into_head_prints_the_first_line_and_nothing_on_stderr(many_sessions):
    command = f"set -o pipefail; {sys.executable} manage.py list_sessions | head -n 1"
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=BASE_DIR,
        env={**os.environ, **many_sessions},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.split() == "SESSION USER STATUS CREATED LAST USED ENDS AMR IP DEVICE".split()  # the header
    assert result.stderr == ""
    assert result.returncode == 141  # list_sessions' status, as pipefail reports it


# --- generate_signing_key ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("algorithm", "key_type", "bits"),
    [("ES256", ec.EllipticCurvePrivateKey, 256), ("RS256", rsa.RSAPrivateKey, 3072)],
)
def test_generate_signing_key_writes_a_private_key_readable_by_its_owner_only(
    tmp_path, algorithm, key_type, bits
):
    path = tmp_path / "signing.pem"
    out, _ = run("generate_signing_key", "--algorithm", algorithm, "--out", str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, key_type) and key.key_size == bits
    assert keys.KeyConfig(algorithm, None, (str(path),), ()).errors() == []  # the checks accept it
    assert keys.kid_of(path.read_bytes(), algorithm) in out


def test_generate_signing_key_refuses_to_overwrite_a_file_without_force(tmp_path):
    path = tmp_path / "signing.pem"
    path.write_bytes(b"the key in use")
    with pytest.raises(CommandError, match="--force"):
        run("generate_signing_key", "--algorithm", "ES256", "--out", str(path))
    assert path.read_bytes() == b"the key in use"


def test_generate_signing_key_with_force_overwrites_and_makes_the_file_private(tmp_path):
    path = tmp_path / "signing.pem"
    path.write_bytes(b"old")
    path.chmod(0o644)
    run("generate_signing_key", "--algorithm", "ES256", "--out", str(path), "--force")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in path.read_bytes()


def test_generate_signing_key_refuses_hs256(tmp_path):
    with pytest.raises(CommandError, match="invalid choice"):
        run("generate_signing_key", "--algorithm", "HS256", "--out", str(tmp_path / "k.pem"))


def test_migrate_once_runs_djangos_migrate(db):
    out, _ = run("migrate_once", "--noinput")
    assert "No migrations to apply." in out


@pytest.mark.skipif(connection.vendor != "postgresql", reason="advisory locks are PostgreSQL's")
def test_migrate_once_waits_while_another_instance_holds_the_migration_lock_and_releases_it(db):
    held_for = 1.5  # seconds
    with psycopg.connect(served_database_url(), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
        unlock = ["SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_KEY]]
        release = threading.Timer(held_for, other.execute, unlock)
        started = time.monotonic()
        release.start()
        try:
            out, _ = run("migrate_once", "--noinput")
        finally:
            release.join()
        waited = time.monotonic() - started
        assert waited >= held_for
        assert "Another instance is migrating this database: waiting for it." in out
        assert "No migrations to apply." in out
        # Done, it let go: the next instance gets the lock at once.
        assert other.execute("SELECT pg_try_advisory_lock(%s)", [MIGRATION_LOCK_KEY]).fetchone()[0]


def test_flush_deletes_expired_and_used_second_factor_steps_and_challenges_but_not_live_ones(user_factory):
    from accounts.models import MfaToken, WebAuthnChallenge

    alice, now = user_factory(username="alice"), timezone.now()
    live, expired, used = now + timedelta(minutes=5), now - timedelta(seconds=1), now
    for n, (expires_at, used_at) in enumerate([(live, None), (expired, None), (live, used)]):
        when = {"expires_at": expires_at, "used_at": used_at}
        MfaToken.objects.create(digest=f"{n:064x}", user=alice, transport="cookie", **when)
        WebAuthnChallenge.objects.create(digest=f"{n:064x}", purpose="login", **when)
    out, _ = run("flush_expired_sessions", "--dry-run")
    assert out.strip() == (
        "Would delete 0 sessions and 0 audit events, and 4 expired second-factor steps or challenges "
        "(dry run: nothing deleted)."
    )
    out, _ = run("flush_expired_sessions", "--batch-size", "1")
    assert out.strip() == (
        "Deleted 0 sessions and 0 audit events, and 4 expired second-factor steps or challenges."
    )
    assert MfaToken.objects.get().expires_at == live and WebAuthnChallenge.objects.get().expires_at == live
    out, _ = run("flush_expired_sessions")
    assert out.strip() == "Deleted 0 sessions and 0 audit events."
