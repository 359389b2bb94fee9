"""``/t/<t>/api/users/v1/me/organizations``: where the token's user may switch to."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from identity.api.base import ActasAPIView, token_auth, token_org
from identity.selectors.permission_map import user_switchable_organizations

ORGANIZATIONS = inline_serializer(
    "MyOrganizations",
    {
        "organizations": inline_serializer(
            "SwitchableOrganization",
            {
                "id": serializers.UUIDField(),
                "name": serializers.CharField(),
                "parentId": serializers.UUIDField(allow_null=True),
            },
            many=True,
        )
    },
)


ERROR = inline_serializer("APIError", {"detail": serializers.CharField()})


class MyOrganizations(ActasAPIView):
    """The organizations below the token's where its user may switch (``organization_switch``)."""

    @extend_schema(
        operation_id="me_organizations",
        summary="Organizations the token's user may switch to",
        responses={
            200: ORGANIZATIONS,
            401: OpenApiResponse(ERROR, description="No, invalid, expired or revoked access token."),
            403: OpenApiResponse(ERROR, description="Not a user's access token."),
            404: OpenApiResponse(ERROR, description="No such tenant, or the token's organization is gone."),
        },
    )
    def get(self, request: Request, tenant: str) -> Response:
        user, auth = token_auth(request)
        org = token_org(request, tenant)
        rows = user_switchable_organizations(user=user, org=org, client_id=auth.client_id)
        return Response(
            {
                "organizations": [
                    {"id": str(o.pk), "name": o.name, "parentId": str(o.parent_id) if o.parent_id else None}
                    for o in rows
                ]
            }
        )
