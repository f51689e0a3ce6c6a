"""Querysets compiled to SQL once, then run with new values: the statements of the hot paths.

Django builds and compiles a queryset's SQL every time it is evaluated; for the statement behind
every API call (the session check) and every refresh (the rotation) that work costs more than the
database's answer. A ``Statement`` is written as an ordinary queryset, with ``Param`` where a
value goes, so each rule keeps its one statement (``Session.objects.active`` and the like); it is
compiled the first time it runs on a database, and each later run only binds that run's values.

Prepared on the server as well, the statement skips parsing and planning there, which cost more
than running it: SQLite's module prepares what it runs by itself, and PostgreSQL does where the
database's OPTIONS ask psycopg to (``server_side_binding`` with a ``prepare_threshold``, as
authproject/settings.py does).

The compiled SQL is text, the same for every connection to a database, so keeping it in each
process is safe: nothing about a session or a user is ever kept.
"""

from collections.abc import Callable
from typing import Any

from django.db import connections, models, router, transaction
from django.db.models import Expression
from django.db.models.sql import InsertQuery, UpdateQuery


class Param(Expression):
    """A named value of a ``Statement``, converted for the database the way ``field`` converts its
    own (a UUID is text on SQLite, a datetime loses its time zone there, an id becomes a number)."""

    def __init__(self, name: str, field: models.Field):
        super().__init__(output_field=field)
        self.name = name

    def as_sql(self, compiler, connection):
        return "%s", [self]

    def bind(self, values: dict[str, Any], connection) -> Any:
        return self.output_field.get_db_prep_value(values[self.name], connection, prepared=False)


class Statement:
    """One SELECT, or one ``UPDATE ... RETURNING``, compiled once per database.

    A SELECT's annotations are set on each instance by their alias.

    ``build()`` gives the queryset, with ``Param`` for its values; ``update()``, when given, the
    values an UPDATE of that queryset sets. Either way the statement yields instances of the
    queryset's model: a SELECT's with the columns it selects, an UPDATE's with the ``returning``
    fields (every field by default) as they are after it. Fields left out are deferred, as with
    ``QuerySet.only``: reading one is a query of its own.
    """

    def __init__(
        self,
        build: Callable[[], models.QuerySet],
        *,
        update: Callable[[], dict] | None = None,
        returning: tuple[str, ...] = (),
    ):
        self.build, self.update, self.returning = build, update, returning
        self._compiled: dict[str, tuple] = {}

    def _compile(self, using: str) -> tuple:
        # Django's compiler internals (get_compiler, compiler.select, get_db_converters): canaries
        # are tests/test_statements.py's pinned SQL and test_the_user_comes_back_whole.
        connection = connections[using]
        queryset = self.build()
        model = queryset.model
        if self.update is None:
            compiler = queryset.query.get_compiler(using)
            sql, params = compiler.as_sql()
            columns = [column for column, _, _ in compiler.select]
            # Annotations come after the model's columns; each is set on the instance by its alias.
            annotations = sorted(compiler.annotation_col_map, key=compiler.annotation_col_map.get)
        else:
            sql, params, columns = update_returning_sql(
                queryset, self.update(), returning=self.returning, using=using
            )
            annotations = []
        fields = columns[: len(columns) - len(annotations)]
        names = [column.target.attname for column in fields]
        if model._meta.pk.attname not in names:
            raise ValueError(f"{model.__name__} statement returns no primary key: {names}")
        converters = [
            connection.ops.get_db_converters(column) + column.get_db_converters(connection)
            for column in columns
        ]
        return model, sql, tuple(params), names, annotations, list(zip(columns, converters, strict=True))

    def sql(self, *, using: str = "default") -> str:
        """The SQL text this statement runs on that database (compiled on first use)."""
        return self._compiled_for(using)[1]

    def parameters(self, *, using: str = "default") -> list:
        """What the SQL's placeholders take, in order: each Param's name, or a constant's value."""
        return [param.name if isinstance(param, Param) else param for param in self._compiled_for(using)[2]]

    def _compiled_for(self, using: str) -> tuple:
        if using not in self._compiled:
            self._compiled[using] = self._compile(using)
        return self._compiled[using]

    def rows(self, *, using: str = "default", **values) -> list[models.Model]:
        """The statement's rows for these values of its parameters, as model instances."""
        model, sql, params, names, annotations, converters = self._compiled_for(using)
        connection = connections[using]
        bound = [param.bind(values, connection) if isinstance(param, Param) else param for param in params]
        with transaction.mark_for_rollback_on_error(using), connection.cursor() as cursor:
            cursor.execute(sql, bound)
            rows = cursor.fetchall()
        instances = []
        for row in rows:
            converted = list(row)
            for i, (column, functions) in enumerate(converters):
                for convert in functions:
                    converted[i] = convert(converted[i], column, connection)
            instance = model.from_db(using, names, converted[: len(names)])
            for alias, value in zip(annotations, converted[len(names) :], strict=True):
                setattr(instance, alias, value)
            instances.append(instance)
        return instances

    def first(self, *, using: str = "default", **values) -> models.Model | None:
        """The statement's first row for these values, or None."""
        rows = self.rows(using=using, **values)
        return rows[0] if rows else None


def update_returning_sql(
    queryset: models.QuerySet, values: dict[str, Any], *, returning: tuple[str, ...] = (), using: str
) -> tuple[str, tuple, list]:
    """The one builder of ``UPDATE ... RETURNING``: the SQL and parameters of
    ``queryset.update(**values)`` (PostgreSQL, and SQLite since 3.35) returning the ``returning``
    fields (every concrete field if none), and the returned columns.

    Django has no public way to add RETURNING to an update, so this compiles the UpdateQuery that
    ``QuerySet.update`` would run (tests/test_statements.py pins the SQL it gives).
    """
    # Django's query internals (UpdateQuery, chain, add_update_values, get_compiler, get_col):
    # tests/test_statements.py::test_each_statement_compiles_to_the_pinned_sql is their canary.
    query = queryset.query.chain(UpdateQuery)
    query.add_update_values(values)
    sql, params = query.get_compiler(using).as_sql()
    model = queryset.model
    fields = [model._meta.get_field(name) for name in returning] or model._meta.concrete_fields
    columns = [field.get_col(model._meta.db_table) for field in fields]
    quote = connections[using].ops.quote_name
    return f"{sql} RETURNING {', '.join(quote(column.target.column) for column in columns)}", params, columns


def update_returning(queryset: models.QuerySet, *, returning: tuple[str, ...] = (), **values) -> list:
    """``queryset.update(**values)`` as one ``UPDATE ... RETURNING``: instances of exactly the rows it
    changed, with the ``returning`` fields as they are after it (a Statement run once)."""
    statement = Statement(lambda: queryset, update=lambda: values, returning=returning)
    return statement.rows(using=queryset.db)


def insert_if_sql(
    instance: models.Model, condition: models.QuerySet, *, using: str
) -> tuple[str, list]:
    """The one builder of ``INSERT ... SELECT ... WHERE EXISTS``: the SQL and parameters that
    insert ``instance``'s row only if ``condition`` has a row, in one statement.

    The row is what ``instance.save()`` would insert, less its None values (nullable columns,
    NULL anyway; a NULL in a SELECT list would be typed text on PostgreSQL). Django has no public
    way to make an insert conditional, so this compiles the InsertQuery that ``save`` would run and
    puts its values in a SELECT (tests/test_statements.py pins the SQL it gives).
    """
    # Django's query internals (InsertQuery, insert_values, get_compiler): canary in
    # tests/test_statements.py::test_each_statement_compiles_to_the_pinned_sql.
    model = type(instance)
    fields = [f for f in model._meta.concrete_fields if f.pre_save(instance, True) is not None]
    query = InsertQuery(model)
    query.insert_values(fields, [instance])
    [(sql, params)] = query.get_compiler(using).as_sql()
    head, separator, values = sql.partition(" VALUES (")
    if not separator or not values.endswith(")") or "), (" in values:
        raise ValueError(f"unexpected INSERT for {model.__name__}: {sql}")
    condition_sql, condition_params = condition.values("pk").query.get_compiler(using).as_sql()
    return f"{head} SELECT {values[:-1]} WHERE EXISTS({condition_sql})", [*params, *condition_params]


def insert_if(instance: models.Model, condition: models.QuerySet) -> bool:
    """Insert ``instance`` if ``condition`` has a row (one statement); True if it was inserted.
    No ``pre_save``/``post_save`` signals are sent, as with ``bulk_create``."""
    using = router.db_for_write(type(instance))
    sql, params = insert_if_sql(instance, condition, using=using)
    with transaction.mark_for_rollback_on_error(using), connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        inserted = cursor.rowcount == 1
    if inserted:
        instance._state.adding, instance._state.db = False, using
    return inserted
