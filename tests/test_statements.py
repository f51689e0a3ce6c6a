"""The hot paths' statements (accounts/statements.py): compiled once, run with each call's values,
and prepared on the PostgreSQL server."""

import pytest
from django.db import connection
from django.utils import timezone

from accounts import selectors
from accounts.models import RevokeReason
from accounts.services import session_create, sessions_revoke

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
