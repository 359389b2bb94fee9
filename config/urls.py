from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from config.observability import views as observability_views
from identity import views as identity_views
from identity.api import me as identity_me_api
from identity.api import scim as identity_scim
from identity.api import scim_discovery
from identity.oauth import metadata as oauth_metadata
from identity.oauth import views as oauth_views
from impersonation import api as impersonation_api
from impersonation import views as impersonation_views


@login_not_required
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


# SCIM endpoints under a root: (path, view class name, URL name suffix). Users/.search comes
# before Users/<id>; anything else under the root answers a SCIM 404 (scim_discovery.NotServed).
SCIM_ENDPOINTS = [
    ("Users", identity_scim, "ScimUsers", "users"),
    ("Users/.search", identity_scim, "ScimUsersSearch", "users-search"),
    ("Users/<str:user_id>", identity_scim, "ScimUser", "user"),
    ("Me", identity_scim, "ScimMe", "me"),
    ("ServiceProviderConfig", scim_discovery, "ServiceProviderConfigView", "service-provider-config"),
    ("ResourceTypes", scim_discovery, "ResourceTypesView", "resource-types"),
    ("ResourceTypes/<str:resource_id>", scim_discovery, "ResourceTypeView", "resource-type"),
    ("Schemas", scim_discovery, "SchemasView", "schemas"),
    ("Schemas/<str:resource_id>", scim_discovery, "SchemaView", "schema"),
]


def scim_routes(root: str, *, prefix: str, child: bool) -> list[URLPattern]:
    """The SCIM endpoints under one root; ``child``: the organization-switched variants
    (``Org…`` classes)."""
    org = "Org" if child else ""
    return [
        *(
            path(
                f"{root}{route}",
                login_not_required(getattr(module, org + view).as_view()),
                name=f"{prefix}-{name}",
            )
            for route, module, view, name in SCIM_ENDPOINTS
        ),
        path(
            f"{root}<path:rest>",
            login_not_required(scim_discovery.NotServed.as_view()),
            name=f"{prefix}-not-served",
        ),
    ]


# Two mounts of the same pages, each its own application namespace, so reversing one never
# resolves to the other through the current request's namespace.
console = ("config.console_urls", "console")
org_console = ("config.console_urls", "org-console")

urlpatterns = [
    path("healthz", health, name="health"),
    path("readyz", observability_views.readyz, name="ready"),
    path("metrics", observability_views.metrics, name="metrics"),
    path("", login_not_required(RedirectView.as_view(url="/t/acme/console/", permanent=False))),
    path("t/<slug:tenant>/login/", identity_views.login_view, name="login"),
    path("t/<slug:tenant>/logout/", identity_views.logout_view, name="logout"),
    path("t/<slug:tenant>/o/<uuid:org>/login/", identity_views.login_view, name="org-login"),
    path("t/<slug:tenant>/o/<uuid:org>/logout/", identity_views.logout_view, name="org-logout"),
    path("t/<slug:tenant>/oauth2/jwks", oauth_metadata.jwks, name="jwks"),
    # /authorize goes through impersonation first (subject tokens), then identity.
    path("t/<slug:tenant>/oauth2/authorize", impersonation_views.authorize, name="oauth2-authorize"),
    path(
        "t/<slug:tenant>/oauth2/authorize/impersonate",
        impersonation_views.confirm,
        name="impersonation-confirm",
    ),
    path("t/<slug:tenant>/impersonation/end", impersonation_views.end, name="impersonation-end"),
    path(
        "t/<slug:tenant>/api/impersonation/v1/end", impersonation_views.end_api, name="impersonation-end-api"
    ),
    path("t/<slug:tenant>/oauth2/authorize/consent", oauth_views.authorize_consent, name="oauth2-consent"),
    path("t/<slug:tenant>/oauth2/token", oauth_views.token, name="oauth2-token"),
    path("t/<slug:tenant>/oauth2/revoke", oauth_views.revoke, name="oauth2-revoke"),
    path("t/<slug:tenant>/oauth2/introspect", oauth_views.introspect, name="oauth2-introspect"),
    path("t/<slug:tenant>/oauth2/userinfo", oauth_views.userinfo, name="oauth2-userinfo"),
    path(
        "t/<slug:tenant>/oauth2/token/.well-known/openid-configuration",
        oauth_metadata.discovery,
        name="oidc-discovery",
    ),
    path(
        "t/<slug:tenant>/.well-known/openid-configuration",
        oauth_metadata.discovery,
        name="oidc-discovery-root",
    ),
    path("t/<slug:tenant>/oidc/logout", oauth_views.logout, name="oidc-logout"),
    path(
        "t/<slug:tenant>/api/users/v1/me/organizations",
        login_not_required(identity_me_api.MyOrganizations.as_view()),
        name="api-me-organizations",
    ),
    # SCIM 2.0 users (identity/api/), the impersonation configuration (impersonation/api.py);
    # the OpenAPI schema of actas's APIs at /api/schema/ (YAML; ?format=json for JSON).
    path("api/schema/", login_not_required(SpectacularAPIView.as_view()), name="api-schema"),
    # SCIM 2.0 (RFC 7644) at the root organization (scim2/) and a switched token's child
    # organization (o/scim2/): users, discovery, and a SCIM 404 for anything else there.
    *scim_routes("t/<slug:tenant>/scim2/", prefix="scim", child=False),
    *scim_routes("t/<slug:tenant>/o/scim2/", prefix="org-scim", child=True),
    path(
        "t/<slug:tenant>/api/server/v1/configs/impersonation",
        login_not_required(impersonation_api.ImpersonationConfig.as_view()),
        name="api-impersonation-config",
    ),
    path(
        "t/<slug:tenant>/o/api/server/v1/configs/impersonation",
        login_not_required(impersonation_api.OrgImpersonationConfig.as_view()),
        name="org-api-impersonation-config",
    ),
    path(
        "t/<slug:tenant>/o/<uuid:org>/oauth2/authorize",
        impersonation_views.authorize,
        name="org-oauth2-authorize",
    ),
    path(
        "t/<slug:tenant>/o/<uuid:org>/oauth2/authorize/impersonate",
        impersonation_views.confirm,
        name="org-impersonation-confirm",
    ),
    path(
        "t/<slug:tenant>/o/<uuid:org>/oauth2/authorize/consent",
        oauth_views.authorize_consent,
        name="org-oauth2-consent",
    ),
    path("t/<slug:tenant>/o/<uuid:org>/oauth2/token", oauth_views.token, name="org-oauth2-token"),
    path("t/<slug:tenant>/console/", include(console, namespace="console")),
    path("t/<slug:tenant>/o/<uuid:org>/console/", include(org_console, namespace="org-console")),
    path("t/<slug:tenant>/myaccount/", include(("myaccount.urls", "myaccount"), namespace="myaccount")),
    path(
        "t/<slug:tenant>/o/<uuid:org>/myaccount/",
        include(("myaccount.urls", "org-myaccount"), namespace="org-myaccount"),
    ),
]
