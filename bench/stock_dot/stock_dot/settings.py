"""A minimal Django project serving stock django-oauth-toolkit, as `startproject` would, for the
benchmark baseline. Configuration comes from the environment set by bench/run.py:

    STOCK_DOT_DATABASE   PostgreSQL database name (on 127.0.0.1:5432, user postgres, trust auth)
    STOCK_DOT_OIDC_KEY   path of an RSA private key (PEM) for DOT's OIDC ID tokens
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("SECRET_KEY", "stock-dot-bench-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "oauth2_provider",
    "stock_dot",
]
# The default `startproject` stack (admin-less).
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "stock_dot.urls"
WSGI_APPLICATION = "stock_dot.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("STOCK_DOT_DATABASE", "stock_dot_bench"),
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": "5432",
        # Same as actas's default (DB_CONN_MAX_AGE=60): one persistent connection per worker.
        "CONN_MAX_AGE": 60,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LOGIN_URL = "/accounts/login/"

_key_path = os.environ.get("STOCK_DOT_OIDC_KEY", "")
OAUTH2_PROVIDER = {
    "OIDC_ENABLED": bool(_key_path),
    "OIDC_RSA_PRIVATE_KEY": Path(_key_path).read_text() if _key_path else "",
    "SCOPES": {"openid": "OpenID Connect", "read": "Read"},
    "DEFAULT_SCOPES": ["read"],
    "ACCESS_TOKEN_EXPIRE_SECONDS": 3600,
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
