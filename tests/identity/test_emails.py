"""Editable emails: resolution up the tree and across locales, the sandbox, and delivery of an
organization's own impersonation email through the outbox to a real SMTP server."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils.safestring import SafeData

from identity.audit.models import AuditEvent
from identity.notifications import email_sandbox, emails
from identity.notifications.branding import branding_update, email_template_reset, email_template_save
from identity.notifications.email_sandbox import render_string
from identity.notifications.emails import (
    EMAIL_OTP,
    branding_effective,
    default_template,
    email_render,
    template_resolve,
    template_validate,
)
from identity.notifications.models import EmailTemplate, OutboxMessage
from identity.notifications.outbox import outbox_deliver
from impersonation.emails import IMPERSONATION_STARTED
from impersonation.models import ImpersonationSession
from tests.conftest import World, console_url


def _save(
    world_org: Any, *, kind: str = IMPERSONATION_STARTED, locale: str = "en", tag: str = ""
) -> EmailTemplate:
    return email_template_save(
        actor=None,
        org=world_org,
        kind=kind,
        locale=locale,
        subject=f"{tag} subject for {{{{ user_name }}}}",
        html_body=f"<p>{tag} html {{{{ reason }}}}</p>",
        text_body=f"{tag} text {{{{ reason }}}}",
    )


# --- resolution ---------------------------------------------------------------------------


def test_own_then_parent_then_default(world: World) -> None:
    resolved = template_resolve(org=world.sales, kind=IMPERSONATION_STARTED, locale="en")
    assert resolved.is_default and resolved.text == default_template(IMPERSONATION_STARTED)
    _save(world.root, tag="ROOT")
    assert template_resolve(org=world.sales, kind=IMPERSONATION_STARTED).source == world.root
    _save(world.eu, tag="EU")
    resolved = template_resolve(org=world.sales, kind=IMPERSONATION_STARTED)
    assert resolved.source == world.eu and resolved.text.subject.startswith("EU")
    _save(world.sales, tag="SALES")
    assert template_resolve(org=world.sales, kind=IMPERSONATION_STARTED).source == world.sales
    # A sibling branch does not see EU's template; the other kind is untouched.
    assert template_resolve(org=world.us, kind=IMPERSONATION_STARTED).source == world.root
    assert template_resolve(org=world.sales, kind=EMAIL_OTP).is_default
    # Reset: the own template goes, the parent's applies again.
    assert email_template_reset(actor=None, org=world.sales, kind=IMPERSONATION_STARTED, locale="en")
    assert template_resolve(org=world.sales, kind=IMPERSONATION_STARTED).source == world.eu


def test_locale_falls_back_to_language_then_en(world: World) -> None:
    _save(world.root, tag="EN")
    _save(world.root, locale="de", tag="DE")
    de = template_resolve(org=world.eu, kind=IMPERSONATION_STARTED, locale="de")
    assert de.locale == "de" and de.text.subject.startswith("DE")
    assert template_resolve(org=world.eu, kind=IMPERSONATION_STARTED, locale="de-AT").locale == "de"
    fr = template_resolve(org=world.eu, kind=IMPERSONATION_STARTED, locale="fr")
    assert fr.locale == "en" and fr.text.subject.startswith("EN")
    assert template_resolve(org=world.eu, kind=IMPERSONATION_STARTED, locale="not a locale").locale == "en"
    EmailTemplate.objects.all().delete()
    assert template_resolve(org=world.eu, kind=IMPERSONATION_STARTED, locale="de").is_default


def test_defaults_are_valid_sandbox_templates_with_every_placeholder() -> None:
    for kind in (IMPERSONATION_STARTED, EMAIL_OTP):
        text = default_template(kind)
        rendered = template_validate(
            kind=kind, subject=text.subject, html_body=text.html_body, text_body=text.text_body
        )
        assert "{{" not in rendered.html and "{%" not in rendered.text
    imp = template_validate(kind=IMPERSONATION_STARTED, **_parts(default_template(IMPERSONATION_STARTED)))
    sample = emails.KINDS[IMPERSONATION_STARTED].sample
    for name in ("impersonator_name", "started_at", "reason", "org_name", "support_email"):
        assert sample[name] in imp.text
    assert sample["access_url"] in imp.text and sample["report_url"] in imp.text
    assert imp.subject == "Sam Support is acting on your Example Corp EU account"


def _parts(text: Any) -> dict[str, str]:
    return {"subject": text.subject, "html_body": text.html_body, "text_body": text.text_body}


def test_branding_is_inherited_field_by_field(world: World) -> None:
    assert branding_effective(world.sales).brand_name == "Acme"  # the tenant's name by default
    branding_update(
        actor=None, org=world.root, display_name="Acme Inc.", support_email="help@acme.test", logo_url=""
    )
    branding_update(
        actor=None,
        org=world.eu,
        display_name="",
        support_email="eu-help@acme.test",
        logo_url="https://acme.test/eu.png",
    )
    effective = branding_effective(world.sales)
    assert effective.values() == {
        "brand_name": "Acme Inc.",
        "support_email": "eu-help@acme.test",
        "logo_url": "https://acme.test/eu.png",
    }
    assert effective.sources["brand_name"] == world.root and effective.sources["support_email"] == world.eu
    with pytest.raises(ValidationError) as exc:
        branding_update(
            actor=None, org=world.eu, display_name="", support_email="nope", logo_url="http://acme.test/x.png"
        )
    assert set(exc.value.message_dict) == {"support_email", "logo_url"}
    assert AuditEvent.objects.filter(action="branding-update").count() == 2


def test_render_fills_branding_and_uses_the_orgs_template(world: World) -> None:
    branding_update(actor=None, org=world.root, display_name="", support_email="help@acme.test", logo_url="")
    email_template_save(
        actor=None,
        org=world.eu,
        kind=EMAIL_OTP,
        locale="en",
        subject="Code {{ code }}",
        html_body="<b>{{ code }}</b> {{ support_email }}",
        text_body="{{ code }} for {{ user_name }} at {{ brand_name }}",
    )
    rendered = email_render(
        org=world.sales, kind=EMAIL_OTP, values={"code": "123456", "user_name": "Erin", "minutes": 10}
    )
    assert rendered.subject == "Code 123456"
    assert rendered.text == "123456 for Erin at Acme"
    assert rendered.html == "<b>123456</b> help@acme.test"


# --- the sandbox --------------------------------------------------------------------------


def test_settings_and_unknown_names_render_empty() -> None:
    assert (
        render_string("[{{ settings.SECRET_KEY }}][{{ request }}][{{ nothing }}]", {}, html=False) == "[][][]"
    )
    assert render_string("{{ settings.SECRET_KEY }}", {"user_name": "x"}, html=True) == ""


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{% load static %}", "{% load %} tag is not allowed"),
        ('{% include "base.html" %}', "{% include %} tag is not allowed"),
        ('{% extends "base.html" %}', "{% extends %} tag is not allowed"),
        ("{% debug %}", "{% debug %} tag is not allowed"),
        ('{% ssi "/etc/passwd" %}', "{% ssi %} tag is not allowed"),
        ("{% autoescape off %}{{ reason }}{% endautoescape %}", "{% autoescape %} tag is not allowed"),
        ("{{ reason|safe }}", "Invalid filter: 'safe'"),
        ("{{ user_name.upper }}", "'user_name.upper' is not allowed"),
        ("{{ reason.__class__ }}", "'reason.__class__' is not allowed"),
        ("{% for c in reason.split %}{{ c }}{% endfor %}", "'reason.split' is not allowed"),
        ("{% if %}", "Unexpected end of expression"),
        ("{{ user_name", "is not closed"),
        ("{% if reason %}no end", "endif"),
    ],
)
def test_disallowed_or_broken_syntax_is_refused_with_the_error(source: str, message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        template_validate(kind=IMPERSONATION_STARTED, subject="ok", html_body=source, text_body="ok")
    assert list(exc.value.message_dict) == ["html_body"]
    assert message in exc.value.message_dict["html_body"][0]


def test_attribute_lookups_never_reach_objects_even_when_rendering() -> None:
    # Only plain strings reach a template: an object passed by mistake is just its text, and a
    # lookup on a value given to the template is refused.
    class Secretive:
        secret = "s3cr3t"

        def __str__(self) -> str:
            return "plain"

    assert render_string("{{ obj }}", {"obj": Secretive()}, html=False) == "plain"
    with pytest.raises(Exception, match="not allowed"):
        render_string("{{ obj.secret }}", {"obj": Secretive()}, html=False)
    assert render_string("{% if read_only %}RO{% endif %}", {"read_only": False}, html=False) == ""
    assert render_string("{% if read_only %}RO{% endif %}", {"read_only": True}, html=False) == "RO"


def test_html_is_autoescaped_and_text_is_not() -> None:
    values = {"reason": "<script>alert(1)</script> & O'Brien"}
    html = render_string("<p>{{ reason }}</p>", values, html=True)
    # Plain strings, not "safe" ones: a page that shows them escapes them again.
    assert not isinstance(html, SafeData)
    assert not isinstance(render_string("{{ reason }}", values, html=False), SafeData)
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp;" in html
    assert render_string("{{ reason }}", values, html=False) == values["reason"]
    # The subject is plain text too: no entities in it.
    rendered = template_validate(
        kind=IMPERSONATION_STARTED, subject="{{ reason }}", html_body="x", text_body="x"
    )
    assert rendered.subject == "Ticket #4711: cannot see invoices"


def test_a_refused_template_is_not_saved(world: World) -> None:
    with pytest.raises(ValidationError):
        email_template_save(
            actor=None,
            org=world.root,
            kind=IMPERSONATION_STARTED,
            locale="en",
            subject="{% load i18n %}",
            html_body="x",
            text_body="x",
        )
    assert not EmailTemplate.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="email-template").exists()


# --- delivery through the outbox, to a real SMTP server ---------------------------------


def test_impersonation_start_delivers_the_orgs_own_template(
    admin_client: Client, world: World, smtp_sink: Any
) -> None:
    branding_update(
        actor=None,
        org=world.root,
        display_name="Acme Identity",
        support_email="support@acme.test",
        logo_url="https://acme.test/logo.png",
    )
    email_template_save(
        actor=world.admin,
        org=world.root,
        kind=IMPERSONATION_STARTED,
        locale="en",
        subject="[{{ brand_name }}] {{ impersonator_name }} acts as you",
        html_body=(
            '<img src="{{ logo_url }}" alt=""><p>{{ impersonator_name }} since {{ started_at }} in '
            '{{ org_name }}: {{ reason }}</p><a href="{{ access_url }}">Access to my account</a> '
            '<a href="{{ report_url }}">Report misuse</a> {{ support_email }}'
        ),
        text_body=(
            "CUSTOM {{ impersonator_name }} at {{ started_at }} in {{ org_name }}.\n"
            "Reason: {{ reason }}\nAccess: {{ access_url }}\nReport: {{ report_url }}\n"
            "Help: {{ support_email }}\n"
        ),
    )
    response = admin_client.post(
        console_url(world.root, f"users/{world.target.pk}/impersonate/"), {"reason": "Ticket <7> & co"}
    )
    assert response.status_code == 303  # See Other: the user's page, which says it started
    session = ImpersonationSession.objects.get()
    message = OutboxMessage.objects.get(kind="impersonation-started")
    assert message.organization_id == world.root.pk and message.template == IMPERSONATION_STARTED
    assert all(isinstance(v, str | bool) for v in message.context.values())  # plain values only
    assert outbox_deliver(message_id_value=str(message.pk)) == "sent"
    mail = smtp_sink.wait_for(1)[0]
    assert mail["To"] == "target@example.test"
    name = world.admin.display_name
    assert mail["Subject"] == f"[Acme Identity] {name} acts as you"
    parts = {
        part.get_content_type(): part.get_payload(decode=True).decode()
        for part in mail.walk()
        if not part.is_multipart()
    }
    text, html = parts["text/plain"].replace("\r\n", "\n"), parts["text/html"]
    started = session.started_at.strftime("%Y-%m-%d %H:%M UTC")
    access = f"{settings.BASE_URL}/t/acme/myaccount/access/"
    assert text.startswith(f"CUSTOM {name} at {started} in Acme.")
    assert "Reason: Ticket <7> & co" in text
    assert f"Access: {access}\n" in text
    assert f"Report: {access}#imp-{session.pk}\n" in text
    assert "Help: support@acme.test" in text
    assert "Ticket &lt;7&gt; &amp; co" in html and f'href="{access}#imp-{session.pk}"' in html
    assert 'src="https://acme.test/logo.png"' in html


def test_default_impersonation_email_names_everything(
    admin_client: Client, world: World, smtp_sink: Any
) -> None:
    branding_update(
        actor=None, org=world.root, display_name="", support_email="support@acme.test", logo_url=""
    )
    admin_client.post(
        console_url(world.root, f"users/{world.target.pk}/impersonate/"), {"reason": "Ticket 9"}
    )
    session = ImpersonationSession.objects.get()
    message = OutboxMessage.objects.get(kind="impersonation-started")
    assert outbox_deliver(message_id_value=str(message.pk)) == "sent"
    mail = smtp_sink.wait_for(1)[0]
    name = world.admin.display_name
    assert mail["Subject"] == f"{name} is acting on your Acme account"
    text = (
        next(p for p in mail.walk() if p.get_content_type() == "text/plain").get_payload(decode=True).decode()
    )
    for expected in (name, session.started_at.strftime("%Y-%m-%d %H:%M UTC"), "Ticket 9", "Acme"):
        assert expected in text
    assert "support@acme.test" in text and f"#imp-{session.pk}" in text and "/myaccount/access/" in text


@pytest.mark.django_db
def test_a_render_cache_looks_the_template_and_branding_up_once(
    world: World, django_assert_num_queries: Any
) -> None:
    values = {"user_name": "Erin", "code": "123456", "minutes": "10", "org_name": "Acme EU"}
    cache: emails.RenderCache = {}
    first = email_render(org=world.eu, kind=EMAIL_OTP, values=values, cache=cache)
    with django_assert_num_queries(0):
        again = email_render(org=world.eu, kind=EMAIL_OTP, values={**values, "code": "654321"}, cache=cache)
    assert "123456" in first.text and "654321" in again.text
    assert again.subject == first.subject


# --- bounded rendering (issue 13) ----------------------------------------------------------
# The limits are read from ``emails`` when each test runs, so that on code without them each
# test fails on its own (the module still imports).

# Three loops over the 33 characters of the sample reason: 35,937 passes.
NESTED_LOOPS = (
    "{% for a in reason %}{% for b in reason %}{% for c in reason %}.{% endfor %}{% endfor %}{% endfor %}"
)


def _errors(**parts: str) -> dict[str, list[str]]:
    """What template_validate refuses, by part (the parts not given are harmless)."""
    data = {"subject": "ok", "html_body": "ok", "text_body": "ok", **parts}
    with pytest.raises(ValidationError) as exc:
        template_validate(kind=IMPERSONATION_STARTED, **data)
    return exc.value.message_dict


def _refusal(field: str, **parts: str) -> str:
    """The one error template_validate gives, on ``field``."""
    errors = _errors(**parts)
    assert list(errors) == [field]
    return errors[field][0]


@pytest.mark.parametrize(
    "source",
    [
        '{{ user_name|ljust:"50000000" }}',
        "{{ user_name|rjust:50000000 }}",
        "{{ user_name|rjust:5e7 }}",
        "{{ user_name|center:'1001' }}",
        '{% if nothing %}{{ reason|ljust:"50000000" }}{% endif %}',  # not reached by the samples
        '{% with wide=reason|ljust:"2000" %}{{ wide }}{% endwith %}',
    ],
)
def test_padding_wider_than_the_limit_is_refused_at_save(source: str) -> None:
    message = _refusal("text_body", text_body=source)
    assert message.startswith("Template limit:")
    assert f"pads to at most {email_sandbox.MAX_PAD_WIDTH:,} characters" in message


def test_padding_within_the_limit_renders_and_a_width_from_a_value_is_checked_when_rendering() -> None:
    values = {"x": "ab", "w": "6"}
    source = '[{{ x|ljust:"6" }}|{{ x|center:w }}|{{ x|rjust:1000|length }}|{{ "a|ljust:9999" }}]'
    assert render_string(source, values, html=False) == "[ab    |  ab  |1000|a|ljust:9999]"
    with pytest.raises(email_sandbox.TemplateLimitError, match="pads to at most 1,000 characters"):
        render_string("{{ x|rjust:w }}", {"x": "ab", "w": "50000000"}, html=False)


def test_metered_filters_keep_their_html_behaviour() -> None:
    # The sandbox registers Django's own filters (wrapped): linebreaks makes paragraphs of the
    # escaped text in HTML, and leaves the text alone in plain text.
    values = {"reason": "a<b\n\nc"}
    assert render_string("{{ reason|linebreaks }}", values, html=True) == "<p>a&lt;b</p>\n\n<p>c</p>"
    assert render_string("{{ reason|linebreaks }}", values, html=False) == "<p>a<b</p>\n\n<p>c</p>"
    assert render_string("{{ reason|linebreaksbr }}", values, html=True) == "a&lt;b<br><br>c"


def test_nested_loops_are_stopped_at_the_loop_pass_limit() -> None:
    message = _refusal("html_body", html_body=NESTED_LOOPS)
    assert f"ran more than {email_sandbox.MAX_LOOP_ITERATIONS:,} times" in message
    two_deep = "{% for a in reason %}{% for b in reason %}.{% endfor %}{% endfor %}"  # 1,122 passes
    rendered = template_validate(kind=IMPERSONATION_STARTED, subject="ok", html_body=two_deep, text_body="ok")
    assert rendered.html == "." * 33**2


def test_loops_nest_at_most_three_deep_and_tags_at_most_twenty() -> None:
    four = "{% for a in x %}" * 4 + "{% endfor %}" * 4
    assert f"loops may nest at most {email_sandbox.MAX_LOOP_DEPTH} deep" in _refusal("subject", subject=four)
    three = "{% for a in x %}" * 3 + "{{ a }}" + "{% endfor %}" * 3
    assert render_string(three, {"x": "ab"}, html=False) == "ab" * 4
    deep_ifs = "{% if x %}" * 21 + "{% endif %}" * 21
    assert f"nest at most {email_sandbox.MAX_BLOCK_DEPTH} deep" in _refusal("subject", subject=deep_ifs)
    assert render_string("{% if x %}" * 20 + "y" + "{% endif %}" * 20, {"x": "1"}, html=False) == "y"


def test_a_loop_runs_over_at_most_a_thousand_items() -> None:
    loop = "{% for c in v %}{{ c }}{% endfor %}"
    assert render_string(loop, {"v": "x" * 1000}, html=False) == "x" * 1000
    with pytest.raises(email_sandbox.TemplateLimitError, match="at most 1,000 items"):
        render_string(loop, {"v": "x" * 1001}, html=False)


def test_the_rendered_size_is_bounded() -> None:
    # In a loop: stopped as it grows (1,000 passes of 1,000 characters would make 1 MB).
    growing = '{% for c in reason|ljust:"1000" %}{{ c|ljust:"1000" }}{% endfor %}'
    assert "larger than 256 KB" in _refusal("text_body", text_body=growing)
    # Without a loop: 300 padded values (300,000 characters) from a template of 7 KB.
    assert "larger than 256 KB" in _refusal("html_body", html_body='{{ reason|ljust:"1000" }}' * 300)
    fits = '{{ reason|ljust:"1000" }}' * 200
    assert len(render_string(fits, {"reason": "r"}, html=True)) == 200_000


def test_a_render_past_the_time_budget_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    assert email_sandbox.RENDER_SECONDS == 0.2
    monkeypatch.setattr(email_sandbox, "RENDER_SECONDS", 0.0)  # every look at the clock is too late
    # Stopped in a loop, before a filter, or at the latest once the part is rendered.
    for source in ("{% for c in reason %}{{ c }}{% endfor %}", "{{ reason|upper }}", "plain text"):
        assert "ran longer than 0 ms" in _refusal("subject", subject=source)


def test_one_email_has_one_time_and_loop_budget_for_its_three_parts() -> None:
    # 72 + 72 * 72 = 5,256 loop passes: one part alone is within the 10,000, two are not.
    two_deep = '{% for a in reason|ljust:"72" %}{% for b in reason|ljust:"72" %}{% endfor %}{% endfor %}'
    template_validate(kind=IMPERSONATION_STARTED, subject="ok", html_body=two_deep, text_body="ok")
    assert "more than 10,000 times" in _refusal("text_body", html_body=two_deep, text_body=two_deep)
    # The part that spends the budget is named; the parts after it are only compiled.
    assert "times" in _refusal("html_body", html_body=NESTED_LOOPS, text_body=two_deep)
    errors = _errors(html_body=NESTED_LOOPS, text_body="{% if %}")
    assert "Template limit" in errors["html_body"][0] and "Template error" in errors["text_body"][0]


def test_delivery_falls_back_to_the_default_wording_and_audits_it(world: World) -> None:
    from django.core import mail
    from django.core.mail import EmailMultiAlternatives

    from identity.notifications.outbox import outbox_enqueue

    # Saved before the limits existed (straight into the table): 5 MB of padding.
    row = EmailTemplate.objects.create(
        organization=world.root,
        kind=EMAIL_OTP,
        locale="en",
        subject="Huge {{ code }}",
        html_body='<p>{{ code|ljust:"5000000" }}</p>',
        text_body="{{ code }}",
    )
    message = outbox_enqueue(
        tenant=world.root,
        kind="email-otp",
        template=EMAIL_OTP,
        to_email="erin@example.test",
        context={"code": "482913", "minutes": "10", "org_name": "Acme", "user_name": "Erin"},
    )
    mail.outbox.clear()
    assert outbox_deliver(message_id_value=str(message.pk)) == "sent"
    [sent] = mail.outbox
    assert isinstance(sent, EmailMultiAlternatives)
    assert sent.subject == "Your Acme sign-in code"  # actas's default wording
    html_part = str(sent.alternatives[0][0])
    assert "482913" in html_part and len(html_part) < 100_000
    event = AuditEvent.objects.get(action="email-template-fallback")
    assert event.outcome == AuditEvent.Outcome.FAILURE and event.actor_id is None
    assert event.target_type == "email-template" and event.target_id == str(row.pk)
    assert event.data["kind"] == EMAIL_OTP and event.data["outbox_message"] == str(message.pk)
    assert "pads to at most 1,000 characters" in event.data["error"]
    # A template within the limits is used as before, with no such event.
    row.html_body = '<p>{{ code|ljust:"10" }}!</p>'
    row.save()
    again = outbox_enqueue(
        tenant=world.root,
        kind="email-otp",
        template=EMAIL_OTP,
        to_email="e@example.test",
        context={"code": "1"},
    )
    assert outbox_deliver(message_id_value=str(again.pk)) == "sent"
    assert mail.outbox[-1].subject == "Huge 1"
    assert AuditEvent.objects.filter(action="email-template-fallback").count() == 1
