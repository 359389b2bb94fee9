"""RFC 8693 token exchange for impersonation, as an oauthlib grant (DESIGN §5.2).

``subject_token`` (a single-use subject token with ``may_act``) + ``actor_token`` (an ID token
the requesting client received for a live SSO session of the same impersonator) → an access
token for the subject with ``act``, and a refresh token when the client may refresh.
Registered through ``ACTAS_OAUTH_GRANT_TYPES``; errors per DESIGN's table.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from oauthlib.common import Request
from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc6749.grant_types.base import GrantTypeBase

from identity.models import Application, OAuthAuthorization, User, UserAssociation
from identity.oauth import claims as oauth_claims
from identity.oauth import rows, tokens
from identity.oauth.bearer import live_access_token
from identity.oauth.context import TokenContext, context_of, mint_of
from identity.selectors.applications import application_api_authorizations, application_available_in
from identity.selectors.permission_map import impersonated_scopes
from identity.selectors.permissions import oauth_user_scopes
from impersonation import policy
from impersonation.models import ImpersonationSession, SubjectToken
from impersonation.selectors import impersonation_read
from impersonation.services import impersonation_begin, impersonation_guard, impersonation_refused
from impersonation.subject_tokens import SUBJECT_TOKEN_TYP, subject_token_claim
from organizations.models import Organization
from organizations.selectors import org_is_descendant

log = logging.getLogger("actas.impersonation")

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105 (a URN)
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 (a URN)
REFUSED = "The token exchange was refused."

MAX_TOKEN = 16_384


def _context(request: Request) -> TokenContext | None:
    """The token request's context (identity.oauth.service built it once)."""
    return context_of(request)


def _invalid_target(request: Request, description: str) -> errors.CustomOAuth2Error:
    return errors.CustomOAuth2Error("invalid_target", description=description, request=request)


def _requested_audience(request: Request, client: Application) -> list[str]:
    """RFC 8693 §2.1's ``audience`` and ``resource`` (each may repeat): where the token is to be
    used. actas serves the client itself and the API resources it is authorized for (by their
    identifier); anything else is ``invalid_target``. The requested ones become the token's
    ``aud`` beside the client id."""
    asked = [v for k, v in (request.decoded_body or []) if k in ("audience", "resource") and v]
    if not asked:
        return []
    served = {client.client_id} | {
        grant.resource.identifier for grant in application_api_authorizations(client)
    }
    unknown = sorted(set(asked) - served)
    if unknown:
        raise _invalid_target(request, f"actas does not serve this audience: {unknown[0][:200]}")
    return [a for a in dict.fromkeys(asked) if a != client.client_id]


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
            claimed = subject_token_claim(
                jti=str(claims["subject"]["jti"]), application=client, actor=claims["actor_token"]
            )
            if claimed is not None and not claimed.actor_recorded:
                # Not an ID token issued to this client for this user: nothing was used up.
                raise errors.InvalidRequestError(description=REFUSED, request=request)
            if claimed is None:
                raise policy.Refused(
                    "subject-token-unusable", "The subject token is unknown, expired or used."
                )
            with transaction.atomic():
                token = self._issue(request, token_handler, claims, claimed.row, bound=claimed.bound)
        except policy.Refused as caught:
            refusal = caught
        except errors.OAuth2Error as error:
            headers.update(error.headers)
            return headers, error.json, error.status_code
        if refusal is not None:
            context = _context(request)
            impersonation_refused(
                actor=User.objects.filter(pk=claims["actor"]["sub"]).first(),
                org=context.org if context else client.organization,
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
        mint_of(request).audience = _requested_audience(request, client)

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
        context = _context(request)
        if context is None or not isinstance(raw, str) or len(raw) > MAX_TOKEN:
            raise errors.InvalidRequestError(description=REFUSED, request=request)
        try:
            return tokens.verify(
                raw,
                typ=typ,
                issuer=oauth_claims.issuer_for(context.tenant),
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
        # Whether the actor token is an ID token recorded for this client and user is read with
        # the subject token (impersonation.subject_tokens.subject_token_claim).
        return {"subject": subject, "actor": actor, "actor_token": (jti, sub)}

    # --- issuing --------------------------------------------------------------------------------

    def _issue(
        self, request: Request, token_handler: Any, claims: dict[str, Any], row: SubjectToken, *, bound: bool
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
        context = _context(request)
        if context is None or context.org.pk not in (row.organization_id, context.tenant.pk):
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
            bound=bound,
        )
        scopes = attempt.approved_scopes
        if request.scope:
            asked = set(str(request.scope).replace(",", " ").split())
            scopes = [s for s in scopes if s in asked]
        assert attempt.subject is not None
        # Written with the tokens, once (identity.oauth.validator: _record_authorization).
        authorization = OAuthAuthorization(
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
        mint = context.mint
        mint.org = row.organization
        mint.authorization = authorization
        mint.unsaved = True
        mint.extra_claims = authorization.act_claims
        if mint.audience:
            mint.extra_claims = {**mint.extra_claims, "aud": [request.client.client_id, *mint.audience]}
        mint.expires_cap = max(0, int((impersonation.expires_at - timezone.now()).total_seconds()))
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
        context = _context(request)
        if context is None or context.org.pk != context.tenant.pk:
            raise errors.InvalidRequestError(
                description="Switch at the tenant's token endpoint.", request=request
            )
        tenant = context.tenant
        mint = context.mint
        invalid = errors.InvalidGrantError(request=request)
        raw = request.token if isinstance(request.token, str) and len(request.token) <= MAX_TOKEN else ""
        # An impersonated token is live while its impersonation is: read once, with the rows
        # the switch needs of it (the same check live_access_token's default makes).
        read: dict[str, ImpersonationSession | None] = {}

        def live_until(impersonation_id: uuid.UUID) -> dt.datetime | None:
            read["impersonation"] = found_impersonation = impersonation_read(impersonation_id)
            if found_impersonation is None or found_impersonation.ended_at is not None:
                return None
            return found_impersonation.expires_at if found_impersonation.expires_at > timezone.now() else None

        found = live_access_token(tenant, raw, live_until=live_until)
        if found is None:
            raise invalid
        claims, stored = found
        # The presented token must be this client's own.
        if stored.application_id != client.pk or not isinstance(stored.user, User):
            raise invalid
        user = stored.user
        orgs = switch_organizations(
            tenant=tenant,
            source_id=str(claims.get("org_id", "")),
            target_id=str(request.switching_organization)[:64],
            user=user,
        )
        if orgs is None:
            raise invalid
        source, target = orgs
        # Down the branch the application belongs to, into an organization it is shared with.
        if not org_is_descendant(target, of=source) or not org_is_descendant(
            target, of=client.organization, include_self=True
        ):
            raise invalid
        if not application_available_in(application=client, org=target):
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
            impersonation = read.get("impersonation")
            if (
                impersonation is None
                or impersonation.pk != impersonation_pk
                or impersonation.subject_id != user.pk
            ):
                raise invalid
            try:
                mint.expires_cap = impersonation_guard(session=impersonation, application=client)
            except policy.Refused as refusal:
                raise invalid from refusal
            scopes = impersonated_scopes(scopes, tenant_id=tenant.pk, read_only=impersonation.read_only)
        # Written with the tokens, once (identity.oauth.validator: _record_authorization).
        authorization = OAuthAuthorization(
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
        mint.org = target
        mint.authorization = authorization
        mint.unsaved = True
        mint.extra_claims = authorization.act_claims
        token = token_handler.create_token(request, refresh_token=True)
        self.request_validator.save_token(token, request)
        return dict(token)


def switch_organizations(
    *, tenant: Organization, source_id: str, target_id: str, user: User
) -> tuple[Organization, Organization] | None:
    """The token's organization and the one to switch to, both of ``tenant``, when the target
    is usable (it and every ancestor active) and ``user`` is a member there (resident or
    shared in): one statement, for what org_get_in_tenant ×2, org_is_usable and
    user_is_member read separately."""
    try:
        source_pk, target_pk = uuid.UUID(source_id), uuid.UUID(target_id)
    except ValueError:
        return None
    org_table = Organization._meta.db_table
    association_table = UserAssociation._meta.db_table

    def db(model: type[Any], name: str, value: Any) -> Any:
        return rows.param(model, name, value)

    sql = (
        f"SELECT {rows.columns(Organization, 't')}, {rows.columns(Organization, 's')}, "  # noqa: S608 (model metadata)
        f"EXISTS (SELECT 1 FROM {org_table} d WHERE d.tree_id = t.tree_id AND d.lft <= t.lft "
        "AND d.rght >= t.rght AND d.status <> %s), "
        f"EXISTS (SELECT 1 FROM {association_table} ua WHERE ua.user_id = %s AND ua.organization_id = t.id) "
        f"FROM {org_table} t LEFT JOIN {org_table} s ON s.id = %s AND s.tenant_id = %s "
        "WHERE t.id = %s AND t.tenant_id = %s"
    )
    found = rows.fetch(
        sql,
        [
            Organization.Status.ACTIVE.value,
            db(User, "id", user.pk),
            db(Organization, "id", source_pk),
            db(Organization, "id", tenant.pk),
            db(Organization, "id", target_pk),
            db(Organization, "id", tenant.pk),
        ],
    )
    if not found:
        return None
    row = found[0]
    width = rows.width(Organization)
    target = rows.instance(Organization, row, 0)
    source = rows.instance(Organization, row, width)
    blocked, associated = bool(row[2 * width]), bool(row[2 * width + 1])
    if target is None or source is None or blocked:
        return None
    if user.organization_id != target.pk and not associated:
        return None
    return source, target


def organization_switch_grant(request_validator: Any) -> OrganizationSwitchGrant:
    return OrganizationSwitchGrant(request_validator)
