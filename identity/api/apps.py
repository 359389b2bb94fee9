from django.apps import AppConfig


class APIConfig(AppConfig):
    """The REST APIs (My Account's ``/me``, SCIM) over identity's services; no models."""

    name = "identity.api"
    label = "api"
    verbose_name = "APIs"
