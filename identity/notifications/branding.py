"""Writes of an organization's branding and email templates, each audited in its transaction.

A template is compiled and rendered with the sample values before it is saved: broken or
disallowed syntax, or a template over a limit of the sandbox (padding width, loop nesting,
loop passes, rendered size, render time: ``identity.notifications.emails``), raises a ValidationError naming
the part (``subject``, ``html_body``, ``text_body``) and nothing is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from identity.audit.services import audit_record
from identity.notifications.emails import KINDS, locale_normalize, template_validate
from identity.notifications.models import EmailTemplate, OrganizationBranding, validate_https_url
from organizations.models import Organization

if TYPE_CHECKING:  # the acting user is only recorded (by the audit trail)
    from identity.models import User

MAX_SUBJECT = 300


def _clean_text(value: str, *, field: str, max_length: int) -> str:
    if "\x00" in (value or ""):
        raise ValidationError({field: ["Remove the control characters."]})
    clean = (value or "").strip()
    if len(clean) > max_length:
        raise ValidationError({field: [f"Use at most {max_length} characters."]})
    return clean


@transaction.atomic
def branding_update(
    *, actor: User | None, org: Organization, display_name: str, support_email: str, logo_url: str
) -> OrganizationBranding:
    """Set the organization's own branding; an empty field inherits from the parent."""
    values = {
        "display_name": _clean_text(display_name, field="display_name", max_length=120),
        "support_email": _clean_text(support_email, field="support_email", max_length=254),
        "logo_url": _clean_text(logo_url, field="logo_url", max_length=500),
    }
    errors: dict[str, list[str]] = {}
    if values["support_email"]:
        try:
            validate_email(values["support_email"])
        except ValidationError:
            errors["support_email"] = ["Enter a valid email address."]
    try:
        validate_https_url(values["logo_url"])
    except ValidationError:
        errors["logo_url"] = ["Enter an https:// address."]
    if errors:
        raise ValidationError(errors)
    row, _ = OrganizationBranding.objects.select_for_update().get_or_create(organization=org)
    for field, value in values.items():
        setattr(row, field, value)
    row.save()
    audit_record(
        org=org,
        action="branding-update",
        actor=actor,
        target_type="organization",
        target_id=org.pk,
        data=values,
    )
    return row


def _kind_and_locale(kind: str, locale: str) -> str:
    if kind not in KINDS:
        raise ValidationError({"kind": ["Unknown email."]})
    try:
        return locale_normalize(locale)
    except ValueError as exc:
        raise ValidationError({"locale": [str(exc)]}) from exc


@transaction.atomic
def email_template_save(
    *,
    actor: User | None,
    org: Organization,
    kind: str,
    locale: str,
    subject: str,
    html_body: str,
    text_body: str,
) -> EmailTemplate:
    """Create or replace the organization's own template of (kind, locale), once it compiles
    and renders with the sample values."""
    clean_locale = _kind_and_locale(kind, locale)
    if not (subject or "").strip():
        raise ValidationError({"subject": ["Enter a subject."]})
    if len(subject) > MAX_SUBJECT:
        raise ValidationError({"subject": [f"Use at most {MAX_SUBJECT} characters."]})
    template_validate(kind=kind, subject=subject, html_body=html_body, text_body=text_body)
    row, created = EmailTemplate.objects.select_for_update().update_or_create(
        organization=org,
        kind=kind,
        locale=clean_locale,
        defaults={"subject": subject.strip(), "html_body": html_body, "text_body": text_body},
    )
    audit_record(
        org=org,
        action="email-template-create" if created else "email-template-update",
        actor=actor,
        target_type="email-template",
        target_id=row.pk,
        data={"kind": kind, "locale": clean_locale},
    )
    return row


@transaction.atomic
def email_template_reset(*, actor: User | None, org: Organization, kind: str, locale: str) -> bool:
    """Delete the organization's own template of (kind, locale): it inherits again. Returns
    whether there was one."""
    clean_locale = _kind_and_locale(kind, locale)
    row = (
        EmailTemplate.objects.select_for_update()
        .filter(organization=org, kind=kind, locale=clean_locale)
        .first()
    )
    if row is None:
        return False
    row_id = row.pk
    row.delete()
    audit_record(
        org=org,
        action="email-template-reset",
        actor=actor,
        target_type="email-template",
        target_id=row_id,
        data={"kind": kind, "locale": clean_locale},
    )
    return True
