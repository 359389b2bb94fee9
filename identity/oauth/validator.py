"""django-oauth-toolkit's request validator, extended for actas.

What changes from DOT (see ../shared/reference/dot-notes.md):

* Every endpoint belongs to a tenant (and maybe a child organization) named in its URL: a
  client is found only within that tenant, and only where it is available.
* An application allows several grant types; an unknown grant or one the client is not
  allowed gives ``unauthorized_client``, never an assertion.
* Each sign-in's context (organization, SSO session) lives in an ``OAuthAuthorization`` that
  codes and refresh-token families point to; a replayed code revokes what it produced.
* ID tokens are signed by ``identity.tokens`` with the tenant's key set (never DOT's
  jwcrypto key); per-application lifetimes; PKCE S256, mandatory where the app says so.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.urls import Resolver404, resolve
from django.utils import timezone
from oauth2_provider.models import AccessToken, Grant, IDToken, RefreshToken
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.common import Request
from oauthlib.oauth2.rfc6749 import errors

from config.prepared import Prepared, PreparedUpdate
from identity.models import Application, OAuthAuthorization, SSOSession, User
from identity.oauth import claims as oauth_claims
from identity.oauth.hooks import MintRefused, Principal, PrincipalRefused, mint_guard
from identity.selectors import (
    application_available_in,
    impersonated_scopes,
    oauth_client_scopes,
    oauth_user_scopes,
    user_is_member,
)
from identity.services.audit import audit_record, audit_refusal
from identity.services.oauth import oauth_authorization_revoke, oauth_id_token_issue
from organizations.models import Organization
from organizations.selectors import org_get_in_tenant, org_is_usable, tenant_get

log = logging.getLogger("actas.oauth")


# Every token, introspection and revocation request reads its client: compiled once per connection.
_client_in_tenant = Prepared(
    lambda client_id, tenant_id: (
        Application.objects.select_related("organization")
        .filter(client_id=client_id, organization__tenant_id=tenant_id)
        .order_by()[:1]
    ),
    client_id=str,
    tenant_id=uuid.UUID,
)


# The authorization row remembers its first access token and its refresh family (set once).
_authorization_first_token = PreparedUpdate(
    lambda pk, token_id: (
        OAuthAuthorization.objects.filter(pk=pk, first_access_token__isnull=True),
        {"first_access_token_id": token_id},
    ),
    pk=int,
    token_id=int,
)
_authorization_family = PreparedUpdate(
    lambda pk, family: (
        OAuthAuthorization.objects.filter(pk=pk, refresh_family__isnull=True),
        {"refresh_family": family},
    ),
    pk=int,
    family=uuid.UUID,
)


# Every refresh reads the authorization of its token family (refresh_family is unique), and
# the impersonator the refresh is audited under, if any.
_authorization_of_family = Prepared(
    lambda family: OAuthAuthorization.objects.select_related(
        "organization", "sso_session", "application", "impersonator"
    ).filter(refresh_family=family, revoked_at__isnull=True),
    family=uuid.UUID,
)

# Audit actions of what is minted under an impersonation (besides its start, the exchange).
IMPERSONATION_SIGN_IN = "impersonation-sign-in"
IMPERSONATION_REFRESH = "impersonation-token-refresh"


def endpoint_context(request: Request) -> tuple[Organization, Organization] | None:
    """(tenant, organization) of the endpoint the request was sent to, from its URL."""
    cached = getattr(request, "actas_endpoint", None)
    if cached is not None:
        return cached or None
    found: tuple[Organization, Organization] | tuple[()] = ()
    try:
        match = resolve(urlsplit(request.uri).path)
    except Resolver404:
        match = None
    handle = match.kwargs.get("tenant") if match else None
    tenant = tenant_get(handle=handle) if isinstance(handle, str) else None
    if tenant is not None and org_is_usable(tenant):
        org_id = match.kwargs.get("org") if match else None
        org = tenant if org_id is None else org_get_in_tenant(tenant=tenant, org_id=org_id)
        if org is not None and (org is tenant or org_is_usable(org)):
            found = (tenant, org)
    request.actas_endpoint = found
    return found or None


def authorization_of(request: Request) -> OAuthAuthorization | None:
    return getattr(request, "actas_authorization", None)


class ActasOAuth2Validator(OAuth2Validator):
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
        app = _client_in_tenant.first(client_id=client_id[:255], tenant_id=tenant.pk)
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

    # --- authorization codes ----------------------------------------------------------------

    def save_authorization_code(
        self, client_id: str, code: dict[str, str], request: Request, *args: Any, **kwargs: Any
    ) -> None:
        org = getattr(request, "actas_org", None)
        if not isinstance(org, Organization):
            raise errors.ServerError(description="authorization context missing", request=request)
        session = getattr(request, "actas_sso_session", None)
        principal = getattr(request, "actas_principal", None)
        if isinstance(principal, Principal):
            # DOT put the browser's user here; under impersonation the code is the target's.
            request.user = principal.user
        with transaction.atomic():
            super().save_authorization_code(client_id, code, request, *args, **kwargs)
            authorization = OAuthAuthorization.objects.create(
                application=request.client,
                user=request.user,
                organization=org,
                sso_session=session if isinstance(session, SSOSession) else None,
                scope=" ".join(request.scopes),
                code_checksum=oauth_claims.token_checksum(code["code"]),
                impersonator=principal.impersonator if isinstance(principal, Principal) else None,
                impersonation_id=principal.impersonation_id if isinstance(principal, Principal) else None,
                read_only=principal.read_only if isinstance(principal, Principal) else False,
            )
            if authorization.impersonator_id is not None:
                # A browser bound to an impersonation signed in to an application as the
                # target: recorded here, with the browser's address, once per sign-in.
                self._audit_impersonated(
                    authorization, action=IMPERSONATION_SIGN_IN, subject=request.user, scopes=request.scopes
                )

    def validate_code(
        self, client_id: str, code: str, client: Application, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        """A code is claimed here, at its first presentation, with one conditional UPDATE: of
        two concurrent exchanges exactly one gets it, and any later one is a replay that
        revokes what the code produced (RFC 6749 §4.1.2)."""
        if not isinstance(code, str) or not code or len(code) > 255:
            return False
        checksum = oauth_claims.token_checksum(code)
        claimed = OAuthAuthorization.objects.filter(
            code_checksum=checksum, application=client, code_used_at__isnull=True
        ).update(code_used_at=timezone.now())
        authorization = (
            OAuthAuthorization.objects.select_related("organization", "sso_session", "application")
            .filter(code_checksum=checksum, application=client)
            .first()
        )
        if authorization is None:
            return False
        if not claimed:
            self._code_replayed(authorization, request)
            return False
        grant = self._grant(code, client, request)
        if grant is None or grant.is_expired():
            return False
        # PKCE downgrade (RFC 9700 §4.8.2): a verifier for a code issued without a challenge.
        if getattr(request, "code_verifier", None) and not grant.code_challenge:
            return False
        request.scopes = grant.scope.split(" ") if grant.scope else []
        request.user = grant.user
        if grant.nonce:
            request.nonce = grant.nonce
        if grant.claims:
            request.claims = json.loads(grant.claims)
        context = endpoint_context(request)
        # The code is redeemed at its organization's token endpoint or the tenant's.
        if context is None or context[1].pk not in (authorization.organization_id, context[0].pk):
            return False
        user = request.user
        if not isinstance(user, User) or not user.can_sign_in:
            return False
        return self._use_authorization(authorization, client, request)

    def _grant(self, code: str, client: Application, request: Request) -> Grant | None:
        """DOT's Grant row for ``code``, read once per token request (DOT reads it five times)."""
        cached = getattr(request, "actas_grant", None)
        if isinstance(cached, Grant) and cached.code == code:
            return cached
        grant = Grant.objects.select_related("user").filter(code=code, application=client).first()
        request.actas_grant = grant
        return grant

    def get_code_challenge(self, code: str, request: Request) -> str | None:
        grant = self._grant(code, request.client, request)
        return (grant.code_challenge or None) if grant else None

    def get_code_challenge_method(self, code: str, request: Request) -> str | None:
        grant = self._grant(code, request.client, request)
        return (grant.code_challenge_method or None) if grant else None

    def get_authorization_code_nonce(
        self, client_id: str, code: str, redirect_uri: str, request: Request
    ) -> str | None:
        grant = self._grant(code, request.client, request)
        return (grant.nonce or None) if grant else None

    def _use_authorization(
        self, authorization: OAuthAuthorization, client: Application, request: Request
    ) -> bool:
        """Mint from ``authorization``: its organization, and under impersonation ``act``, the
        session's time limit and the re-checks of the impersonation policy."""
        try:
            cap = mint_guard(authorization=authorization, application=client)
        except (MintRefused, PrincipalRefused):
            return False
        request.actas_authorization = authorization
        request.actas_org = authorization.organization
        request.actas_extra_claims = authorization.act_claims
        if cap is not None:
            request.actas_expires_cap = cap
        return True

    def invalidate_authorization_code(
        self, client_id: str, code: str, request: Request, *args: Any, **kwargs: Any
    ) -> None:
        # The code was claimed in validate_code; the Grant row goes.
        Grant.objects.filter(code=code, application=request.client).delete()

    def _code_replayed(self, authorization: OAuthAuthorization, request: Request) -> None:
        """RFC 6749 §4.1.2: a code used twice revokes the tokens issued from it."""
        oauth_authorization_revoke(actor=None, authorization=authorization, reason="code-replayed")
        audit_refusal(
            org=authorization.organization,
            action="oauth-code-replay",
            actor=None,
            subject=authorization.user,
            target_type="application",
            target_id=authorization.application.client_id,
            data={"authorization": authorization.pk},
        )

    # --- refresh tokens ---------------------------------------------------------------------

    def validate_refresh_token(
        self, refresh_token: str, client: Application, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        if not isinstance(refresh_token, str) or not refresh_token or len(refresh_token) > 255:
            return False
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            self._audit_refresh_refused(refresh_token, request)
            return False
        rt: RefreshToken = request.refresh_token_instance
        if rt.created + dt.timedelta(seconds=client.refresh_token_lifetime) <= timezone.now():
            return False
        authorization = (
            _authorization_of_family.first(family=rt.token_family) if rt.token_family is not None else None
        )
        user = request.user
        if authorization is None or not isinstance(user, User) or not user.can_sign_in:
            return False
        if not user_is_member(user=user, org=authorization.organization):
            return False
        context = endpoint_context(request)
        if context is None or context[1].pk not in (authorization.organization_id, context[0].pk):
            return False
        if not org_is_usable(authorization.organization):
            return False
        return self._use_authorization(authorization, client, request)

    def _audit_refresh_refused(self, refresh_token: str, request: Request) -> None:
        """A revoked refresh token presented again is a reuse: DOT has revoked its family."""
        rt = (
            RefreshToken.objects.filter(
                token_checksum=oauth_claims.token_checksum(refresh_token), revoked__isnull=False
            )
            .select_related("user", "application__organization")
            .first()
        )
        if rt is None or rt.application is None:
            return
        audit_refusal(
            org=rt.application.organization,
            action="oauth-refresh-token-reuse",
            actor=None,
            subject=rt.user,
            target_type="application",
            target_id=rt.application.client_id,
            data={"family": str(rt.token_family) if rt.token_family else ""},
        )

    # --- tokens -----------------------------------------------------------------------------

    def save_bearer_token(self, token: dict[str, Any], request: Request, *args: Any, **kwargs: Any) -> None:
        # DOT opens a transaction of its own here; inside the token view's (every grant runs in
        # one: identity.oauth.views.token) that is a savepoint, two statements per grant for
        # nothing: the tokens stand or fall with the request either way.
        with transaction.atomic(savepoint=False):
            self._save_bearer_token(token, request, *args, **kwargs)
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

    def _audit_impersonated(
        self, authorization: OAuthAuthorization, *, action: str, subject: User, scopes: list[str]
    ) -> None:
        """One event naming the impersonator for a mint under an impersonation, in the mint's
        transaction: it commits with the code or tokens, or neither does."""
        audit_record(
            org=authorization.organization,
            action=action,
            actor=authorization.impersonator,
            impersonator=authorization.impersonator,
            subject=subject,
            target_type="impersonation",
            target_id=authorization.impersonation_id,
            client_id=authorization.application.client_id,
            scopes=" ".join(scopes),
            data={"authorization": authorization.pk, "read_only": authorization.read_only},
        )

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
        access_token.save()
        authorization = authorization_of(request)
        if authorization is not None and authorization.first_access_token_id is None:
            _authorization_first_token.run(pk=authorization.pk, token_id=access_token.pk)
        return access_token

    def _create_refresh_token(
        self,
        request: Request,
        refresh_token_code: str,
        access_token: AccessToken,
        previous_refresh_token: Any,
    ) -> RefreshToken:
        refresh_token = super()._create_refresh_token(
            request, refresh_token_code, access_token, previous_refresh_token
        )
        authorization = authorization_of(request)
        if authorization is not None and authorization.refresh_family is None and refresh_token.token_family:
            _authorization_family.run(pk=authorization.pk, family=refresh_token.token_family)
            authorization.refresh_family = refresh_token.token_family
        return refresh_token

    def get_oidc_issuer_endpoint(self, request: Request) -> str:
        context = endpoint_context(request)
        if context is None:
            raise errors.InvalidRequestError(request=request)
        return oauth_claims.issuer_for(context[0])

    def finalize_id_token(
        self, id_token: dict[str, Any], token: dict[str, Any], token_handler: Any, request: Request
    ) -> str:
        context = endpoint_context(request)
        authorization = authorization_of(request)
        org = getattr(request, "actas_org", None)
        user = request.user
        if context is None or not isinstance(org, Organization) or not isinstance(user, User):
            raise errors.ServerError(description="token context missing", request=request)
        if "nonce" not in id_token and request.nonce:
            id_token["nonce"] = request.nonce
        session = getattr(request, "actas_sso_session", None)
        if session is None and authorization is not None:
            session = authorization.sso_session
        signed, stored = oauth_id_token_issue(
            tenant=context[0],
            org=org,
            client=request.client,
            user=user,
            scopes=request.scopes,
            session=session if isinstance(session, SSOSession) else None,
            base=id_token,
            extra=getattr(request, "actas_extra_claims", None),
            # Under impersonation no token outlives the session.
            expires_cap=getattr(request, "actas_expires_cap", None),
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
