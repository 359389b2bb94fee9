"""SCIM 2.0 user resources (RFC 7643 / 7644) that applications and provisioning tools call.

* ``/t/<t>/scim2/Users`` (list with ``filter``/``sortBy``/``startIndex``/``count``, create),
  ``/Users/.search`` (the same query in a POST body) and ``/Users/<id>`` (get, PUT, PATCH,
  DELETE): the tenant's root organization (the token's ``org_id`` must be the root);
* ``/t/<t>/o/scim2/Users`` and ``/Users/<id>``: the child organization named by the token's
  ``org_id`` (a token from ``organization_switch``); list, search, get and PATCH;
* ``/t/<t>/scim2/Me`` (and ``/t/<t>/o/scim2/Me``): the token's own user.

Who may call: a user's token with the scope, or — on ``/Users`` — a client-credentials token of
an application authorized for the User Management API, which then acts as that application
(audited with the application as the actor, and unable to touch a user who holds permissions
it is not authorized for). Only members (resident or shared) of the token's organization are
visible; anyone else is 404. Every resource carries ``meta.version`` (and an ``ETag`` header);
``If-Match`` on PUT, PATCH and DELETE answers 412 when it names another version. Changes go
through ``identity.services.users`` and are audited there. Discovery (``/Schemas`` and co.)
is ``identity.api.scim_discovery``.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from identity.api.base import (
    ActasAPIView,
    BoundedJSONParser,
    BoundedScimJSONParser,
    ScimJSONRenderer,
    detail_text,
    token_actor,
    token_auth,
    token_org,
)
from identity.models import Application, User
from identity.scim_patch import ScimChanges, scim_patch_changes, scim_replace_changes
from identity.selectors.permission_map import application_dominance_gaps, dominance_gaps
from identity.selectors.scim_filter import ScimFilterError, user_filter_q, user_ordering
from identity.selectors.users import org_members
from identity.serializers import (
    SCIM_LIST_SCHEMA,
    ScimError,
    ScimErrorSerializer,
    ScimListResponseSerializer,
    ScimPatchOpSerializer,
    ScimSearchRequestSerializer,
    ScimUserCreateSerializer,
    ScimUserReplaceSerializer,
    ScimUserResourceSerializer,
    ScimUserSerializer,
    etag_matches,
    primary_email,
    scim_project,
    scim_user_location,
    scim_version,
)
from identity.services.users import user_create, user_delete, user_update_scim
from organizations.models import Organization

DEFAULT_COUNT = 100
MAX_COUNT = 200

ERRORS = {
    400: OpenApiResponse(ScimErrorSerializer, description="Malformed request (scimType says why)."),
    401: OpenApiResponse(ScimErrorSerializer, description="No, invalid, expired or revoked access token."),
    403: OpenApiResponse(
        ScimErrorSerializer,
        description="Missing scope, a token of another organization level, or a read-only impersonation.",
    ),
    404: OpenApiResponse(ScimErrorSerializer, description="No such user in the token's organization."),
}
PRECONDITION = {
    412: OpenApiResponse(ScimErrorSerializer, description="If-Match names another version of the user."),
}
QUERY_PARAMETERS = [
    OpenApiParameter(
        "filter",
        str,
        description="RFC 7644 §3.4.2.2 filter over id, externalId, userName, name.givenName, "
        "name.familyName, emails(.value), active, meta.created, meta.lastModified.",
    ),
    OpenApiParameter("sortBy", str, description="An attribute of the filter list (not emails)."),
    OpenApiParameter("sortOrder", str, enum=["ascending", "descending"]),
    OpenApiParameter("startIndex", int, description="1-based index of the first result (default 1)."),
    OpenApiParameter("count", int, description=f"Page size (default {DEFAULT_COUNT}, at most {MAX_COUNT})."),
    OpenApiParameter("attributes", str, description="Comma-separated attributes to return."),
    OpenApiParameter("excludedAttributes", str, description="Comma-separated attributes to leave out."),
]
PROJECTION_PARAMETERS = QUERY_PARAMETERS[-2:]
IF_MATCH = OpenApiParameter(
    "If-Match", str, OpenApiParameter.HEADER, description="meta.version of the user as last read."
)


class ScimView(ActasAPIView):
    """Shared by the SCIM views: SCIM errors and media types, the token's organization, the
    acting user or application, versions."""

    error_style = "scim"
    parser_classes = [BoundedScimJSONParser, BoundedJSONParser]
    renderer_classes = [ScimJSONRenderer]
    child: ClassVar[bool] = False

    def organization(self, request: Request, tenant: str) -> Organization:
        org = token_org(request, tenant)
        if self.child and org.parent_id is None:
            raise ScimError(f"This token is for the root organization: use /t/{tenant}/scim2/.", status=403)
        if not self.child and org.parent_id is not None and not getattr(self, "any_org", False):
            raise ScimError(f"This token is for a child organization: use /t/{tenant}/o/scim2/.", status=403)
        return org

    def render_user(self, params: Any, user: User, tenant: str) -> dict[str, Any]:
        """The user as a resource, with the ``attributes``/``excludedAttributes`` of ``params``
        (the query string, or a search body)."""
        body = dict(ScimUserSerializer(user, context={"tenant": tenant, "child": self.child}).data)
        return scim_project(
            body, attributes=params.get("attributes"), excluded=params.get("excludedAttributes")
        )

    def user_response(self, request: Request, user: User, tenant: str, *, code: int = 200) -> Response:
        body = self.render_user(request.query_params, user, tenant)
        headers = {
            "ETag": scim_version(user),
            "Location": scim_user_location(tenant=tenant, user_id=user.pk, child=self.child),
        }
        return Response(body, status=code, headers=headers)

    def member(self, org: Organization, user_id: str, *, lock: bool = False) -> User:
        try:
            pk = uuid.UUID(user_id)
        except ValueError:
            raise ScimError(f"User {user_id[:64]} not found.", status=404) from None
        members = org_members(org).select_related("organization")
        if lock:
            # Held until the write commits: an If-Match check and the change it guards are one.
            members = members.select_for_update(of=("self",))
        user = members.filter(pk=pk).first()
        if user is None:
            raise ScimError(f"User {user_id} not found.", status=404)
        return user

    def writable_member(self, request: Request, org: Organization, user_id: str) -> User:
        """The user a PUT, PATCH or DELETE changes, locked, after its ``If-Match``."""
        user = self.member(org, user_id, lock=True)
        self.check_if_match(request, user)
        return user

    @staticmethod
    def check_if_match(request: Request, user: User) -> None:
        wanted = request.headers.get("If-Match")
        if wanted is not None and not etag_matches(wanted, scim_version(user)):
            raise ScimError(
                "The user has changed since this version was read: read it again (If-Match).",
                status=412,
            )

    def check_may_manage(self, request: Request, *, org: Organization, user: User) -> None:
        """Writes to another user: they must be resident here (a shared user's profile belongs
        to their own organization), and the token's user (or application) must hold every
        permission they hold (no privilege escalation by editing or deleting an
        administrator)."""
        actor = token_actor(request)
        if user.organization_id != org.pk:
            raise ScimError(
                "This user is shared into the organization; manage them in their own organization.",
                status=403,
            )
        if isinstance(actor, Application):
            if application_dominance_gaps(application=actor, subject=user):
                raise ScimError(
                    "This user holds permissions the application is not authorized for.", status=403
                )
        elif user.pk != actor.pk and dominance_gaps(impersonator=actor, subject=user):
            raise ScimError("This user holds permissions you do not hold.", status=403)

    def patch_body(self, request: Request) -> list[dict[str, Any]]:
        serializer = ScimPatchOpSerializer(data=request.data)
        if not serializer.is_valid():
            raise ScimError(detail_text(serializer.errors), scim_type="invalidSyntax")
        operations: list[dict[str, Any]] = serializer.validated_data["Operations"]
        return operations

    def apply(self, request: Request, *, org: Organization, user: User, changes: ScimChanges) -> User:
        actor = token_actor(request)
        self.check_may_manage(request, org=org, user=user)
        if changes.is_active is False and user.pk == actor.pk:
            raise ScimError("A user cannot deactivate their own account.", status=403)
        return user_update_scim(
            actor=actor, user=user, impersonator=self.impersonator(request), **changes.as_kwargs()
        )


def _int_param(raw: Any, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        raise ScimError(f"{name} must be an integer.", scim_type="invalidValue")
    try:
        return int(raw)
    except (TypeError, ValueError) as exc:
        raise ScimError(f"{name} must be an integer.", scim_type="invalidValue") from exc


class ScimUsers(ScimView):
    """``/t/<t>/scim2/Users``: list (``filter``, ``sortBy``, ``startIndex``, ``count``) and
    create."""

    accepts_application_tokens = True
    scopes = {"GET": ("internal_user_mgt_list",), "POST": ("internal_user_mgt_create",)}

    def query(self, request: Request, tenant: str, params: Any) -> Response:
        org = self.organization(request, tenant)
        start = max(_int_param(params.get("startIndex"), "startIndex", 1), 1)
        count = min(max(_int_param(params.get("count"), "count", DEFAULT_COUNT), 0), MAX_COUNT)
        qs: QuerySet[User] = org_members(org).select_related("organization")
        try:
            if params.get("filter") not in (None, ""):
                qs = qs.filter(user_filter_q(str(params["filter"])))
            ordering = user_ordering(params.get("sortBy"), params.get("sortOrder"))
        except ScimFilterError as exc:
            raise ScimError(str(exc), scim_type="invalidFilter") from exc
        qs = qs.order_by(*ordering)
        total = qs.count()
        # Past the end there is nothing to read (and a huge startIndex never reaches SQL).
        rows = list(qs[start - 1 : start - 1 + count]) if count and start <= total else []
        return Response(
            {
                "schemas": [SCIM_LIST_SCHEMA],
                "totalResults": total,
                "startIndex": start,
                "itemsPerPage": len(rows),
                "Resources": [self.render_user(params, user, tenant) for user in rows],
            }
        )

    @extend_schema(
        operation_id="scim_users_list",
        summary="List the organization's users",
        parameters=QUERY_PARAMETERS,
        responses={200: ScimListResponseSerializer, **ERRORS},
    )
    def get(self, request: Request, tenant: str) -> Response:
        return self.query(request, tenant, request.query_params)

    @extend_schema(
        operation_id="scim_users_create",
        summary="Create a user resident in the token's organization",
        request=ScimUserCreateSerializer,
        parameters=PROJECTION_PARAMETERS,
        responses={
            201: ScimUserResourceSerializer,
            409: OpenApiResponse(ScimErrorSerializer, description="userName taken (scimType uniqueness)."),
            **ERRORS,
        },
    )
    def post(self, request: Request, tenant: str) -> Response:
        org = self.organization(request, tenant)
        actor = token_actor(request)
        impersonator = self.impersonator(request)
        serializer = ScimUserCreateSerializer(data=request.data)
        if not serializer.is_valid():
            raise ScimError(detail_text(serializer.errors), scim_type="invalidValue")
        data = serializer.validated_data
        name = data.get("name", {})
        user = user_create(
            actor=actor,
            org=org,
            username=data["userName"],
            password=data.get("password") or None,
            email=primary_email(data.get("emails", [])),
            given_name=name.get("givenName", ""),
            family_name=name.get("familyName", ""),
            impersonator=impersonator,
            external_id=data.get("externalId") or "",
        )
        if data.get("active") is False:
            user = user_update_scim(actor=actor, user=user, impersonator=impersonator, is_active=False)
        return self.user_response(request, user, tenant, code=status.HTTP_201_CREATED)


class ScimUsersSearch(ScimUsers):
    """``/t/<t>/scim2/Users/.search``: the list's query in a SearchRequest body (RFC 7644
    §3.4.3), for filters too long for a URL."""

    http_method_names = ["post", "options"]
    reads_only = True
    scopes = {"POST": ("internal_user_mgt_list",)}

    @extend_schema(
        operation_id="scim_users_search",
        summary="Search the organization's users (POST /.search)",
        request=ScimSearchRequestSerializer,
        responses={200: ScimListResponseSerializer, **ERRORS},
    )
    def post(self, request: Request, tenant: str) -> Response:
        serializer = ScimSearchRequestSerializer(data=request.data)
        if not serializer.is_valid():
            raise ScimError(detail_text(serializer.errors), scim_type="invalidValue")
        data = dict(serializer.validated_data)
        for key in ("attributes", "excludedAttributes"):
            if isinstance(data.get(key), list):
                data[key] = ",".join(data[key])
        return self.query(request, tenant, data)


class ScimUser(ScimView):
    """``/t/<t>/scim2/Users/<id>``: get, PUT, PATCH (PatchOp), DELETE."""

    accepts_application_tokens = True
    scopes = {
        "GET": ("internal_user_mgt_view",),
        "PUT": ("internal_user_mgt_update",),
        "PATCH": ("internal_user_mgt_update",),
        "DELETE": ("internal_user_mgt_delete",),
    }

    @extend_schema(
        operation_id="scim_user_get",
        summary="Get a user",
        parameters=PROJECTION_PARAMETERS,
        responses={
            200: ScimUserResourceSerializer,
            304: OpenApiResponse(description="If-None-Match"),
            **ERRORS,
        },
    )
    def get(self, request: Request, tenant: str, user_id: str) -> Response:
        org = self.organization(request, tenant)
        user = self.member(org, user_id)
        unchanged = request.headers.get("If-None-Match")
        if unchanged is not None and etag_matches(unchanged, scim_version(user)):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": scim_version(user)})
        return self.user_response(request, user, tenant)

    @extend_schema(
        operation_id="scim_user_replace",
        summary="Replace a user (PUT: attributes left out are cleared; userName cannot change)",
        request=ScimUserReplaceSerializer,
        parameters=[IF_MATCH, *PROJECTION_PARAMETERS],
        responses={200: ScimUserResourceSerializer, **ERRORS, **PRECONDITION},
    )
    def put(self, request: Request, tenant: str, user_id: str) -> Response:
        org = self.organization(request, tenant)
        serializer = ScimUserReplaceSerializer(data=request.data)
        if not serializer.is_valid():
            raise ScimError(detail_text(serializer.errors), scim_type="invalidValue")
        user = self.writable_member(request, org, user_id)
        changes = scim_replace_changes(dict(serializer.validated_data), user)
        return self.user_response(request, self.apply(request, org=org, user=user, changes=changes), tenant)

    @extend_schema(
        operation_id="scim_user_patch",
        summary="Change a user (SCIM PatchOp: name, emails, externalId, password, active)",
        request=ScimPatchOpSerializer,
        parameters=[IF_MATCH, *PROJECTION_PARAMETERS],
        responses={200: ScimUserResourceSerializer, **ERRORS, **PRECONDITION},
    )
    def patch(self, request: Request, tenant: str, user_id: str) -> Response:
        org = self.organization(request, tenant)
        operations = self.patch_body(request)
        user = self.writable_member(request, org, user_id)
        changes = scim_patch_changes(operations, current_email=user.email, current_username=user.username)
        return self.user_response(request, self.apply(request, org=org, user=user, changes=changes), tenant)

    @extend_schema(
        operation_id="scim_user_delete",
        summary="Delete a user",
        parameters=[IF_MATCH],
        responses={
            204: OpenApiResponse(description="Deleted."),
            409: OpenApiResponse(
                ScimErrorSerializer,
                description="The token's own user, or a user the impersonation trail names.",
            ),
            **ERRORS,
            **PRECONDITION,
        },
    )
    def delete(self, request: Request, tenant: str, user_id: str) -> Response:
        org = self.organization(request, tenant)
        user = self.writable_member(request, org, user_id)
        self.check_may_manage(request, org=org, user=user)
        user_delete(actor=token_actor(request), user=user, impersonator=self.impersonator(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class OrgScimUsers(ScimUsers):
    """``/t/<t>/o/scim2/Users``: the switched token's child organization (list only; users
    are created in the Console or shared from a parent)."""

    child = True
    accepts_application_tokens = False
    http_method_names = ["get", "head", "options"]
    scopes = {"GET": ("internal_org_user_mgt_list",)}

    @extend_schema(
        operation_id="org_scim_users_list",
        summary="List the child organization's users",
        parameters=QUERY_PARAMETERS,
        responses={200: ScimListResponseSerializer, **ERRORS},
    )
    def get(self, request: Request, tenant: str) -> Response:
        return super().get(request, tenant)


class OrgScimUsersSearch(ScimUsersSearch):
    child = True
    accepts_application_tokens = False
    scopes = {"POST": ("internal_org_user_mgt_list",)}

    @extend_schema(
        operation_id="org_scim_users_search",
        summary="Search the child organization's users (POST /.search)",
        request=ScimSearchRequestSerializer,
        responses={200: ScimListResponseSerializer, **ERRORS},
    )
    def post(self, request: Request, tenant: str) -> Response:
        return super().post(request, tenant)


class OrgScimUser(ScimUser):
    """``/t/<t>/o/scim2/Users/<id>``: get and PATCH in the switched token's child organization."""

    child = True
    accepts_application_tokens = False
    http_method_names = ["get", "patch", "head", "options"]
    scopes = {"GET": ("internal_org_user_mgt_view",), "PATCH": ("internal_org_user_mgt_update",)}

    @extend_schema(
        operation_id="org_scim_user_get",
        summary="Get a child organization's user",
        parameters=PROJECTION_PARAMETERS,
        responses={
            200: ScimUserResourceSerializer,
            304: OpenApiResponse(description="If-None-Match"),
            **ERRORS,
        },
    )
    def get(self, request: Request, tenant: str, user_id: str) -> Response:
        return super().get(request, tenant, user_id)

    @extend_schema(
        operation_id="org_scim_user_patch",
        summary="Change a user resident in the child organization (SCIM PatchOp)",
        request=ScimPatchOpSerializer,
        parameters=[IF_MATCH, *PROJECTION_PARAMETERS],
        responses={200: ScimUserResourceSerializer, **ERRORS, **PRECONDITION},
    )
    def patch(self, request: Request, tenant: str, user_id: str) -> Response:
        return super().patch(request, tenant, user_id)


class ScimMe(ScimView):
    """``/t/<t>/scim2/Me``: the token's own user. GET needs only a user token; PATCH needs
    ``internal_login`` (as WSO2 IS protects /scim2/Me) and changes the names and, unless the
    token is impersonated, the email address; ``active``, ``userName``, ``externalId`` and
    the password cannot change here."""

    any_org = True
    scopes = {"PATCH": ("internal_login",)}

    @extend_schema(
        operation_id="scim_me_get",
        summary="The token's user",
        responses={200: ScimUserResourceSerializer, **ERRORS},
    )
    def get(self, request: Request, tenant: str) -> Response:
        org = self.organization(request, tenant)
        user, _ = token_auth(request)
        return self.render_me(request, user, tenant, org)

    def render_me(self, request: Request, user: User, tenant: str, org: Organization) -> Response:
        child = org.parent_id is not None
        body = dict(ScimUserSerializer(user, context={"tenant": tenant, "child": child}).data)
        return Response(body, headers={"ETag": scim_version(user)})

    @extend_schema(
        operation_id="scim_me_patch",
        summary="Change the token's user (SCIM PatchOp: name.givenName, name.familyName, emails)",
        request=ScimPatchOpSerializer,
        parameters=[IF_MATCH],
        responses={200: ScimUserResourceSerializer, **ERRORS, **PRECONDITION},
    )
    def patch(self, request: Request, tenant: str) -> Response:
        org = self.organization(request, tenant)
        token_user, _ = token_auth(request)
        # Locked until the change commits, like /Users/<id>: If-Match and the write are one.
        user = User.objects.select_for_update().select_related("organization").get(pk=token_user.pk)
        self.check_if_match(request, user)
        changes = scim_patch_changes(
            self.patch_body(request),
            allow_active=False,
            current_email=user.email,
            current_username=user.username,
        )
        if changes.external_id is not None or changes.password is not None:
            raise ScimError("externalId and password cannot be changed here.", scim_type="mutability")
        saved = user_update_scim(
            actor=user, user=user, impersonator=self.impersonator(request), **changes.as_kwargs()
        )
        return self.render_me(request, saved, tenant, org)


class OrgScimMe(ScimMe):
    child = True

    @extend_schema(
        operation_id="org_scim_me_get",
        summary="The switched token's user",
        responses={200: ScimUserResourceSerializer, **ERRORS},
    )
    def get(self, request: Request, tenant: str) -> Response:
        return super().get(request, tenant)

    @extend_schema(
        operation_id="org_scim_me_patch",
        summary="Change the switched token's user (SCIM PatchOp)",
        request=ScimPatchOpSerializer,
        parameters=[IF_MATCH],
        responses={200: ScimUserResourceSerializer, **ERRORS, **PRECONDITION},
    )
    def patch(self, request: Request, tenant: str) -> Response:
        return super().patch(request, tenant)
