"""SCIM discovery (RFC 7644 §4): ``/ServiceProviderConfig``, ``/ResourceTypes`` and
``/Schemas`` under ``/t/<t>/scim2`` and ``/t/<t>/o/scim2``, what a provisioning tool reads
before it provisions. They describe exactly what actas serves: one resource type, User, with
the attributes the ``/Users`` endpoints keep. Public, like OpenID discovery: they say nothing
about any user.

Also the SCIM-shaped answers for what is not served under those paths: a 404 error body for an
unknown path and 501 for a search across resource types (``POST /.search``).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from scim2_models import ResourceType, Schema, ServiceProviderConfig

from identity.access import access_tenant
from identity.api.base import BoundedJSONParser, BoundedScimJSONParser, ScimJSONRenderer
from identity.api.scim import MAX_COUNT, ScimView
from identity.serializers import SCIM_LIST_SCHEMA, SCIM_USER_SCHEMA, ScimError, ScimErrorSerializer

SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
DOCUMENTATION = "https://github.com/actas/actas#provisioning-with-scim"


def _attribute(
    name: str,
    kind: str = "string",
    *,
    description: str,
    required: bool = False,
    case_exact: bool = False,
    mutability: str = "readWrite",
    returned: str = "default",
    uniqueness: str = "none",
    multi: bool = False,
    sub: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "type": kind,
        "multiValued": multi,
        "description": description,
        "required": required,
        "mutability": mutability,
        "returned": returned,
    }
    if kind in {"string", "reference"}:
        body["caseExact"] = case_exact
        body["uniqueness"] = uniqueness
    if sub is not None:
        body["subAttributes"] = sub
    return body


# The core User schema, as far as actas keeps it (RFC 7643 §4.1). userName is immutable (as in
# WSO2 Identity Server): it is how people sign in, and tokens and the audit trail name it.
# active is always set (a user is created active unless told otherwise) and cannot be removed.
USER_ATTRIBUTES = [
    _attribute(
        "userName",
        description="How the user signs in; unique in their organization, kept in lower case.",
        required=True,
        mutability="immutable",
        uniqueness="server",
    ),
    _attribute(
        "name",
        "complex",
        description="The user's name.",
        sub=[
            _attribute("givenName", description="Given name."),
            _attribute("familyName", description="Family name."),
        ],
    ),
    _attribute(
        "emails",
        "complex",
        multi=True,
        description="The user's email address (actas keeps one; a client's primary flag picks it).",
        sub=[_attribute("value", description="The address.")],
    ),
    _attribute(
        "active",
        "boolean",
        required=True,
        description="Whether the user may sign in (false: signed out everywhere, impersonations end).",
    ),
    _attribute(
        "password",
        description="Write-only. Checked against the password rules; never while impersonating.",
        mutability="writeOnly",
        returned="never",
        case_exact=True,
    ),
]


def scim_base(tenant: str, *, child: bool) -> str:
    return f"{settings.BASE_URL}/t/{tenant}/o/scim2" if child else f"{settings.BASE_URL}/t/{tenant}/scim2"


def _user_schema(base: str) -> dict[str, Any]:
    return {
        "schemas": [SCHEMA_SCHEMA],
        "id": SCIM_USER_SCHEMA,
        "name": "User",
        "description": "User account",
        "attributes": USER_ATTRIBUTES,
        "meta": {"resourceType": "Schema", "location": f"{base}/Schemas/{SCIM_USER_SCHEMA}"},
    }


@cache
def _meta_schemas() -> tuple[dict[str, Any], ...]:
    """The schemas of the discovery resources themselves (RFC 7643 §8.7.2), from scim2-models."""
    return tuple(
        model.to_schema().model_dump(mode="json", by_alias=True, exclude_none=True)
        for model in (ServiceProviderConfig, ResourceType, Schema)
    )


def _schemas(base: str) -> list[dict[str, Any]]:
    meta = [
        dict(schema, meta={"resourceType": "Schema", "location": f"{base}/Schemas/{schema['id']}"})
        for schema in _meta_schemas()
    ]
    return [_user_schema(base), *meta]


def _user_resource_type(base: str) -> dict[str, Any]:
    return {
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "User account",
        "schema": SCIM_USER_SCHEMA,
        "schemaExtensions": [],
        "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/User"},
    }


def _list(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": [SCIM_LIST_SCHEMA],
        "totalResults": len(resources),
        "startIndex": 1,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


class DiscoveryView(ScimView):
    """Read-only, public (the tenant must exist); other methods are 405."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    http_method_names = ["get", "head", "options"]

    def base(self, tenant: str) -> str:
        access_tenant(handle=tenant)  # 404 for an unknown tenant
        return scim_base(tenant, child=self.child)


DISCOVERY_RESPONSES = {404: OpenApiResponse(ScimErrorSerializer, description="No such tenant or resource.")}


class ServiceProviderConfigView(DiscoveryView):
    @extend_schema(
        operation_id="scim_service_provider_config",
        summary="What this SCIM service supports (RFC 7644 §4)",
        responses={200: OpenApiResponse(description="ServiceProviderConfig"), **DISCOVERY_RESPONSES},
    )
    def get(self, request: Request, tenant: str) -> Response:
        base = self.base(tenant)
        return Response(
            {
                "schemas": [SPC_SCHEMA],
                "documentationUri": DOCUMENTATION,
                "patch": {"supported": True},
                "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
                "filter": {"supported": True, "maxResults": MAX_COUNT},
                "changePassword": {"supported": True},
                "sort": {"supported": True},
                "etag": {"supported": True},
                "authenticationSchemes": [
                    {
                        "type": "oauthbearertoken",
                        "name": "OAuth 2.0 Bearer Token",
                        "description": "An actas access token: a user's, or an application's own "
                        "client-credentials token with the User Management API's scopes.",
                        "specUri": "https://www.rfc-editor.org/info/rfc6750",
                        "primary": True,
                    }
                ],
                "meta": {
                    "resourceType": "ServiceProviderConfig",
                    "location": f"{base}/ServiceProviderConfig",
                },
            }
        )


class ResourceTypesView(DiscoveryView):
    @extend_schema(
        operation_id="scim_resource_types",
        summary="The resource types served (User)",
        responses={200: OpenApiResponse(description="ListResponse of ResourceType"), **DISCOVERY_RESPONSES},
    )
    def get(self, request: Request, tenant: str) -> Response:
        return Response(_list([_user_resource_type(self.base(tenant))]))


class ResourceTypeView(DiscoveryView):
    @extend_schema(
        operation_id="scim_resource_type",
        summary="One resource type",
        responses={200: OpenApiResponse(description="ResourceType"), **DISCOVERY_RESPONSES},
    )
    def get(self, request: Request, tenant: str, resource_id: str) -> Response:
        found = _user_resource_type(self.base(tenant))
        if resource_id != found["id"]:
            raise ScimError(f"No resource type {resource_id[:100]}.", status=404)
        return Response(found)


class SchemasView(DiscoveryView):
    @extend_schema(
        operation_id="scim_schemas",
        summary="The schemas of the resources served",
        responses={200: OpenApiResponse(description="ListResponse of Schema"), **DISCOVERY_RESPONSES},
    )
    def get(self, request: Request, tenant: str) -> Response:
        return Response(_list(_schemas(self.base(tenant))))


class SchemaView(DiscoveryView):
    @extend_schema(
        operation_id="scim_schema",
        summary="One schema, by its URN",
        responses={200: OpenApiResponse(description="Schema"), **DISCOVERY_RESPONSES},
    )
    def get(self, request: Request, tenant: str, resource_id: str) -> Response:
        for schema in _schemas(self.base(tenant)):
            if schema["id"] == resource_id:
                return Response(schema)
        raise ScimError(f"No schema {resource_id[:200]}.", status=404)


class OrgServiceProviderConfigView(ServiceProviderConfigView):
    child = True

    @extend_schema(
        operation_id="org_scim_service_provider_config",
        responses={200: OpenApiResponse(description="ServiceProviderConfig"), **DISCOVERY_RESPONSES},
        summary="ServiceProviderConfig (child organization)",
    )
    def get(self, request: Request, tenant: str) -> Response:
        return super().get(request, tenant)


class OrgResourceTypesView(ResourceTypesView):
    child = True

    @extend_schema(
        operation_id="org_scim_resource_types",
        responses={200: OpenApiResponse(description="ListResponse of ResourceType"), **DISCOVERY_RESPONSES},
        summary="Resource types (child organization)",
    )
    def get(self, request: Request, tenant: str) -> Response:
        return super().get(request, tenant)


class OrgResourceTypeView(ResourceTypeView):
    child = True

    @extend_schema(
        operation_id="org_scim_resource_type",
        responses={200: OpenApiResponse(description="ResourceType"), **DISCOVERY_RESPONSES},
        summary="One resource type (child organization)",
    )
    def get(self, request: Request, tenant: str, resource_id: str) -> Response:
        return super().get(request, tenant, resource_id)


class OrgSchemasView(SchemasView):
    child = True

    @extend_schema(
        operation_id="org_scim_schemas",
        responses={200: OpenApiResponse(description="ListResponse of Schema"), **DISCOVERY_RESPONSES},
        summary="Schemas (child organization)",
    )
    def get(self, request: Request, tenant: str) -> Response:
        return super().get(request, tenant)


class OrgSchemaView(SchemaView):
    child = True

    @extend_schema(
        operation_id="org_scim_schema",
        responses={200: OpenApiResponse(description="Schema"), **DISCOVERY_RESPONSES},
        summary="One schema (child organization)",
    )
    def get(self, request: Request, tenant: str, resource_id: str) -> Response:
        return super().get(request, tenant, resource_id)


class NotServed(ScimView):
    """Anything else under a SCIM root: a SCIM error, not the site's HTML page. ``POST
    /.search`` across resource types is 501 (RFC 7644 §3.12); any other path is 404."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    parser_classes = [BoundedScimJSONParser, BoundedJSONParser]
    renderer_classes = [ScimJSONRenderer]
    reads_only = True

    @extend_schema(exclude=True)
    def get(self, request: Request, tenant: str, rest: str = "") -> Response:
        raise ScimError(f"Nothing is served at {request.path[:200]}.", status=404)

    @extend_schema(exclude=True)
    def post(self, request: Request, tenant: str, rest: str = "") -> Response:
        if rest == ".search":
            raise ScimError(
                "Searching across resource types is not supported: use /Users/.search.", status=501
            )
        raise ScimError(f"Nothing is served at {request.path[:200]}.", status=404)

    put = patch = delete = get
