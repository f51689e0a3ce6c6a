"""What keeps a changelist fast with a million rows: a count capped at ``COUNT_CAP`` + 1 rows, no
facet counts, and, for a default page, a plan that reads one range of an index (see
``Session.Meta``) whatever the planner's statistics say.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections, transaction
from django.utils.functional import cached_property

COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    """Counts at most ``COUNT_CAP`` + 1 rows (``SELECT COUNT(*) FROM (... LIMIT n)``).

    The admin asks for a count on every page load; a full COUNT(*) reads every matching row.
    Past the cap the list says "more than 10,000" and offers the first 10,000 rows' pages;
    search and filters narrow it further. The count drops the list's ordering: any 10,001 rows
    will do, so PostgreSQL may stop at the first ones it finds, and never sorts the matching rows
    first (which it did, 240 ms at a million rows, while its statistics were stale).
    """

    cap = COUNT_CAP

    @cached_property
    def count(self) -> int:
        return self.object_list.order_by()[: self.cap + 1].count()

    @property
    def capped(self) -> bool:
        """True when there are more rows than were counted."""
        return self.count > self.cap


# PostgreSQL planner switches that, off, leave it one way to answer an ordered, limited list that
# has an index in its order: reading that index.
INDEX_WALK_SETTINGS = ("enable_sort", "enable_bitmapscan")


@contextmanager
def planned_as_an_index_walk(using: str) -> Iterator[None]:
    """Queries inside are planned without sorts or bitmap scans (PostgreSQL; elsewhere a no-op).

    Without statistics (a table filled in bulk and not analyzed yet) PostgreSQL guesses that 0.5 %
    of the rows have ``revoked_at IS NULL``, so it reads every active session through a bitmap and
    sorts them for a page of 100: 1.4 s at a million sessions, against 0.4 ms for reading the
    first 100 entries of ``session_unrevoked_newest_idx``. The settings are local to a transaction
    of their own, and put back (a surrounding transaction goes on without them).
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        yield
        return
    off = ", ".join(f"set_config('{name}', 'off', true)" for name in INDEX_WALK_SETTINGS)
    current = ", ".join(f"current_setting('{name}')" for name in INDEX_WALK_SETTINGS)
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(f"SELECT {current}, {off}")  # left to right: read, then switch off
        before = cursor.fetchone()[: len(INDEX_WALK_SETTINGS)]
        try:
            yield
        finally:
            cursor.execute(
                "SELECT " + ", ".join(f"set_config('{name}', %s, true)" for name in INDEX_WALK_SETTINGS),
                before,
            )


class FastChangeListMixin:
    """Settings that keep a changelist's cost independent of the table's size."""

    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100
