"""Plain SQL for the token path's merged reads, through Django's public cursor API.

Where one statement answers what several ORM lookups would (the tenant and the client it
names; a subject token, its sign-in and the rows it names), the SQL is written out here and
its rows become model instances with ``Model.from_db`` and the fields' own database
converters, as a queryset would make them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field, Model


def columns(model: type[Model], alias: str) -> str:
    """The SELECT list of ``model``'s concrete fields under ``alias``."""
    return ", ".join(f'{alias}."{f.column}"' for f in model._meta.concrete_fields)


def width(model: type[Model]) -> int:
    return len(model._meta.concrete_fields)


@dataclass(frozen=True, slots=True)
class _Reader:
    """How a model's columns become an instance on one connection (worked out once)."""

    attnames: list[str]
    pk_index: int
    converters: tuple[tuple[int, tuple[Any, ...], Any], ...]  # (index, converters, col)


@functools.cache
def _reader(model: type[Model], vendor: str, alias: str) -> _Reader:
    connection = connections[alias]
    fields = model._meta.concrete_fields
    converters = []
    for i, f in enumerate(fields):
        col = f.get_col(model._meta.db_table)
        found = (*connection.ops.get_db_converters(col), *f.get_db_converters(connection))
        if found:
            converters.append((i, tuple(found), col))
    return _Reader(
        attnames=[f.attname for f in fields],
        pk_index=next(i for i, f in enumerate(fields) if f.primary_key),
        converters=tuple(converters),
    )


def instance[M: Model](
    model: type[M], row: Sequence[Any], start: int, *, using: str = DEFAULT_DB_ALIAS
) -> M | None:
    """The instance of ``model`` whose columns start at ``row[start]`` (None when a LEFT JOIN
    found no row: its primary key is NULL), with the fields' database converters applied."""
    connection = connections[using]
    reader = _reader(model, connection.vendor, using)
    values = list(row[start : start + len(reader.attnames)])
    if values[reader.pk_index] is None:
        return None
    for i, converters, col in reader.converters:
        value = values[i]
        if value is None:
            continue
        for converter in converters:
            value = converter(value, col, connection)
        values[i] = value
    return model.from_db(using, reader.attnames, values)


def param(model: type[Model], name: str, value: Any, *, using: str = DEFAULT_DB_ALIAS) -> Any:
    """``value`` as the database takes it for ``model.name`` (a UUID on SQLite is hex)."""
    field = model._meta.get_field(name)
    assert isinstance(field, Field)
    return field.get_db_prep_value(value, connections[using])


def fetch(sql: str, params: Sequence[Any], *, using: str = DEFAULT_DB_ALIAS) -> list[tuple[Any, ...]]:
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def execute(sql: str, params: Sequence[Any], *, using: str = DEFAULT_DB_ALIAS) -> int:
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def _insert_columns(obj: Model, connection: Any, *, skip: str = "") -> tuple[list[str], list[Any]]:
    """The columns and database values ``obj.save()`` would INSERT (the auto primary key and
    ``skip`` left out; ``auto_now``/``auto_now_add`` filled in on ``obj`` as save does)."""
    meta = obj._meta
    names: list[str] = []
    values: list[Any] = []
    for f in meta.local_concrete_fields:
        if f is meta.auto_field or f.attname == skip:
            continue
        value = f.pre_save(obj, add=True)
        names.append(f'"{f.column}"')
        values.append(f.get_db_prep_save(value, connection))
    return names, values


def insert_linked(
    first: Model,
    linked: Sequence[tuple[Model, str]],
    *,
    using: str = DEFAULT_DB_ALIAS,
) -> None:
    """INSERT ``first`` and each ``(row, link)`` of ``linked`` (whose ``link`` foreign key is
    ``first``) in one statement on PostgreSQL (a data-modifying WITH), as ``save()`` calls
    elsewhere. Every row gets its primary key, and its ``link`` is ``first``."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        first.save(using=using)
        for row, link in linked:
            setattr(row, link, first)
            row.save(using=using, force_insert=True)
        return
    a_pk = first._meta.pk
    assert a_pk is not None
    a_cols, a_vals = _insert_columns(first, connection)
    parts = [
        f"a AS (INSERT INTO {first._meta.db_table} ({', '.join(a_cols)}) "  # noqa: S608 (model metadata)
        f'VALUES ({", ".join(["%s"] * len(a_vals))}) RETURNING "{a_pk.column}")'
    ]
    params: list[Any] = list(a_vals)
    returning = [f'(SELECT "{a_pk.column}" FROM a)']  # noqa: S608
    for i, (row, link) in enumerate(linked):
        link_field = row._meta.get_field(link)
        assert isinstance(link_field, Field)
        link_attname = link_field.attname
        pk = row._meta.pk
        assert pk is not None
        cols, vals = _insert_columns(row, connection, skip=link_attname)
        parts.append(
            f'r{i} AS (INSERT INTO {row._meta.db_table} ({", ".join(cols)}, "{link_attname}") '  # noqa: S608
            f'VALUES ({", ".join(["%s"] * len(vals))}, (SELECT "{a_pk.column}" FROM a)) '
            f'RETURNING "{pk.column}")'
        )
        params.extend(vals)
        returning.append(f'(SELECT "{pk.column}" FROM r{i})')  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(parts)} SELECT {', '.join(returning)}", params)
        returned = cursor.fetchone()
    assert returned is not None
    setattr(first, a_pk.attname, returned[0])
    first._state.adding, first._state.db = False, using
    for (row, link), pk_value in zip(linked, returned[1:], strict=True):
        row_pk = row._meta.pk
        assert row_pk is not None
        setattr(row, row_pk.attname, pk_value)
        setattr(row, link, first)
        row._state.adding, row._state.db = False, using
