"""``/t/<t>/api/server/v1/configs/impersonation``: the impersonation configuration of the
token's organization (the root's, or a child's through its switched token).

GET answers the reference's ``{"enableEmailNotification": …}`` plus actas's own keys
``reasonRequired``, ``maxMinutes`` (the organization's *effective* settings) and
``reasonMaxLength`` (fixed, read-only: there is no setting for it yet). PATCH takes the
reference's body ``[{"operation": "REPLACE", "path": "/enableEmailNotification", "value":
false}]``; ``REMOVE`` makes the organization inherit again. A child organization may tighten
what it inherits (require a reason, shorten the maximum length), never loosen it.

The API is impersonation's (it moved here from ``identity.api``); it is built on identity's
API base (``identity.api.base``) and mounted by ``config.urls``.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from identity.api.base import ActasAPIView, BoundedJSONParser, detail_text, token_auth, token_org
from impersonation.serializers import (
    REASON_MAX_LENGTH,
    ConfigPatchError,
    ConfigPatchOperationSerializer,
    ImpersonationConfigSerializer,
    config_patch_values,
)
from organizations.models import Organization
from organizations.selectors import org_effective_settings
from organizations.services import organization_settings_update

ERROR = inline_serializer(
    "ConfigError",
    {
        "code": serializers.CharField(),
        "message": serializers.CharField(),
        "description": serializers.CharField(),
        "traceId": serializers.CharField(),
    },
)


def impersonation_config(org: Organization) -> dict[str, Any]:
    effective = org_effective_settings(org)
    return {
        "enableEmailNotification": effective.impersonation_email_enabled,
        "reasonRequired": effective.impersonation_reason_required,
        "maxMinutes": effective.impersonation_max_minutes,
        "reasonMaxLength": REASON_MAX_LENGTH,
    }


class ImpersonationConfig(ActasAPIView):
    error_style = "wso2"
    parser_classes = [BoundedJSONParser]
    scopes = {"GET": ("internal_config_mgt_view",), "PATCH": ("internal_config_mgt_update",)}

    @extend_schema(
        operation_id="impersonation_config_get",
        summary="The impersonation configuration of the token's organization",
        responses={
            200: ImpersonationConfigSerializer,
            401: OpenApiResponse(ERROR),
            403: OpenApiResponse(ERROR, description="Missing internal_config_mgt_view."),
            404: OpenApiResponse(ERROR, description="No such tenant, or the token's organization is gone."),
        },
    )
    def get(self, request: Request, tenant: str) -> Response:
        return Response(impersonation_config(token_org(request, tenant)))

    @extend_schema(
        operation_id="impersonation_config_patch",
        summary="Change the impersonation configuration of the token's organization",
        request=ConfigPatchOperationSerializer(many=True),
        responses={
            200: ImpersonationConfigSerializer,
            400: OpenApiResponse(
                ERROR, description="Bad operation, path, type or range; or a loosening by a child."
            ),
            401: OpenApiResponse(ERROR),
            403: OpenApiResponse(
                ERROR, description="Missing internal_config_mgt_update, or a read-only impersonation."
            ),
            404: OpenApiResponse(ERROR, description="No such tenant, or the token's organization is gone."),
            413: OpenApiResponse(ERROR, description="The request body is larger than 64 KiB."),
            415: OpenApiResponse(ERROR, description="The body is not JSON."),
        },
        examples=[
            OpenApiExample(
                "Switch the email notification off",
                value=[{"operation": "REPLACE", "path": "/enableEmailNotification", "value": False}],
                request_only=True,
            )
        ],
    )
    def patch(self, request: Request, tenant: str) -> Response:
        org = token_org(request, tenant)
        actor, _ = token_auth(request)
        serializer = ConfigPatchOperationSerializer(
            data=request.data,
            many=True,
            allow_empty=False,
            max_length=10,  # type: ignore[call-arg]
        )
        if not serializer.is_valid():
            raise serializers.ValidationError(detail_text(serializer.errors) or "Send a list of operations.")
        try:
            values = config_patch_values(list(serializer.validated_data))
        except ConfigPatchError as exc:
            raise serializers.ValidationError(exc.description) from exc
        organization_settings_update(actor=actor, org=org, impersonator=self.impersonator(request), **values)
        return Response(impersonation_config(org))


class OrgImpersonationConfig(ImpersonationConfig):
    """``/t/<t>/o/api/server/v1/configs/impersonation``: the same, in the shape Asgardeo uses
    for organizations (the organization is the switched token's either way)."""

    @extend_schema(
        operation_id="org_impersonation_config_get",
        summary="The impersonation configuration of the switched token's organization",
        responses={
            200: ImpersonationConfigSerializer,
            401: OpenApiResponse(ERROR),
            403: OpenApiResponse(ERROR),
            404: OpenApiResponse(ERROR),
        },
    )
    def get(self, request: Request, tenant: str) -> Response:
        return super().get(request, tenant)

    @extend_schema(
        operation_id="org_impersonation_config_patch",
        summary="Change the impersonation configuration of the switched token's organization",
        request=ConfigPatchOperationSerializer(many=True),
        responses={
            200: ImpersonationConfigSerializer,
            400: OpenApiResponse(ERROR),
            401: OpenApiResponse(ERROR),
            403: OpenApiResponse(ERROR),
            404: OpenApiResponse(ERROR),
            413: OpenApiResponse(ERROR),
            415: OpenApiResponse(ERROR),
        },
    )
    def patch(self, request: Request, tenant: str) -> Response:
        return super().patch(request, tenant)
