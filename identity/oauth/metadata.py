"""The published metadata of a tenant's OpenID provider: the discovery document (OpenID
Connect Discovery 1.0 / RFC 8414) and the public signing keys (RFC 7517). Both are public,
cacheable and readable from any origin."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_http_methods

from identity.access import access_tenant
from identity.models import OPEN_SCOPES
from identity.oauth import claims as oauth_claims
from identity.oauth import tokens
from identity.oauth.web import oauth


@login_not_required
@require_http_methods(["GET"])
def discovery(request: HttpRequest, tenant: str) -> JsonResponse:
    tenant_org = access_tenant(handle=tenant)
    server = oauth.get_oauthlib_core().server
    issuer = oauth_claims.issuer_for(tenant_org)
    base = issuer.rsplit("/oauth2/token", 1)[0]
    algorithms = sorted({key.alg for key in tokens.current_keyset().keys.values()})
    document = {
        "issuer": issuer,
        "authorization_endpoint": f"{base}/oauth2/authorize",
        "token_endpoint": issuer,
        "userinfo_endpoint": f"{base}/oauth2/userinfo",
        "jwks_uri": f"{base}/oauth2/jwks",
        "revocation_endpoint": f"{base}/oauth2/revoke",
        "introspection_endpoint": f"{base}/oauth2/introspect",
        "end_session_endpoint": f"{base}/oidc/logout",
        "response_types_supported": server.supported_response_types,
        "response_modes_supported": ["query", "fragment"],
        "grant_types_supported": server.supported_grant_types,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algorithms,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "scopes_supported": sorted(OPEN_SCOPES),
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "amr",
            "sid",
            "isk",
            "azp",
            "org_id",
            "org_name",
            "user_org",
            "act",
            *oauth_claims.PROFILE_CLAIMS,
            *oauth_claims.EMAIL_CLAIMS,
        ],
        "prompt_values_supported": ["none", "login", "consent"],
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "claims_parameter_supported": False,
        "frontchannel_logout_supported": False,
        "backchannel_logout_supported": False,
    }
    response = JsonResponse(document)
    response["Cache-Control"] = "public, max-age=300"
    response["Access-Control-Allow-Origin"] = "*"
    return response


@login_not_required
@require_GET
def jwks(request: HttpRequest, tenant: str) -> JsonResponse:
    """The tenant's public signing keys (RFC 7517), cacheable, readable from any origin."""
    access_tenant(handle=tenant)
    response = JsonResponse(tokens.jwks())
    response["Cache-Control"] = "public, max-age=300"
    response["Access-Control-Allow-Origin"] = "*"
    return response
