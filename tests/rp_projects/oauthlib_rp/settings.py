"""A Django site signing its users in with requests-oauthlib's ``OAuth2Session`` (the
authorization code flow of its "Web Application Flow" documentation, with PKCE) and checking
the ID token with PyJWT (``PyJWKClient`` and ``jwt.decode``), against the provider's
discovery document. The provider comes from the environment (see ../README.md)."""

from __future__ import annotations

import os

# oauthlib refuses plain HTTP unless told otherwise (its documented switch for local testing):
# this site and the provider both listen on the loopback interface.
os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")

OP = os.environ["RP_OP_URL"].rstrip("/")

SECRET_KEY = "oauthlib-rp-test-only-" + "k" * 40  # noqa: S105 (a throwaway test site)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "oauthlib_rp.urls"
WSGI_APPLICATION = "oauthlib_rp.wsgi.application"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["RP_DATABASE"]}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

OIDC_ISSUER = f"{OP}/oauth2/token"
OIDC_CLIENT_ID = os.environ["RP_CLIENT_ID"]
OIDC_CLIENT_SECRET = os.environ["RP_CLIENT_SECRET"]
OIDC_SCOPES = ["openid", "profile", "email"]
LOGIN_URL = "/login/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}
