"""Identity services: users, sharing, roles, applications, login flows, bootstrap."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.hashers import check_password
from django.core.exceptions import ValidationError

from identity.audit.models import AuditEvent
from identity.models import (
    APIResource,
    Application,
    LoginFlow,
    Role,
    RoleAssignment,
    User,
    UserAssociation,
)
from identity.services.applications import application_authorize_api, application_create, application_share
from identity.services.loginflows import login_flow_set, login_flow_validate
from identity.services.roles import role_assign, role_create, role_set_permissions, role_unassign
from identity.services.tenants import tenant_bootstrap, tenant_ensure_system_objects
from identity.services.users import user_create, user_set_flags, user_share
from organizations.services import org_insert
from tests.conftest import PASSWORD, World, make_user


def _last(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).latest("seq")


# --- users ------------------------------------------------------------------------------


def test_username_unique_within_org_only(world: World) -> None:
    make_user(world.eu, "sam")
    make_user(world.us, "sam")  # another organization: fine
    with pytest.raises(ValidationError) as exc:
        make_user(world.eu, "SAM")  # usernames are case-insensitive
    assert "username" in exc.value.message_dict
    assert User.objects.filter(username="sam").count() == 2


@pytest.mark.parametrize(
    ("username", "email", "password", "field"),
    [
        ("", "", PASSWORD, "username"),
        ("bad name", "", PASSWORD, "username"),
        ("ok", "not-an-email", PASSWORD, "email"),
        ("ok", "", "short", "password"),
        ("ok", "", "1234567890123", "password"),
    ],
)
def test_user_create_field_errors(world: World, username: str, email: str, password: str, field: str) -> None:
    before = User.objects.count()
    with pytest.raises(ValidationError) as exc:
        user_create(actor=world.admin, org=world.eu, username=username, password=password, email=email)
    assert field in exc.value.message_dict
    assert User.objects.count() == before


def test_user_create_hashes_password_and_audits(world: World) -> None:
    user = user_create(actor=world.admin, org=world.eu, username="Nina", password=PASSWORD)
    assert user.username == "nina"
    assert user.check_password(PASSWORD) and user.password != PASSWORD
    event = _last("user-create")
    assert (event.actor_id, event.subject_id, event.org_id) == (world.admin.pk, user.pk, world.eu.pk)


def test_share_only_into_descendants(world: World) -> None:
    association = user_share(actor=world.admin, user=world.admin, org=world.sales)
    assert association.organization == world.sales
    assert user_share(actor=world.admin, user=world.admin, org=world.sales) == association  # idempotent
    for org in (world.root, world.us):
        with pytest.raises(ValidationError):
            user_share(actor=world.admin, user=world.eu_user, org=org)  # sideways and upwards
    other = org_insert(parent=None, name="Globex", handle="globex")
    with pytest.raises(ValidationError):
        user_share(actor=world.admin, user=world.admin, org=other)
    assert UserAssociation.objects.filter(user=world.eu_user).count() == 0


def test_user_flags_audited_only_on_change(world: World) -> None:
    count = AuditEvent.objects.count()
    user_set_flags(actor=world.admin, user=world.target, is_locked=True, is_protected=True)
    assert AuditEvent.objects.count() == count + 1
    assert _last("user-status-change").data == {
        "is_locked": {"from": False, "to": True},
        "is_protected": {"from": False, "to": True},
    }
    user_set_flags(actor=world.admin, user=world.target, is_locked=True)
    assert AuditEvent.objects.count() == count + 1


# --- roles ------------------------------------------------------------------------------


def _app(world: World, *, owner=None, share: str = Application.SharedAccess.NONE, name: str = "Pickup"):
    app, _ = application_create(
        actor=None,
        org=owner or world.root,
        name=name,
        grant_types=["authorization_code"],
        redirect_uris=["https://pickup.example/cb"],
    )
    resource = APIResource.objects.get(tenant=world.root, identifier="system:impersonation")
    application_authorize_api(
        actor=None, application=app, resource=resource, scopes=["internal_user_impersonate"]
    )
    if share != Application.SharedAccess.NONE:
        application_share(actor=None, application=app, mode=share)
    return app


def test_role_audience_must_be_owned_or_shared(world: World) -> None:
    app = _app(world)
    with pytest.raises(ValidationError) as exc:
        role_create(actor=world.eu_admin, org=world.eu, name="X", audience_application=app)
    assert "audience_application" in exc.value.message_dict
    us_app = _app(world, owner=world.us, name="US app")
    with pytest.raises(ValidationError):
        role_create(actor=world.eu_admin, org=world.eu, name="X", audience_application=us_app)
    application_share(actor=None, application=app, mode=Application.SharedAccess.ALL)
    role = role_create(
        actor=world.eu_admin,
        org=world.eu,
        name="X",
        audience_application=app,
        permissions=["internal_user_impersonate"],
    )
    assert role.organization == world.eu


def test_role_permissions_limited_to_authorized_scopes(world: World) -> None:
    app = _app(world)
    with pytest.raises(ValidationError) as exc:
        role_create(
            actor=world.admin,
            org=world.root,
            name="Too much",
            audience_application=app,
            permissions=["internal_user_mgt_delete"],
        )
    assert "permissions" in exc.value.message_dict
    assert not Role.objects.filter(name="Too much").exists()


def test_role_name_unique_per_audience(world: World) -> None:
    role_create(actor=world.admin, org=world.eu, name="Helpdesk", audience_application=None)
    with pytest.raises(ValidationError):
        role_create(actor=world.admin, org=world.eu, name="helpdesk", audience_application=None)
    role_create(actor=world.admin, org=world.us, name="Helpdesk", audience_application=None)


def test_system_and_shared_roles_not_editable(world: World) -> None:
    with pytest.raises(ValidationError):
        role_set_permissions(
            actor=world.admin, role=world.system.administrator, org=world.root, permissions=[]
        )
    app = _app(world, share=Application.SharedAccess.ALL)
    role = role_create(actor=world.admin, org=world.root, name="R", audience_application=app)
    with pytest.raises(ValidationError):
        role_set_permissions(actor=world.eu_admin, role=role, org=world.eu, permissions=[])
    role_set_permissions(
        actor=world.admin, role=role, org=world.root, permissions=["internal_user_impersonate"]
    )
    assert list(role.permissions.values_list("name", flat=True)) == ["internal_user_impersonate"]


def test_assign_uses_association_in_child_org(world: World) -> None:
    admin_role = world.system.administrator
    assignment = role_assign(actor=world.admin, role=admin_role, org=world.eu, user=world.target)
    assert assignment.user is None
    assert assignment.association == UserAssociation.objects.get(user=world.target, organization=world.eu)
    with pytest.raises(ValidationError):
        role_assign(actor=world.admin, role=admin_role, org=world.eu, user=world.target)
    with pytest.raises(ValidationError):  # not a member of Acme US
        role_assign(actor=world.admin, role=admin_role, org=world.us, user=world.target)
    role_unassign(actor=world.admin, role=admin_role, org=world.eu, user=world.target)
    assert not RoleAssignment.objects.filter(association__user=world.target).exists()
    with pytest.raises(ValidationError):
        role_unassign(actor=world.admin, role=admin_role, org=world.eu, user=world.target)
    assert [e.action for e in AuditEvent.objects.filter(subject_id=world.target.pk).order_by("seq")][-2:] == [
        "role-assign",
        "role-unassign",
    ]


def test_role_of_unshared_app_cannot_be_assigned_in_child(world: World) -> None:
    app = _app(world)
    role = role_create(actor=world.admin, org=world.root, name="R", audience_application=app)
    with pytest.raises(ValidationError):
        role_assign(actor=world.admin, role=role, org=world.eu, user=world.eu_user)


def test_org_roles_do_not_leak_between_orgs(world: World) -> None:
    role = role_create(actor=world.admin, org=world.us, name="US only", audience_application=None)
    with pytest.raises(ValidationError):
        role_assign(actor=world.admin, role=role, org=world.eu, user=world.eu_user)


# --- applications -----------------------------------------------------------------------


def test_application_secret_shown_once_and_stored_hashed(world: World) -> None:
    app, secret = application_create(
        actor=world.admin,
        org=world.root,
        name="Billing",
        grant_types=["client_credentials"],
    )
    assert len(secret) >= 43
    stored = Application.objects.get(pk=app.pk).client_secret
    assert stored.startswith("client_secret_hmac$") and secret not in stored
    assert check_password(secret, stored)
    assert not check_password(secret + "x", stored)
    assert _last("application-create").target_id == app.client_id


def test_public_client_has_no_secret(world: World) -> None:
    app, secret = application_create(
        actor=world.admin,
        org=world.root,
        name="SPA",
        client_type=Application.CLIENT_PUBLIC,
        grant_types=["authorization_code"],
        redirect_uris=["https://spa.example/cb"],
    )
    assert secret == ""
    assert not check_password("", Application.objects.get(pk=app.pk).client_secret)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"grant_types": ["password"]}, "grant_types"),
        ({"grant_types": ["authorization_code"], "redirect_uris": []}, "redirect_uris"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "redirect_uris"),
        ({"redirect_uris": ["https://a.example/cb#frag"]}, "redirect_uris"),
        ({"client_type": "public", "grant_types": ["client_credentials"]}, "grant_types"),
    ],
)
def test_application_create_errors(world: World, kwargs: dict[str, Any], field: str) -> None:
    params: dict[str, Any] = {
        "name": "App",
        "grant_types": ["authorization_code"],
        "redirect_uris": ["https://a.example/cb"],
    }
    params.update(kwargs)
    before = Application.objects.count()
    with pytest.raises(ValidationError) as exc:
        application_create(actor=world.admin, org=world.root, **params)
    assert field in exc.value.message_dict
    assert Application.objects.count() == before


def test_served_over_https_redirect_uris_must_be_https(world: World, settings: Any) -> None:
    """A deployment on https (ALLOWED_REDIRECT_URI_SCHEMES = ["https"]) refuses an http
    redirect or post-logout URI when the application is saved, not with a 500 at sign-in."""
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "ALLOWED_REDIRECT_URI_SCHEMES": ["https"]}
    for field in ("redirect_uris", "post_logout_redirect_uris"):
        uris: dict[str, list[str]] = {
            "redirect_uris": ["https://a.example/cb"],
            "post_logout_redirect_uris": [],
        }
        uris[field] = ["http://a.example/cb"]
        with pytest.raises(ValidationError) as exc:
            application_create(
                actor=world.admin,
                org=world.root,
                name=f"Plain {field}",
                grant_types=["authorization_code"],
                redirect_uris=uris["redirect_uris"],
                post_logout_redirect_uris=uris["post_logout_redirect_uris"],
            )
        assert exc.value.message_dict[field] == [
            "This server redirects only to https addresses: http://a.example/cb"
        ]
    app, _secret = application_create(
        actor=world.admin,
        org=world.root,
        name="Secure",
        grant_types=["authorization_code"],
        redirect_uris=["https://a.example/cb"],
        access_url="http://a.example/",  # a link, not a redirect: http is fine
    )
    assert app.redirect_uris == "https://a.example/cb"


def test_several_grant_types(world: World) -> None:
    app = _app(world)
    assert app.allows_grant_type("authorization-code")  # DOT's name
    assert app.allows_grant_type("authorization_code")
    assert not app.allows_grant_type("client-credentials", "client_credentials")


def test_share_selected_only_below_owner(world: World) -> None:
    app = _app(world, owner=world.eu, name="EU app")
    with pytest.raises(ValidationError):
        application_share(actor=world.admin, application=app, mode="selected", organizations=[world.us])
    application_share(actor=world.admin, application=app, mode="selected", organizations=[world.sales])
    assert list(app.shares.values_list("organization__handle", flat=True)) == ["acme-eu-sales"]
    application_share(actor=world.admin, application=app, mode="all")
    assert not app.shares.exists()


def test_authorize_api_rejects_foreign_scope(world: World) -> None:
    app = _app(world)
    resource = APIResource.objects.get(tenant=world.root, identifier="system:impersonation")
    with pytest.raises(ValidationError):
        application_authorize_api(
            actor=None, application=app, resource=resource, scopes=["internal_user_mgt_view"]
        )


# --- login flows ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "steps",
    [
        [],
        [[]],
        [["Magic"]],
        [["BasicAuthenticator", "BasicAuthenticator"]],
        [["BasicAuthenticator", "SharedUserIdentifierExecutor"]],
        [["BasicAuthenticator"], ["SharedUserIdentifierExecutor"]],
        [["SharedUserIdentifierExecutor"]],
        [["email-otp"], ["BasicAuthenticator"]],
        [["BasicAuthenticator"], ["BasicAuthenticator"]],
        "BasicAuthenticator",
    ],
)
def test_login_flow_rules(steps: object) -> None:
    with pytest.raises(ValidationError):
        login_flow_validate(steps)


def test_login_flow_set(world: World) -> None:
    flow = login_flow_set(
        actor=world.admin,
        application=world.system.console,
        org=world.eu,
        steps=[["SharedUserIdentifierExecutor"], ["BasicAuthenticator"]],
    )
    assert LoginFlow.objects.get(pk=flow.pk).steps == [
        ["SharedUserIdentifierExecutor"],
        ["BasicAuthenticator"],
    ]


# --- tenant bootstrap -------------------------------------------------------------------


def test_bootstrap_creates_the_system_objects(world: World) -> None:
    system = world.system
    assert system.console.system_key == "console" and system.console.shared_access == "all"
    assert system.myaccount.subject_token_enabled
    assert set(system.impersonator.permissions.values_list("name", flat=True)) == {
        "internal_user_impersonate",
        "internal_org_user_impersonate",
    }
    assert system.administrator.is_system and system.impersonator.is_system
    assert system.administrator.audience_application == system.console
    assert RoleAssignment.objects.filter(role=system.administrator, user=world.admin).exists()
    assert RoleAssignment.objects.filter(role=system.impersonator, user=world.admin).exists()
    assert APIResource.objects.filter(tenant=world.root, identifier="system:impersonation").exists()


def test_bootstrap_twice_refused_and_ensure_is_idempotent(world: World) -> None:
    with pytest.raises(ValidationError):
        tenant_bootstrap(actor=None, handle="acme", name="Again", admin_username="x", admin_password=PASSWORD)
    counts = (Application.objects.count(), Role.objects.count(), AuditEvent.objects.count())
    tenant_ensure_system_objects(tenant=world.root)
    assert (Application.objects.count(), Role.objects.count(), AuditEvent.objects.count()) == counts


# --- sharing and unsharing ----------------------------------------------------------------


def test_share_with_several_organizations_at_once_all_or_none(world: World) -> None:
    from identity.services.users import user_share_with

    made = user_share_with(actor=world.admin, user=world.impersonator, orgs=[world.eu, world.sales])
    assert {a.organization for a in made} == {world.eu, world.sales}
    assert AuditEvent.objects.filter(action="user-share", subject_id=world.impersonator.pk).count() == 2
    # Shared already with Acme EU: only the new one is made (and recorded).
    assert user_share_with(actor=world.admin, user=world.target, orgs=[world.eu]) == []
    # One organization refused: nothing at all is shared.
    with pytest.raises(ValidationError, match="only be shared with organizations below"):
        user_share_with(actor=world.admin, user=world.eu_user, orgs=[world.sales, world.us])
    assert not UserAssociation.objects.filter(user=world.eu_user).exists()


def test_share_into_a_disabled_branch_is_refused(world: World) -> None:
    from organizations.services import org_set_status

    org_set_status(org=world.eu, status="disabled")
    world.sales.refresh_from_db()
    with pytest.raises(ValidationError, match="disabled"):
        user_share(actor=world.admin, user=world.impersonator, org=world.sales)
    assert not UserAssociation.objects.filter(user=world.impersonator).exists()


def test_unshare_removes_the_profile_its_roles_and_sign_ins_there(world: World) -> None:
    from identity.models import OAuthAuthorization, SSOSession
    from identity.services.sessions import sso_session_start
    from identity.services.users import user_unshare

    role_assign(actor=None, role=world.system.administrator, org=world.eu, user=world.target)
    in_eu = sso_session_start(user=world.target, org=world.eu, amr=["pwd"])
    at_home = sso_session_start(user=world.target, org=world.root, amr=["pwd"])
    switched = OAuthAuthorization.objects.create(
        application=world.system.myaccount, user=world.target, organization=world.eu
    )
    user_unshare(actor=world.admin, user=world.target, org=world.eu)

    assert not UserAssociation.objects.filter(user=world.target, organization=world.eu).exists()
    assert not RoleAssignment.objects.filter(association__user=world.target).exists()
    assert SSOSession.objects.get(pk=in_eu.pk).end_reason == "user-unshared"
    assert SSOSession.objects.get(pk=at_home.pk).ended_at is None  # their own organization: untouched
    switched.refresh_from_db()
    assert switched.revoked_at is not None
    event = _last("user-unshare")
    assert event.actor_id == world.admin.pk and event.subject_id == world.target.pk
    assert event.org_id == world.eu.pk
    assert event.data["roles_removed"] == ["Administrator"]
    assert event.data["sign_ins_ended"] == 1 and event.data["authorizations_revoked"] == 1


@pytest.mark.parametrize(
    ("who", "where", "message"),
    [
        ("target", "us", "not shared with Acme US"),
        ("target", "root", "own organization"),
        ("admin", "eu", "your own account"),
    ],
)
def test_unshare_refusals(world: World, who: str, where: str, message: str) -> None:
    from identity.services.users import user_unshare

    user_share(actor=None, user=world.admin, org=world.eu)
    before = UserAssociation.objects.count()
    user = getattr(world, who)
    with pytest.raises(ValidationError, match=message):
        user_unshare(actor=world.admin, user=user, org=getattr(world, where))
    assert UserAssociation.objects.count() == before
    assert not AuditEvent.objects.filter(action="user-unshare").exists()
