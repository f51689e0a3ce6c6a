"""The manage.py commands: their effect, their output, dry runs that change nothing, and clear errors."""

import io
import json
import stat
import uuid
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts import keys
from accounts.models import AuditEvent, AuditEventType, RevokeReason, Session

pytestmark = pytest.mark.django_db


def run(name, *args, stdin: str | None = None, monkeypatch=None) -> tuple[str, str]:
    """Run a command; its stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def bob(user_factory):
    return user_factory(username="bob")


# --- list_sessions ------------------------------------------------------------------------------
def test_list_sessions_shows_active_sessions_as_a_table_with_a_count(make_session, bob):
    active = make_session(user=bob, ip="203.0.113.4", user_agent="Firefox/140")
    revoked = make_session(user=bob, state="revoked")
    out, _ = run("list_sessions")
    header, *rows, summary = out.strip().splitlines()
    assert header.split()[:3] == ["SESSION", "USER", "STATUS"]
    assert len(rows) == 1 and rows[0].split()[:3] == [str(active.pk), "bob", "active"]
    assert "203.0.113.4" in rows[0] and "Firefox/140" in rows[0]
    assert summary == "1 active session"
    assert str(revoked.pk) not in out and active.refresh_jti not in out


def test_list_sessions_all_includes_expired_and_revoked(make_session):
    sessions = [make_session(state=state) for state in ("active", "expired", "revoked")]
    out, _ = run("list_sessions", "--all")
    statuses = {line.split()[0]: line.split()[2] for line in out.splitlines()[1:-1]}
    states = ("active", "expired", "revoked")
    assert statuses == {str(s.pk): state for s, state in zip(sessions, states, strict=True)}
    assert out.strip().endswith("3 sessions")


def test_list_sessions_for_one_user(make_session, bob):
    mine = make_session(user=bob)
    make_session()
    out, _ = run("list_sessions", "--user", "bob")
    assert str(mine.pk) in out and out.strip().endswith("1 active session")


def test_list_sessions_json_is_pure_json_on_stdout_with_the_count_on_stderr(make_session, bob):
    session = make_session(user=bob, ip="203.0.113.4")
    out, err = run("list_sessions", "--json")
    [row] = json.loads(out)
    assert row["id"] == str(session.pk) and row["user"] == "bob" and row["status"] == "active"
    assert row["ip"] == "203.0.113.4" and row["revoked_at"] is None
    assert not any("jti" in key for key in row)
    assert err.strip() == "1 active session"


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
    assert out.strip() == "Revoked 2 sessions."
    assert {s.revoke_reason for s in Session.objects.filter(pk__in=[s.pk for s in bobs])} == {
        RevokeReason.REVOKED_BY_COMMAND
    }
    assert Session.objects.get(pk=other.pk).revoked_at is None
    event = AuditEvent.objects.get(type=AuditEventType.REVOKED_BY_COMMAND)
    assert event.user == bob and event.actor is None
    assert event.detail == "2 sessions revoked; manage.py revoke_sessions; ticket 42"


def test_revoke_one_session_stops_its_tokens(signed_in, api):
    session = Session.objects.get()
    out, _ = run("revoke_sessions", "--session", str(session.pk))
    assert out.strip() == "Revoked 1 session."
    assert api.get("/api/users/me/").status_code == 401
    assert signed_in.refresh().status_code == 401
    assert AuditEvent.objects.get(type=AuditEventType.REVOKED_BY_COMMAND).session_id == session.pk


def test_revoking_an_already_revoked_session_revokes_nothing(make_session):
    session = make_session(state="revoked")
    out, _ = run("revoke_sessions", "--session", str(session.pk))
    assert out.strip() == "Revoked 0 sessions."


def test_revoke_all_users_with_yes_revokes_everything_in_batches(make_session):
    for _ in range(5):
        make_session()
    out, err = run("revoke_sessions", "--all-users", "--yes", "--batch-size", "2")
    assert out.strip() == "Revoked 5 sessions."
    assert err.split() == ["...", "2", "revoked", "...", "4", "revoked", "...", "5", "revoked"]
    assert not Session.objects.active().exists()
    assert AuditEvent.objects.get(type=AuditEventType.REVOKED_BY_COMMAND).detail == (
        "all users: 5 sessions revoked; manage.py revoke_sessions"
    )


def test_revoke_all_users_asks_first_and_goes_on_when_told_yes(make_session, monkeypatch):
    make_session()
    out, _ = run("revoke_sessions", "--all-users", stdin="yes\n", monkeypatch=monkeypatch)
    assert "Revoked 1 session." in out


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
        (("--session", str(uuid.UUID(int=7))), "No session with id"),
        (("--all-users", "--yes", "--batch-size", "0"), "must be at least 1"),
    ],
)
def test_revoke_sessions_bad_arguments_give_a_clear_error(db, args, message):
    with pytest.raises(CommandError, match=message):
        run("revoke_sessions", *args)


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
