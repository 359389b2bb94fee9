"""SCIM filters (RFC 7644 §3.4.2.2) over users: parsed by scim2-filter-parser, turned into a
Django ``Q`` (for ``GET /Users?filter=``) or evaluated on one value (for a PATCH path such as
``emails[value eq "a@example.org"]``).

The attributes a filter may name are those actas serves (:data:`USER_ATTRIBUTES`); anything
else, and any syntax error, is :class:`ScimFilterError` (the API answers 400 ``invalidFilter``).
String comparisons follow each attribute's ``caseExact``; ``pr`` means "has a non-empty value".
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import Q
from django.utils.dateparse import parse_datetime
from scim2_filter_parser import ast as scim_ast
from scim2_filter_parser.lexer import SCIMLexer
from scim2_filter_parser.parser import SCIMParser

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:user"
FILTER_MAX = 1000
COMPARISONS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})


class ScimFilterError(ValueError):
    """The filter is malformed or names something actas cannot filter on."""


@dataclass(frozen=True)
class Attribute:
    """A filterable attribute: its model field and type (``string``, ``boolean``, ``dateTime``,
    ``id``); ``case_exact`` as in the schema."""

    field: str
    type: str = "string"
    case_exact: bool = False
    sortable: bool = True


# Lower-cased SCIM path → the User field it reads.
USER_ATTRIBUTES: Mapping[str, Attribute] = {
    "id": Attribute("pk", "id", case_exact=True),
    "externalid": Attribute("external_id", case_exact=True),
    "username": Attribute("username"),
    "name.givenname": Attribute("given_name"),
    "name.familyname": Attribute("family_name"),
    "emails": Attribute("email", sortable=False),
    "emails.value": Attribute("email"),
    # A user has at most one address, and it is the primary one.
    "emails.primary": Attribute("email", "primary", sortable=False),
    "active": Attribute("is_active", "boolean"),
    "meta.created": Attribute("date_joined", "dateTime"),
    "meta.lastmodified": Attribute("updated_at", "dateTime"),
}


def attribute_named(path: str) -> Attribute:
    """The attribute of a SCIM path (``userName``, ``name.familyName``, with or without the
    core schema's URN prefix), case-insensitively."""
    lowered = path.strip().lower()
    if lowered.startswith(USER_SCHEMA + ":"):
        lowered = lowered[len(USER_SCHEMA) + 1 :]
    found = USER_ATTRIBUTES.get(lowered)
    if found is None:
        raise ScimFilterError(f"{path[:100]} is not an attribute actas can filter or sort on.")
    return found


def _parse(raw: str) -> scim_ast.AST:
    if len(raw) > FILTER_MAX or "\x00" in raw:
        raise ScimFilterError(f"The filter is longer than {FILTER_MAX} characters or contains NUL.")
    try:
        tree = SCIMParser().parse(SCIMLexer().tokenize(raw))
    except RecursionError as exc:
        raise ScimFilterError("The filter is nested too deeply.") from exc
    except Exception as exc:  # the lexer and parser raise their own (and sly's) errors
        raise ScimFilterError(f"The filter is not valid SCIM filter syntax: {exc}"[:300]) from exc
    if tree is None:
        raise ScimFilterError("The filter is empty or not valid SCIM filter syntax.")
    return tree


def _value_of(node: scim_ast.AttrExpr) -> str | None:
    """The comparison value, with JSON escapes (``\\u00e9``) decoded. (The parser's strings
    cannot contain an escaped double quote.)"""
    if node.comp_value is None:
        return None
    value = str(node.comp_value.value)
    if "\\" in value:
        try:
            value = str(json.loads(f'"{value}"'))
        except ValueError as exc:
            raise ScimFilterError(f"{value[:60]} is not a valid string.") from exc
    if "\x00" in value:
        raise ScimFilterError("The filter's value contains NUL characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate from a \\ud800 escape
        raise ScimFilterError("The filter's value is not valid Unicode.") from exc
    return value


def _path_of(attr_path: scim_ast.AttrPath, namespace: str | None) -> str:
    if not isinstance(attr_path.attr_name, str):
        # emails[type eq "work"].value: a value filter inside an attribute path.
        raise ScimFilterError("Value filters inside an attribute path are not supported here.")
    name = attr_path.attr_name
    if attr_path.uri:
        name = f"{attr_path.uri}:{name}"
    if attr_path.sub_attr is not None:
        name = f"{name}.{attr_path.sub_attr.value}"
    return f"{namespace}.{name}" if namespace else name


def _chain(node: scim_ast.LogExpr) -> list[tuple[str, Any]]:
    """An and/or chain without parentheses as (operator, operand) pairs, left to right (the
    first operator is ""). The parser reads such a chain from the left with one precedence;
    RFC 7644 §3.4.2.2 binds ``and`` tighter than ``or``, which :func:`_groups` restores. A
    parenthesized group is a Filter wrapping a Filter, so it stays one operand."""
    left = node.expr1
    if (
        isinstance(left, scim_ast.Filter)
        and not left.negated
        and left.namespace is None
        and isinstance(left.expr, scim_ast.LogExpr)
    ):
        items = _chain(left.expr)
    else:
        items = [("", left)]
    return [*items, (str(node.op).lower(), node.expr2)]


def _groups(node: scim_ast.LogExpr) -> list[list[Any]]:
    """The chain as or-ed groups of and-ed operands."""
    groups: list[list[Any]] = []
    for op, operand in _chain(node):
        if op == "and":
            groups[-1].append(operand)
        else:
            groups.append([operand])
    return groups


# --- to a query ------------------------------------------------------------------------


def _datetime(value: str) -> dt.datetime:
    try:
        parsed = parse_datetime(value)
    except ValueError:  # well-formed but impossible: 2024-02-30, +99:00
        parsed = None
    if parsed is None:
        raise ScimFilterError(f"{value[:60]} is not an RFC 3339 date-time.")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def _boolean(value: str) -> bool:
    if value.lower() not in {"true", "false"}:
        raise ScimFilterError(f"{value[:60]} is not a boolean.")
    return value.lower() == "true"


def _comparison_q(attribute: Attribute, op: str, value: str | None) -> Q:
    field = attribute.field
    if op == "pr":
        if attribute.type in {"string", "primary"}:
            return ~Q(**{field: ""})
        return Q(**{f"{field}__isnull": False})
    assert value is not None
    if attribute.type == "primary":
        present = ~Q(**{field: ""})
        if op not in {"eq", "ne"}:
            raise ScimFilterError("emails.primary can only be compared with eq or ne.")
        wanted = _boolean(value)
        return present if (wanted == (op == "eq")) else ~present
    if attribute.type == "boolean":
        if op not in {"eq", "ne"}:
            raise ScimFilterError(f"A boolean can only be compared with eq or ne, not {op}.")
        q = Q(**{field: _boolean(value)})
        return q if op == "eq" else ~q
    if attribute.type == "id":
        if op not in {"eq", "ne"}:
            raise ScimFilterError(f"id can only be compared with eq or ne, not {op}.")
        try:
            q = Q(pk=uuid.UUID(value))
        except ValueError:
            q = Q(pk__in=[])
        return q if op == "eq" else ~q
    if attribute.type == "dateTime":
        lookup = {"eq": "exact", "ne": "exact", "gt": "gt", "ge": "gte", "lt": "lt", "le": "lte"}.get(op)
        if lookup is None:
            raise ScimFilterError(f"A date-time can only be compared with eq ne gt ge lt le, not {op}.")
        q = Q(**{f"{field}__{lookup}": _datetime(value)})
        return ~q if op == "ne" else q
    prefix = "" if attribute.case_exact else "i"
    lookup = {
        "eq": f"{prefix}exact",
        "ne": f"{prefix}exact",
        "co": f"{prefix}contains",
        "sw": f"{prefix}startswith",
        "ew": f"{prefix}endswith",
        "gt": "gt",
        "ge": "gte",
        "lt": "lt",
        "le": "lte",
    }[op]
    q = Q(**{f"{field}__{lookup}": value})
    return ~q if op == "ne" else q


def _to_q(node: Any, namespace: str | None = None) -> Q:
    if isinstance(node, scim_ast.Filter):
        inner_namespace = namespace
        if node.namespace is not None:
            inner_namespace = _path_of(node.namespace, namespace)
        q = _to_q(node.expr, inner_namespace)
        return ~q if node.negated else q
    if isinstance(node, scim_ast.LogExpr):
        ors = []
        for group in _groups(node):
            q = _to_q(group[0], namespace)
            for operand in group[1:]:
                q &= _to_q(operand, namespace)
            ors.append(q)
        result = ors[0]
        for q in ors[1:]:
            result |= q
        return result
    if isinstance(node, scim_ast.AttrExpr):
        op = str(node.value).lower()
        if op != "pr" and op not in COMPARISONS:
            raise ScimFilterError(f"Unknown operator {op}.")
        attribute = attribute_named(_path_of(node.attr_path, namespace))
        value = _value_of(node)
        if op != "pr" and value is None:
            raise ScimFilterError(f"{op} needs a value.")
        return _comparison_q(attribute, op, value)
    raise ScimFilterError("The filter is not valid SCIM filter syntax.")


def user_filter_q(raw: str) -> Q:
    """The ``Q`` over users of a SCIM filter string; :class:`ScimFilterError` otherwise."""
    return _to_q(_parse(raw))


def user_ordering(sort_by: str | None, sort_order: str | None) -> list[str]:
    """``order_by`` arguments for ``sortBy``/``sortOrder`` (RFC 7644 §3.4.2.3); by user name
    when no ``sortBy`` is given. Ties are broken by id so pages are stable."""
    order = (sort_order or "ascending").strip().lower()
    if order not in {"ascending", "descending"}:
        raise ScimFilterError("sortOrder must be ascending or descending.")
    if not sort_by:
        return ["username", "pk"]
    attribute = attribute_named(sort_by)
    if not attribute.sortable:
        raise ScimFilterError(f"{sort_by[:100]} cannot be sorted on.")
    sign = "-" if order == "descending" else ""
    return [f"{sign}{attribute.field}", f"{sign}pk"]


# --- on one value (PATCH paths) ------------------------------------------------------------


def value_matcher(raw: str) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate over one multi-valued attribute's item (e.g. ``{"value": ..., "primary":
    True}``) for the filter inside a PATCH path's brackets."""
    tree = _parse(raw)

    def matches(node: Any, item: Mapping[str, Any]) -> bool:
        if isinstance(node, scim_ast.Filter):
            if node.namespace is not None:
                raise ScimFilterError("Nested value filters are not supported.")
            result = matches(node.expr, item)
            return not result if node.negated else result
        if isinstance(node, scim_ast.LogExpr):
            return any(all(matches(operand, item) for operand in group) for group in _groups(node))
        if isinstance(node, scim_ast.AttrExpr):
            name = _path_of(node.attr_path, None).lower()
            if name not in item:
                raise ScimFilterError(f"{name} is not a sub-attribute here.")
            actual = item[name]
            op = str(node.value).lower()
            if op == "pr":
                return actual not in (None, "")
            expected = _value_of(node) or ""
            if isinstance(actual, bool):
                if op not in {"eq", "ne"}:
                    raise ScimFilterError("A boolean can only be compared with eq or ne.")
                return (actual == _boolean(expected)) == (op == "eq")
            left, right = str(actual).lower(), expected.lower()
            compare: dict[str, Callable[[str, str], bool]] = {
                "eq": lambda a, b: a == b,
                "ne": lambda a, b: a != b,
                "co": lambda a, b: b in a,
                "sw": lambda a, b: a.startswith(b),
                "ew": lambda a, b: a.endswith(b),
                "gt": lambda a, b: a > b,
                "ge": lambda a, b: a >= b,
                "lt": lambda a, b: a < b,
                "le": lambda a, b: a <= b,
            }
            if op not in compare:
                raise ScimFilterError(f"Unknown operator {op}.")
            return compare[op](left, right)
        raise ScimFilterError("The filter is not valid SCIM filter syntax.")

    return lambda item: matches(tree, {str(k).lower(): v for k, v in item.items()})
