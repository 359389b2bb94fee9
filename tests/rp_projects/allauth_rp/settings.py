"""A Django site signing its users in with django-allauth's generic OpenID Connect provider, set
up as its documentation says
(https://docs.allauth.org/en/latest/socialaccount/providers/openid_connect.html): one app, its
``server_url`` the provider's issuer, PKCE on. The provider comes from the environment (see
../README.md)."""

from __future__ import annotations

import os

OP = os.environ["RP_OP_URL"].rstrip("/")

SECRET_KEY = "allauth-rp-test-only-" + "k" * 40  # noqa: S105 (a throwaway test site)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]
ROOT_URLCONF = "allauth_rp.urls"
WSGI_APPLICATION = "allauth_rp.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["RP_DATABASE"]}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [
            {
                "provider_id": "actas",
                "name": "actas",
                "client_id": os.environ["RP_CLIENT_ID"],
                "secret": os.environ["RP_CLIENT_SECRET"],
                "settings": {"server_url": f"{OP}/oauth2/token"},
            }
        ],
    }
}
# actas says ``email_verified: false`` (it does not verify addresses); this site sends no
# confirmation emails of its own either.
ACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_REQUESTS_TIMEOUT = 15

LOGIN_REDIRECT_URL = "/private/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}
