"""Django's PostgreSQL backend with a deadline on every round trip to the server (DATABASE_TIMEOUT).

The server's ``statement_timeout`` ends a slow query, and libpq's ``connect_timeout`` a connection
that does not come up; neither helps when the server stops answering an open connection (a paused
or overloaded host, a network that drops packets): the kernel keeps acknowledging, and the worker
would wait until the app server kills it. psycopg can bound each wait itself; this backend makes it
do so for every query and, when the deadline passes, closes the connection and raises
OperationalError, which the API answers with 503 service_unavailable.

Settings (authproject/settings.py sets them from DATABASE_TIMEOUT):
``DATABASES["default"]["OPTIONS"]["deadline"]``: seconds per round trip.
"""

import select

import psycopg
from django.db.backends.postgresql import base


class DeadlineExceeded(psycopg.OperationalError):
    """The server did not answer within the deadline; the connection is closed."""


class DeadlineConnection(psycopg.Connection):
    """A psycopg connection whose waits for the server end after ``deadline`` seconds."""

    deadline: float | None = None

    def wait(self, gen, *args, timeout=None, **kwargs):
        """psycopg's wait, bounded by the deadline unless the caller gave a timeout of its own."""
        # psycopg's undocumented Connection.wait(timeout=...) and errors._WaitTimeout: the only way
        # to bound every round trip. Canaries: tests/test_canaries.py::test_psycopg_*.
        try:
            return super().wait(gen, *args, timeout=timeout or self.deadline, **kwargs)
        except psycopg.errors._WaitTimeout as error:  # psycopg's own signal that the wait ran out
            # The query is still in flight: the connection is in an unknown state, never to be reused.
            self.pgconn.finish()
            raise DeadlineExceeded(f"The database did not answer within {self.deadline} s.") from error


class DatabaseWrapper(base.DatabaseWrapper):
    """The postgresql backend whose connections are DeadlineConnections."""

    def get_connection_params(self):
        """Django's parameters, less ``deadline`` (libpq would refuse it)."""
        params = super().get_connection_params()
        params.pop("deadline", None)
        return params

    def get_new_connection(self, conn_params):
        """A connection as Django makes it (connect_timeout bounds the connecting), then deadlined."""
        connection = super().get_new_connection(conn_params)
        # psycopg.connect() builds a plain Connection; the subclass adds one method and no state
        # (canary: tests/test_canaries.py::test_psycopg_wait_timeout_ends_a_silent_wait_with_wait_timeout).
        connection.__class__ = DeadlineConnection
        connection.deadline = self.settings_dict["OPTIONS"].get("deadline")
        return connection

    def close_if_health_check_failed(self):
        """Django's check before a request reuses its connection (CONN_HEALTH_CHECKS), without the
        round trip of Django's own (``SELECT 1`` on every request).

        A connection between two requests is idle: the server has nothing to say on it. Anything
        readable on its socket is the server's goodbye (a restart, ``pg_terminate_backend``, an idle
        timeout) or the socket's end, and the connection is closed, to be made anew by the query
        that follows. A server that stops answering without a word is found by that query's
        deadline instead, and answered 503 as before.
        """
        # Django's undocumented hook and flags (canary: tests/test_canaries.py::
        # test_django_asks_close_if_health_check_failed_before_each_cursor).
        if self.connection is None or not self.health_check_enabled or self.health_check_done:
            return
        self.health_check_done = True
        connection = self.connection
        if connection.closed or connection.info.transaction_status != IDLE or _readable(connection):
            self.close()


IDLE = psycopg.pq.TransactionStatus.IDLE


def _readable(connection: psycopg.Connection) -> bool:
    """Whether the connection's socket has something to read now (no waiting)."""
    poller = select.poll()
    poller.register(connection.fileno(), select.POLLIN)
    return bool(poller.poll(0))
