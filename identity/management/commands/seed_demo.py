"""Seed the demo tenant (DESIGN §8). Idempotent: a second run finds everything in place and
changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from identity.models import (
    IMPERSONATE_SCOPE,
    ORG_IMPERSONATE_SCOPE,
    APIResource,
    Application,
    Role,
    RoleAssignment,
    User,
    UserAssociation,
)
from identity.services.application_edits import application_update_general, application_update_protocol
from identity.services.applications import application_authorize_api, application_create, application_share
from identity.services.roles import role_assign, role_create
from identity.services.tenants import TenantSystem, tenant_ensure_system_objects
from identity.services.users import user_create, user_share
from organizations.models import Organization
from organizations.selectors import tenant_get
from organizations.services import organization_create, tenant_root_create

PICKUP_URL = "http://127.0.0.1:8765/"
USER_MGT_RESOURCES = ("system:users", "org:users")


class Command(BaseCommand):
    help = "Create (or complete) the demo tenant 'acme' with its organizations, users and the Pickup app."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--password", default="actas-demo-1", help="Password of every demo user.")
        parser.add_argument(
            "--pickup-url",
            default=PICKUP_URL,
            help="Where browsers reach Pickup (default %(default)s): its access URL; its redirect URI "
            "is this plus 'callback'. A later run with another address moves Pickup there.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.password: str = options["password"]
        self.pickup_url: str = options["pickup_url"].rstrip("/") + "/"
        steps: list[tuple[str, Callable[[], str]]] = [
            ("tenant acme", self.tenant),
            ("system applications, resources and roles", self.system),
            ("organizations", self.organizations),
            ("users", self.users),
            ("My Account shared with all organizations", self.share_myaccount),
            ("administrators and impersonators", self.roles),
            ("alice shared into Acme EU", self.share_alice),
            ("Pickup application", self.pickup),
            ("Pickup Impersonator role", self.pickup_role),
        ]
        for index, (label, step) in enumerate(steps, start=1):
            with transaction.atomic():
                result = step()
            self.stdout.write(f"[{index}/{len(steps)}] {label}: {result}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo tenant ready. Console: {settings.BASE_URL}/t/acme/console/ "
                f"(admin / {self.password}); Acme EU's Console: "
                f"{settings.BASE_URL}/t/acme/o/{self.orgs['acme-eu'].pk}/console/ "
                f"(eu-admin / {self.password})"
            )
        )

    # --- steps ----------------------------------------------------------------------------

    def tenant(self) -> str:
        tenant = tenant_get(handle="acme")
        created = tenant is None
        self.root = tenant or tenant_root_create(actor=None, name="Acme", handle="acme")
        return "created" if created else "already there"

    def system(self) -> str:
        before = Application.objects.filter(organization=self.root).count()
        self.sys: TenantSystem = tenant_ensure_system_objects(tenant=self.root)
        after = Application.objects.filter(organization=self.root).count()
        return "created" if after > before else "already there"

    def _org(self, parent: Organization, name: str, handle: str) -> tuple[Organization, bool]:
        org = Organization.objects.filter(tenant=self.root, handle=handle).first()
        if org is not None:
            return org, False
        return organization_create(actor=None, parent=parent, name=name, handle=handle), True

    def organizations(self) -> str:
        created = 0
        eu, c1 = self._org(self.root, "Acme EU", "acme-eu")
        sales, c2 = self._org(eu, "Acme EU Sales", "acme-eu-sales")
        us, c3 = self._org(self.root, "Acme US", "acme-us")
        created = sum((c1, c2, c3))
        self.orgs = {"acme": self.root, "acme-eu": eu, "acme-eu-sales": sales, "acme-us": us}
        return f"{created} created, {3 - created} already there"

    def users(self) -> str:
        specs = [
            ("acme", "admin", "Ada", "Admin"),
            ("acme", "alice", "Alice", "Anders"),
            ("acme", "bob", "Bob", "Brown"),
            ("acme-eu", "erin", "Erin", "Evans"),
            ("acme-eu", "eu-admin", "Eva", "Ulrich"),
        ]
        created = 0
        self.people: dict[str, User] = {}
        for org_handle, username, given, family in specs:
            org = self.orgs[org_handle]
            user = User.objects.filter(organization=org, username=username).first()
            if user is None:
                user = user_create(
                    actor=None,
                    org=org,
                    username=username,
                    password=self.password,
                    email=f"{username}@acme.example",
                    given_name=given,
                    family_name=family,
                )
                created += 1
            self.people[username] = user
        return f"{created} created, {len(specs) - created} already there"

    def _assign(self, role: Role, org: Organization, user: User) -> int:
        principal: dict[str, object]
        if user.organization_id == org.pk:
            principal = {"user": user}
        else:
            principal = {"association__user": user, "association__organization": org}
        if RoleAssignment.objects.filter(role=role, **principal).exists():
            return 0
        role_assign(actor=None, role=role, org=org, user=user)
        return 1

    def roles(self) -> str:
        eu = self.orgs["acme-eu"]
        n = 0
        n += self._assign(self.sys.administrator, self.root, self.people["admin"])
        n += self._assign(self.sys.impersonator, self.root, self.people["admin"])
        n += self._assign(self.sys.administrator, eu, self.people["eu-admin"])
        n += self._assign(self.sys.impersonator, eu, self.people["eu-admin"])
        return f"{n} assignments made"

    def share_alice(self) -> str:
        eu = self.orgs["acme-eu"]
        if UserAssociation.objects.filter(user=self.people["alice"], organization=eu).exists():
            return "already there"
        user_share(actor=None, user=self.people["alice"], org=eu)
        return "created"

    def pickup(self) -> str:
        app = Application.objects.filter(client_id="pickup").first()
        created = app is None
        if app is None:
            app, _ = application_create(
                actor=None,
                org=self.root,
                name="Pickup",
                client_type=Application.CLIENT_CONFIDENTIAL,
                client_id="pickup",
                client_secret="pickup-secret",  # noqa: S106 (demo)
                grant_types=[
                    Application.GRANT_AUTHORIZATION_CODE_TYPE,
                    Application.GRANT_REFRESH_TOKEN_TYPE,
                    Application.GRANT_TOKEN_EXCHANGE_TYPE,
                    Application.GRANT_ORGANIZATION_SWITCH_TYPE,
                ],
                redirect_uris=[f"{self.pickup_url}callback"],
                post_logout_redirect_uris=[self.pickup_url],
                subject_token_enabled=True,
                discoverable=True,
                access_url=self.pickup_url,
                skip_login_consent=True,
                skip_logout_consent=True,
                pkce_required=False,
                description="A demo business application that supports impersonation.",
            )
            for identifier in ("system:impersonation", "org:impersonation", *USER_MGT_RESOURCES):
                resource = APIResource.objects.get(tenant=self.root, identifier=identifier)
                application_authorize_api(
                    actor=None,
                    application=app,
                    resource=resource,
                    scopes=list(resource.scopes.values_list("name", flat=True)),
                )
            application_share(actor=None, application=app, mode=Application.SharedAccess.ALL)
        self.pickup_app = app
        if created:
            return "created"
        return "moved to " + self.pickup_url if self._move_pickup(app) else "already there"

    def _move_pickup(self, app: Application) -> bool:
        """Point Pickup at ``--pickup-url`` when an earlier run put it elsewhere."""
        redirect, home = f"{self.pickup_url}callback", self.pickup_url
        if app.access_url == home and app.redirect_uris.split() == [redirect]:
            return False
        application_update_protocol(
            actor=None,
            application=app,
            client_type=app.client_type,
            grant_types=app.grant_types,
            redirect_uris=[redirect],
            post_logout_redirect_uris=[home],
            pkce_required=app.pkce_required,
            access_token_lifetime=app.access_token_lifetime,
            refresh_token_lifetime=app.refresh_token_lifetime,
            id_token_lifetime=app.id_token_lifetime,
            subject_token_enabled=app.subject_token_enabled,
            subject_token_expiry=app.subject_token_expiry,
        )
        application_update_general(
            actor=None,
            application=app,
            name=app.name,
            description=app.description,
            discoverable=app.discoverable,
            access_url=home,
        )
        return True

    def pickup_role(self) -> str:
        role = Role.objects.filter(
            organization=self.root, audience_application=self.pickup_app, name="Pickup Impersonator"
        ).first()
        created = role is None
        if role is None:
            role = role_create(
                actor=None,
                org=self.root,
                name="Pickup Impersonator",
                audience_application=self.pickup_app,
                permissions=[IMPERSONATE_SCOPE, ORG_IMPERSONATE_SCOPE],
            )
        n = self._assign(role, self.root, self.people["admin"])
        n += self._assign(role, self.orgs["acme-eu"], self.people["eu-admin"])
        return f"{'created' if created else 'already there'}, {n} assignments made"

    def share_myaccount(self) -> str:
        app = self.sys.myaccount
        if app.shared_access == Application.SharedAccess.ALL:
            return "already there"
        application_share(actor=None, application=app, mode=Application.SharedAccess.ALL)
        return "shared"
