"""actas's own REST APIs (DRF), called by applications with actas access tokens.

Every API authenticates with :class:`BearerTokenAuthentication` (signature, ``iss``, ``exp``,
revocation: ``identity.oauth.bearer``), checks the scopes its operations need, and scopes its
results by the token's ``org_id``. Non-GET calls made with an impersonated token are audited
(``identity.api.base.ActasAPIView``). The OpenAPI schema is served at ``/api/schema/``.
"""
