"""Shared fixtures: a demo-like tenant tree and named personas.

    acme (root)                 admin (Administrator + Impersonator), target, impersonator
    ├── acme-eu                 eu_admin (Administrator there), eu_user; target shared in
    │   └── acme-eu-sales       sales_user
    └── acme-us                 other_org_user

Every persona signs in with ``PASSWORD``.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from hypothesis import settings as hypothesis_settings

from identity.models import User
from identity.services.roles import role_assign
from identity.services.tenants import TenantSystem, tenant_bootstrap
from identity.services.users import user_create, user_share
from organizations.models import Organization
from organizations.selectors import org_tenant
from organizations.services import organization_create

pytest_plugins = ["tests.service_fixtures"]

# HYPOTHESIS_PROFILE=ci (set by .ci/run): the same generated examples on every run.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("HYPOTHESIS_PROFILE"):
    hypothesis_settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])

PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def _fast_hashers_and_clean_cache(settings: pytest.FixtureRequest) -> None:
    # Password hashing at production cost would make the suite crawl; client secrets keep
    # their real hasher.
    settings.PASSWORD_HASHERS = [  # type: ignore[attr-defined]
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "identity.hashers.ClientSecretHasher",
    ]
    # Many tests drive the token endpoint and sign-in from one address (hypothesis runs many
    # examples in one test); tests/identity/test_ratelimit.py sets small limits of its own.
    settings.ACTAS_RATE_LIMITS = {"token": "100000/60", "introspect": "100000/60", "signin": "100000/60"}  # type: ignore[attr-defined]
    cache.clear()


@pytest.fixture(scope="session")
def _signing_keys(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One signing key set for the whole run (outside the embedded default none is generated)."""
    from identity.oauth import tokens

    directory = tmp_path_factory.mktemp("signing-keys")
    tokens.rotate_signing_key(directory=directory, publish_old_for=dt.timedelta(hours=1))
    return str(directory)


@pytest.fixture(autouse=True)
def _signing_key_set(settings: Any, _signing_keys: str) -> None:
    settings.ACTAS_SIGNING_KEYS_DIR = _signing_keys


@pytest.fixture(autouse=True)
def _eager_tasks_unless_live_worker() -> Iterator[None]:
    """Tasks run in-process unless a test asks for the real worker (``celery_worker_live``
    switches this off again for its own test), so nothing queues work that no one runs."""
    from config.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@dataclass
class World:
    system: TenantSystem
    root: Organization
    eu: Organization
    sales: Organization
    us: Organization
    admin: User
    target: User
    impersonator: User
    eu_admin: User
    eu_user: User
    sales_user: User
    other_org_user: User

    @property
    def tenant(self) -> Organization:
        return self.root


def make_user(org: Organization, username: str, **extra: object) -> User:
    return user_create(
        actor=None,
        org=org,
        username=username,
        password=PASSWORD,
        email=f"{username}@example.test",
        given_name=username.title(),
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def world(db: None) -> World:
    system, admin = tenant_bootstrap(
        actor=None,
        handle="acme",
        name="Acme",
        admin_username="admin",
        admin_password=PASSWORD,
        admin_email="admin@example.test",
    )
    root = system.tenant
    eu = organization_create(actor=None, parent=root, name="Acme EU", handle="acme-eu")
    sales = organization_create(actor=None, parent=eu, name="Acme EU Sales", handle="acme-eu-sales")
    us = organization_create(actor=None, parent=root, name="Acme US", handle="acme-us")
    target = make_user(root, "target")
    impersonator = make_user(root, "impersonator")
    role_assign(actor=None, role=system.impersonator, org=root, user=impersonator)
    eu_admin = make_user(eu, "eu-admin")
    role_assign(actor=None, role=system.administrator, org=eu, user=eu_admin)
    eu_user = make_user(eu, "eu-user")
    sales_user = make_user(sales, "sales-user")
    other = make_user(us, "us-user")
    user_share(actor=None, user=target, org=eu)
    return World(
        system, root, eu, sales, us, admin, target, impersonator, eu_admin, eu_user, sales_user, other
    )


def sign_in(client: Client, user: User, *, org: Organization | None = None) -> Client:
    """Sign in through the real sign-in page of the user's resident organization."""
    org = org or user.organization
    tenant = org_tenant(org)
    url = f"/t/{tenant.handle}/login/" if org.pk == tenant.pk else f"/t/{tenant.handle}/o/{org.pk}/login/"
    response = client.post(url, {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content[:500]
    return client


@pytest.fixture
def admin_client(client: Client, world: World) -> Client:
    return sign_in(client, world.admin)


def console_url(org: Organization, path: str = "") -> str:
    tenant = org_tenant(org)
    if org.pk == tenant.pk:
        return f"/t/{tenant.handle}/console/{path}"
    return f"/t/{tenant.handle}/o/{org.pk}/console/{path}"


@pytest.fixture(scope="session")
def live_server(request: pytest.FixtureRequest, django_db_setup: None) -> Iterator[Any]:
    """pytest-django's live server, started only once the test database exists: started first,
    it would not share the in-memory SQLite database with its request threads (and would leave
    their connections open), whichever test module happens to run first."""
    import os

    from pytest_django.live_server_helper import LiveServer

    addr = (
        request.config.getvalue("liveserver") or os.getenv("DJANGO_LIVE_TEST_SERVER_ADDRESS") or "localhost"
    )
    server = LiveServer(addr)
    yield server
    server.stop()
