"""Application services behind the Console's application tabs."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.hashers import check_password
from django.core.exceptions import ValidationError

from identity.audit.models import AuditEvent
from identity.models import APIResource, Application, ApplicationAPIAuthorization
from identity.services.application_edits import (
    application_delete,
    application_regenerate_secret,
    application_remove_api_authorization,
    application_update_advanced,
    application_update_general,
    application_update_protocol,
)
from identity.services.applications import application_authorize_api, application_create, application_share
from tests.conftest import World


def _app(world: World, **options: Any) -> tuple[Application, str]:
    return application_create(
        actor=None,
        org=world.root,
        name="Pickup",
        grant_types=["authorization_code", "refresh_token"],
        redirect_uris=["https://pickup.example/cb"],
        **options,
    )


def _protocol(app: Application, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "client_type": app.client_type,
        "grant_types": list(app.grant_types),
        "redirect_uris": app.redirect_uris.split(),
        "post_logout_redirect_uris": app.post_logout_redirect_uris.split(),
        "pkce_required": app.pkce_required,
        "access_token_lifetime": app.access_token_lifetime,
        "refresh_token_lifetime": app.refresh_token_lifetime,
        "id_token_lifetime": app.id_token_lifetime,
        "subject_token_enabled": app.subject_token_enabled,
        "subject_token_expiry": app.subject_token_expiry,
    }
    values.update(overrides)
    return values


def test_update_general_validates(world: World) -> None:
    app, _ = _app(world)
    application_create(actor=None, org=world.root, name="Other", grant_types=["client_credentials"])
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": ""}, "name"),
        ({"name": "Other"}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"description": "d" * 1001}, "description"),
        ({"access_url": "javascript:alert(1)"}, "access_url"),
        ({"discoverable": True, "access_url": ""}, "access_url"),
    ]
    for kwargs, field in cases:
        values: dict[str, Any] = {
            "name": "Pickup",
            "description": "",
            "discoverable": False,
            "access_url": "",
            **kwargs,
        }
        with pytest.raises(ValidationError) as exc:
            application_update_general(actor=world.admin, application=app, **values)
        assert field in exc.value.message_dict, kwargs
    assert not AuditEvent.objects.filter(action="application-update").exists()


def test_update_general_without_changes_writes_no_audit(world: World) -> None:
    app, _ = _app(world)
    application_update_general(
        actor=world.admin, application=app, name="Pickup", description="", discoverable=False, access_url=""
    )
    assert not AuditEvent.objects.filter(action="application-update").exists()


def test_system_application_keeps_its_name(world: World) -> None:
    with pytest.raises(ValidationError) as exc:
        application_update_general(
            actor=world.admin,
            application=world.system.myaccount,
            name="Mine",
            description="",
            discoverable=False,
            access_url="",
        )
    assert "name" in exc.value.message_dict


def test_system_application_keeps_grants_redirects_and_client_type(world: World) -> None:
    console = world.system.console
    overrides: dict[str, Any]
    for overrides in (
        {"grant_types": ["client_credentials"]},
        {"redirect_uris": ["https://evil.example/cb"]},
        {"post_logout_redirect_uris": []},
        {"client_type": Application.CLIENT_CONFIDENTIAL},
    ):
        with pytest.raises(ValidationError) as exc:
            application_update_protocol(
                actor=world.admin, application=console, **_protocol(console, **overrides)
            )
        assert "cannot be changed for a system application" in str(exc.value), overrides
    app, secret = application_update_protocol(
        actor=world.admin,
        application=console,
        **_protocol(console, access_token_lifetime=300),
    )
    assert secret == "" and app.access_token_lifetime == 300


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"access_token_lifetime": 0}, "access_token_lifetime"),
        ({"refresh_token_lifetime": 365 * 24 * 3600 + 1}, "refresh_token_lifetime"),
        ({"id_token_lifetime": True}, "id_token_lifetime"),
        ({"subject_token_expiry": 3601}, "subject_token_expiry"),
        ({"grant_types": ["implicit"]}, "grant_types"),
        ({"grant_types": []}, "grant_types"),
        ({"client_type": "other"}, "client_type"),
        ({"client_type": "public", "grant_types": ["client_credentials"]}, "grant_types"),
        ({"client_type": "public", "pkce_required": False}, "pkce_required"),
        ({"redirect_uris": []}, "redirect_uris"),
        ({"redirect_uris": ["https://a.example/" + "p" * 200]}, "redirect_uris"),
        ({"post_logout_redirect_uris": ["mailto:x@example.test"]}, "post_logout_redirect_uris"),
    ],
)
def test_update_protocol_validates(world: World, overrides: dict[str, Any], field: str) -> None:
    app, _ = _app(world)
    with pytest.raises(ValidationError) as exc:
        application_update_protocol(actor=world.admin, application=app, **_protocol(app, **overrides))
    assert field in exc.value.message_dict


def test_client_type_switches_replace_the_secret(world: World) -> None:
    app, first = _app(world)
    app, secret = application_update_protocol(
        actor=world.admin,
        application=app,
        **_protocol(app, client_type=Application.CLIENT_PUBLIC),
    )
    app.refresh_from_db()
    assert secret == "" and not check_password(first, app.client_secret)
    app, second = application_update_protocol(
        actor=world.admin,
        application=app,
        **_protocol(app, client_type=Application.CLIENT_CONFIDENTIAL),
    )
    app.refresh_from_db()
    assert (
        second and check_password(second, app.client_secret) and not check_password(first, app.client_secret)
    )
    event = AuditEvent.objects.filter(action="application-update").last()
    assert event is not None and event.data["secret_replaced"] is True
    assert second not in str(event.data) and first not in str(event.data)


def test_regenerate_secret(world: World) -> None:
    app, old = _app(world)
    new = application_regenerate_secret(actor=world.admin, application=app)
    app.refresh_from_db()
    assert (
        new != old and check_password(new, app.client_secret) and not check_password(old, app.client_secret)
    )
    event = AuditEvent.objects.get(action="application-secret-regenerate")
    assert event.actor_id == world.admin.pk and new not in str(event.data)
    spa, _ = application_create(
        actor=None,
        org=world.root,
        name="SPA",
        client_type=Application.CLIENT_PUBLIC,
        redirect_uris=["https://spa.example/cb"],
    )
    with pytest.raises(ValidationError):
        application_regenerate_secret(actor=world.admin, application=spa)


def test_update_advanced(world: World) -> None:
    app, _ = _app(world)
    application_update_advanced(
        actor=world.admin, application=app, skip_login_consent=True, skip_logout_consent=False
    )
    app.refresh_from_db()
    assert app.skip_login_consent and not app.skip_logout_consent
    event = AuditEvent.objects.get(action="application-update")
    assert event.data["changes"] == {"skip_login_consent": {"from": False, "to": True}}


def test_only_scopes_one_holds_can_be_authorized_for_a_system_api(world: World) -> None:
    """An application with a client-credentials token acts on its own with its authorized
    scopes: handing it scopes one does not hold would be privilege escalation."""
    app, _ = _app(world)
    users = APIResource.objects.get(tenant=world.root, identifier="system:users")
    impersonation = APIResource.objects.get(tenant=world.root, identifier="system:impersonation")
    # The impersonator holds the Impersonator role only: no user management.
    with pytest.raises(ValidationError) as refused:
        application_authorize_api(
            actor=world.impersonator, application=app, resource=users, scopes=["internal_user_mgt_update"]
        )
    assert "internal_user_mgt_update" in str(refused.value)
    assert not ApplicationAPIAuthorization.objects.filter(application=app, resource=users).exists()
    # The impersonate scopes never reach an application's own token: anyone managing it may.
    application_authorize_api(
        actor=world.impersonator,
        application=app,
        resource=impersonation,
        scopes=["internal_user_impersonate"],
    )
    # The administrator holds user management, so they may.
    application_authorize_api(
        actor=world.admin, application=app, resource=users, scopes=["internal_user_mgt_update"]
    )
    # Keeping a scope someone else authorized is not adding it.
    application_authorize_api(
        actor=world.impersonator, application=app, resource=users, scopes=["internal_user_mgt_update"]
    )


def test_remove_api_authorization(world: World) -> None:
    app, _ = _app(world)
    resource = APIResource.objects.get(tenant=world.root, identifier="system:users")
    application_authorize_api(
        actor=None, application=app, resource=resource, scopes=["internal_user_mgt_view"]
    )
    application_remove_api_authorization(actor=world.admin, application=app, resource=resource)
    assert not ApplicationAPIAuthorization.objects.filter(application=app).exists()
    assert AuditEvent.objects.filter(action="application-api-unauthorize", actor_id=world.admin.pk).exists()
    with pytest.raises(ValidationError):
        application_remove_api_authorization(actor=world.admin, application=app, resource=resource)


def test_delete(world: World) -> None:
    app, _ = _app(world)
    client_id = app.client_id
    application_delete(actor=world.admin, application=app)
    assert not Application.objects.filter(client_id=client_id).exists()
    assert AuditEvent.objects.filter(action="application-delete", target_id=client_id).exists()
    with pytest.raises(ValidationError):
        application_delete(actor=world.admin, application=world.system.console)
    assert Application.objects.filter(pk=world.system.console.pk).exists()


def test_share_only_within_the_subtree(world: World) -> None:
    app, _ = application_create(actor=None, org=world.eu, name="EU app", grant_types=["client_credentials"])
    with pytest.raises(ValidationError):
        application_share(actor=world.admin, application=app, mode="selected", organizations=[world.us])
    with pytest.raises(ValidationError):
        application_share(actor=world.admin, application=app, mode="selected", organizations=[world.root])
    application_share(actor=world.admin, application=app, mode="selected", organizations=[world.sales])
    assert list(app.shares.values_list("organization", flat=True)) == [world.sales.pk]


# --- the Impersonation switch -------------------------------------------------------------


def test_impersonation_switch_brings_and_takes_the_token_exchange_grant(world: World) -> None:
    app, _ = _app(world)
    exchange = Application.GRANT_TOKEN_EXCHANGE_TYPE
    app, _ = application_update_protocol(
        actor=world.admin, application=app, **_protocol(app, subject_token_enabled=True)
    )
    assert app.subject_token_enabled and exchange in app.grant_types
    assert AuditEvent.objects.filter(action="application-update").count() == 1
    # Token exchange without subject tokens is no use: off takes it away even if listed.
    app, _ = application_update_protocol(
        actor=world.admin,
        application=app,
        **_protocol(app, subject_token_enabled=False, grant_types=[*app.grant_types, exchange]),
    )
    assert not app.subject_token_enabled and exchange not in app.grant_types
    last = AuditEvent.objects.filter(action="application-update").order_by("-id").first()
    assert last is not None and last.data["impersonation"] == {"from": True, "to": False}


def test_my_account_impersonation_can_be_switched_despite_its_fixed_grants(world: World) -> None:
    myaccount = world.system.myaccount
    myaccount, _ = application_update_protocol(
        actor=None, application=myaccount, **_protocol(myaccount, subject_token_enabled=False)
    )
    assert Application.GRANT_TOKEN_EXCHANGE_TYPE not in myaccount.grant_types
    myaccount, _ = application_update_protocol(
        actor=None,
        application=myaccount,
        **_protocol(
            myaccount, subject_token_enabled=True, grant_types=["authorization_code", "refresh_token"]
        ),
    )
    assert myaccount.subject_token_enabled
    assert Application.GRANT_TOKEN_EXCHANGE_TYPE in myaccount.grant_types
