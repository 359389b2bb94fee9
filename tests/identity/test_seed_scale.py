"""manage.py seed_scale: a large tenant seeded with bulk inserts for the Console benchmark."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from identity.audit.models import AuditEvent
from identity.audit.services import audit_verify_chain
from identity.models import User, UserAssociation
from organizations.models import Organization

ORGS, USERS, FANOUT = 60, 300, 4


def _seed(**extra: object) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "seed_scale",
        "--tenant",
        "scale",
        "--orgs",
        str(ORGS),
        "--users",
        str(USERS),
        "--fanout",
        str(FANOUT),
        "--batch",
        "50",
        "--shared",
        "0.2",
        stdout=out,
        stderr=err,
        **extra,
    )
    return out.getvalue() + err.getvalue()


def _mptt_violations(tree_id: int) -> list[str]:
    """Check the nested-set columns against the parent links, independently of mptt."""
    nodes = {o.pk: o for o in Organization.objects.filter(tree_id=tree_id)}
    problems: list[str] = []
    edges = sorted(v for o in nodes.values() for v in (o.lft, o.rght))
    if edges != list(range(1, 2 * len(nodes) + 1)):
        problems.append("lft/rght are not exactly 1..2n")
    for o in nodes.values():
        if o.lft >= o.rght:
            problems.append(f"{o.name}: lft >= rght")
        if o.parent_id is None:
            if o.level != 0 or o.lft != 1:
                problems.append(f"{o.name}: root not at level 0 / lft 1")
            continue
        p = nodes[o.parent_id]
        if not (p.lft < o.lft and o.rght < p.rght):
            problems.append(f"{o.name}: not nested in its parent")
        if o.level != p.level + 1:
            problems.append(f"{o.name}: level is not its parent's + 1")
    for p in nodes.values():
        kids = sorted((o for o in nodes.values() if o.parent_id == p.pk), key=lambda o: o.lft)
        if [k.name for k in kids] != sorted(k.name for k in kids):
            problems.append(f"{p.name}: children not in name order")
        if kids and (kids[0].lft != p.lft + 1 or kids[-1].rght != p.rght - 1):
            problems.append(f"{p.name}: children do not fill it")
        for a, b in zip(kids, kids[1:], strict=False):
            if b.lft != a.rght + 1:
                problems.append(f"{p.name}: gap between children")
    return problems


@pytest.mark.django_db
def test_seeds_a_valid_tree_the_users_and_a_working_console() -> None:
    output = _seed()
    assert "Tenant scale: 60 organizations, 300 users" in output
    assert "users" in output and f"{USERS}/{USERS}" in output  # the progress bar reached its end

    root = Organization.objects.get(handle="scale", parent=None)
    orgs = Organization.objects.filter(tree_id=root.tree_id)
    assert orgs.count() == ORGS
    assert set(orgs.values_list("tenant_id", flat=True)) == {root.pk}
    assert _mptt_violations(root.tree_id) == []
    # mptt's own API agrees with the columns written by hand
    root.refresh_from_db()
    assert root.get_descendant_count() == ORGS - 1
    assert [c.name for c in root.get_children()] == ["Org 0", "Org 1", "Org 2", "Org 3"]
    leaf = orgs.order_by("-level", "name").first()
    assert leaf is not None
    assert [a.pk for a in leaf.get_ancestors()][0] == root.pk
    assert len(leaf.get_ancestors()) == leaf.level
    assert max(orgs.values_list("level", flat=True)) == 3  # 1 + 4 + 16 + 39 with fan-out 4

    seeded = User.objects.filter(organization__tree_id=root.tree_id).exclude(username="admin")
    assert seeded.count() == USERS
    assert len(set(seeded.values_list("password", flat=True))) == 1  # one hash, computed once
    assert not seeded.first().has_usable_password()  # type: ignore[union-attr]
    assert seeded.values("organization").distinct().count() > ORGS // 2
    shared = list(UserAssociation.objects.select_related("user__organization", "organization"))
    assert shared
    for a in shared:
        assert a.organization.parent_id == a.user.organization_id

    assert AuditEvent.objects.filter(tenant=root, action="seed-scale").count() == 1
    assert audit_verify_chain(tenant=root).ok

    # the administrator signs in and opens the Console, its Organizations and Users pages
    client = Client()
    # no well-known default: a random password, printed once
    match = re.search(r"Administrator password \(shown once\): (\S+)", output)
    assert match is not None, output
    guessed = client.post("/t/scale/login/", {"username": "admin", "password": "actas-scale-1"})
    assert guessed.status_code != 302
    r = client.post("/t/scale/login/", {"username": "admin", "password": match.group(1)})
    assert r.status_code == 302
    for page in ("", "organizations/", "users/?scope=subtree"):
        assert client.get(f"/t/scale/console/{page}").status_code == 200, page
    body = client.get("/t/scale/console/users/?scope=subtree").content.decode()
    rows = re.findall(r'<th scope="row"><a href="(/t/scale/[^"]+/users/[0-9a-f-]{36}/)">', body)
    assert len(rows) == 25 and 'rel="next"' in body  # a full page of users from the whole tree
    assert any("/o/" in href for href in rows)  # residents of organizations below the root
    assert client.get(next(h for h in rows if "/o/" in h)).status_code == 200


@pytest.mark.django_db
def test_refuses_to_run_twice_for_one_tenant() -> None:
    _seed()
    before = (Organization.objects.count(), User.objects.count())
    with pytest.raises(CommandError, match="already exists"):
        _seed()
    assert (Organization.objects.count(), User.objects.count()) == before


@pytest.mark.django_db
def test_one_usable_password_when_asked() -> None:
    _seed(user_password="seeded-password-1")
    user = User.objects.exclude(username="admin").filter(organization__handle__startswith="o-").first()
    assert user is not None
    client = Client()
    login = f"/t/scale/o/{user.organization_id}/login/"
    assert client.post(login, {"username": user.username, "password": "seeded-password-1"}).status_code == 302
