"""django-oauth-toolkit's request validator, extended for actas.

What changes from DOT (see ../shared/reference/dot-notes.md):

* Every endpoint belongs to a tenant (and maybe a child organization) named in its URL: a
  client is found only within that tenant, and only where it is available.
* An application allows several grant types; an unknown grant or one the client is not
  allowed gives ``unauthorized_client``, never an assertion.
* Each sign-in's context (organization, SSO session) lives in an ``OAuthAuthorization`` that
  codes and refresh-token families point to; a replayed code revokes what it produced.
* ID tokens are signed by ``identity.oauth.tokens`` with the tenant's key set (never DOT's
  jwcrypto key); per-application lifetimes; PKCE S256, mandatory where the app says so.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone
from oauth2_provider.exceptions import FatalClientError
from oauth2_provider.models import AccessToken, IDToken, RefreshToken
from oauth2_provider.settings import oauth2_settings
from oauthlib.common import Request
from oauthlib.oauth2.rfc6749 import errors

from identity.models import Application, OAuthAuthorization, SSOSession, User
from identity.oauth import claims as oauth_claims
from identity.oauth import rows
from identity.oauth.claims import oauth_id_token_issue
from identity.oauth.context import authorization_of, context_of, endpoint_context, mint_of
from identity.oauth.queries import refresh_token_retire
from identity.oauth.validator_codes import IMPERSONATION_REFRESH, CodeValidator
from identity.selectors.applications import application_available_in, application_of_tenant
from identity.selectors.permission_map import impersonated_scopes
from identity.selectors.permissions import oauth_client_scopes, oauth_user_scopes
from organizations.models import Organization
from organizations.selectors import org_is_usable

log = logging.getLogger("actas.oauth")


class ActasOAuth2Validator(CodeValidator):
    # --- clients ----------------------------------------------------------------------------

    def _authenticate_basic_auth(self, request: Request) -> bool:
        # DOT decodes the credentials with base64.b64decode, which raises ValueError (not the
        # binascii.Error DOT catches) for non-ASCII input: a bad header, not a server error.
        try:
            return bool(super()._authenticate_basic_auth(request))
        except ValueError:
            return False

    def _load_application(self, client_id: str, request: Request) -> Application | None:
        client = getattr(request, "client", None)
        if isinstance(client, Application) and client.client_id == client_id:
            return client
        request.client = None
        context = endpoint_context(request)
        if context is None or not isinstance(client_id, str) or not client_id or "\x00" in client_id:
            return None
        tenant, org = context
        token_context = context_of(request)
        app: Application | None
        if (
            token_context is not None
            and token_context.client is not None
            and token_context.client.client_id == client_id
        ):
            # Read with the tenant by the endpoint (identity.oauth.service, .web).
            app = token_context.client
        else:
            app = application_of_tenant(tenant=tenant, client_id=client_id)
        if app is None or not org_is_usable(app.organization):
            return None
        if not application_available_in(application=app, org=org):
            return None
        request.client = app
        return app

    def validate_grant_type(
        self,
        client_id: str,
        grant_type: str,
        client: Application,
        request: Request,
        *args: Any,
        **kwargs: Any,
    ) -> bool:
        if not isinstance(client, Application) or not client.allows_grant_type(grant_type):
            return False
        if grant_type == Application.GRANT_CLIENT_CREDENTIALS_TYPE:
            # An application's own token is for its own organization: asked for at the
            # endpoint of that organization or of the tenant, never of another one.
            context = endpoint_context(request)
            return context is not None and context[1].pk in (client.organization_id, context[0].pk)
        return True

    def validate_response_type(
        self,
        client_id: str,
        response_type: str,
        client: Application,
        request: Request,
        *args: Any,
        **kwargs: Any,
    ) -> bool:
        if response_type == "code":
            return client.allows_grant_type(Application.GRANT_AUTHORIZATION_CODE_TYPE)
        return False

    def validate_redirect_uri(
        self, client_id: str, redirect_uri: str, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        """Exact string match with a registered URI (RFC 9700 §4.1.1): no added query, no
        prefix, no loopback port games."""
        client = request.client
        return isinstance(client, Application) and redirect_uri in client.redirect_uris.split()

    def confirm_redirect_uri(
        self,
        client_id: str,
        code: str,
        redirect_uri: str,
        client: Application,
        request: Request,
        *args: Any,
        **kwargs: Any,
    ) -> bool:
        grant = self._grant(code, client, request)
        return grant is not None and grant.redirect_uri == redirect_uri

    def is_pkce_required(self, client_id: str, request: Request) -> bool:
        client = getattr(request, "client", None)
        if not isinstance(client, Application):
            return True
        return bool(client.pkce_required or client.client_type == Application.CLIENT_PUBLIC)

    # --- scopes -----------------------------------------------------------------------------

    def validate_scopes(
        self,
        client_id: str,
        scopes: list[str],
        client: Application,
        request: Request,
        *args: Any,
        **kwargs: Any,
    ) -> bool:
        # oauthlib turns an empty scope string into [""].
        scopes = [s for s in scopes if s]
        if any(len(s) > 150 for s in scopes):
            return False
        if request.grant_type == Application.GRANT_CLIENT_CREDENTIALS_TYPE:
            granted = oauth_client_scopes(application=client, requested=scopes)
            return granted is not None
        decided = getattr(request, "actas_granted", None)
        if decided is not None:
            # Issuing a code: exactly the scopes the authorize view decided, nothing oauthlib
            # may have read back from the request's own parameters.
            return sorted(set(scopes)) == sorted(set(decided))
        # Validating an authorization request: the scopes are narrowed to what the user may
        # have once they are known (identity.oauth.views); nothing is refused for asking.
        return True

    def get_default_scopes(self, client_id: str, request: Request, *args: Any, **kwargs: Any) -> list[str]:
        return []

    def get_original_scopes(
        self, refresh_token: str, request: Request, *args: Any, **kwargs: Any
    ) -> list[str]:
        """A refresh never carries more than the user holds *now*: a role taken away since the
        first sign-in is gone from the next token."""
        original = super().get_original_scopes(refresh_token, request, *args, **kwargs)
        original = original.split() if isinstance(original, str) else list(original)
        authorization = authorization_of(request)
        user = request.user
        if authorization is None or not isinstance(user, User):
            return []
        scopes = oauth_user_scopes(
            user=user,
            application=authorization.application,
            org=authorization.organization,
            requested=original,
        )
        if authorization.impersonator_id is not None:
            scopes = impersonated_scopes(
                scopes, tenant_id=authorization.organization.tenant_id, read_only=authorization.read_only
            )
        return scopes

    # --- tokens -----------------------------------------------------------------------------

    def save_bearer_token(self, token: dict[str, Any], request: Request, *args: Any, **kwargs: Any) -> None:
        # DOT opens a transaction of its own here; inside the token service's (every grant runs
        # in one: identity.oauth.service.token_request) that is a savepoint, two statements per
        # grant for nothing: the tokens stand or fall with the request either way.
        with transaction.atomic(savepoint=False):
            self._save_bearer_token(token, request, *args, **kwargs)
            self._record_authorization(request)
            authorization = authorization_of(request)
            if (
                request.grant_type == Application.GRANT_REFRESH_TOKEN_TYPE
                and authorization is not None
                and authorization.impersonator_id is not None
                and isinstance(request.user, User)
            ):
                self._audit_impersonated(
                    authorization,
                    action=IMPERSONATION_REFRESH,
                    subject=request.user,
                    scopes=str(token.get("scope", "")).split(),
                )

    def _save_bearer_token(self, token: dict[str, Any], request: Request, *args: Any, **kwargs: Any) -> None:
        """DOT's, but a rotation retires the presented refresh token with one conditional
        UPDATE (which also takes its row lock: of two concurrent rotations exactly one goes on)
        and deletes its access token in one more statement, instead of DOT's seven."""
        previous = getattr(request, "refresh_token_instance", None)
        if not (
            token.get("refresh_token")
            and isinstance(previous, RefreshToken)
            and self.rotate_refresh_token(request)
            and previous.revoked is None
        ):
            super()._save_bearer_token(token, request, *args, **kwargs)
            return
        if "scope" not in token:
            raise FatalClientError("Failed to renew access token: missing scope")
        self._check_and_set_request_resource(request)
        expires = timezone.now() + dt.timedelta(
            seconds=token.get("expires_in", oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS)
        )
        if not refresh_token_retire(previous):
            raise errors.InvalidGrantError(request=request)
        request.refresh_token_instance = None
        access_token = self._create_access_token(expires, request, token, source_refresh_token=previous)
        self._create_refresh_token(request, token["refresh_token"], access_token, previous)

    def _record_authorization(self, request: Request) -> None:
        """The authorization remembers its first access token and its refresh family: one
        INSERT for an authorization made by this request (exchange, switch), one UPDATE for a
        code's; a refresh has both already (its family) or needs none (a later access token is
        revoked with the family)."""
        mint = mint_of(request)
        authorization = mint.authorization
        if authorization is None:
            return
        if mint.unsaved:
            authorization.first_access_token_id = mint.access_token_id
            authorization.refresh_family = mint.refresh_family
            authorization.save(force_insert=True)
            mint.unsaved = False
            return
        if request.grant_type == Application.GRANT_REFRESH_TOKEN_TYPE:
            return
        changes: dict[str, Any] = {}
        if authorization.first_access_token_id is None and mint.access_token_id is not None:
            changes["first_access_token_id"] = mint.access_token_id
        if authorization.refresh_family is None and mint.refresh_family is not None:
            changes["refresh_family"] = mint.refresh_family
        if changes:
            OAuthAuthorization.objects.filter(
                pk=authorization.pk, **{f"{name}__isnull": True for name in changes}
            ).update(**changes)
            for name, value in changes.items():
                setattr(authorization, name, value)

    def _create_access_token(
        self, expires: dt.datetime, request: Request, token: dict[str, Any], source_refresh_token: Any = None
    ) -> AccessToken:
        id_token = getattr(request, "id_token", None)
        access_token = AccessToken(
            user=request.user if isinstance(request.user, User) else None,
            scope=token["scope"],
            expires=expires,
            id_token=id_token if isinstance(id_token, IDToken) else None,
            application=request.client,
            source_refresh_token=source_refresh_token,
            resource=getattr(request, "resource", []),
        )
        self._set_token_value(access_token, token["access_token"])
        mint = mint_of(request)
        if token.get("refresh_token") and self.rotate_refresh_token(request):
            # Written with its refresh token, in one statement (_create_refresh_token).
            mint.pending_access_token = access_token
            return access_token
        access_token.save()
        mint.access_token_id = access_token.pk
        return access_token

    def _create_refresh_token(
        self,
        request: Request,
        refresh_token_code: str,
        access_token: AccessToken,
        previous_refresh_token: Any,
    ) -> RefreshToken:
        mint = mint_of(request)
        if previous_refresh_token is not None and previous_refresh_token.token_family:
            family = previous_refresh_token.token_family
        else:
            family = mint.refresh_family or uuid.uuid4()
        mint.refresh_family = family
        refresh_token = RefreshToken(
            user=request.user,
            application=request.client,
            access_token=access_token,
            token_family=family,
            resource=getattr(request, "resource", []),  # RFC 8707
        )
        self._set_token_value(refresh_token, refresh_token_code)
        if mint.pending_access_token is not None and mint.pending_access_token is access_token:
            assert isinstance(access_token, AccessToken)
            linked: list[tuple[Any, str]] = [(refresh_token, "access_token")]
            authorization = mint.authorization
            if authorization is not None and mint.unsaved:
                # Made by this request (exchange, switch): written with its tokens, knowing
                # its first access token and refresh family.
                authorization.refresh_family = family
                linked.append((authorization, "first_access_token"))
            rows.insert_linked(access_token, linked)
            mint.unsaved = False
            mint.pending_access_token = None
            mint.access_token_id = access_token.pk
        else:
            refresh_token.save()
        return refresh_token

    def get_oidc_issuer_endpoint(self, request: Request) -> str:
        context = endpoint_context(request)
        if context is None:
            raise errors.InvalidRequestError(request=request)
        return oauth_claims.issuer_for(context[0])

    def finalize_id_token(
        self, id_token: dict[str, Any], token: dict[str, Any], token_handler: Any, request: Request
    ) -> str:
        context = context_of(request)
        mint = mint_of(request)
        authorization = mint.authorization
        org = mint.org
        user = request.user
        if context is None or not isinstance(org, Organization) or not isinstance(user, User):
            raise errors.ServerError(description="token context missing", request=request)
        if "nonce" not in id_token and request.nonce:
            id_token["nonce"] = request.nonce
        session = mint.sso_session
        if session is None and authorization is not None:
            session = authorization.sso_session
        signed, stored = oauth_id_token_issue(
            tenant=context.tenant,
            org=org,
            client=request.client,
            user=user,
            scopes=request.scopes,
            session=session if isinstance(session, SSOSession) else None,
            base=id_token,
            extra=mint.extra_claims,
            # Under impersonation no token outlives the session.
            expires_cap=mint.expires_cap,
        )
        request.id_token = stored
        request.access_token = stored
        return signed

    def _load_id_token(self, token: str) -> IDToken | None:
        # DOT's version reads the token with the client's jwcrypto key; actas never accepts
        # an ID token as a bearer credential (its server registers no JWT token type).
        return None

    # oauthlib asks these for prompt=none; the authorize view decides before it gets here.
    def validate_silent_login(self, request: Request) -> bool:
        return True

    def validate_silent_authorization(self, request: Request) -> bool:
        return True
