from django.apps import AppConfig


class OAuthConfig(AppConfig):
    """The OAuth 2.0 / OpenID Connect server. It has no models of its own: django-oauth-toolkit's
    swapped ``Application`` (``OAUTH2_PROVIDER_APPLICATION_MODEL = "identity.Application"``) and
    ``OAuthAuthorization`` stay in identity, where the swap was set before the first migration
    and where identity's services revoke what a sign-in produced."""

    name = "identity.oauth"
    label = "oauth"
    verbose_name = "OAuth server"

    def ready(self) -> None:
        from identity.oauth import checks  # noqa: F401  (registers the signing key check)
