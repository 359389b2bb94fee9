"""SCIM 2.0 user resources (RFC 7643 / 7644 shape) that applications call with access tokens.

* ``/t/<t>/scim2/Users`` and ``/Users/<id>``: the tenant's root organization (the token's
  ``org_id`` must be the root);
* ``/t/<t>/o/scim2/Users`` and ``/Users/<id>``: the child organization named by the token's
  ``org_id`` (a token from ``organization_switch``); list, get and PATCH;
* ``/t/<t>/scim2/Me`` (and ``/t/<t>/o/scim2/Me``): the token's own user.

Only members (resident or shared) of the token's organization are visible; anyone else is
404. Changes go through ``identity.services.users`` and are audited there.
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
    token_auth,
    token_org,
)
from identity.models import User
from identity.selectors.permission_map import dominance_gaps
from identity.selectors.users import org_members
from identity.serializers import (
    SCIM_LIST_SCHEMA,
    ScimError,
    ScimErrorSerializer,
    ScimListResponseSerializer,
    ScimPatchOpSerializer,
    ScimUserCreateSerializer,
    ScimUserSerializer,
    parse_user_filter,
    primary_email,
    scim_patch_changes,
    scim_user_location,
)
from identity.services.users import (
    normalise_username,
    user_create,
    user_delete,
    user_update_scim,
)
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


def _validation_detail(errors: Any) -> str:
    return detail_text(errors)


class ScimView(ActasAPIView):
    """Shared by the SCIM views: SCIM errors and media types, the token's organization."""

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

    def render_user(self, user: User, tenant: str) -> dict[str, Any]:
        return dict(ScimUserSerializer(user, context={"tenant": tenant, "child": self.child}).data)

    def member(self, org: Organization, user_id: str) -> User:
        try:
            pk = uuid.UUID(user_id)
        except ValueError:
            raise ScimError(f"User {user_id[:64]} not found.", status=404) from None
        user = org_members(org).select_related("organization").filter(pk=pk).first()
        if user is None:
            raise ScimError(f"User {user_id} not found.", status=404)
        return user

    def check_may_manage(self, request: Request, *, org: Organization, user: User) -> None:
        """Writes to another user: they must be resident here (a shared user's profile belongs
        to their own organization), and the token's user must hold every permission they hold
        (no privilege escalation by editing or deleting an administrator)."""
        actor, _ = token_auth(request)
        if user.organization_id != org.pk:
            raise ScimError(
                "This user is shared into the organization; manage them in their own organization.",
                status=403,
            )
        if user.pk != actor.pk and dominance_gaps(impersonator=actor, subject=user):
            raise ScimError("This user holds permissions you do not hold.", status=403)

    def patch_body(self, request: Request) -> list[dict[str, Any]]:
        serializer = ScimPatchOpSerializer(data=request.data)
        if not serializer.is_valid():
            raise ScimError(_validation_detail(serializer.errors), scim_type="invalidSyntax")
        operations: list[dict[str, Any]] = serializer.validated_data["Operations"]
        return operations


class ScimUsers(ScimView):
    """``/t/<t>/scim2/Users``: list (``filter``, ``startIndex``, ``count``) and create."""

    scopes = {"GET": ("internal_user_mgt_list",), "POST": ("internal_user_mgt_create",)}

    def members(self, org: Organization, request: Request) -> QuerySet[User]:
        qs = org_members(org).select_related("organization")
        raw = request.query_params.get("filter")
        if raw is not None:
            qs = qs.filter(username=normalise_username(parse_user_filter(raw)))
        return qs.order_by("username", "pk")

    @staticmethod
    def _int_param(request: Request, name: str, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError as exc:
            raise ScimError(f"{name} must be an integer.", scim_type="invalidValue") from exc

    @extend_schema(
        operation_id="scim_users_list",
        summary="List the organization's users",
        parameters=[
            OpenApiParameter("filter", str, description='Only `userName eq "value"` is supported.'),
            OpenApiParameter("startIndex", int, description="1-based index of the first result (default 1)."),
            OpenApiParameter(
                "count", int, description=f"Page size (default {DEFAULT_COUNT}, at most {MAX_COUNT})."
            ),
        ],
        responses={200: ScimListResponseSerializer, **ERRORS},
    )
    def get(self, request: Request, tenant: str) -> Response:
        org = self.organization(request, tenant)
        start = max(self._int_param(request, "startIndex", 1), 1)
        count = min(max(self._int_param(request, "count", DEFAULT_COUNT), 0), MAX_COUNT)
        qs = self.members(org, request)
        total = qs.count()
        rows = list(qs[start - 1 : start - 1 + count]) if count else []
        return Response(
            {
                "schemas": [SCIM_LIST_SCHEMA],
                "totalResults": total,
                "startIndex": start,
                "itemsPerPage": len(rows),
                "Resources": [self.render_user(user, tenant) for user in rows],
            }
        )

    @extend_schema(
        operation_id="scim_users_create",
        summary="Create a user resident in the token's organization",
        request=ScimUserCreateSerializer,
        responses={
            201: ScimUserSerializer,
            409: OpenApiResponse(ScimErrorSerializer, description="userName taken (scimType uniqueness)."),
            **ERRORS,
        },
    )
    def post(self, request: Request, tenant: str) -> Response:
        org = self.organization(request, tenant)
        actor, _ = token_auth(request)
        impersonator = self.impersonator(request)
        serializer = ScimUserCreateSerializer(data=request.data)
        if not serializer.is_valid():
            raise ScimError(_validation_detail(serializer.errors), scim_type="invalidValue")
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
        )
        if data.get("active") is False:
            user = user_update_scim(actor=actor, user=user, impersonator=impersonator, is_active=False)
        body = self.render_user(user, tenant)
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["meta"]["location"]})


class ScimUser(ScimView):
    """``/t/<t>/scim2/Users/<id>``: get, PATCH (PatchOp), DELETE."""

    scopes = {
        "GET": ("internal_user_mgt_view",),
        "PATCH": ("internal_user_mgt_update",),
        "DELETE": ("internal_user_mgt_delete",),
    }

    @extend_schema(
        operation_id="scim_user_get", summary="Get a user", responses={200: ScimUserSerializer, **ERRORS}
    )
    def get(self, request: Request, tenant: str, user_id: str) -> Response:
        org = self.organization(request, tenant)
        return Response(self.render_user(self.member(org, user_id), tenant))

    @extend_schema(
        operation_id="scim_user_patch",
        summary="Change a user (SCIM PatchOp: name.givenName, name.familyName, emails, active)",
        request=ScimPatchOpSerializer,
        responses={200: ScimUserSerializer, **ERRORS},
    )
    def patch(self, request: Request, tenant: str, user_id: str) -> Response:
        org = self.organization(request, tenant)
        actor, _ = token_auth(request)
        user = self.member(org, user_id)
        changes = scim_patch_changes(self.patch_body(request))
        self.check_may_manage(request, org=org, user=user)
        if changes.is_active is False and user.pk == actor.pk:
            raise ScimError("A user cannot deactivate their own account.", status=403)
        saved = user_update_scim(
            actor=actor, user=user, impersonator=self.impersonator(request), **changes.as_kwargs()
        )
        return Response(self.render_user(saved, tenant))

    @extend_schema(
        operation_id="scim_user_delete",
        summary="Delete a user",
        responses={
            204: OpenApiResponse(description="Deleted."),
            409: OpenApiResponse(
                ScimErrorSerializer,
                description="The token's own user, or a user the impersonation trail names.",
            ),
            **ERRORS,
        },
    )
    def delete(self, request: Request, tenant: str, user_id: str) -> Response:
        org = self.organization(request, tenant)
        actor, _ = token_auth(request)
        user = self.member(org, user_id)
        self.check_may_manage(request, org=org, user=user)
        user_delete(actor=actor, user=user, impersonator=self.impersonator(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class OrgScimUsers(ScimUsers):
    """``/t/<t>/o/scim2/Users``: the switched token's child organization (list only; users
    are created in the Console or shared from a parent)."""

    child = True
    http_method_names = ["get", "head", "options"]
    scopes = {"GET": ("internal_org_user_mgt_list",)}

    @extend_schema(
        operation_id="org_scim_users_list",
        summary="List the child organization's users",
        parameters=[
            OpenApiParameter("filter", str, description='Only `userName eq "value"` is supported.'),
            OpenApiParameter("startIndex", int),
            OpenApiParameter("count", int),
        ],
        responses={200: ScimListResponseSerializer, **ERRORS},
    )
    def get(self, request: Request, tenant: str) -> Response:
        return super().get(request, tenant)


class OrgScimUser(ScimUser):
    """``/t/<t>/o/scim2/Users/<id>``: get and PATCH in the switched token's child organization."""

    child = True
    http_method_names = ["get", "patch", "head", "options"]
    scopes = {"GET": ("internal_org_user_mgt_view",), "PATCH": ("internal_org_user_mgt_update",)}

    @extend_schema(
        operation_id="org_scim_user_get",
        summary="Get a child organization's user",
        responses={200: ScimUserSerializer, **ERRORS},
    )
    def get(self, request: Request, tenant: str, user_id: str) -> Response:
        return super().get(request, tenant, user_id)

    @extend_schema(
        operation_id="org_scim_user_patch",
        summary="Change a user resident in the child organization (SCIM PatchOp)",
        request=ScimPatchOpSerializer,
        responses={200: ScimUserSerializer, **ERRORS},
    )
    def patch(self, request: Request, tenant: str, user_id: str) -> Response:
        return super().patch(request, tenant, user_id)


class ScimMe(ScimView):
    """``/t/<t>/scim2/Me``: the token's own user. GET needs only a user token; PATCH needs
    ``internal_login`` (as WSO2 IS protects /scim2/Me) and changes the names and, unless the
    token is impersonated, the email address; ``active`` and ``userName`` cannot change here."""

    any_org = True
    scopes = {"PATCH": ("internal_login",)}

    @extend_schema(
        operation_id="scim_me_get", summary="The token's user", responses={200: ScimUserSerializer, **ERRORS}
    )
    def get(self, request: Request, tenant: str) -> Response:
        org = self.organization(request, tenant)
        user, _ = token_auth(request)
        return Response(self.render_me(user, tenant, org))

    def render_me(self, user: User, tenant: str, org: Organization) -> dict[str, Any]:
        body = dict(
            ScimUserSerializer(user, context={"tenant": tenant, "child": org.parent_id is not None}).data
        )
        body["meta"]["location"] = scim_user_location(
            tenant=tenant, user_id=user.pk, child=org.parent_id is not None
        )
        return body

    @extend_schema(
        operation_id="scim_me_patch",
        summary="Change the token's user (SCIM PatchOp: name.givenName, name.familyName, emails)",
        request=ScimPatchOpSerializer,
        responses={200: ScimUserSerializer, **ERRORS},
    )
    def patch(self, request: Request, tenant: str) -> Response:
        org = self.organization(request, tenant)
        user, _ = token_auth(request)
        changes = scim_patch_changes(self.patch_body(request), allow_active=False)
        saved = user_update_scim(
            actor=user, user=user, impersonator=self.impersonator(request), **changes.as_kwargs()
        )
        return Response(self.render_me(saved, tenant, org))


class OrgScimMe(ScimMe):
    child = True

    @extend_schema(
        operation_id="org_scim_me_get",
        summary="The switched token's user",
        responses={200: ScimUserSerializer, **ERRORS},
    )
    def get(self, request: Request, tenant: str) -> Response:
        return super().get(request, tenant)

    @extend_schema(
        operation_id="org_scim_me_patch",
        summary="Change the switched token's user (SCIM PatchOp)",
        request=ScimPatchOpSerializer,
        responses={200: ScimUserSerializer, **ERRORS},
    )
    def patch(self, request: Request, tenant: str) -> Response:
        return super().patch(request, tenant)
