"""The oauthlib server actas runs (named by DOT's ``OAUTH2_SERVER_CLASS``).

It registers only what actas supports: the authorization code grant (OIDC-aware, PKCE with
S256 only), refresh tokens (rotating, with ID tokens), client credentials, and the extension
grants other apps plug in through settings (``ACTAS_OAUTH_GRANT_TYPES``: name -> dotted path
of a factory taking the validator; response types answered by an extension's own view in front
of /authorize are listed in ``ACTAS_OAUTH_EXTRA_RESPONSE_TYPES``), so
``identity`` never imports ``impersonation``. Access tokens are JWTs (``typ: at+jwt``) minted
here with the claims of DESIGN §4; refresh tokens are opaque random strings.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string
from oauthlib.common import Request
from oauthlib.oauth2.rfc6749 import errors, utils
from oauthlib.oauth2.rfc6749.endpoints import (
    AuthorizationEndpoint,
    ResourceEndpoint,
    RevocationEndpoint,
    TokenEndpoint,
)
from oauthlib.oauth2.rfc6749.grant_types import (
    AuthorizationCodeGrant as OAuth2AuthorizationCodeGrant,
)
from oauthlib.oauth2.rfc6749.grant_types import ClientCredentialsGrant
from oauthlib.oauth2.rfc6749.grant_types.authorization_code import code_challenge_method_s256
from oauthlib.oauth2.rfc6749.tokens import BearerToken, random_token_generator
from oauthlib.openid.connect.core.grant_types import AuthorizationCodeGrant, RefreshTokenGrant
from oauthlib.openid.connect.core.grant_types.dispatchers import (
    AuthorizationCodeGrantDispatcher,
    AuthorizationTokenGrantDispatcher,
)

from identity.models import Application, User
from identity.oauth import claims as oauth_claims
from identity.oauth import tokens
from identity.oauth.context import ContextRequest, TokenContext, context_of, mint_of

S256_ONLY = {"S256": code_challenge_method_s256}


def access_token_expires_in(request: Request) -> int:
    """The client's access-token lifetime, never past a cap an extension grant set (an
    impersonation session's end)."""
    client = request.client
    lifetime = client.access_token_lifetime if isinstance(client, Application) else 3600
    cap = mint_of(request).expires_cap
    if isinstance(cap, int):
        lifetime = min(lifetime, max(cap, 0))
    return int(lifetime)


def access_token_generator(request: Request) -> str:
    """Mint the access token JWT for the request's client, user, organization and scopes."""
    context = context_of(request)
    if context is None:
        raise errors.InvalidRequestError(request=request)
    mint = context.mint
    org = mint.org
    user = request.user if isinstance(request.user, User) else None
    if org is None and user is None:
        org = request.client.organization  # client credentials: the application's own
    if org is None:
        raise errors.InvalidGrantError(request=request)
    expires_in = getattr(request, "expires_in", None) or access_token_expires_in(request)
    claims = oauth_claims.access_token_claims(
        tenant=context.tenant,
        org=org,
        client=request.client,
        user=user,
        scopes=request.scopes or [],
        issued_at=int(timezone.now().timestamp()),
        expires_in=int(expires_in),
        extra=mint.extra_claims,
    )
    return tokens.mint(claims, typ=oauth_claims.ACCESS_TOKEN_TYP)


class ActasBearerToken(BearerToken):
    """A refresh token only for clients allowed the refresh_token grant (oauthlib's grants
    would hand one to everyone)."""

    def create_token(self, request: Request, refresh_token: bool = False, **kwargs: Any) -> Any:
        client = request.client
        allowed = isinstance(client, Application) and client.allows_grant_type(
            Application.GRANT_REFRESH_TOKEN_TYPE
        )
        return super().create_token(request, refresh_token=refresh_token and allowed, **kwargs)


def _factories(setting: str) -> dict[str, Any]:
    return {name: import_string(path) for name, path in getattr(settings, setting, {}).items()}


class ActasServer(AuthorizationEndpoint, TokenEndpoint, ResourceEndpoint, RevocationEndpoint):
    def __init__(self, request_validator: Any, *args: Any, **kwargs: Any) -> None:
        self.bearer = ActasBearerToken(
            request_validator,
            token_generator=access_token_generator,
            expires_in=access_token_expires_in,
            refresh_token_generator=random_token_generator,
        )
        auth_grant = OAuth2AuthorizationCodeGrant(request_validator)
        auth_grant._code_challenge_methods = S256_ONLY
        oidc_grant = AuthorizationCodeGrant(request_validator)
        oidc_grant.proxy_target._code_challenge_methods = S256_ONLY
        self.refresh_grant = RefreshTokenGrant(request_validator)
        self.credentials_grant = ClientCredentialsGrant(request_validator)

        response_types: dict[str, Any] = {
            "code": AuthorizationCodeGrantDispatcher(default_grant=auth_grant, oidc_grant=oidc_grant)
        }
        AuthorizationEndpoint.__init__(
            self, default_response_type="code", response_types=response_types, default_token_type=self.bearer
        )

        grant_types: dict[str, Any] = {
            Application.GRANT_AUTHORIZATION_CODE_TYPE: AuthorizationTokenGrantDispatcher(
                request_validator, default_grant=auth_grant, oidc_grant=oidc_grant
            ),
            Application.GRANT_REFRESH_TOKEN_TYPE: self.refresh_grant,
            Application.GRANT_CLIENT_CREDENTIALS_TYPE: self.credentials_grant,
        }
        for name, factory in _factories("ACTAS_OAUTH_GRANT_TYPES").items():
            grant_types[name] = factory(request_validator)
        TokenEndpoint.__init__(
            self,
            default_grant_type=Application.GRANT_AUTHORIZATION_CODE_TYPE,
            grant_types=grant_types,
            default_token_type=self.bearer,
        )
        ResourceEndpoint.__init__(
            self,
            default_token="Bearer",  # noqa: S106 (a token type)
            token_types={"Bearer": self.bearer},
        )
        RevocationEndpoint.__init__(self, request_validator)

    def token_response(
        self, context: TokenContext | None, uri: str, http_method: str, body: str, headers: dict[str, str]
    ) -> tuple[dict[str, str], str, int]:
        """oauthlib's ``create_token_response`` with the request's context: the grant and the
        validator read the tenant, organization and client from it (``identity.oauth.service``)."""
        request = ContextRequest(uri, http_method=http_method, body=body, headers=headers, context=context)
        self.validate_token_request(request)
        request.scopes = utils.scope_to_list(request.scope)
        request.extra_credentials = None
        handler = self.grant_types.get(request.grant_type, self.default_grant_type_handler)
        result: tuple[dict[str, str], str, int] = handler.create_token_response(
            request, self.default_token_type
        )
        return result

    def _authorization_handler(self, request: Request) -> Any:
        return self.response_types.get(request.response_type, self.default_response_type_handler)

    def authorization_validate(
        self, context: TokenContext, uri: str, http_method: str, body: str, headers: dict[str, str]
    ) -> tuple[list[str], dict[str, Any]]:
        """oauthlib's ``validate_authorization_request`` with the context the authorize view
        built (tenant, organization, the client read with the tenant): the validator reads them
        from it instead of resolving the URL and reading the client again."""
        request = ContextRequest(uri, http_method=http_method, body=body, headers=headers, context=context)
        request.scopes = utils.scope_to_list(request.scope)
        result: tuple[list[str], dict[str, Any]] = self._authorization_handler(
            request
        ).validate_authorization_request(request)
        return result

    def authorization_create(
        self, context: TokenContext, uri: str, scopes: list[str], credentials: dict[str, Any]
    ) -> tuple[dict[str, str], str | None, int]:
        """oauthlib's ``create_authorization_response`` with the authorize view's context."""
        request = ContextRequest(uri, http_method="GET", body=None, headers=None, context=context)
        request.scopes = scopes
        request.user = None
        for key, value in credentials.items():
            setattr(request, key, value)
        result: tuple[dict[str, str], str | None, int] = self._authorization_handler(
            request
        ).create_authorization_response(request, self.default_token_type)
        return result

    @property
    def supported_response_types(self) -> list[str]:
        return sorted({*self.response_types, *getattr(settings, "ACTAS_OAUTH_EXTRA_RESPONSE_TYPES", [])})

    @property
    def supported_grant_types(self) -> list[str]:
        return sorted(self.grant_types)
