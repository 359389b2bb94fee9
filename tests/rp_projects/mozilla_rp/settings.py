"""A Django site signing its users in with mozilla-django-oidc, set up as its documentation says
(https://mozilla-django-oidc.readthedocs.io/en/stable/installation.html), with the
``SessionRefresh`` middleware renewing the sign-in silently (``prompt=none``) once
``OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS`` have passed. The provider comes from the environment
(see ../README.md)."""

from __future__ import annotations

import os

OP = os.environ["RP_OP_URL"].rstrip("/")

SECRET_KEY = "mozilla-rp-test-only-" + "k" * 40  # noqa: S105 (a throwaway test site)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "mozilla_django_oidc",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "mozilla_django_oidc.middleware.SessionRefresh",
]
ROOT_URLCONF = "mozilla_rp.urls"
WSGI_APPLICATION = "mozilla_rp.wsgi.application"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["RP_DATABASE"]}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

AUTHENTICATION_BACKENDS = ["mozilla_django_oidc.auth.OIDCAuthenticationBackend"]
OIDC_RP_CLIENT_ID = os.environ["RP_CLIENT_ID"]
OIDC_RP_CLIENT_SECRET = os.environ["RP_CLIENT_SECRET"]
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_OP_AUTHORIZATION_ENDPOINT = f"{OP}/oauth2/authorize"
OIDC_OP_TOKEN_ENDPOINT = f"{OP}/oauth2/token"
OIDC_OP_USER_ENDPOINT = f"{OP}/oauth2/userinfo"
OIDC_OP_JWKS_ENDPOINT = f"{OP}/oauth2/jwks"
OIDC_RP_SCOPES = "openid email"
OIDC_USE_PKCE = True
OIDC_STORE_ID_TOKEN = True
OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS = int(os.environ.get("RP_RENEW_SECONDS", "900"))
OIDC_TIMEOUT = 15

LOGIN_URL = "oidc_authentication_init"
LOGIN_REDIRECT_URL = "/private/"
LOGIN_REDIRECT_URL_FAILURE = "/signin-failed/"
LOGOUT_REDIRECT_URL = "/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"mozilla_django_oidc": {"level": "DEBUG"}},
}
