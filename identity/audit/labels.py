"""The audit trail in people's words: one place that turns an :class:`AuditEvent` into a label
("Profile updated while impersonating"), a sentence ("admin as alice updated the profile of
alice."), its initiator ("admin", or "admin as alice" under an impersonation) and what it
changed, as (field, from, to) rows.

Nothing here reads the database: names of roles, applications, organizations, API resources
and users come in an :class:`AuditNames`, resolved for a whole page at once by
``identity.selectors.audit_log.audit_names``. Raw action codes stay on the event (the Logs detail
and the exports show them); this module only adds words.

Every action the code writes has an entry in :data:`ACTIONS` (a test collects them from the
source and fails for one without). An action not in the table still reads sensibly: its code
made into words.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from identity.audit.models import AuditEvent


class Wording(NamedTuple):
    label: str
    sentence: str  # str.format fields: see _Fields
    # the sentence when the initiator acts on themself (not under an impersonation)
    own: str = ""


# Every action the code writes, alphabetically. Sentences name the initiator as {who}; the
# other fields are the subject ({subject}), the target by name ({target}), the application
# the event concerns ({app}) and a few taken from the event's data.
ACTIONS: dict[str, Wording] = {
    "api-resource-create": Wording("API resource created", "{who} created the API resource {target}."),
    "application-api-authorize": Wording(
        "API access authorized", "{who} allowed the application {target} to use {resource}."
    ),
    "application-api-unauthorize": Wording(
        "API access removed", "{who} stopped the application {target} from using {resource}."
    ),
    "application-create": Wording("Application created", "{who} created the application {target}."),
    "application-delete": Wording("Application deleted", "{who} deleted the application {target}."),
    "application-secret-regenerate": Wording(
        "Client secret regenerated", "{who} regenerated the client secret of {target}."
    ),
    "application-share": Wording(
        "Application sharing changed", "{who} changed which organizations can use {target}."
    ),
    "application-update": Wording("Application updated", "{who} updated the {tab}settings of {target}."),
    "audit-chain-verify": Wording("Audit trail verified", "{who} verified the audit trail."),
    "audit-purged": Wording("Old audit events removed", "{who} removed exported audit events."),
    "branding-update": Wording("Branding updated", "{who} updated the branding of {target}."),
    "consent-grant": Wording(
        "Consent given",
        "{who} allowed {app} to use their account.",
        own="{who} allowed {app} to use their account.",
    ),
    "consent-revoke": Wording(
        "Consent revoked",
        "{who} revoked the consent {subject} gave {app}.",
        own="{who} revoked the consent given to {app}.",
    ),
    "email-template-create": Wording(
        "Email template customized", "{who} customized the {template} email template."
    ),
    "email-template-fallback": Wording(
        "Email template failed", "The {template} email template failed; the default wording was sent."
    ),
    "email-template-reset": Wording(
        "Email template reset", "{who} reset the {template} email template to the inherited one."
    ),
    "email-template-update": Wording(
        "Email template updated", "{who} updated the {template} email template."
    ),
    "impersonation-end": Wording(
        "Impersonation ended", "{who} ended the impersonation of {subject} by {impersonator}."
    ),
    "impersonation-misuse-reported": Wording(
        "Impersonation reported as misuse", "{who} reported an impersonation by {reported} as misuse."
    ),
    "impersonation-refused": Wording("Impersonation refused", "{who} was refused impersonating {target}."),
    "impersonation-sign-in": Wording("Signed in while impersonating", "{who} signed in to {app}."),
    "impersonation-start": Wording(
        "Impersonation started", "{who} started impersonating {subject} in {app}."
    ),
    "impersonation-subject-token-issued": Wording(
        "Impersonation confirmed", "{who} confirmed impersonating {subject} for {app}."
    ),
    "impersonation-token-refresh": Wording(
        "Tokens refreshed while impersonating", "{who} refreshed the tokens of {app}."
    ),
    "login-continued": Wording(
        "Sign-in continued", "{who} stayed signed in under a new session after an impersonation ended."
    ),
    "login-failure": Wording("Sign-in failed", "A sign-in as {target} failed."),
    "login-flow-reset": Wording(
        "Login flow reset", "{who} reset the login flow of {target} here to the inherited one."
    ),
    "login-flow-update": Wording("Login flow changed", "{who} changed the login flow of {target}."),
    "login-reauthenticate": Wording("Signed in again", "{who} signed in again."),
    "login-slowed": Wording(
        "Sign-ins slowed down", "Sign-ins as {target} now wait after failing from several addresses."
    ),
    "login-step-up": Wording("Extra sign-in step completed", "{who} completed an extra sign-in step."),
    "login-success": Wording("Signed in", "{who} signed in."),
    "login-throttled": Wording(
        "Sign-ins refused for a while",
        "Sign-ins as {target} are refused for a while after too many failures.",
    ),
    "logout": Wording("Signed out", "{who} signed {subject} out.", own="{who} signed out."),
    "oauth-authorization-revoke": Wording(
        "Application access revoked", "{who} revoked the tokens {app} held for {subject}."
    ),
    "oauth-code-replay": Wording(
        "Authorization code used twice",
        "An authorization code of {app} was used a second time; its tokens were revoked.",
    ),
    "oauth-refresh-token-reuse": Wording(
        "Refresh token reused", "A used refresh token of {app} came back; its whole family was revoked."
    ),
    "organization-create": Wording("Organization created", "{who} created the organization {target}."),
    "organization-settings-update": Wording(
        "Impersonation settings changed", "{who} changed the impersonation settings of {target}."
    ),
    "organization-status-change": Wording(
        "Organization status changed", "{who} changed the status of the organization {target}."
    ),
    "resource-access-via-impersonation": Wording(
        "Resource used while impersonating", "{who} used {path} ({method})."
    ),
    "resource-creation-via-impersonation": Wording(
        "Created while impersonating", "{who} created {path} ({method})."
    ),
    "resource-deletion-via-impersonation": Wording(
        "Deleted while impersonating", "{who} deleted {path} ({method})."
    ),
    "resource-modification-via-impersonation": Wording(
        "Changed while impersonating", "{who} changed {path} ({method})."
    ),
    "role-assign": Wording("Role assigned", "{who} assigned the role {role} to {subject}."),
    "role-create": Wording("Role created", "{who} created the role {role}."),
    "role-unassign": Wording("Role removed", "{who} removed the role {role} from {subject}."),
    "role-update": Wording("Role permissions changed", "{who} changed the permissions of the role {role}."),
    "scope-create": Wording("Scope added", "{who} added the scope {scope} to {resource}."),
    "seed-scale": Wording("Test data generated", "{who} generated test data for the scale benchmark."),
    "tenant-bootstrap": Wording(
        "Tenant set up", "{who} set up the tenant with {administrator} as its first administrator."
    ),
    "tenant-create": Wording("Tenant created", "{who} created the tenant {target}."),
    "user-create": Wording("User created", "{who} created the user {subject}."),
    "user-delete": Wording("User deleted", "{who} deleted the user {subject}."),
    "user-profile-update": Wording(
        "Profile updated", "{who} updated the profile of {subject}.", own="{who} updated their profile."
    ),
    "user-profile-update-refused": Wording(
        "Profile change refused", "{who} was refused a change to the profile of {subject}."
    ),
    "user-password-set": Wording(
        "Password set", "{who} set a new password for {subject}.", own="{who} set a new password."
    ),
    "user-password-remove": Wording(
        "Password removed", "{who} removed the password of {subject}; they sign in another way now."
    ),
    "user-share": Wording("User shared", "{who} shared {subject} into {org}."),
    "user-unshare": Wording("User unshared", "{who} stopped sharing {subject} into {org}."),
    "user-status-change": Wording("Account status changed", "{who} changed the account status of {subject}."),
}

# Actions about an impersonation itself: the impersonator on these names the impersonation
# the event is about, not someone acting as another person.
SESSION_ACTIONS = frozenset({"impersonation-start", "impersonation-end", "impersonation-misuse-reported"})
# Actions whose failure outcome is what they report (no "It failed." after the sentence).
FAILURE_ACTIONS = frozenset(
    {
        "audit-chain-verify",
        "email-template-fallback",
        "impersonation-refused",
        "login-failure",
        "login-slowed",
        "login-throttled",
        "oauth-code-replay",
        "oauth-refresh-token-reuse",
        "user-profile-update-refused",
    }
)
# The actions that record an API call made with an impersonated token. The service the call
# reached records its own event in the same request (same request id).
API_CALL_ACTIONS = frozenset(
    a for a in ACTIONS if a.startswith("resource-") and a.endswith("-via-impersonation")
)
# Actions whose data holds the new values only (nothing recorded as "from").
SET_ACTIONS = frozenset(
    {"organization-settings-update", "branding-update", "login-flow-update", "application-api-authorize"}
)
# The one value ``{"from": …, "to": …}`` of these actions is this field.
FROM_TO_FIELD = {"role-update": "permissions", "organization-status-change": "status"}

SYSTEM = "System"
SOMEONE = "someone"

FIELD_LABELS = {
    "access_token_lifetime": "Access token lifetime (seconds)",
    "access_url": "Access URL",
    "client_type": "Client type",
    "description": "Description",
    "discoverable": "Discoverable",
    "display_name": "Display name",
    "email": "Email",
    "external_id": "External ID (provisioning)",
    "family_name": "Family name",
    "given_name": "Given name",
    "grant_types": "Grant types",
    "id_token_lifetime": "ID token lifetime (seconds)",
    "impersonation_email_enabled": "Email the user when impersonated",
    "impersonation_max_minutes": "Longest impersonation (minutes)",
    "impersonation_reason_required": "Reason required",
    "is_active": "Active",
    "is_locked": "Locked",
    "is_protected": "Protected from impersonation",
    "logo_url": "Logo URL",
    "mode": "Shared with",
    "name": "Name",
    "organizations": "Organizations",
    "permissions": "Permissions",
    "pkce_required": "PKCE required",
    "post_logout_redirect_uris": "Post-logout redirect URIs",
    "redirect_uris": "Redirect URIs",
    "refresh_token_lifetime": "Refresh token lifetime (seconds)",
    "resource": "API resource",
    "scopes": "Authorized scopes",
    "secret_replaced": "Client secret",
    "skip_login_consent": "Skip login consent",
    "skip_logout_consent": "Skip logout consent",
    "status": "Status",
    "steps": "Login flow",
    "subject_token_enabled": "Subject tokens",
    "subject_token_expiry": "Subject token lifetime (seconds)",
    "support_email": "Support email",
}
SHARING_MODES = {"none": "No organizations", "all": "All organizations", "selected": "Selected organizations"}


@dataclass(frozen=True)
class AuditNames:
    """Names for the ids events refer to, keyed by the id as a string (applications by client
    id, API resources by id and by identifier)."""

    organizations: Mapping[str, str] = field(default_factory=dict)
    roles: Mapping[str, str] = field(default_factory=dict)
    applications: Mapping[str, str] = field(default_factory=dict)
    api_resources: Mapping[str, str] = field(default_factory=dict)
    users: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """One changed field. ``before`` is None when the event records only the new value."""

    field: str  # in words
    code: str  # as recorded
    before: str | None
    after: str


@dataclass(frozen=True)
class EventView:
    event: AuditEvent
    label: str
    sentence: str
    initiator: str
    changes: tuple[Change, ...]
    org_name: str | None
    target_name: str | None = None  # the target's name, when one is known (its id is on the event)
    application_name: str | None = None  # the name of the event's client id, when known


def humanize(code: str) -> str:
    """``"probe-one"`` → ``"Probe one"``; a field name the same way."""
    words = code.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:] if words else code


def action_label(action: str, *, impersonated: bool = False) -> str:
    """The label of an action; under an impersonation "… while impersonating" (unless the
    action is about impersonation already)."""
    wording = ACTIONS.get(action)
    label = wording.label if wording else humanize(action)
    if impersonated and "impersonat" not in label.lower() and action not in SESSION_ACTIONS:
        label += " while impersonating"
    return label


def short_name(label: str) -> str:
    """The username of a recorded label ("alice (Alice Smith)" → "alice")."""
    if label.endswith(")") and " (" in label:
        return label.split(" (", 1)[0]
    return label


def initiator(event: AuditEvent) -> str:
    """Who did it, the same way for every event of one request: "admin", "admin as alice"
    when acting under an impersonation (whether the event names the impersonator or the
    impersonated person as its actor), "System" for no one."""
    if not event.actor_id and event.actor_label and not event.impersonator_id:
        return event.actor_label  # an application acting with its own token: "Provisioner (application)"
    actor = short_name(event.actor_label) if event.actor_id else ""
    if event.impersonator_id and event.action not in SESSION_ACTIONS:
        impersonator = short_name(event.impersonator_label)
        if event.actor_id and event.actor_id != event.impersonator_id:
            acted_as = actor
        else:
            acted_as = short_name(event.subject_label) if event.subject_id else ""
        return f"{impersonator} as {acted_as}" if acted_as else impersonator
    return actor or SYSTEM


# --- changes ---------------------------------------------------------------------------------


def _value(value: Any, *, names: AuditNames, code: str = "", unset: str = "—") -> str:
    if value is None:
        return unset
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if code == "steps" and isinstance(value, list):
        return " · ".join(
            f"Step {i}: " + (" or ".join(str(a) for a in step) if isinstance(step, list) else str(step))
            for i, step in enumerate(value, start=1)
        )
    if code == "organizations" and isinstance(value, list):
        value = [names.organizations.get(str(v), str(v)) for v in value]
    if code == "mode" and isinstance(value, str):
        return SHARING_MODES.get(value, value)
    if code == "resource" and isinstance(value, str):
        return names.api_resources.get(value, value)
    if isinstance(value, list):
        return ", ".join(_value(v, names=names) for v in value) if value else "(none)"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    text = str(value)
    return text if text else "(empty)"


def _is_diff(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"from", "to"}


def _row(code: str, before: Any, after: Any, names: AuditNames, *, has_before: bool = True) -> Change:
    return Change(
        field=FIELD_LABELS.get(code, humanize(code)),
        code=code,
        before=_value(before, names=names, code=code) if has_before else None,
        after=_value(after, names=names, code=code),
    )


def event_changes(event: AuditEvent, names: AuditNames | None = None) -> list[Change]:
    """What the event changed, as (field, from, to) rows, whichever way its service stored
    the difference: ``{"changes": {field: {"from", "to"}}}``, ``{field: {"from", "to"}}``,
    ``{"from", "to"}`` for a single value, or the new values only (settings, branding, login
    flows, API authorizations: no "from")."""
    names = names or AuditNames()
    data = event.data if isinstance(event.data, dict) else {}
    rows: list[Change] = []
    if isinstance(data.get("changes"), dict):
        for code, diff in data["changes"].items():
            if _is_diff(diff):
                rows.append(_row(code, diff["from"], diff["to"], names))
        if data.get("secret_replaced"):
            rows.append(_row("secret_replaced", None, "Replaced", names, has_before=False))
        return rows
    if event.action in FROM_TO_FIELD and _is_diff(data):
        return [_row(FROM_TO_FIELD[event.action], data["from"], data["to"], names)]
    if event.action in SET_ACTIONS:
        unset = "Inherited" if event.action == "organization-settings-update" else "—"
        return [
            Change(
                field=FIELD_LABELS.get(code, humanize(code)),
                code=code,
                before=None,
                after=_value(value, names=names, code=code, unset=unset),
            )
            for code, value in data.items()
        ]
    if event.action == "application-share":
        rows.append(_row("mode", None, data.get("mode"), names, has_before=False))
        if data.get("mode") == "selected":
            rows.append(_row("organizations", None, data.get("organizations") or [], names, has_before=False))
        return rows
    return [_row(code, diff["from"], diff["to"], names) for code, diff in data.items() if _is_diff(diff)]


# --- sentences -------------------------------------------------------------------------------


class _Fields(dict[str, str]):
    """Format fields; a field the event lacks reads as "—" rather than failing."""

    def __missing__(self, key: str) -> str:
        return "—"


def _target(event: AuditEvent, names: AuditNames) -> str:
    kind, raw = event.target_type, event.target_id
    data = event.data if isinstance(event.data, dict) else {}
    found: str | None = None
    if kind == "role":
        found = names.roles.get(raw)
    elif kind == "application":
        found = names.applications.get(raw) or data.get("name")
    elif kind == "organization":
        found = names.organizations.get(raw) or data.get("name")
    elif kind == "api-resource":
        found = names.api_resources.get(raw) or data.get("name")
    elif kind == "user":
        found = (short_name(event.subject_label) if event.subject_id else None) or names.users.get(raw)
    if found:
        return str(found)
    return raw or "—"


def _application(event: AuditEvent, names: AuditNames) -> str:
    if not event.client_id:
        return "an application"
    return names.applications.get(event.client_id, event.client_id)


def _fields(event: AuditEvent, names: AuditNames, who: str) -> _Fields:
    data = event.data if isinstance(event.data, dict) else {}
    subject = short_name(event.subject_label) if event.subject_id else SOMEONE
    role = (data.get("role") or data.get("name")) if event.action.startswith("role-") else None
    kind, locale = data.get("kind"), data.get("locale")
    fields = _Fields(
        who=who,
        subject=subject,
        target=_target(event, names),
        app=_application(event, names),
        impersonator=short_name(event.impersonator_label) if event.impersonator_id else SOMEONE,
        role=str(role or names.roles.get(event.target_id) or event.target_id or "—"),
        resource=names.api_resources.get(str(data.get("resource", "")), str(data.get("resource") or "—")),
        scope=str(data.get("scope") or "—"),
        template=f"{kind} ({locale})" if kind and locale else str(kind or "—"),
        reported=str(data.get("impersonator_username") or SOMEONE),
        administrator=str(data.get("administrator") or SOMEONE),
        method=str(data.get("httpMethod") or "—"),
        path=str(data.get("ResourcePath") or event.target_id or "—"),
        tab=f"{data['tab']} " if isinstance(data.get("tab"), str) and data.get("tab") else "",
        org=names.organizations.get(str(event.org_id), "an organization") if event.org_id else "the tenant",
    )
    return fields


def sentence(event: AuditEvent, names: AuditNames | None = None) -> str:
    """One plain sentence: who did what to whom."""
    names = names or AuditNames()
    who = initiator(event)
    wording = ACTIONS.get(event.action)
    if wording is None:
        text = f"{action_label(event.action, impersonated=bool(event.impersonator_id))} by {who}."
    else:
        own = (
            wording.own
            and not event.impersonator_id
            and event.actor_id is not None
            and event.actor_id == event.subject_id
        )
        template = wording.own if own else wording.sentence
        text = template.format_map(_fields(event, names, "The system" if who == SYSTEM else who))
    if event.outcome == AuditEvent.Outcome.FAILURE and event.action not in FAILURE_ACTIONS:
        status = event.data.get("status") if isinstance(event.data, dict) else None
        text += f" It was refused ({status})." if status else " It failed."
    return text


def describe(event: AuditEvent, names: AuditNames | None = None) -> EventView:
    names = names or AuditNames()
    target = _target(event, names)
    return EventView(
        event=event,
        label=action_label(event.action, impersonated=bool(event.impersonator_id)),
        sentence=sentence(event, names),
        initiator=initiator(event),
        changes=tuple(event_changes(event, names)),
        org_name=names.organizations.get(str(event.org_id)) if event.org_id else None,
        target_name=target if target not in (event.target_id, "—") else None,
        application_name=names.applications.get(event.client_id) if event.client_id else None,
    )


def as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError):
        return None
