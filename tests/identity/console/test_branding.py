"""Console → Branding and Console → Email Templates."""

from __future__ import annotations

import html

from django.test import Client

from identity.audit.models import AuditEvent
from identity.notifications.branding import branding_update, email_template_save
from identity.notifications.emails import EMAIL_OTP, default_template
from identity.notifications.models import EmailTemplate, OrganizationBranding
from identity.services.roles import role_assign, role_create
from impersonation.emails import IMPERSONATION_STARTED
from tests.conftest import World, console_url, make_user, sign_in

EDIT = f"email-templates/{IMPERSONATION_STARTED}/en/"


def _template(**overrides: str) -> dict[str, str]:
    data = {
        "subject": "{{ impersonator_name }} acts as {{ user_name }}",
        "html_body": "<p>{{ reason }}</p>",
        "text_body": "Reason: {{ reason }}\nReport: {{ report_url }}",
        "action": "save",
    }
    data.update(overrides)
    return data


def _viewer(client: Client, world: World) -> Client:
    role = role_create(
        actor=None,
        org=world.root,
        name="Config viewers",
        audience_application=world.system.console,
        permissions=["internal_config_mgt_view"],
    )
    viewer = make_user(world.root, "viewer")
    role_assign(actor=None, role=role, org=world.root, user=viewer)
    return sign_in(client, viewer)


# --- Branding -----------------------------------------------------------------------------


def test_nav_has_both_entries(admin_client: Client, world: World) -> None:
    page = admin_client.get(console_url(world.root)).content.decode()
    assert ">Branding</a>" in page and ">Email Templates</a>" in page


def test_branding_saves_and_is_audited(admin_client: Client, world: World) -> None:
    page = admin_client.get(console_url(world.root, "branding/"))
    assert page.status_code == 200 and "actas default" in page.content.decode()
    response = admin_client.post(
        console_url(world.root, "branding/"),
        {
            "display_name": "Acme Identity",
            "support_email": "help@acme.test",
            "logo_url": "https://acme.test/l.png",
        },
    )
    assert response.status_code == 302
    row = OrganizationBranding.objects.get(organization=world.root)
    assert (row.display_name, row.support_email, row.logo_url) == (
        "Acme Identity",
        "help@acme.test",
        "https://acme.test/l.png",
    )
    event = AuditEvent.objects.get(action="branding-update")
    assert event.actor_id == world.admin.pk and event.data["support_email"] == "help@acme.test"


def test_branding_refuses_http_logo_and_bad_email_in_place(admin_client: Client, world: World) -> None:
    response = admin_client.post(
        console_url(world.root, "branding/"),
        {"display_name": "", "support_email": "nope", "logo_url": "http://acme.test/l.png"},
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "Enter a valid email address." in body and "Enter an https:// address." in body
    assert not OrganizationBranding.objects.exists()


def test_child_org_shows_inherited_branding(client: Client, world: World) -> None:
    branding_update(
        actor=None, org=world.root, display_name="Acme Identity", support_email="help@acme.test", logo_url=""
    )
    sign_in(client, world.eu_admin)
    page = client.get(console_url(world.eu, "branding/")).content.decode()
    assert "Acme Identity" in page and "help@acme.test" in page and "inherited from Acme" in page


def test_branding_needs_the_scopes(client: Client, world: World) -> None:
    sign_in(client, world.eu_user)
    assert client.get(console_url(world.eu, "branding/")).status_code == 403
    client.logout()
    _viewer(client, world)
    page = client.get(console_url(world.root, "branding/"))
    assert page.status_code == 200 and "not change it" in page.content.decode()
    response = client.post(
        console_url(world.root, "branding/"), {"display_name": "X", "support_email": "", "logo_url": ""}
    )
    assert response.status_code == 403 and not OrganizationBranding.objects.exists()


# --- Email Templates ----------------------------------------------------------------------


def test_list_shows_own_inherited_and_default(client: Client, world: World) -> None:
    email_template_save(
        actor=None,
        org=world.root,
        kind=IMPERSONATION_STARTED,
        locale="de",
        subject="Hallo",
        html_body="<p>Hallo</p>",
        text_body="Hallo",
    )
    sign_in(client, world.eu_admin)
    page = client.get(console_url(world.eu, "email-templates/"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "inherited from Acme" in body and "actas default" in body
    assert f'data-kind="{IMPERSONATION_STARTED}" data-locale="de"' in body
    assert f'data-kind="{EMAIL_OTP}" data-locale="en"' in body


def test_edit_page_prefills_the_default_and_lists_placeholders(admin_client: Client, world: World) -> None:
    page = admin_client.get(console_url(world.root, EDIT))
    assert page.status_code == 200
    body = html.unescape(page.content.decode())
    assert default_template(IMPERSONATION_STARTED).subject in body
    for name in ("user_name", "impersonator_name", "started_at", "report_url", "support_email", "logo_url"):
        assert f"<code>{name}</code>" in body


def test_preview_renders_samples_sandboxed_without_saving(admin_client: Client, world: World) -> None:
    response = admin_client.post(
        console_url(world.root, EDIT),
        _template(action="preview", html_body="<p>{{ reason }}</p><script>alert(1)</script>"),
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="preview-subject">Sam Support acts as Erin Example<' in body
    assert "Reason: Ticket #4711: cannot see invoices" in body
    # The HTML lives in a sandboxed srcdoc iframe (escaped into the attribute, scripts disabled).
    assert 'sandbox=""' in body and "srcdoc=" in body
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert not EmailTemplate.objects.exists()


def test_save_then_reset_to_inherited(admin_client: Client, world: World) -> None:
    response = admin_client.post(console_url(world.root, EDIT), _template())
    assert response.status_code == 302
    row = EmailTemplate.objects.get(organization=world.root, kind=IMPERSONATION_STARTED, locale="en")
    assert row.subject == "{{ impersonator_name }} acts as {{ user_name }}"
    assert AuditEvent.objects.filter(action="email-template-create", actor_id=world.admin.pk).exists()
    page = admin_client.get(console_url(world.root, EDIT)).content.decode()
    assert "Own template of Acme" in page and "Reset to inherited" in page
    reset = admin_client.post(console_url(world.root, EDIT + "reset/"))
    assert reset.status_code == 302 and not EmailTemplate.objects.exists()
    assert AuditEvent.objects.filter(action="email-template-reset").exists()


def test_broken_syntax_is_refused_with_400_and_nothing_saved(admin_client: Client, world: World) -> None:
    for html_body, message in (
        ("{% if reason %}unclosed", "endif"),
        ("{% load static %}", "is not allowed in email templates"),
        ('{% include "console/base.html" %}', "is not allowed in email templates"),
        ("{{ reason|safe }}", "Invalid filter"),
    ):
        response = admin_client.post(console_url(world.root, EDIT), _template(html_body=html_body))
        assert response.status_code == 400, html_body
        assert message in html.unescape(response.content.decode())
    preview = admin_client.post(
        console_url(world.root, EDIT), _template(action="preview", text_body="{% debug %}")
    )
    assert preview.status_code == 400 and 'id="preview"' not in preview.content.decode()
    assert not EmailTemplate.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="email-template").exists()


def test_child_org_falls_back_to_parent_template(client: Client, world: World) -> None:
    email_template_save(
        actor=None,
        org=world.root,
        kind=IMPERSONATION_STARTED,
        locale="en",
        subject="ROOT WORDING {{ user_name }}",
        html_body="<p>root</p>",
        text_body="root",
    )
    sign_in(client, world.eu_admin)
    page = client.get(console_url(world.eu, EDIT)).content.decode()
    assert "Inherited from Acme" in page and "ROOT WORDING" in page and "Reset to inherited" not in page
    saved = client.post(console_url(world.eu, EDIT), _template(subject="EU {{ user_name }}"))
    assert saved.status_code == 302
    assert EmailTemplate.objects.get(organization=world.eu).subject == "EU {{ user_name }}"
    page = client.get(console_url(world.eu, EDIT)).content.decode()
    assert "Reset to inherited (inherited from Acme)" in page


def test_email_templates_need_the_scopes(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    assert client.get(console_url(world.root, "email-templates/")).status_code == 403
    assert client.post(console_url(world.root, EDIT), _template()).status_code == 403
    client.logout()
    _viewer(client, world)
    assert client.get(console_url(world.root, "email-templates/")).status_code == 200
    page = client.get(console_url(world.root, EDIT)).content.decode()
    assert 'value="save"' not in page
    assert client.post(console_url(world.root, EDIT), _template()).status_code == 403
    assert client.post(console_url(world.root, EDIT + "reset/")).status_code == 403
    assert not EmailTemplate.objects.exists()


def test_unknown_kind_or_locale_is_404_and_open_form_validates(admin_client: Client, world: World) -> None:
    assert admin_client.get(console_url(world.root, "email-templates/nope/en/")).status_code == 404
    assert admin_client.get(console_url(world.root, f"email-templates/{EMAIL_OTP}/xx_!/")).status_code == 404
    opened = admin_client.get(
        console_url(world.root, "email-templates/"), {"kind": EMAIL_OTP, "locale": "pt-BR"}
    )
    assert opened.status_code == 302 and opened["Location"].endswith(f"email-templates/{EMAIL_OTP}/pt-br/")
    bad = admin_client.get(console_url(world.root, "email-templates/"), {"kind": EMAIL_OTP, "locale": "!!"})
    assert bad.status_code == 400 and "short language tag" in bad.content.decode()


# --- bounded rendering (issue 13) ----------------------------------------------------------


def test_preview_needs_the_update_scope(client: Client, world: World) -> None:
    _viewer(client, world)
    page = client.get(console_url(world.root, EDIT)).content.decode()
    assert 'value="preview"' not in page
    response = client.post(console_url(world.root, EDIT), _template(action="preview"))
    assert response.status_code == 403 and 'id="preview"' not in response.content.decode()


def test_costly_templates_are_refused_on_preview_and_save_with_the_reason(
    admin_client: Client, world: World
) -> None:
    nested = (
        "{% for a in reason %}{% for b in reason %}{% for c in reason %}.{% endfor %}{% endfor %}{% endfor %}"
    )
    for overrides, message in (
        ({"html_body": '<p>{{ reason|ljust:"5000000" }}</p>'}, "pads to at most 1,000 characters"),
        ({"text_body": nested}, "more than 10,000 times"),
    ):
        for action in ("preview", "save"):
            response = admin_client.post(console_url(world.root, EDIT), _template(action=action, **overrides))
            body = html.unescape(response.content.decode())
            assert response.status_code == 400, (action, overrides)
            assert message in body and 'id="preview"' not in body
            assert len(body) < 100_000
    assert not EmailTemplate.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="email-template").exists()
