"""The hot paths' statements (accounts/statements.py): compiled once, run with each call's values,
prepared on the PostgreSQL server, and compiled to the SQL pinned here on each database."""

import importlib
import pkgutil
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import accounts
from accounts import selectors
from accounts.models import RevokeReason, Session
from accounts.services import session_create, sessions_revoke
from accounts.statements import Statement

pytestmark = pytest.mark.django_db


def check(session) -> object:
    return selectors.user_get_for_access_token(user_id=str(session.user_id), session_id=session.pk)


def test_each_run_binds_its_own_values(user_factory):
    alice, bob = user_factory(), user_factory()
    alices, bobs = (session_create(user=u, ip=None, user_agent="") for u in (alice, bob))
    assert (check(alices), check(bobs)) == (alice, bob)
    assert selectors.user_get_for_access_token(user_id=str(bob.pk), session_id=alices.pk) is None
    sessions_revoke(sessions=type(alices).objects.filter(pk=alices.pk), reason=RevokeReason.LOGOUT)
    assert (check(alices), check(bobs)) == (None, bob)


def test_the_user_comes_back_whole(user_factory):
    alice = user_factory(first_name="Alice", email="alice@example.com")
    found = check(session_create(user=alice, ip=None, user_agent=""))
    assert [getattr(found, f.attname) for f in found._meta.concrete_fields] == [
        getattr(alice, f.attname) for f in alice._meta.concrete_fields
    ]
    assert found.date_joined.tzinfo is not None and found.date_joined <= timezone.now()
    # The annotation (compiler.annotation_col_map), set by its alias and converted to a bool.
    assert found.accounts_email_verified is False


def test_the_annotation_follows_the_verified_address(user_factory):
    from accounts.models import EmailAddressState

    alice = user_factory(email="alice@example.com")
    session = session_create(user=alice, ip=None, user_agent="")
    EmailAddressState.objects.create(user=alice, verified_email="alice@example.com")
    assert check(session).accounts_email_verified is True
    EmailAddressState.objects.filter(user=alice).update(verified_email="old@example.com")
    assert check(session).accounts_email_verified is False


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's prepared statements")
def test_the_session_check_is_prepared_on_the_server(user):
    session = session_create(user=user, ip=None, user_agent="")
    for _ in range(6):  # prepared from the fifth run on (the database's prepare_threshold)
        assert check(session) == user
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any("accounts_session" in sql and "auth_user" in sql and "EXISTS" in sql for sql in prepared), (
        prepared
    )


# --- the SQL each statement compiles to, pinned per database -------------------------------------
# A Django upgrade that changes what a statement compiles to (the UpdateQuery that
# statements.update_returning_sql compiles, the columns a SELECT returns, the order of the
# placeholders) fails here as a diff of clauses, rather than as a wrong answer in production.
# Regenerate by printing ``statement.sql()`` and ``statement.parameters()`` on each database, and
# read the diff before accepting it.
_USER_COLUMNS = ", ".join(
    f'"auth_user"."{column}"'
    for column in (
        "id", "password", "last_login", "is_superuser", "username", "first_name", "last_name", "email",
        "is_staff", "is_active", "date_joined",
    )
)
_USER_FOR_ACCESS_TOKEN_SQL = (
    f"SELECT {_USER_COLUMNS}, "
    # GET /api/users/me/'s email_verified, in the same statement (EmailAddressStateQuerySet.verifying).
    'EXISTS(SELECT %s AS "a" FROM "accounts_emailaddressstate" U0 '
    'WHERE (U0."user_id" = ("auth_user"."id") AND U0."verified_email" = ("auth_user"."email") '
    'AND NOT (U0."verified_email" = %s)) LIMIT 1) AS "accounts_email_verified" '
    'FROM "auth_user" '
    'WHERE ("auth_user"."is_active" AND "auth_user"."id" = (%s) '
    'AND EXISTS(SELECT %s AS "a" FROM "accounts_session" U0 '
    'WHERE (U0."revoked_at" IS NULL AND U0."absolute_expires_at" > (%s) AND U0."idle_expires_at" > (%s) '
    'AND U0."id" = (%s) AND U0."user_id" = ("auth_user"."id")) LIMIT 1))'
)
_SESSION_ROTATE_SQL = (
    'UPDATE "accounts_session" SET "previous_jti" = "accounts_session"."refresh_jti", "refresh_jti" = %s, '
    '"rotated_at" = %s, "last_used_at" = %s, '
    '"idle_expires_at" = {least}(%s, "accounts_session"."absolute_expires_at") '
    'WHERE ("accounts_session"."revoked_at" IS NULL AND "accounts_session"."absolute_expires_at" > (%s) '
    'AND "accounts_session"."idle_expires_at" > (%s) AND "accounts_session"."id" = (%s) '
    'AND "accounts_session"."refresh_jti" = (%s) AND "accounts_session"."user_id" = (%s) '
    'AND EXISTS(SELECT %s AS "a" FROM "auth_user" U0 '
    'WHERE (U0."is_active" AND U0."id" = ("accounts_session"."user_id")) LIMIT 1)) '
    'RETURNING "id", "user_id", "refresh_jti", "idle_expires_at", "auth_time", "amr"'
)
PINNED = {
    "accounts.selectors._USER_FOR_ACCESS_TOKEN": {
        "sqlite": _USER_FOR_ACCESS_TOKEN_SQL,
        "postgresql": _USER_FOR_ACCESS_TOKEN_SQL,
        "parameters": [1, "", "user_id", 1, "now", "now", "session_id"],
    },
    "accounts.services._SESSION_ROTATE": {
        "sqlite": _SESSION_ROTATE_SQL.format(least="MIN"),
        "postgresql": _SESSION_ROTATE_SQL.format(least="LEAST"),
        "parameters": [
            "new_jti", "now", "now", "idle_until", "now", "now", "session_id", "jti", "user_id", 1,
        ],
    },
}


def module_level_statements() -> dict[str, Statement]:
    """Every Statement a module of the app keeps, by its dotted name."""
    found = {}
    for module_info in pkgutil.iter_modules(accounts.__path__):
        module = importlib.import_module(f"accounts.{module_info.name}")
        for name, value in vars(module).items():
            if isinstance(value, Statement):
                found[f"{module.__name__}.{name}"] = value
    return found


def clauses(sql: str) -> list[str]:
    """The SQL cut before each keyword that starts a clause or a condition: a readable diff."""
    return re.split(r" (?=FROM |WHERE |AND |SET |RETURNING |LIMIT )", sql)


def test_every_statement_of_the_app_has_its_sql_pinned():
    assert sorted(module_level_statements()) == sorted(PINNED)


@pytest.mark.parametrize("name", PINNED)
def test_each_statement_compiles_to_the_pinned_sql(name):
    statement = module_level_statements()[name]
    vendor = connection.vendor
    assert vendor in PINNED[name], f"no SQL pinned for {vendor}"
    assert clauses(statement.sql()) == clauses(PINNED[name][vendor]), (
        f"Django compiles {name} differently now: read the diff, then update PINNED in this file "
        "(and revisit accounts/statements.py if the change is more than text)"
    )
    assert statement.parameters() == PINNED[name]["parameters"]


def test_revoking_compiles_through_the_same_builder(user_factory):
    alice = user_factory()
    session = session_create(user=alice, ip=None, user_agent="")
    with CaptureQueriesContext(connection) as captured:
        ended = Session.objects.filter(pk=session.pk).revoke(reason=RevokeReason.LOGOUT)
    assert ended == [(session.pk, alice.pk)]
    [sql] = [query["sql"] for query in captured.captured_queries]
    assert sql.startswith('UPDATE "accounts_session" SET "revoked_at" = ')
    assert sql.endswith(' RETURNING "id", "user_id"')


# --- compiled once per process and database -----------------------------------------------------
def counted(build, calls: list):
    def counting_build():
        calls.append(1)
        return build()

    return counting_build


def test_each_statement_is_compiled_once_however_often_it_runs(signed_in, monkeypatch):
    calls = {name: [] for name in PINNED}
    for name, statement in module_level_statements().items():
        monkeypatch.setattr(statement, "_compiled", {})  # as in a new process (put back after the test)
        monkeypatch.setattr(statement, "build", counted(statement.build, calls[name]))
    signed_in.fetch_csrf()
    for _ in range(3):
        assert signed_in.refresh().status_code == 200
        access = signed_in.refresh().json()["access"]
        assert signed_in.get("/api/users/me/", HTTP_AUTHORIZATION=f"Bearer {access}").status_code == 200
    assert {name: len(made) for name, made in calls.items()} == {name: 1 for name in PINNED}


# --- INSERT ... SELECT ... WHERE EXISTS (statements.insert_if_sql) ---------------------------------
_SESSION_COLUMNS = ", ".join(
    f'"{column}"'
    for column in (
        "id", "user_id", "refresh_jti", "previous_jti", "created_at", "last_used_at", "idle_expires_at",
        "absolute_expires_at", "revoke_reason", "ip", "user_agent", "device", "auth_time", "amr",
    )
)
_SESSION_IF_VERIFIED_SQL = (
    f'INSERT INTO "accounts_session" ({_SESSION_COLUMNS}) SELECT {", ".join(["%s"] * 14)} '
    'WHERE EXISTS(SELECT "accounts_emailaddressstate"."user_id" AS "pk" FROM "accounts_emailaddressstate" '
    'WHERE ("accounts_emailaddressstate"."user_id" = %s '
    'AND "accounts_emailaddressstate"."verified_email" = %s '
    'AND NOT ("accounts_emailaddressstate"."verified_email" = %s)))'
)


def test_a_session_for_a_verified_address_compiles_to_the_pinned_insert(user_factory):
    """Login under EMAIL_VERIFICATION=mandatory: the session's row, only if the address is verified
    (the same SQL on SQLite and PostgreSQL; revoked_at and rotated_at, None, are left out)."""
    from accounts.email_verification import email_verified_states
    from accounts.services import session_build
    from accounts.statements import insert_if_sql

    alice = user_factory(email="alice@example.com")
    session = session_build(user=alice, ip="198.51.100.1", user_agent="Firefox")
    sql, params = insert_if_sql(session, email_verified_states(user=alice), using="default")
    assert clauses(sql) == clauses(_SESSION_IF_VERIFIED_SQL), (
        "Django compiles the conditional insert differently now: read the diff, then update "
        "_SESSION_IF_VERIFIED_SQL (and revisit accounts/statements.insert_if_sql if more than text changed)"
    )
    assert params[-3:] == [alice.pk, "alice@example.com", ""]


def test_the_conditional_insert_writes_the_row_only_if_the_condition_holds(user_factory):
    from accounts.email_verification import email_verified_states
    from accounts.models import EmailAddressState
    from accounts.services import session_create_if

    alice = user_factory(email="alice@example.com")
    for ip in ("198.51.100.1", None, "2001:db8::1"):  # an ip left out when None
        condition = email_verified_states(user=alice)
        assert session_create_if(user=alice, ip=ip, user_agent="", condition=condition) is None
    assert not Session.objects.exists()
    EmailAddressState.objects.create(user=alice, verified_email="alice@example.com")
    verified = email_verified_states(user=alice)
    made = [
        session_create_if(user=alice, ip=ip, user_agent="Firefox", condition=verified)
        for ip in ("198.51.100.1", None, "2001:db8::1")
    ]
    stored = {s.pk: s for s in Session.objects.all()}
    for session in made:
        assert session is not None and not session._state.adding
        row = stored[session.pk]
        assert (row.user_id, row.ip, row.refresh_jti, row.revoked_at, row.rotated_at) == (
            alice.pk, session.ip, session.refresh_jti, None, None
        )
        assert row.created_at == session.created_at and row.absolute_expires_at == session.absolute_expires_at
