"""RFC 8693 token exchange for impersonation, as an oauthlib grant (DESIGN §5.2).

``subject_token`` (a single-use subject token with ``may_act``) + ``actor_token`` (an ID token
the requesting client received for a live SSO session of the same impersonator) → an access
token for the subject with ``act``, and a refresh token when the client may refresh.
Registered through ``ACTAS_OAUTH_GRANT_TYPES``; errors per DESIGN's table.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from oauth2_provider.models import IDToken
from oauthlib.common import Request
from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc6749.grant_types.base import GrantTypeBase

from config.prepared import Prepared
from identity import tokens
from identity.models import Application, OAuthAuthorization, User
from identity.oauth import claims as oauth_claims
from identity.oauth.bearer import live_access_token
from identity.oauth.validator import endpoint_context
from identity.selectors import (
    application_available_in,
    impersonated_scopes,
    oauth_user_scopes,
    user_is_member,
)
from impersonation import policy
from impersonation.models import ImpersonationSession, SubjectToken
from impersonation.services import (
    SUBJECT_TOKEN_TYP,
    impersonation_begin,
    impersonation_guard,
    impersonation_refused,
    subject_token_consume,
)
from organizations.selectors import org_get_in_tenant, org_is_descendant, org_is_usable

log = logging.getLogger("actas.impersonation")

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105 (a URN)
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 (a URN)
REFUSED = "The token exchange was refused."

# The actor token must be an ID token actas recorded for this client and user.
_recorded_id_token = Prepared(
    lambda jti, application_id, user_id: IDToken.objects.filter(
        jti=jti, application_id=application_id, user_id=user_id
    ).only("pk")[:1],
    jti=uuid.UUID,
    application_id=int,
    user_id=uuid.UUID,
)

# An organization switch of an impersonated token reads its impersonation.
_impersonation_of_subject = Prepared(
    lambda pk, subject_id: ImpersonationSession.objects.select_related(
        "impersonator", "subject", "organization", "application", "sso_session"
    ).filter(pk=pk, subject_id=subject_id),
    pk=uuid.UUID,
    subject_id=uuid.UUID,
)

MAX_TOKEN = 16_384


def _invalid_target(request: Request, description: str) -> errors.CustomOAuth2Error:
    return errors.CustomOAuth2Error("invalid_target", description=description, request=request)


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _client_for_grant(grant: GrantTypeBase, request: Request, *, required: tuple[str, ...]) -> None:
    """The parameters are there, the client authenticates (confidential) or is known (public),
    and it may use this grant — else the OAuth error (RFC 6749 §5.2)."""
    for name in required:
        if not getattr(request, name, None):
            raise errors.InvalidRequestError(description=f"Missing {name}.", request=request)
    validator = grant.request_validator
    if validator.client_authentication_required(request):
        if not validator.authenticate_client(request):
            raise errors.InvalidClientError(request=request)
    elif not validator.authenticate_client_id(request.client_id, request):
        raise errors.InvalidClientError(request=request)
    request.client_id = request.client_id or request.client.client_id
    grant.validate_grant_type(request)


class TokenExchangeGrant(GrantTypeBase):
    def create_token_response(self, request: Request, token_handler: Any) -> tuple[dict[str, str], str, int]:
        headers = self._get_default_headers()
        try:
            self._authenticate(request)
            claims = self._check_tokens(request)
        except errors.OAuth2Error as error:
            headers.update(error.headers)
            return headers, error.json, error.status_code
        client: Application = request.client
        refusal: policy.Refused | None = None
        try:
            # Used up first, outside the savepoint below: a refused exchange burns the token
            # too. This takes the sign-in's SSO session lock, held to the end of the token
            # view's transaction, so concurrent exchanges of one sign-in run one at a time.
            row = subject_token_consume(jti=str(claims["subject"]["jti"]), application=client)
            if row is None:
                raise policy.Refused(
                    "subject-token-unusable", "The subject token is unknown, expired or used."
                )
            with transaction.atomic():
                token = self._issue(request, token_handler, claims, row)
        except policy.Refused as caught:
            refusal = caught
        except errors.OAuth2Error as error:
            headers.update(error.headers)
            return headers, error.json, error.status_code
        if refusal is not None:
            context = endpoint_context(request)
            impersonation_refused(
                actor=User.objects.filter(pk=claims["actor"]["sub"]).first(),
                org=context[1] if context else client.organization,
                application=client,
                refusal=refusal,
                subject_id=str(claims["subject"].get("sub", "")),
                stage="token-exchange",
            )
            refused = errors.InvalidRequestError(description=REFUSED, request=request)
            headers.update(refused.headers)
            return headers, refused.json, refused.status_code
        return headers, json.dumps(token), 200

    # --- validation ---------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> None:
        _client_for_grant(
            self, request, required=("subject_token", "subject_token_type", "actor_token", "actor_token_type")
        )
        client = request.client
        if not isinstance(client, Application) or not client.subject_token_enabled:
            raise errors.UnauthorizedClientError(request=request)
        if request.subject_token_type != JWT_TYPE or request.actor_token_type != ID_TOKEN_TYPE:
            raise errors.InvalidRequestError(description="Unsupported token type.", request=request)
        wanted = getattr(request, "requested_token_type", None)
        if wanted and wanted != ACCESS_TOKEN_TYPE:
            raise errors.InvalidRequestError(
                description="Only access tokens can be requested.", request=request
            )

    def _verify(
        self,
        request: Request,
        raw: str,
        *,
        typ: str,
        required: tuple[str, ...],
        max_age: int | None,
        target_errors: bool,
    ) -> dict[str, Any]:
        """``target_errors``: a wrong issuer or audience answers ``invalid_target`` (the subject
        token, RFC 8693 §2.2.2); for the actor token it is ``invalid_request``."""
        context = endpoint_context(request)
        if context is None or not isinstance(raw, str) or len(raw) > MAX_TOKEN:
            raise errors.InvalidRequestError(description=REFUSED, request=request)
        try:
            return tokens.verify(
                raw,
                typ=typ,
                issuer=oauth_claims.issuer_for(context[0]),
                audience=request.client.client_id,
                required=required,
                max_age=max_age,
            )
        except tokens.TokenError as error:
            log.info("token exchange: %s", error.reason)
            if target_errors and error.kind in ("issuer", "audience"):
                raise _invalid_target(request, "The token was not issued for this client.") from error
            raise errors.InvalidRequestError(description=REFUSED, request=request) from error

    def _check_tokens(self, request: Request) -> dict[str, Any]:
        client: Application = request.client
        subject = self._verify(
            request,
            request.subject_token,
            typ=SUBJECT_TOKEN_TYP,
            required=("exp", "iat", "iss", "sub", "aud", "jti"),
            max_age=client.subject_token_expiry,
            target_errors=True,
        )
        may_act = subject.get("may_act")
        if not isinstance(may_act, dict) or not isinstance(may_act.get("sub"), str) or not may_act["sub"]:
            raise errors.InvalidRequestError(
                description="The subject token allows no actor.", request=request
            )
        actor = self._verify(
            request,
            request.actor_token,
            typ=oauth_claims.ID_TOKEN_TYP,
            required=("exp", "iat", "iss", "sub", "aud", "jti", "sid"),
            max_age=client.id_token_lifetime,
            target_errors=False,
        )
        if "act" in actor or "may_act" in actor:
            raise errors.InvalidRequestError(description=REFUSED, request=request)
        if not constant_time_compare(str(actor["sub"]), may_act["sub"]):
            raise errors.InvalidRequestError(
                description="The actor is not the one the subject token allows.", request=request
            )
        try:  # an ID token's jti and sub are UUIDs; anything else is no ID token of ours
            jti, sub = uuid.UUID(str(actor["jti"])), uuid.UUID(str(actor["sub"]))
        except ValueError:
            raise errors.InvalidRequestError(description=REFUSED, request=request) from None
        if _recorded_id_token.first(jti=jti, application_id=client.pk, user_id=sub) is None:
            raise errors.InvalidRequestError(description=REFUSED, request=request)
        return {"subject": subject, "actor": actor}

    # --- issuing --------------------------------------------------------------------------------

    def _issue(
        self, request: Request, token_handler: Any, claims: dict[str, Any], row: SubjectToken
    ) -> dict[str, Any]:
        client: Application = request.client
        subject_claims, actor_claims = claims["subject"], claims["actor"]
        if str(row.impersonator_id) != actor_claims["sub"] or str(row.subject_id) != subject_claims["sub"]:
            raise policy.Refused("subject-token-mismatch", "The tokens do not belong together.")
        # The subject token's sign-in, as row-locked by subject_token_consume: it must be the
        # actor token's (its sid), live, and the impersonator's.
        session = row.sso_session
        if (
            not constant_time_compare(session.sid, str(actor_claims["sid"]))
            or session.ended_at is not None
            or session.expires_at <= timezone.now()
            or session.user_id != row.impersonator_id
        ):
            raise policy.Refused("sso-session", "The impersonator's sign-in is not live.")
        if client.client_type == Application.CLIENT_PUBLIC:
            verifier = getattr(request, "code_verifier", None) or ""
            if not row.code_challenge or not constant_time_compare(_s256(verifier), row.code_challenge):
                raise policy.Refused("pkce", "The code verifier does not match the authorization request.")
        context = endpoint_context(request)
        if context is None or context[1].pk not in (row.organization_id, context[0].pk):
            raise policy.Refused("endpoint-organization", "Exchanged at another organization's endpoint.")
        impersonation, attempt = impersonation_begin(
            actor=row.impersonator,
            subject_id=str(row.subject_id),
            org=row.organization,
            application=client,
            sso_session=session,
            reason=row.reason,
            read_only=row.read_only,
            channel=ImpersonationSession.Channel.TOKEN_EXCHANGE,
            requested_scopes=row.scope.split(),
            subject=row.subject,
            sso_session_locked=True,
        )
        scopes = attempt.approved_scopes
        if request.scope:
            asked = set(str(request.scope).replace(",", " ").split())
            scopes = [s for s in scopes if s in asked]
        assert attempt.subject is not None
        authorization = OAuthAuthorization.objects.create(
            application=client,
            user=attempt.subject,
            organization=row.organization,
            sso_session=session,
            scope=" ".join(scopes),
            impersonator=row.impersonator,
            impersonation_id=impersonation.pk,
            read_only=row.read_only,
        )
        request.user = attempt.subject
        request.scopes = scopes
        request.actas_org = row.organization
        request.actas_authorization = authorization
        request.actas_extra_claims = authorization.act_claims
        request.actas_expires_cap = max(0, int((impersonation.expires_at - timezone.now()).total_seconds()))
        token = token_handler.create_token(
            request, refresh_token=client.allows_grant_type(Application.GRANT_REFRESH_TOKEN_TYPE)
        )
        token["issued_token_type"] = ACCESS_TOKEN_TYPE
        self.request_validator.save_token(token, request)
        return dict(token)


def token_exchange_grant(request_validator: Any) -> TokenExchangeGrant:
    return TokenExchangeGrant(request_validator)


ORG_SWITCH = "organization_switch"


class OrganizationSwitchGrant(GrantTypeBase):
    """``organization_switch`` (DESIGN §5.5): a token of the tenant's organization → a token for
    one of its descendants, for the same user, with the scopes the user's roles give there
    through the shared application. ``act`` and ``impersonation_id`` carry over; the
    impersonator needs no membership in the target organization."""

    def create_token_response(self, request: Request, token_handler: Any) -> tuple[dict[str, str], str, int]:
        headers = self._get_default_headers()
        try:
            # No savepoint of its own: a refusal that ended the impersonation (the guard) must
            # stay ended; the token view's transaction commits it with the error answer.
            token = self._switch(request, token_handler)
        except errors.OAuth2Error as error:
            headers.update(error.headers)
            return headers, error.json, error.status_code
        return headers, json.dumps(token), 200

    def _switch(self, request: Request, token_handler: Any) -> dict[str, Any]:
        _client_for_grant(self, request, required=("token", "switching_organization"))
        client: Application = request.client
        context = endpoint_context(request)
        if context is None or context[1].pk != context[0].pk:
            raise errors.InvalidRequestError(
                description="Switch at the tenant's token endpoint.", request=request
            )
        tenant = context[0]
        invalid = errors.InvalidGrantError(request=request)
        raw = request.token if isinstance(request.token, str) and len(request.token) <= MAX_TOKEN else ""
        found = live_access_token(tenant, raw)
        if found is None:
            raise invalid
        claims, stored = found
        # The presented token must be this client's own.
        if stored.application_id != client.pk or not isinstance(stored.user, User):
            raise invalid
        user = stored.user
        source = org_get_in_tenant(tenant=tenant, org_id=str(claims.get("org_id", "")))
        target = org_get_in_tenant(tenant=tenant, org_id=str(request.switching_organization)[:64])
        if source is None or target is None or not org_is_usable(target):
            raise invalid
        # Down the branch the application belongs to, into an organization it is shared with.
        if not org_is_descendant(target, of=source) or not org_is_descendant(
            target, of=client.organization, include_self=True
        ):
            raise invalid
        if not application_available_in(application=client, org=target):
            raise invalid
        if not user_is_member(user=user, org=target):
            raise invalid
        asked = (
            str(request.scope).replace(",", " ").split()
            if request.scope
            else str(claims.get("scope", "")).split()
        )
        scopes = oauth_user_scopes(user=user, application=client, org=target, requested=asked)
        impersonation = None
        if claims.get("impersonation_id"):
            try:
                impersonation_pk = uuid.UUID(str(claims["impersonation_id"]))
            except ValueError:
                raise invalid from None
            impersonation = _impersonation_of_subject.first(pk=impersonation_pk, subject_id=user.pk)
            if impersonation is None:
                raise invalid
            try:
                request.actas_expires_cap = impersonation_guard(session=impersonation, application=client)
            except policy.Refused as refusal:
                raise invalid from refusal
            scopes = impersonated_scopes(scopes, tenant_id=tenant.pk, read_only=impersonation.read_only)
        authorization = OAuthAuthorization.objects.create(
            application=client,
            user=user,
            organization=target,
            sso_session=impersonation.sso_session if impersonation else None,
            scope=" ".join(scopes),
            impersonator=impersonation.impersonator if impersonation else None,
            impersonation_id=impersonation.pk if impersonation else None,
            read_only=impersonation.read_only if impersonation else False,
        )
        request.user = user
        request.scopes = scopes
        request.actas_org = target
        request.actas_authorization = authorization
        request.actas_extra_claims = authorization.act_claims
        token = token_handler.create_token(request, refresh_token=True)
        self.request_validator.save_token(token, request)
        return dict(token)


def organization_switch_grant(request_validator: Any) -> OrganizationSwitchGrant:
    return OrganizationSwitchGrant(request_validator)
