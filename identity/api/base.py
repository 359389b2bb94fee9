"""What every API of actas shares: bearer-token authentication, scope and read-only checks,
the error rendering (SCIM / WSO2 / DRF) and the audit of impersonated calls.

Every API authenticates with :class:`BearerTokenAuthentication` (signature, ``iss``, ``exp``,
revocation, a live impersonation: ``identity.oauth.bearer``) and scopes its results by the
token's ``org_id`` (:func:`token_org`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponseBase
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, permissions, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from identity import context
from identity.access import access_tenant
from identity.audit.services import audit_record, audit_refusal
from identity.hooks import impersonation_read_only
from identity.models import Application, User
from identity.oauth.bearer import bearer_token, live_access_token
from identity.serializers import SCIM_ERROR_SCHEMA, ScimError
from identity.services.users import UserChangeRefused, UserDeleteConflict
from organizations.models import Organization
from organizations.selectors import org_get_in_tenant

# A request body larger than this is refused (413) before it is parsed.
MAX_BODY_BYTES = 64 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

AUDIT_ACTIONS = {
    "POST": "resource-creation-via-impersonation",
    "PUT": "resource-modification-via-impersonation",
    "PATCH": "resource-modification-via-impersonation",
    "DELETE": "resource-deletion-via-impersonation",
}
AUDIT_OTHER = "resource-access-via-impersonation"


@dataclass(frozen=True)
class AccessTokenAuth:
    """What DRF keeps as ``request.auth``: the verified claims and the token's organization."""

    claims: dict[str, Any]
    org_id: str

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(str(self.claims.get("scope", "")).split())

    @property
    def scope(self) -> str:
        return str(self.claims.get("scope", ""))

    @property
    def client_id(self) -> str:
        return str(self.claims.get("client_id", ""))

    @property
    def impersonator_id(self) -> str | None:
        """``act.sub``: who is acting as the token's user, for an impersonated token."""
        act = self.claims.get("act")
        if isinstance(act, Mapping) and act.get("sub"):
            return str(act["sub"])
        return None

    @property
    def impersonation_id(self) -> str | None:
        value = self.claims.get("impersonation_id")
        return str(value) if value else None


@dataclass(frozen=True)
class ApplicationPrincipal:
    """``request.user`` for a client-credentials token: the application acting on its own (a
    provisioning tool), on the APIs that accept it (``accepts_application_tokens``)."""

    application: Application
    is_authenticated = True
    is_anonymous = False


class BearerTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User | ApplicationPrincipal, AccessTokenAuth] | None:
        raw = bearer_token(request._request)
        if not raw:
            return None
        tenant = access_tenant(handle=request.parser_context["kwargs"]["tenant"])
        found = live_access_token(tenant, raw)
        if found is None:
            raise exceptions.AuthenticationFailed("The access token is invalid or expired.")
        claims, stored = found
        auth = AccessTokenAuth(claims=claims, org_id=str(claims.get("org_id", "")))
        if stored.user is not None:
            return stored.user, auth
        view = request.parser_context.get("view")
        if stored.application is not None and getattr(view, "accepts_application_tokens", False):
            return ApplicationPrincipal(stored.application), auth
        raise exceptions.AuthenticationFailed("This API needs a user's access token.")

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer error="invalid_token"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes :class:`BearerTokenAuthentication`."""

    target_class = "identity.api.base.BearerTokenAuthentication"
    name = "actasAccessToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An actas access token (typ at+jwt) of any client of the tenant.",
        }


def token_auth(request: Request) -> tuple[User, AccessTokenAuth]:
    user, auth = request.user, request.auth
    assert isinstance(auth, AccessTokenAuth) and isinstance(user, User)
    return user, auth


def token_actor(request: Request) -> User | Application:
    """Who acts with the request's token: its user, or the application of a
    client-credentials token (on the APIs that accept those)."""
    user = request.user
    if isinstance(user, ApplicationPrincipal):
        return user.application
    assert isinstance(user, User)
    return user


def token_org(request: Request, tenant: str) -> Organization:
    """The organization named by the token's ``org_id``, inside the URL's tenant."""
    auth = request.auth
    assert isinstance(auth, AccessTokenAuth)
    tenant_org = access_tenant(handle=tenant)
    try:
        org = org_get_in_tenant(tenant=tenant_org, org_id=auth.org_id)
    except (ValueError, DjangoValidationError):
        org = None
    if org is None:
        raise exceptions.NotFound("The token's organization does not exist.")
    return org


# --- parsing and rendering ---------------------------------------------------------------


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


class BoundedJSONParser(BaseParser):
    """JSON, read at most :data:`MAX_BODY_BYTES` (a larger body is 413, never buffered)."""

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", "utf-8")
        raw = stream.read(MAX_BODY_BYTES + 1)
        if len(raw) > MAX_BODY_BYTES:
            raise PayloadTooLarge()
        try:
            data = json.loads(raw.decode(encoding), parse_constant=_no_constant)
            _no_lone_surrogates(data)
        except (ValueError, UnicodeDecodeError, LookupError, RecursionError) as exc:
            raise exceptions.ParseError("The request body is not valid JSON.") from exc
        return data


def _no_lone_surrogates(value: Any) -> None:
    """A \\ud800 escape decodes to a string no database can store: refuse the body (a
    ``UnicodeEncodeError`` is a ``ValueError``)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class BoundedScimJSONParser(BoundedJSONParser):
    media_type = "application/scim+json"


class ScimJSONRenderer(JSONRenderer):
    media_type = "application/scim+json"


# --- permissions --------------------------------------------------------------------------


class TokenScopes(permissions.BasePermission):
    """The token holds one of the scopes the view names for this request
    (``view.required_scopes(request)``; an empty tuple means a user token is enough)."""

    message = "The access token does not carry the scope this operation needs."

    def has_permission(self, request: Request, view: Any) -> bool:
        auth = request.auth
        if not isinstance(auth, AccessTokenAuth):
            return False
        needed: tuple[str, ...] = view.required_scopes(request)
        if needed and not (auth.scopes & set(needed)):
            self.message = f"The access token needs the scope {' or '.join(needed)}."
            return False
        return True


def only_reads(request: HttpRequest | Request, view: Any) -> bool:
    """A GET, or a POST that only reads (a SCIM ``/.search``: ``reads_only`` on the view)."""
    return (request.method or "GET").upper() in SAFE_METHODS or bool(getattr(view, "reads_only", False))


class NotReadOnlyImpersonation(permissions.BasePermission):
    """Tokens of a read-only impersonation never write (DESIGN §7)."""

    message = "This impersonation is read-only: the token cannot change anything."

    def has_permission(self, request: Request, view: Any) -> bool:
        auth = request.auth
        if only_reads(request, view) or not isinstance(auth, AccessTokenAuth):
            return True
        if auth.impersonation_id is None:
            return True
        return not impersonation_read_only(auth.impersonation_id)


# --- errors -------------------------------------------------------------------------------


def detail_text(data: Any) -> str:
    """A one-line description of DRF error data (``{"field": ["msg"]}`` and friends)."""
    if isinstance(data, Mapping):
        if set(data) == {"detail"}:
            return detail_text(data["detail"])
        parts = []
        for key, value in data.items():
            text = detail_text(value)
            parts.append(text if key in ("detail", "non_field_errors", "__all__") else f"{key}: {text}")
        return "; ".join(parts)
    if isinstance(data, list):
        return " ".join(detail_text(item) for item in data)
    return str(data)


def _as_api_exception(exc: Exception) -> Exception:
    if isinstance(exc, ScimError):
        error = exceptions.APIException(exc.detail)
        error.status_code = exc.status
        error.scim_type = exc.scim_type  # type: ignore[attr-defined]
        return error
    if isinstance(exc, DjangoValidationError):
        messages = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        error = exceptions.ValidationError(messages)
        error.scim_type = "uniqueness" if _is_uniqueness(messages) else "invalidValue"  # type: ignore[attr-defined]
        if error.scim_type == "uniqueness":  # type: ignore[attr-defined]
            error.status_code = status.HTTP_409_CONFLICT
        return error
    if isinstance(exc, UserChangeRefused):
        return exceptions.PermissionDenied(exc.message)
    if isinstance(exc, UserDeleteConflict):
        error = exceptions.APIException(str(exc))
        error.status_code = status.HTTP_409_CONFLICT
        return error
    return exc


def _is_uniqueness(messages: Mapping[str, list[str]]) -> bool:
    return any("already exists" in m for m in messages.get("username", []))


def exception_handler(exc: Exception, ctx: dict[str, Any]) -> Response | None:
    """DRF's handler, with service errors mapped to HTTP (Django ``ValidationError`` → 400, a
    duplicate user name → 409, a refused change → 403), rendered in the view's error style:
    ``"scim"`` (RFC 7644 §3.12), ``"wso2"`` (``code``/``message``/``description``/``traceId``)
    or DRF's ``{"detail": …}``."""
    exc = _as_api_exception(exc)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, ctx)
    if response is None:
        return None
    view = ctx.get("view")
    style = getattr(view, "error_style", "drf")
    detail = detail_text(response.data)
    if style == "scim":
        body: dict[str, Any] = {"schemas": [SCIM_ERROR_SCHEMA], "status": str(response.status_code)}
        scim_type = getattr(exc, "scim_type", None)
        if scim_type is None and isinstance(exc, exceptions.ValidationError | exceptions.ParseError):
            scim_type = "invalidSyntax" if isinstance(exc, exceptions.ParseError) else "invalidValue"
        if scim_type:
            body["scimType"] = scim_type
        body["detail"] = detail
        response.data = body
        response.content_type = "application/scim+json"
    elif style == "wso2":
        response.data = {
            "code": f"ACT-{response.status_code}",
            "message": _WSO2_MESSAGES.get(response.status_code, "Request failed."),
            "description": detail,
            "traceId": context.current().request_id,
        }
    return response


_WSO2_MESSAGES = {
    400: "Invalid request.",
    401: "Unauthorized.",
    403: "Forbidden.",
    404: "Not found.",
    405: "Method not allowed.",
    409: "Conflict.",
    413: "Request too large.",
    415: "Unsupported media type.",
}


# What the URL patterns route (``<slug:tenant>``, ``<str:user_id>``): anything else never
# reaches an API (it is the site's 404 page).
PATH_PARAMETERS = {"tenant": r"^[-a-zA-Z0-9_]+$", "user_id": r"^[^/]+$"}


class ActasAutoSchema(AutoSchema):
    """Names each operation's required scope in its OpenAPI description, and documents what
    the path parameters may be."""

    def get_override_parameters(self) -> list[Any]:
        path = self.path
        return [
            *super().get_override_parameters(),
            *(
                OpenApiParameter(name, str, OpenApiParameter.PATH, pattern=pattern)
                for name, pattern in PATH_PARAMETERS.items()
                if "{" + name + "}" in path
            ),
        ]

    def get_description(self) -> str:  # type: ignore[override]
        description: str = super().get_description()
        needed = getattr(self.view, "scopes", {}).get(self.method.upper(), ())
        note = (
            f"Required scope: {' or '.join(needed)}."
            if needed
            else "Needs a user's access token (no particular scope)."
        )
        return f"{description}\n\n{note}" if description else note


# --- the base view ------------------------------------------------------------------------


class ActasAPIView(APIView):
    """Base of actas's APIs: bearer token, scopes, read-only impersonations, and the audit of
    every non-GET call made with an impersonated token (DESIGN §5.6), written once here.

    A write runs in one transaction. When it succeeds under an impersonated token, the
    ``resource-…-via-impersonation`` event is recorded in that same transaction (with the
    domain events of the services, which carry the impersonator); when it is refused (any
    4xx), the transaction rolls back and the refusal is recorded in a transaction of its own.
    """

    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [
        permissions.IsAuthenticated,
        NotReadOnlyImpersonation,
        TokenScopes,
    ]
    schema = ActasAutoSchema()
    error_style: ClassVar[str] = "drf"
    # Whether a client-credentials token (an application acting on its own) may call it.
    accepts_application_tokens: ClassVar[bool] = False
    # A POST that changes nothing (a search): no write transaction, no write audit.
    reads_only: ClassVar[bool] = False
    # Scopes (any one of them) per HTTP method; a method missing here needs only a user token.
    scopes: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    def required_scopes(self, request: Request) -> tuple[str, ...]:
        return self.scopes.get(request.method or "", ())

    _impersonator: User | None

    def impersonator(self, request: Request) -> User | None:
        """The impersonator named by the token's ``act.sub`` (None for an ordinary token)."""
        if hasattr(self, "_impersonator"):
            return self._impersonator
        auth = request.auth
        assert isinstance(auth, AccessTokenAuth)
        found: User | None = None
        if auth.impersonator_id:
            try:
                found = User.objects.filter(pk=uuid.UUID(auth.impersonator_id)).first()
            except ValueError:
                found = None
        self._impersonator = found
        return found

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if only_reads(request, self):
            return super().dispatch(request, *args, **kwargs)
        with transaction.atomic():
            response = super().dispatch(request, *args, **kwargs)
            audited = self._impersonated()
            if response.status_code < 400:
                if audited is not None:
                    audit_record(**self._audit_fields(audited, response))
            else:
                transaction.set_rollback(True)
        if response.status_code >= 400 and audited is not None:
            audit_refusal(**self._audit_fields(audited, response))
        return response

    def _impersonated(self) -> tuple[User, AccessTokenAuth] | None:
        drf_request = getattr(self, "request", None)
        if not isinstance(drf_request, Request):
            return None
        auth = getattr(drf_request, "_auth", None)
        user = getattr(drf_request, "_user", None)
        if not isinstance(auth, AccessTokenAuth) or not isinstance(user, User) or not auth.impersonator_id:
            return None
        return user, auth

    def _audit_fields(
        self, audited: tuple[User, AccessTokenAuth], response: HttpResponseBase
    ) -> dict[str, Any]:
        subject, auth = audited
        drf_request = self.request
        method = (drf_request.method or "").upper()
        path = drf_request.path
        impersonator = self.impersonator(drf_request)
        try:
            token_org_obj = Organization.objects.filter(pk=uuid.UUID(auth.org_id)).first()
        except ValueError:
            token_org_obj = None
        data: dict[str, Any] = {
            "subject": str(subject.pk),
            "impersonator": auth.impersonator_id,
            "ResourcePath": path,
            "httpMethod": method,
            "clientId": auth.client_id,
            "scope": auth.scope,
            "impersonationId": auth.impersonation_id,
            "status": response.status_code,
        }
        if response.status_code >= 400:
            body = getattr(response, "data", None)
            if isinstance(body, Mapping):
                data["error"] = str(body.get("detail") or body.get("description") or "")[:500]
                if body.get("scimType"):
                    data["scimType"] = body["scimType"]
        return {
            "org": token_org_obj or subject.organization,
            "action": AUDIT_ACTIONS.get(method, AUDIT_OTHER),
            "actor": impersonator,
            "impersonator": impersonator,
            "subject": subject,
            "target_type": "api-resource",
            "target_id": path,
            "client_id": auth.client_id,
            "scopes": auth.scope,
            "data": data,
        }
