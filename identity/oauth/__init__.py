"""The OAuth 2.0 / OpenID Connect server: DOT's validator and oauthlib server, the token
endpoint as a service with its request context, the authorization and token views."""
