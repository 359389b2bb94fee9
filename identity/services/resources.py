"""API resource services: business API resources of a tenant and their scopes.

API resources belong to the tenant (its root organization). The system resources seeded
by the tenant bootstrap are never edited here. Scope names travel bare in tokens, so they
are unique in the whole tenant (a database constraint); a clash is a field error, never a
500.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from identity.audit.services import audit_record
from identity.models import APIResource, Scope, User
from organizations.models import Organization

IDENTIFIER_MAX = 255
NAME_MAX = 255
SCOPE_NAME_MAX = 150
DISPLAY_NAME_MAX = 255
DESCRIPTION_MAX = 1000

# RFC 6749 §3.3 scope-token characters, narrowed to what reads well in a Console: letters,
# digits and _ . : - / (no spaces, quotes or backslashes).
SCOPE_NAME_RE = re.compile(r"^[A-Za-z0-9_.:/-]+$")
# An identifier is usually a URL of the API (https://api.example.com); any printable text
# without spaces will do.
IDENTIFIER_RE = re.compile(r"^[\x21-\x7e]+$")
# Prefixes and names that belong to actas: a business resource or scope may not look like one.
RESERVED_IDENTIFIER_PREFIXES = ("system:", "org:")
RESERVED_SCOPE_PREFIX = "internal_"
RESERVED_SCOPE_NAMES = frozenset({"openid", "profile", "email", "address", "phone", "offline_access"})


@dataclass(frozen=True)
class ScopeSpec:
    name: str
    display_name: str = ""
    description: str = ""
    read_only: bool = False


def _scope_errors(spec: ScopeSpec) -> list[str]:
    name = spec.name
    if not name:
        return ["Enter a scope name."]
    if len(name) > SCOPE_NAME_MAX:
        return [f"A scope name can be at most {SCOPE_NAME_MAX} characters long."]
    if not SCOPE_NAME_RE.match(name):
        return ["Use only letters, digits and _ . : - / in a scope name."]
    if name.lower().startswith(RESERVED_SCOPE_PREFIX) or name.lower() in RESERVED_SCOPE_NAMES:
        return [f"{name} is reserved by actas."]
    errors = []
    if len(spec.display_name) > DISPLAY_NAME_MAX:
        errors.append(f"A display name can be at most {DISPLAY_NAME_MAX} characters long.")
    if len(spec.description) > DESCRIPTION_MAX:
        errors.append(f"A description can be at most {DESCRIPTION_MAX} characters long.")
    return errors


def _clean_spec(spec: ScopeSpec) -> ScopeSpec:
    return ScopeSpec(
        name=(spec.name or "").strip(),
        display_name=(spec.display_name or "").strip(),
        description=(spec.description or "").strip(),
        read_only=bool(spec.read_only),
    )


def _taken(tenant: Organization, names: Sequence[str]) -> list[str]:
    return sorted(Scope.objects.filter(tenant=tenant, name__in=list(names)).values_list("name", flat=True))


def _scope_taken_error(names: Sequence[str]) -> ValidationError:
    return ValidationError(
        {"scopes": [f"A scope with this name already exists in this tenant: {', '.join(names)}."]}
    )


@transaction.atomic
def api_resource_create(
    *,
    actor: User | None,
    tenant: Organization,
    identifier: str,
    name: str,
    description: str = "",
    scopes: Sequence[ScopeSpec] = (),
) -> APIResource:
    """Create a business API resource of ``tenant`` with its first scopes."""
    if tenant.parent_id is not None:
        raise ValidationError("API resources belong to the tenant's root organization.")
    identifier = (identifier or "").strip()
    name = (name or "").strip()
    description = (description or "").strip()
    specs = [_clean_spec(s) for s in scopes]
    errors: dict[str, list[str]] = {}
    if not identifier:
        errors["identifier"] = ["Enter an identifier."]
    elif len(identifier) > IDENTIFIER_MAX:
        errors["identifier"] = [f"An identifier can be at most {IDENTIFIER_MAX} characters long."]
    elif not IDENTIFIER_RE.match(identifier):
        errors["identifier"] = ["An identifier cannot contain spaces or control characters."]
    elif identifier.lower().startswith(RESERVED_IDENTIFIER_PREFIXES):
        errors["identifier"] = ["Identifiers starting with system: or org: are reserved by actas."]
    elif APIResource.objects.filter(tenant=tenant, identifier=identifier).exists():
        errors["identifier"] = ["An API resource with this identifier already exists."]
    if not name:
        errors["name"] = ["Enter a name."]
    elif len(name) > NAME_MAX:
        errors["name"] = [f"A name can be at most {NAME_MAX} characters long."]
    if len(description) > DESCRIPTION_MAX:
        errors["description"] = [f"A description can be at most {DESCRIPTION_MAX} characters long."]
    for spec in specs:
        for message in _scope_errors(spec):
            errors.setdefault("scopes", []).append(f"{spec.name or 'Scope'}: {message}")
    names = [s.name for s in specs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        errors.setdefault("scopes", []).append(f"Listed twice: {', '.join(repeated)}.")
    if "scopes" not in errors:
        taken = _taken(tenant, names)
        if taken:
            errors.update(_scope_taken_error(taken).message_dict)
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            resource = APIResource.objects.create(
                tenant=tenant,
                identifier=identifier,
                name=name,
                description=description,
                type=APIResource.Type.TENANT,
                is_system=False,
            )
            for spec in specs:
                Scope.objects.create(
                    tenant=tenant,
                    resource=resource,
                    name=spec.name,
                    display_name=spec.display_name,
                    description=spec.description,
                    read_only=spec.read_only,
                )
    except IntegrityError as exc:  # a concurrent create took the identifier or a scope name
        raise ValidationError(
            {"identifier": ["This identifier or one of the scope names was just taken; try again."]}
        ) from exc
    audit_record(
        org=tenant,
        action="api-resource-create",
        actor=actor,
        target_type="api-resource",
        target_id=resource.pk,
        data={"identifier": identifier, "name": name, "scopes": sorted(names)},
    )
    return resource


@transaction.atomic
def scope_create(
    *,
    actor: User | None,
    resource: APIResource,
    name: str,
    display_name: str = "",
    description: str = "",
    read_only: bool = False,
) -> Scope:
    """Add a scope to a business API resource."""
    if resource.is_system:
        raise ValidationError("The scopes of a system API resource cannot be changed.")
    spec = _clean_spec(ScopeSpec(name, display_name, description, read_only))
    errors = _scope_errors(spec)
    if errors:
        raise ValidationError({"name": errors})
    taken = ValidationError({"name": ["A scope with this name already exists in this tenant."]})
    if Scope.objects.filter(tenant_id=resource.tenant_id, name=spec.name).exists():
        raise taken
    try:
        with transaction.atomic():
            scope = Scope.objects.create(
                tenant_id=resource.tenant_id,
                resource=resource,
                name=spec.name,
                display_name=spec.display_name,
                description=spec.description,
                read_only=spec.read_only,
            )
    except IntegrityError as exc:  # a concurrent create with the same name
        raise taken from exc
    audit_record(
        tenant=resource.tenant,
        action="scope-create",
        actor=actor,
        target_type="api-resource",
        target_id=resource.pk,
        data={"resource": resource.identifier, "scope": spec.name, "read_only": spec.read_only},
    )
    return scope
