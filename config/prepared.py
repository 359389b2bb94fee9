"""ORM querysets compiled to SQL once per database connection and run again with new values.

Building and compiling a queryset costs Django 0.3-1 ms of CPU on this project's machine
(``filter()``, joins, ``as_sql()``), several times what PostgreSQL spends answering a lookup by
key. The token endpoint makes a handful of the same lookups on every request, so that cost was
most of a ``client_credentials`` grant. A ``Prepared`` query is written as an ordinary
queryset, in a function of its parameters; the first call on a connection compiles it with
sample values, remembers where those values went in the SQL's parameters, and every later call
substitutes the caller's values and runs the same SQL through Django's cursor (query logging,
execute wrappers and test query counts still see it). Rows become model instances with
``select_related`` objects and converters exactly as a queryset would make them.

django-prepared-queries does this for Django 1.x and is unmaintained; this is the small part
actas needs, pinned to the Django version in pyproject.toml and checked against the plain
queryset in tests/config/test_prepared.py.

Rules, enforced when the query is compiled:

- every parameter is declared with its type (``str``, ``int``, ``uuid.UUID`` or ``datetime``)
  and must reach the SQL as a parameter at least once (a parameter used only in Python, or
  turned into another value by the builder, is refused);
- the builder must not bake a date or time into the SQL (``timezone.now()`` inside it would be
  frozen at the first call): a ``datetime`` constant is refused, times are parameters (caught
  on PostgreSQL, where Django passes datetimes as such; SQLite gets them as text);
- only plain model querysets (no ``values()``, ``prefetch_related()``, or related-manager
  querysets); ``select_for_update()`` still requires a transaction at every call.
"""

from __future__ import annotations

import datetime
import secrets
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model, QuerySet, sql
from django.db.models import query as django_query
from django.db.models.query import ModelIterable, get_related_populators
from django.db.transaction import TransactionManagementError

_TYPES: tuple[type, ...] = (str, int, uuid.UUID, datetime.datetime)
# model_cls.from_db with the fetch mode bound, as ModelIterable calls it (private in Django 6.1).
_get_from_db: Callable[[type[Model], Any], Callable[..., Model]] = django_query._get_from_db  # type: ignore[attr-defined]


def _sample(kind: type) -> Any:
    """A value of ``kind`` that no real query will contain as a constant."""
    if kind is str:
        return f"prepared-sample-{secrets.token_hex(12)}"
    if kind is int:
        return 7_000_000_000_000 + secrets.randbelow(10**12)
    if kind is uuid.UUID:
        return uuid.uuid4()
    if kind is datetime.datetime:
        return datetime.datetime(1901, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
            microseconds=secrets.randbelow(10**12)
        )
    raise ImproperlyConfigured(f"prepared query parameters must be one of {_TYPES}, not {kind!r}")


def _adapter(kind: type, connection: BaseDatabaseWrapper) -> Callable[[Any], Any] | None:
    """What Django turns a value of ``kind`` into on this connection (None: the value itself)."""
    if kind is uuid.UUID and not connection.features.has_native_uuid_field:
        return lambda value: value.hex  # as UUIDField.get_db_prep_value (SQLite)
    if kind is datetime.datetime:
        adapted = connection.ops.adapt_datetimefield_value
        sample = _sample(kind)
        return None if adapted(sample) is sample else adapted
    return None


@dataclass(frozen=True, slots=True)
class _Statement:
    """SQL with its parameters, and where each named parameter's value goes."""

    sql: str
    params: tuple[Any, ...]
    slots: dict[str, tuple[tuple[int, type | None], ...]]  # (position, wrapper type)
    adapters: dict[str, Callable[[Any], Any]]

    @classmethod
    def find(
        cls,
        sql: str,
        params: Any,
        samples: dict[str, Any],
        types: dict[str, type],
        connection: BaseDatabaseWrapper,
    ) -> _Statement:
        slots: dict[str, tuple[tuple[int, type | None], ...]] = {}
        adapters: dict[str, Callable[[Any], Any]] = {}
        taken: set[int] = set()
        for name, sample in samples.items():
            adapter = _adapter(types[name], connection)
            if adapter is not None:
                adapters[name] = adapter
                sample = adapter(sample)
            # A backend may wrap a value in a subclass of its type (psycopg's Int8 for a big
            # integer with server-side binding): the same wrapper is put around the new value.
            where = tuple(
                (i, None if type(p) is type(sample) else type(p))
                for i, p in enumerate(params)
                if isinstance(p, type(sample)) and p == sample
            )
            if not where:
                raise ImproperlyConfigured(f"parameter {name} does not reach the SQL as a parameter")
            slots[name] = where
            taken.update(i for i, _ in where)
        for i, p in enumerate(params):
            if i not in taken and isinstance(p, datetime.datetime | datetime.date):
                raise ImproperlyConfigured("a date or time is built into the query: pass it as a parameter")
        return cls(sql, tuple(params), slots, adapters)

    def bind(self, types: dict[str, type], values: dict[str, Any]) -> list[Any]:
        if values.keys() != types.keys():
            raise TypeError(f"expected the parameters {sorted(types)}, got {sorted(values)}")
        params = list(self.params)
        for name, value in values.items():
            kind = types[name]
            if type(value) is not kind and not (kind is datetime.datetime and isinstance(value, kind)):
                raise TypeError(f"parameter {name} must be {kind.__name__}, not {type(value).__name__}")
            adapter = self.adapters.get(name)
            if adapter is not None:
                value = adapter(value)
            for i, wrapper in self.slots[name]:
                params[i] = value if wrapper is None else wrapper(value)
        return params


class _Compiles[C]:
    """Compiled once per database connection (connections are per thread)."""

    def __init__(self, **types: type) -> None:
        for name, kind in types.items():
            if kind not in _TYPES:
                raise ImproperlyConfigured(f"parameter {name}: type {kind!r} is not one of {_TYPES}")
        self._types = types
        self._compiled: weakref.WeakKeyDictionary[BaseDatabaseWrapper, C] = weakref.WeakKeyDictionary()

    def _compile(self, connection: BaseDatabaseWrapper, using: str, samples: dict[str, Any]) -> C:
        raise NotImplementedError

    def _get(self, using: str) -> tuple[BaseDatabaseWrapper, C]:
        connection = connections[using]
        compiled = self._compiled.get(connection)
        if compiled is None:
            samples = {name: _sample(kind) for name, kind in self._types.items()}
            compiled = self._compiled[connection] = self._compile(connection, using, samples)
        return connection, compiled


@dataclass(frozen=True, slots=True)
class _Select:
    statement: _Statement
    for_update: bool
    # How rows become instances, as ModelIterable works it out per queryset (Django 6.1):
    start: int
    end: int
    init_list: list[str]
    converters: dict[int, Any]
    populators: list[Any]
    annotations: dict[str, int]
    from_db: Callable[..., Model]
    compiler: Any


class Prepared[M: Model](_Compiles[_Select]):
    """``build(**params)`` -> a queryset of ``M``; ``types`` declares each parameter's type.

    >>> tenant_by_handle = Prepared(
    ...     lambda handle: Organization.objects.filter(handle=handle, parent__isnull=True)[:1],
    ...     handle=str,
    ... )
    >>> tenant_by_handle.first(handle="acme")
    """

    def __init__(self, build: Callable[..., QuerySet[M]], /, **types: type) -> None:
        super().__init__(**types)
        self._build = build

    def queryset(self, **values: Any) -> QuerySet[M]:
        """The plain queryset for these values (what ``all()`` runs, compiled once)."""
        return self._build(**values)

    def _compile(self, connection: BaseDatabaseWrapper, using: str, samples: dict[str, Any]) -> _Select:
        built = self._build(**samples)
        if not isinstance(built, QuerySet):
            raise ImproperlyConfigured("a prepared query must build a model queryset")
        qs: Any = built  # the QuerySet internals below are not in django-stubs
        if qs._iterable_class is not ModelIterable:
            raise ImproperlyConfigured("a prepared query must build a model queryset (no values())")
        if qs._prefetch_related_lookups or qs._known_related_objects or qs.query.combinator:
            raise ImproperlyConfigured("a prepared query cannot prefetch, be a related manager's or combine")
        if qs._fetch_mode.track_peers:
            raise ImproperlyConfigured("a prepared query cannot track peers (fetch mode FETCH_PEERS)")
        compiler = qs.query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        statement = _Statement.find(sql, params, samples, self._types, connection)
        select, klass_info = compiler.select, compiler.klass_info
        columns = [s[0] for s in select[: compiler.col_count]]
        if compiler.has_composite_fields(columns):
            raise ImproperlyConfigured("a prepared query cannot select composite fields")
        fields = klass_info["select_fields"]
        start, end = fields[0], fields[-1] + 1
        return _Select(
            statement=statement,
            for_update=bool(qs.query.select_for_update) and connection.features.has_select_for_update,
            start=start,
            end=end,
            init_list=[f[0].target.attname for f in select[start:end]],
            converters=compiler.get_converters(columns),
            populators=get_related_populators(klass_info, select, using, qs._fetch_mode),
            annotations=dict(compiler.annotation_col_map),
            from_db=_get_from_db(klass_info["model"], qs._fetch_mode),
            compiler=compiler,
        )

    def all(self, *, using: str = DEFAULT_DB_ALIAS, **values: Any) -> list[M]:
        connection, compiled = self._get(using)
        params = compiled.statement.bind(self._types, values)
        if compiled.for_update and connection.get_autocommit():
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        with connection.cursor() as cursor:
            cursor.execute(compiled.statement.sql, params)
            rows = cursor.fetchall()
        return self._instances(compiled, rows, using) if rows else []

    def first(self, *, using: str = DEFAULT_DB_ALIAS, **values: Any) -> M | None:
        """The first row, or None: build the queryset with its own ``[:1]`` and ordering."""
        found = self.all(using=using, **values)
        return found[0] if found else None

    @staticmethod
    def _instances(compiled: _Select, rows: list[tuple[Any, ...]], using: str) -> list[M]:
        # As django.db.models.query.ModelIterable (Django 6.1), without what _compile refuses.
        converted = (
            compiled.compiler.apply_converters(rows, compiled.converters) if compiled.converters else rows
        )
        start, end, from_db = compiled.start, compiled.end, compiled.from_db
        out: list[M] = []
        for row in converted:
            obj = from_db(using, compiled.init_list, row[start:end])
            for populator in compiled.populators:
                populator.populate(row, obj)
            for attr_name, col_pos in compiled.annotations.items():
                setattr(obj, attr_name, row[col_pos])
            out.append(cast(M, obj))
        return out


class PreparedUpdate(_Compiles[_Statement]):
    """``build(**params)`` -> (queryset, {field: value}): ``queryset.update(**changes)``, compiled
    once per connection. ``run()`` returns the number of rows changed. Single-table updates only.

    >>> mark_used = PreparedUpdate(
    ...     lambda jti, now: (SubjectToken.objects.filter(jti=jti, used_at__isnull=True), {"used_at": now}),
    ...     jti=str,
    ...     now=datetime.datetime,
    ... )
    >>> mark_used.run(jti="...", now=timezone.now())
    """

    def __init__(self, build: Callable[..., tuple[QuerySet[Any], dict[str, Any]]], /, **types: type) -> None:
        super().__init__(**types)
        self._build = build

    def _compile(self, connection: BaseDatabaseWrapper, using: str, samples: dict[str, Any]) -> _Statement:
        qs, changes = self._build(**samples)
        if (
            not isinstance(qs, QuerySet)
            or qs.query.is_sliced
            or qs.query.combinator
            or qs.query.distinct_fields
        ):
            raise ImproperlyConfigured(
                "a prepared update needs a plain queryset (no slice, union or distinct)"
            )
        query: Any = qs.query.chain(sql.UpdateQuery)
        query.add_update_values(changes)
        query.clear_ordering(force=True)
        query.clear_select_clause()
        query.get_initial_alias()
        if query.related_updates or query.count_active_tables() != 1:
            raise ImproperlyConfigured("a prepared update must filter and change one table only")
        sql_text, params = query.get_compiler(using=using).as_sql()
        return _Statement.find(sql_text, params, samples, self._types, connection)

    def run(self, *, using: str = DEFAULT_DB_ALIAS, **values: Any) -> int:
        connection, statement = self._get(using)
        params = statement.bind(self._types, values)
        with transaction.mark_for_rollback_on_error(using=using), connection.cursor() as cursor:
            cursor.execute(statement.sql, params)
            return int(cursor.rowcount)
