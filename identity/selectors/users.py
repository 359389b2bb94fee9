"""Reads: the members of an organization (resident and shared in), paged for the Console, and
where a user is shared."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import CharField, Exists, F, OuterRef, Q, QuerySet, Value, prefetch_related_objects
from django.db.models.functions import Concat

from identity.models import (
    Role,
    RoleAssignment,
    User,
    UserAssociation,
)
from organizations.models import Organization
from organizations.selectors import (
    org_descendant_filter,
    org_descendant_ids,
    org_ids_below_inactive,
    org_subtree_size,
)

# --- memberships --------------------------------------------------------------------------


def user_is_member(*, user: User, org: Organization) -> bool:
    """Resident in ``org``, or shared into it."""
    if user.organization_id == org.pk:
        return True
    return UserAssociation.objects.filter(user=user, organization=org).exists()


def user_association_get(*, user: User, org: Organization) -> UserAssociation | None:
    return UserAssociation.objects.filter(user=user, organization=org).first()


def org_members(org: Organization) -> QuerySet[User]:
    """Users resident in ``org`` or shared into it."""
    shared = UserAssociation.objects.filter(user=OuterRef("pk"), organization=org)
    return User.objects.filter(Q(organization=org) | Q(Exists(shared)))


@dataclass(frozen=True)
class UserPage:
    users: list[User]
    next_cursor: str | None
    # Users on this page who are shared into the organization (resident elsewhere).
    shared_ids: frozenset[uuid.UUID] = frozenset()


def _encode_cursor(user: User) -> str:
    raw = f"{user.username}\x00{user.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, uuid.UUID] | None:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        username, _, raw_id = base64.urlsafe_b64decode(padded.encode()).decode().partition("\x00")
        return username, uuid.UUID(raw_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def _member_search_q(search: str) -> Q:
    """The start of the username, email, given or family name (case-insensitive). On
    PostgreSQL each is served by an ``UPPER(col) text_pattern_ops`` index (identity 0008)."""
    return (
        Q(username__istartswith=search)
        | Q(email__istartswith=search)
        | Q(given_name__istartswith=search)
        | Q(family_name__istartswith=search)
    )


def _keyset_page(
    qs: QuerySet[User], *, after: tuple[str, uuid.UUID] | None, limit: int, searching: bool = False
) -> list[User]:
    """The first ``limit`` rows of ``qs`` in (username, id) order after the cursor.

    The redundant ``username >= name`` lets the database start its (username, id) index scan
    at the cursor instead of filtering from the beginning. A search orders by an expression of
    the username instead (the same order): walking the username index in order while
    filtering on the other columns' prefixes would read every username before the first
    match ("ja" skipped 37,000 rows at 100k users); this way the database collects the matches
    from the prefix indexes and sorts only those."""
    if after is not None:
        name, pk = after
        qs = qs.filter(Q(username__gte=name), Q(username__gt=name) | Q(username=name, pk__gt=pk))
    username = Concat("username", Value(""), output_field=CharField()) if searching else F("username")
    return list(qs.order_by(username.asc(), "pk")[:limit])


@contextmanager
def plan_per_call() -> Iterator[None]:
    """On PostgreSQL, plan the statements inside for their actual values.

    With prepared statements (DB_PREPARED_STATEMENTS) a statement run often gets one generic
    plan. For a prefix search that plan cannot use the prefix indexes (the pattern is unknown
    when it is made) and reads every user (measured: 260 ms instead of 0.1 ms for a prefix
    that matches nobody, after a few broad searches on the same connection); a subtree's
    size decides its best plan too. ``SET LOCAL`` ends with the transaction."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        yield


# Subtrees of at most this many organizations are listed by naming their organizations.
SMALL_SUBTREE = 300


def org_member_page(
    *,
    org: Organization,
    search: str = "",
    after: str | None = None,
    size: int = 25,
    subtree: bool = False,
) -> UserPage:
    """One page of ``org``'s members ordered by (username, id): keyset pagination, no count.

    Members are the users resident in ``org`` (with ``subtree``, in ``org`` or any organization
    below it) and the users shared into ``org``. ``search`` matches the start of the username,
    email, given or family name.

    Two queries whatever the page size (three for a small subtree): the residents (an indexed
    range on the tree, or the ``(organization, username)`` index) and the shared-in users (the
    associations of ``org``), each at most one page long, merged here. One OR of the two in
    SQL would leave the database no index to order by.
    """
    cursor = _decode_cursor(after) if after else None
    limit = size + 1
    search = search.strip()
    residents = User.objects.select_related("organization")
    if subtree and org_subtree_size(org) <= SMALL_SUBTREE:
        # A small subtree holds a small share of the users: walking the username index in
        # order would read many rows of other organizations per row shown, so name the
        # organizations (one indexed range query) and let (organization, username) serve.
        residents = residents.filter(organization__in=list(org_descendant_ids(org, include_self=True)))
    elif subtree and search:
        # Many matches to sort: test membership against the subtree's ids (a semi-join over
        # narrow rows) rather than joining every match to its whole organization row; the
        # organizations of the page are fetched afterwards.
        residents = User.objects.filter(organization__in=org_descendant_ids(org, include_self=True))
    elif subtree:
        residents = residents.filter(**org_descendant_filter(org, prefix="organization__", include_self=True))
    else:
        residents = residents.filter(organization=org)
    shared = User.objects.select_related("organization").filter(associations__organization=org)
    if search:
        residents, shared = (
            residents.filter(_member_search_q(search)),
            shared.filter(_member_search_q(search)),
        )
    with plan_per_call():
        rows = _keyset_page(residents, after=cursor, limit=limit, searching=bool(search))
        shared_rows = _keyset_page(shared, after=cursor, limit=limit, searching=bool(search))
    # Merged in Python by code point, which is the database's order under a C / C.UTF-8
    # collation (the (username, id) order the cursor continues from); system check actas.E001
    # (identity/checks.py, run by migrate) refuses any other collation on PostgreSQL.
    rows = sorted([*rows, *shared_rows], key=lambda u: (u.username, str(u.pk)))[:limit]
    next_cursor = _encode_cursor(rows[size - 1]) if len(rows) > size else None
    page = rows[:size]
    prefetch_related_objects(page, "organization")  # no query when every row has it already
    shared_ids = frozenset(u.pk for u in shared_rows)
    return UserPage(users=page, next_cursor=next_cursor, shared_ids=shared_ids & {u.pk for u in page})


def user_memberships(user: User, *, within: Organization) -> list[Organization]:
    """The resident organization first, then the organizations the user is shared into that
    lie in ``within``'s subtree (an administrator does not learn about other branches)."""
    shared = [
        a.organization
        for a in user.associations.filter(
            **org_descendant_filter(within, prefix="organization__", include_self=True)
        ).select_related("organization")
    ]
    return [user.organization, *sorted(shared, key=lambda o: o.name)]


# --- sharing users and picking people in the Console --------------------------------------


@dataclass(frozen=True)
class OrgSharePage:
    orgs: list[Organization]
    next_cursor: str | None
    # Organizations on this page the user is shared with already.
    shared_ids: frozenset[uuid.UUID] = frozenset()
    # Organizations on this page that are disabled or lie below a disabled one.
    unusable_ids: frozenset[uuid.UUID] = frozenset()


def _encode_org_cursor(org: Organization) -> str:
    raw = f"{org.name}\x00{org.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def user_share_candidate_page(
    *, user: User, org: Organization, search: str = "", after: str | None = None, size: int = 25
) -> OrgSharePage:
    """One page of the organizations strictly below ``org`` (the Console's organization),
    ordered by (name, id) with keyset pagination; ``search`` matches the start of the name.
    Three queries whatever the subtree's size: the page, the user's shares among it, and the
    tree's inactive organizations."""
    qs = Organization.objects.filter(**org_descendant_filter(org, prefix="", include_self=False))
    search = search.strip()
    if search:
        qs = qs.filter(name__istartswith=search)
    cursor = _decode_cursor(after) if after else None
    if cursor is not None:
        name, pk = cursor
        qs = qs.filter(Q(name__gt=name) | Q(name=name, pk__gt=pk))
    rows = list(qs.select_related("parent").order_by("name", "pk")[: size + 1])
    next_cursor = _encode_org_cursor(rows[size - 1]) if len(rows) > size else None
    page = rows[:size]
    shared = frozenset(
        UserAssociation.objects.filter(user=user, organization__in=[o.pk for o in page]).values_list(
            "organization_id", flat=True
        )
    )
    unusable = org_ids_below_inactive(tree_of=org, orgs=page) if page else frozenset()
    return OrgSharePage(orgs=page, next_cursor=next_cursor, shared_ids=shared, unusable_ids=unusable)


def role_holder_ids(*, role: Role, org: Organization, user_ids: Iterable[uuid.UUID]) -> frozenset[uuid.UUID]:
    """Which of ``user_ids`` hold ``role`` in ``org`` (directly as residents, or through their
    shared profile). One query."""
    ids = list(user_ids)
    if not ids:
        return frozenset()
    rows = RoleAssignment.objects.filter(role=role).filter(
        Q(user__in=ids, user__organization=org) | Q(association__user__in=ids, association__organization=org)
    )
    found: set[uuid.UUID] = set()
    for user_id, association_user_id in rows.values_list("user_id", "association__user_id"):
        found.add(user_id or association_user_id)
    return frozenset(found)


def user_shared_orgs_below(*, user: User, org: Organization) -> list[Organization]:
    """The organizations strictly below ``org`` that ``user`` is shared into, by name, each
    with its parent. One query."""
    return list(
        Organization.objects.filter(
            shared_users__user=user, **org_descendant_filter(org, prefix="", include_self=False)
        )
        .select_related("parent")
        .order_by("name", "pk")
    )


def user_holds_roles_in(*, user: User, org: Organization) -> bool:
    """Does ``user`` hold any role in ``org`` through their shared profile there?"""
    return RoleAssignment.objects.filter(association__user=user, association__organization=org).exists()
