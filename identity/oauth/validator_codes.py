"""Authorization codes and refresh tokens of actas's DOT validator (the base of
:class:`identity.oauth.validator.ActasOAuth2Validator`, which adds clients, scopes and tokens).

A code is stored by checksum and used once; a replayed code revokes what it produced (RFC 6749
§4.1.2). A refresh token is refused once its authorization, its SSO session or its
impersonation has ended, and the refusal is audited."""

import datetime as dt
import json
from typing import Any

from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import Grant, RefreshToken, refresh_token_expire_timedelta
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.common import Request
from oauthlib.oauth2.rfc6749 import errors, utils

from identity.audit.services import audit_record, audit_refusal
from identity.hooks import MintRefused, Principal, PrincipalRefused, mint_guard
from identity.models import Application, OAuthAuthorization, SSOSession, User
from identity.oauth import claims as oauth_claims
from identity.oauth.context import endpoint_context, mint_of
from identity.oauth.queries import code_claim, grant_by_code, refresh_lookup
from identity.selectors.users import user_is_member
from identity.services.oauth import oauth_authorization_revoke
from organizations.models import Organization
from organizations.selectors import org_is_usable

# Audit actions of what is minted under an impersonation (besides its start, the exchange).
IMPERSONATION_SIGN_IN = "impersonation-sign-in"
IMPERSONATION_REFRESH = "impersonation-token-refresh"


class CodeValidator(OAuth2Validator):
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
        authorization = code_claim(checksum, client)
        claimed = authorization is not None
        if authorization is None:
            # Not claimed now: unknown, another client's, or a replay (read to revoke it).
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

    def _grant_by_code(self, code: str, request: Request) -> Grant | None:
        """DOT's Grant row for ``code`` with its user, read once per token request (DOT reads
        it five times)."""
        if not isinstance(code, str) or not code or len(code) > 255:
            return None
        mint = mint_of(request)
        if mint.grant is not None and mint.grant.code == code:
            return mint.grant
        grant = grant_by_code(code)
        mint.grant = grant
        return grant

    def _grant(self, code: str, client: Application, request: Request) -> Grant | None:
        """The Grant row of ``code`` if it was issued to ``client``."""
        grant = self._grant_by_code(code, request)
        if grant is None or not isinstance(client, Application) or grant.application_id != client.pk:
            return None
        return grant

    def _check_and_set_request_resource(self, request: Request) -> None:
        """DOT's RFC 8707 handling, with the code's Grant row as read once for the request
        (DOT reads it again here)."""
        if request.grant_type != Application.GRANT_AUTHORIZATION_CODE_TYPE:
            super()._check_and_set_request_resource(request)
            return
        grant_type = request.grant_type
        request.grant_type = "actas:normalize-only"  # DOT's normalizing and URI checks only
        try:
            super()._check_and_set_request_resource(request)
        finally:
            request.grant_type = grant_type
        grant = self._grant(request.code, request.client, request)
        grant_resource = (grant.resource or []) if grant else []
        if request.resource and grant_resource:
            for res in request.resource:
                if res not in grant_resource:
                    raise errors.CustomOAuth2Error(
                        error="invalid_target",
                        description=(
                            f"The requested resource '{res}' is not allowed. "
                            "Token request cannot escalate resource permissions beyond the "
                            "original authorization grant"
                        ),
                        request=request,
                    )
        elif grant_resource:
            self._validate_resource_uris(request, grant_resource)
            request.resource = grant_resource

    def get_authorization_code_scopes(
        self, client_id: str, code: str, redirect_uri: str, request: Request
    ) -> list[str]:
        grant = self._grant_by_code(code, request)
        return utils.scope_to_list(grant.scope) if grant is not None and grant.scope else []

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
        mint = mint_of(request)
        mint.authorization = authorization
        mint.org = authorization.organization
        mint.extra_claims = authorization.act_claims
        if cap is not None:
            mint.expires_cap = cap
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
        found = refresh_lookup(refresh_token)
        live = found is not None and self._refresh_live(found[0], refresh_token, client, request)
        if not live:
            # Unknown, revoked (a reuse: DOT revokes its family), expired or another client's:
            # DOT's own checks, to the letter.
            if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
                self._audit_refresh_refused(refresh_token, request)
                return False
            found = refresh_lookup(refresh_token)
            if found is None:
                return False
        assert found is not None
        rt: RefreshToken = request.refresh_token_instance
        if rt.created + dt.timedelta(seconds=client.refresh_token_lifetime) <= timezone.now():
            return False
        authorization = found[1]
        if authorization is not None and authorization.application_id == client.pk:
            authorization.application = client
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

    def _refresh_live(
        self, rt: RefreshToken, refresh_token: str, client: Application, request: Request
    ) -> bool:
        """DOT's ``validate_refresh_token`` for a live, unrevoked token read by
        :func:`refresh_lookup` (its access token and user with it): not revoked, paired with an
        access token, within DOT's expiry, this client's. Anything else: False (DOT decides)."""
        if rt.revoked is not None or rt.access_token_id is None or rt.application_id != client.pk:
            return False
        expire_delta = refresh_token_expire_timedelta()
        if expire_delta and rt.access_token.expires + expire_delta <= timezone.now():
            return False
        rt.application = client
        request.user = rt.user
        request.refresh_token = refresh_token
        request.refresh_token_instance = rt
        return True

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
