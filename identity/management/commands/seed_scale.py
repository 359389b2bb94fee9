"""Seed a tenant at scale (10,000 organizations, 100,000 users by default) for the Console
benchmark (bench/console.py).

The tenant itself (root organization, system applications and roles, the administrator) comes
from the ordinary ``tenant_bootstrap`` service, so its Console can be signed in to. The tree
below it and the users are bulk-inserted: the MPTT columns (``tree_id``, ``lft``, ``rght``,
``level``) are computed here in one pass rather than by mptt row by row, and every seeded user
shares one password hash computed once (unusable unless ``--user-password`` is given), so no
KDF runs per user. One audit event records the seeding.

It refuses to run twice for one tenant handle (the bootstrap refuses an existing handle).
"""

from __future__ import annotations

import random
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.db import connection, transaction

from identity.audit.services import audit_record
from identity.models import User, UserAssociation
from identity.services.tenants import tenant_bootstrap
from organizations.models import Organization

GIVEN = (
    "aaron adam alice amelia anna ben bianca carla carlos chloe daniel diana eli emma erin "
    "fatima felix grace hana hugo ian ines jack james jana jane joao jonas julia karim kate "
    "leo lena liam lucia maria mateo mia nadia noah nora olga omar paula pedro quinn rafael "
    "rosa sam sara sofia tariq tom uma victor wei xavier yara yusuf zoe"
).split()
FAMILY = (
    "adams alves baker becker costa cruz dias evans fischer garcia gomez hansen ito jensen "
    "kim kowalski lee lopez martin meyer moreau nakamura novak oliveira park perez quist "
    "rossi santos schmidt silva smith suzuki tanaka torres tran weber wilson xu yamamoto "
    "young zhang zimmer"
).split()


class Progress:
    """A one-line progress bar drawn with carriage returns (no dependency)."""

    def __init__(self, label: str, total: int, out: OutputWrapper, *, enabled: bool) -> None:
        self.label, self.total, self.out, self.enabled = label, max(total, 1), out, enabled
        self.done = 0
        self.t0 = time.perf_counter()
        self._draw()

    def advance(self, n: int) -> None:
        self.done = min(self.total, self.done + n)
        self._draw()

    def _draw(self) -> None:
        if not self.enabled:
            return
        width = 30
        filled = width * self.done // self.total
        bar = "#" * filled + "-" * (width - filled)
        self.out.write(
            f"\r{self.label:<13} [{bar}] {self.done:>7}/{self.total} {time.perf_counter() - self.t0:6.1f} s",
            ending="",
        )
        self.out.flush()

    def close(self) -> None:
        if self.enabled:
            self.out.write("")
            self.out.flush()


def tree_shape(count: int, fanout: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """Parents, levels, lft and rght of ``count`` nodes in breadth-first (heap) order: node
    ``i``'s children are ``fanout*i+1 … fanout*i+fanout``. Node 0 is the root (parent -1).
    Children come in index order, which is their name order (see ``node_label``)."""
    parent = [-1] + [(i - 1) // fanout for i in range(1, count)]
    level = [0] * count
    for i in range(1, count):
        level[i] = level[parent[i]] + 1
    lft, rght = [0] * count, [0] * count
    counter = 1
    stack: list[tuple[int, bool]] = [(0, False)]
    while stack:  # iterative pre/post-order walk
        node, leaving = stack.pop()
        if leaving:
            rght[node] = counter
            counter += 1
            continue
        lft[node] = counter
        counter += 1
        stack.append((node, True))
        first = fanout * node + 1
        for child in range(min(first + fanout, count) - 1, first - 1, -1):
            stack.append((child, False))
    return parent, level, lft, rght


def node_label(index: int, fanout: int) -> str:
    """The path of sibling positions from the root, zero-padded so that names sort as the
    tree orders them (``03.07``)."""
    width = len(str(fanout - 1))
    parts: list[str] = []
    while index > 0:
        parts.append(str((index - 1) % fanout).zfill(width))
        index = (index - 1) // fanout
    return ".".join(reversed(parts))


def batched(total: int, size: int) -> Iterator[range]:
    for start in range(0, total, size):
        yield range(start, min(start + size, total))


class Command(BaseCommand):
    help = (
        "Seed a tenant with a large organization tree and many users (bulk inserts, one "
        "password hash) for the Console benchmark. Refuses an existing tenant handle."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", default="scale", help="tenant handle (default scale)")
        parser.add_argument("--orgs", type=int, default=10_000, help="organizations, root included")
        parser.add_argument("--users", type=int, default=100_000, help="users besides the administrator")
        parser.add_argument("--fanout", type=int, default=10, help="children per organization")
        parser.add_argument("--shared", type=float, default=0.01, help="share of users shared into a child")
        parser.add_argument("--admin-username", default="admin")
        parser.add_argument(
            "--admin-password", default="", help="the administrator's password (default: random, printed)"
        )
        parser.add_argument(
            "--user-password", default="", help="one password for every seeded user (default: unusable)"
        )
        parser.add_argument("--seed", type=int, default=7, help="random seed (the same seed, the same data)")
        parser.add_argument("--batch", type=int, default=5_000)
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **o: Any) -> None:
        orgs, users, fanout, batch = o["orgs"], o["users"], o["fanout"], o["batch"]
        if orgs < 1 or users < 0 or fanout < 1 or batch < 1 or not 0 <= o["shared"] <= 1:
            raise CommandError("--orgs and --fanout must be at least 1, --users at least 0, --shared 0..1")
        progress = not o["no_progress"]
        t0 = time.perf_counter()
        # Never a well-known default: a seeded tenant on a real database must not open with it.
        password = o["admin_password"] or secrets.token_urlsafe(12)
        with transaction.atomic():
            try:
                system, admin = tenant_bootstrap(
                    actor=None,
                    handle=o["tenant"],
                    name=f"Scale {o['tenant']}",
                    admin_username=o["admin_username"],
                    admin_password=password,
                )
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from exc
            root = system.tenant
            ids = self._seed_orgs(root, orgs, fanout, batch, progress)
            made, shared = self._seed_users(root, ids, users, fanout, batch, o, progress)
            audit_record(
                tenant=root,
                org=root,
                action="seed-scale",
                actor=None,
                target_type="organization",
                target_id=root.pk,
                data={"organizations": orgs, "users": made, "shared": shared, "fanout": fanout},
            )
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                for table in ("organizations_organization", "identity_user", "identity_userassociation"):
                    cursor.execute(f"ANALYZE {table}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Tenant {root.handle}: {orgs} organizations, {made} users ({shared} shared into a "
                f"child) and administrator {admin.username} in {time.perf_counter() - t0:.1f} s. "
                f"Console: /t/{root.handle}/console/"
            )
        )
        if not o["admin_password"]:
            self.stdout.write(f"Administrator password (shown once): {password}")

    def _seed_orgs(
        self, root: Organization, count: int, fanout: int, batch: int, progress: bool
    ) -> list[uuid.UUID]:
        parent, level, lft, rght = tree_shape(count, fanout)
        ids = [root.pk] + [uuid.uuid4() for _ in range(count - 1)]
        bar = Progress("organizations", count, self.stderr, enabled=progress)
        bar.advance(1)
        for chunk in batched(count - 1, batch):
            rows = []
            for k in chunk:
                i = k + 1
                label = node_label(i, fanout)
                rows.append(
                    Organization(
                        id=ids[i],
                        name=f"Org {label}",
                        handle="o-" + label.replace(".", "-"),
                        parent_id=ids[parent[i]],
                        tenant_id=root.pk,
                        tree_id=root.tree_id,
                        lft=lft[i],
                        rght=rght[i],
                        level=level[i],
                    )
                )
            Organization.objects.bulk_create(rows, batch_size=batch)
            bar.advance(len(rows))
        Organization.objects.filter(pk=root.pk).update(lft=1, rght=rght[0], level=0)
        bar.close()
        return ids

    def _seed_users(
        self,
        root: Organization,
        org_ids: list[uuid.UUID],
        count: int,
        fanout: int,
        batch: int,
        o: dict[str, Any],
        progress: bool,
    ) -> tuple[int, int]:
        rng = random.Random(o["seed"])  # noqa: S311 - test data, not secrets
        password = make_password(o["user_password"] or None)  # one hash for everyone
        n_orgs = len(org_ids)
        bar = Progress("users", count, self.stderr, enabled=progress)
        shared = 0
        for chunk in batched(count, batch):
            rows, links = [], []
            for n in chunk:
                given, family = rng.choice(GIVEN), rng.choice(FAMILY)
                username = f"{given}.{family}.{n}"
                home = rng.randrange(n_orgs)
                user = User(
                    id=uuid.uuid4(),
                    organization_id=org_ids[home],
                    username=username,
                    email=f"{username}@scale.example",
                    given_name=given.capitalize(),
                    family_name=family.capitalize(),
                    password=password,
                )
                rows.append(user)
                first_child = fanout * home + 1
                if first_child < n_orgs and rng.random() < o["shared"]:
                    links.append(UserAssociation(user_id=user.pk, organization_id=org_ids[first_child]))
            User.objects.bulk_create(rows, batch_size=batch)
            UserAssociation.objects.bulk_create(links, batch_size=batch)
            shared += len(links)
            bar.advance(len(rows))
        bar.close()
        return count, shared
