"""Privilege dominance against an independent brute-force oracle, over random organization
trees, roles, sharing and assignments written straight into the tables."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from identity.models import (
    Application,
    ApplicationShare,
    Role,
    RoleAssignment,
    Scope,
    User,
    UserAssociation,
)
from identity.selectors.permission_map import dominance_gaps
from impersonation import policy
from organizations.models import Organization
from organizations.services import organization_create
from tests.conftest import World, make_user

SCOPES = ["s_read", "s_write", "s_admin", "s_audit"]


def _oracle_pairs(user: User) -> set[tuple[uuid.UUID, str]]:
    """(organization, permission) pairs, straight from the definition over raw rows."""
    pairs: set[tuple[uuid.UUID, str]] = set()
    for a in RoleAssignment.objects.filter(user=user) | RoleAssignment.objects.filter(association__user=user):
        org = a.user.organization if a.user is not None else a.association.organization  # type: ignore[union-attr]
        role = a.role
        app = role.audience_application
        counts = role.organization_id == org.pk
        if not counts and app is not None and role.organization_id == app.organization_id:
            counts = _available(app, org)
        if counts:
            pairs |= {(org.pk, p.name) for p in role.permissions.all()}
    return pairs


def _ancestors(org: Organization) -> list[uuid.UUID]:
    chain = []
    node: Organization | None = org
    while node is not None:
        chain.append(node.pk)
        node = node.parent
    return chain


def _available(app: Application, org: Organization) -> bool:
    if app.organization_id == org.pk:
        return True
    if app.organization_id not in _ancestors(org):
        return False
    if app.system_key == Application.SystemKey.CONSOLE or app.shared_access == Application.SharedAccess.ALL:
        return True
    return (
        app.shared_access == Application.SharedAccess.SELECTED
        and ApplicationShare.objects.filter(application=app, organization=org).exists()
    )


def _oracle_gaps(impersonator: User, subject: User) -> dict[uuid.UUID, frozenset[str]]:
    mine = _oracle_pairs(impersonator) if impersonator.can_sign_in else set()
    gaps: dict[uuid.UUID, set[str]] = {}
    for org_id, scope in _oracle_pairs(subject):
        org = Organization.objects.get(pk=org_id)
        if not any((a, scope) in mine for a in _ancestors(org)):
            gaps.setdefault(org_id, set()).add(scope)
    return {k: frozenset(v) for k, v in gaps.items()}


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    n_orgs = draw(st.integers(min_value=1, max_value=6))
    parents = [
        draw(st.integers(min_value=0, max_value=i)) for i in range(n_orgs)
    ]  # index into [root]+created
    sharing = draw(st.sampled_from(["none", "all", "selected"]))
    selected = draw(st.lists(st.integers(min_value=0, max_value=n_orgs), max_size=3))
    roles = draw(
        st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=n_orgs),  # owning org
                st.booleans(),  # application role?
                st.sets(st.sampled_from(SCOPES), min_size=1),
            ),
            min_size=1,
            max_size=5,
        )
    )
    assignments = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["impersonator", "subject"]),
                st.integers(min_value=0, max_value=len(roles) - 1),
                st.integers(min_value=0, max_value=n_orgs),  # where it is assigned
            ),
            max_size=8,
        )
    )
    return {
        "parents": parents,
        "sharing": sharing,
        "selected": selected,
        "roles": roles,
        "assignments": assignments,
    }


def _build(world: World, scenario: dict[str, Any]) -> tuple[User, User]:
    orgs = [world.root]
    for i, parent in enumerate(scenario["parents"]):
        orgs.append(
            organization_create(
                actor=None, parent=orgs[parent], name=f"O{i}", handle=f"o{i}-{uuid.uuid4().hex[:6]}"
            )
        )
    resource = world.system.console.api_authorizations.first().resource  # any tenant resource
    scopes = {}
    for name in SCOPES:
        scopes[name] = Scope.objects.create(tenant=world.root, resource=resource, name=name)
    app = Application.objects.create(
        organization=world.root,
        name="Oracle app",
        client_type="confidential",
        authorization_grant_type="authorization-code",
        grant_types=["authorization_code"],
        shared_access=scenario["sharing"],
    )
    if scenario["sharing"] == "selected":
        for index in set(scenario["selected"]):
            if index > 0:
                ApplicationShare.objects.get_or_create(application=app, organization=orgs[index])
    built_roles = []
    for i, (owner, is_app, perms) in enumerate(scenario["roles"]):
        role = Role.objects.create(
            organization=orgs[owner],
            name=f"R{i}",
            audience=Role.Audience.APPLICATION if is_app else Role.Audience.ORGANIZATION,
            audience_application=app if is_app else None,
        )
        role.permissions.set([scopes[p] for p in perms])
        built_roles.append(role)
    impersonator = make_user(world.root, f"imp-{uuid.uuid4().hex[:6]}")
    subject = make_user(world.root, f"sub-{uuid.uuid4().hex[:6]}")
    people = {"impersonator": impersonator, "subject": subject}
    for who, role_index, org_index in scenario["assignments"]:
        person = people[who]
        org = orgs[org_index]
        if org.pk == person.organization_id:
            RoleAssignment.objects.get_or_create(role=built_roles[role_index], user=person)
        else:
            association, _ = UserAssociation.objects.get_or_create(user=person, organization=org)
            RoleAssignment.objects.get_or_create(role=built_roles[role_index], association=association)
    return impersonator, subject


class _Rollback(Exception):
    pass


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
def test_dominance_matches_the_oracle(world: World, scenario: dict[str, Any]) -> None:
    try:
        with transaction.atomic():
            impersonator, subject = _build(world, scenario)
            for a, b in ((impersonator, subject), (subject, impersonator)):
                assert dominance_gaps(impersonator=a, subject=b) == _oracle_gaps(a, b), scenario
            raise _Rollback
    except _Rollback:
        pass


def _attempt(
    world: World,
    impersonator: User,
    subject: User,
    app: Application,
    org: Organization | None = None,
    chained: bool = False,
) -> policy.Attempt:
    return policy.Attempt(
        impersonator=impersonator,
        subject_id=str(subject.pk),
        org=org or world.root,
        application=app,
        requested_scopes=["openid"],
        chained=chained,
    )


def test_the_chain_runs_in_order_first_failure_wins(world: World) -> None:
    """impersonator holds the Impersonator role on My Account; target is fine."""
    app = world.system.myaccount
    attempt = policy.evaluate(_attempt(world, world.impersonator, world.target, app))
    assert attempt.subject == world.target and attempt.approved_scopes == ["openid"]
    # Permission comes first: an unknown subject is not even looked at without it.
    with pytest.raises(policy.Refused) as refused:
        policy.evaluate(
            policy.Attempt(
                impersonator=world.target,
                subject_id="nope",
                org=world.root,
                application=app,
                requested_scopes=[],
            )
        )
    assert refused.value.code == "no-permission"
    with pytest.raises(policy.Refused) as refused:
        policy.evaluate(_attempt(world, world.impersonator, world.target, app, chained=True))
    assert refused.value.code == "chained"


def test_child_org_impersonator_cannot_target_a_user_shared_in(world: World) -> None:
    """eu-admin may impersonate in Acme EU (Impersonator role there); target is only shared in."""
    from identity.services.applications import application_share
    from identity.services.roles import role_assign

    application_share(actor=None, application=world.system.myaccount, mode=Application.SharedAccess.ALL)
    role_assign(actor=None, role=world.system.impersonator, org=world.eu, user=world.eu_admin)
    app = world.system.myaccount
    with pytest.raises(policy.Refused) as refused:
        policy.evaluate(_attempt(world, world.eu_admin, world.target, app, org=world.eu))
    assert refused.value.code == "not-resident"
    ok = policy.evaluate(_attempt(world, world.eu_admin, world.eu_user, app, org=world.eu))
    assert ok.subject == world.eu_user


def test_shared_parent_user_impersonates_the_child_orgs_users(world: World) -> None:
    """Seed 001: target (resident in Acme, shared into Acme EU) holds the Impersonator role on
    its shared profile there and impersonates eu-user."""
    from identity.services.applications import application_share
    from identity.services.roles import role_assign

    application_share(actor=None, application=world.system.myaccount, mode=Application.SharedAccess.ALL)
    role_assign(actor=None, role=world.system.impersonator, org=world.eu, user=world.target)
    ok = policy.evaluate(_attempt(world, world.target, world.eu_user, world.system.myaccount, org=world.eu))
    assert ok.subject == world.eu_user
    assert policy.impersonate_scope_for(world.eu) == "internal_org_user_impersonate"
