"""actas settings: one file, every value read from the environment with a default.

The defaults are the *embedded* mode a newcomer gets on first run: SQLite, Celery tasks run
eagerly in-process, email printed to the console, a generated development signing key.
Real services are switched on by environment variables:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/actas
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0
    EMAIL_HOST=127.0.0.1 EMAIL_PORT=1025        (SMTP)
    BASE_URL=https://id.example.com
    SECRET_KEY=...                              (required unless DEBUG=1)
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
# The embedded default (SQLite, eager tasks, console email) is only for a first run and tests.
EMBEDDED = "DATABASE_URL" not in os.environ

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (set DEBUG=1 for a local development run)."
        )
    SECRET_KEY = "actas-insecure-development-key-do-not-use-in-production"  # noqa: S105

BASE_URL = os.environ.get("BASE_URL", "http://127.0.0.1:8000").rstrip("/")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [BASE_URL])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "mptt",
    "rest_framework",
    "drf_spectacular",
    "oauth2_provider",
    "organizations",
    "identity.audit",
    "identity.notifications",
    "identity",
    "identity.oauth",
    "identity.api",
    "impersonation",
    "myaccount",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files from STATIC_ROOT (after collectstatic): compressed, hashed names cached for a
    # year. In development (DEBUG) it finds them in the apps' folders, as runserver does.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "identity.middleware.RequestContextMiddleware",
    # Latency per route, the request's tenant and organization in the logs, the access log.
    "config.observability.middleware.ObservabilityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "identity.middleware.SSOSessionMiddleware",
    "identity.middleware.TenantLoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "impersonation.context_processors.impersonation",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif env_bool("DB_PREPARED_STATEMENTS", True):
    # Server-side parameter binding with psycopg's automatic prepared statements: a statement
    # run a few times on a connection is planned once. The permission question and the token
    # grants repeat the same statements on every request, and planning them (joins over roles,
    # assignments and scopes) was most of PostgreSQL's CPU per token request (measured: a token
    # exchange ~26 -> ~5 ms of backend CPU). Set DB_PREPARED_STATEMENTS=0 behind a connection
    # pooler in transaction mode (PgBouncer < 1.21), which cannot keep prepared statements.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        server_side_binding=True, prepare_threshold=env_int("DB_PREPARE_THRESHOLD", 2)
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "identity.User"
AUTHENTICATION_BACKENDS = ["identity.backends.TenantUserBackend"]
# Usernames are unique within their resident organization, not globally; our backend
# resolves them per tenant, so Django's global-uniqueness warning does not apply.
SILENCED_SYSTEM_CHECKS = ["auth.W004"]

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "identity.hashers.ClientSecretHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Outside development the pages link to content-hashed names from collectstatic's manifest
    # (a deployment runs `manage.py collectstatic`); WhiteNoise serves them compressed.
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

HTTPS = BASE_URL.startswith("https://")
# Cookies of actas's own: a Django application on the same host keeps its `sessionid` and
# `csrftoken` apart from these. Under HTTPS the `__Host-` prefix pins them to this host (Secure,
# Path=/, no Domain: browsers refuse the cookie otherwise).
SESSION_COOKIE_NAME = "__Host-actas_session" if HTTPS else "actas_session"
CSRF_COOKIE_NAME = "__Host-actas_csrf" if HTTPS else "actas_csrf"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
if HTTPS:
    if env_int("ACTAS_TRUSTED_PROXIES", 0) > 0:
        # Behind the TLS proxy of the Deploy section, which sets X-Forwarded-Proto (trusted only
        # when a proxy is declared: a client could write the header itself).
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Load balancers probe the health and readiness checks, and Prometheus scrapes, over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# --- Content Security Policy (Django's ContentSecurityPolicyMiddleware) ---------------------
# Nothing inline, nothing from elsewhere, never framed. Pages whose forms end in a redirect to
# a client's redirect URI (sign-in, authorize/consent, the impersonation confirmation, logout)
# drop ``form-action``: Chromium applies it to every redirect after a form submission, so
# ``'self'`` would block the hop back to the application (identity/csp.py). The 500 page is
# self-contained (no static files): its one inline stylesheet is allowed by its hash.


def _style_hashes(template: Path) -> list[str]:
    import base64
    import hashlib
    import re

    text = template.read_text(encoding="utf-8") if template.exists() else ""
    return [
        f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
        for body in re.findall(r"<style>(.*?)</style>", text, flags=re.S)
    ]


SECURE_CSP = {
    "default-src": ["'self'"],
    "style-src": ["'self'", *_style_hashes(BASE_DIR / "templates" / "500.html")],
    "img-src": ["'self'", "data:"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
}

# --- Rate limits (identity/ratelimit.py) -----------------------------------------------------
# Fixed-window request counters per client address, in the shared cache: "<requests>/<seconds>".
# ACTAS_RATE_LIMITS_ENABLED=0 switches them all off (benchmarks); ACTAS_RATE_LIMIT_<NAME>
# overrides one (e.g. ACTAS_RATE_LIMIT_TOKEN=5000/60).
ACTAS_RATE_LIMITS_ENABLED = env_bool("ACTAS_RATE_LIMITS_ENABLED", True)
ACTAS_RATE_LIMITS = {
    name: os.environ.get(f"ACTAS_RATE_LIMIT_{name.upper()}", default)
    for name, default in {"token": "1200/60", "introspect": "6000/60", "signin": "60/60"}.items()
}

# --- Audit retention (manage.py audit_purge) -------------------------------------------------
# Events older than this many days are exported to JSON Lines and then deleted by
# `manage.py audit_purge --export-dir DIR`; 0 keeps them forever.
ACTAS_AUDIT_RETENTION_DAYS = env_int("ACTAS_AUDIT_RETENTION_DAYS", 400)

# The cache holds the sign-in failure budgets, so every worker process must share it: Redis
# when configured (REDIS_URL, or else a Redis Celery broker), local memory only in the
# embedded single-process default.
_broker = os.environ.get("CELERY_BROKER_URL", "")
REDIS_URL = os.environ.get("REDIS_URL") or (_broker if _broker.startswith(("redis://", "rediss://")) else "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "actas",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "memory://")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", "")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", "CELERY_BROKER_URL" not in os.environ)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
ACTAS_CLIENT_SECRET_KEY = os.environ.get("ACTAS_CLIENT_SECRET_KEY", "")

CELERY_BEAT_SCHEDULE = {
    "audit-verify-chains": {"task": "identity.tasks.audit_verify_all", "schedule": 3600.0},
    "outbox-requeue": {"task": "identity.tasks.outbox_requeue", "schedule": 30.0},
}
# Publishing must fail fast when the broker is down (the outbox keeps the work).
CELERY_BROKER_CONNECTION_TIMEOUT = 1.0
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 5}

# --- Email --------------------------------------------------------------------------------
# Django 6.1's MAILERS (EMAIL_BACKEND and friends are deprecated).
if os.environ.get("EMAIL_HOST"):
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": os.environ["EMAIL_HOST"],
                "port": env_int("EMAIL_PORT", 25),
                "username": os.environ.get("EMAIL_HOST_USER") or None,
                "password": os.environ.get("EMAIL_HOST_PASSWORD") or None,
                "use_tls": env_bool("EMAIL_USE_TLS", False),
                "timeout": env_int("EMAIL_TIMEOUT", 10),
            },
        }
    }
else:
    # Printed to the console, decoded, so the links in an email can be copied.
    MAILERS = {"default": {"BACKEND": "identity.notifications.console.ReadableConsoleBackend"}}
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "actas <no-reply@actas.local>")

# --- OAuth 2.0 / OIDC (django-oauth-toolkit) ----------------------------------------------
OAUTH2_PROVIDER_APPLICATION_MODEL = "identity.Application"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth2_provider.AccessToken"  # noqa: S105 (a model name)
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth2_provider.RefreshToken"  # noqa: S105
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oauth2_provider.IDToken"  # noqa: S105
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"
OAUTH2_PROVIDER = {
    # Client secrets are generated high-entropy values; a keyed fast hash is enough and keeps
    # the token endpoint free of a password KDF (PBKDF2 costs ~0.7 s per request here).
    "CLIENT_SECRET_HASHER": "client_secret_hmac",
    # actas's server (only the grants it supports, JWT access tokens) and validator
    # (tenant-scoped clients, several grants per app, per-app lifetimes, our key set).
    "OAUTH2_SERVER_CLASS": "identity.oauth.server.ActasServer",
    "OAUTH2_VALIDATOR_CLASS": "identity.oauth.validator.ActasOAuth2Validator",
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    # Refresh tokens rotate; presenting a used one revokes its whole family.
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    # Tokens are stored by checksum only (RFC 9700 §4.14), never in clear.
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    # The rest of RFC 9700's behaviours (DOT's deploy checks W001-W005): no implicit or password
    # grant (actas's server registers neither), access tokens only in the Authorization header,
    # and authorization responses carry `iss` (RFC 9207; identity.oauth.web.client_redirect).
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    # Served over HTTPS, redirect URIs must be https too, unless ACTAS_ALLOW_HTTP_REDIRECT_URIS
    # keeps http for native apps' loopback addresses (RFC 8252) and development.
    "ALLOWED_REDIRECT_URI_SCHEMES": (
        ["https"] if HTTPS and not env_bool("ACTAS_ALLOW_HTTP_REDIRECT_URIS", False) else ["http", "https"]
    ),
    "REQUEST_APPROVAL_PROMPT": "force",
}
if HTTPS and not SECURE_HSTS_PRELOAD:
    # Asking browsers to preload the domain as HTTPS-only is the domain owner's decision (and
    # hard to undo): off unless SECURE_HSTS_PRELOAD=1, so `check --deploy` need not say so.
    SILENCED_SYSTEM_CHECKS = [*SILENCED_SYSTEM_CHECKS, "security.W021"]
# Extension grants and response types plugged into the OAuth server by other apps
# (name -> dotted path of a factory taking the request validator).
ACTAS_OAUTH_GRANT_TYPES: dict[str, str] = {
    "urn:ietf:params:oauth:grant-type:token-exchange": "impersonation.grants.token_exchange_grant",
    "organization_switch": "impersonation.grants.organization_switch_grant",
}
# Response types answered by an extension's view in front of /authorize (listed in discovery).
ACTAS_OAUTH_EXTRA_RESPONSE_TYPES = ["subject_token", "id_token subject_token"]
# Who a sign-in is for (a bound impersonation), and the re-checks before minting under one.
ACTAS_OAUTH_PRINCIPAL_RESOLVER = "impersonation.hooks.resolve_principal"
ACTAS_OAUTH_MINT_GUARD = "impersonation.hooks.mint_guard"
ACTAS_SSO_SESSION_END_HOOKS = ["impersonation.hooks.on_sso_session_end"]
ACTAS_SSO_IMPERSONATION = "impersonation.hooks.impersonation_of"
ACTAS_IMPERSONATION_LIVE_UNTIL = "impersonation.hooks.live_until"
ACTAS_IMPERSONATION_READ_ONLY = "impersonation.hooks.read_only"
ACTAS_IMPERSONATION_REVALIDATE = "impersonation.hooks.revalidate"

# --- REST framework -----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "UNAUTHENTICATED_USER": None,
    # SCIM views render SCIM errors, the configs API WSO2-style ones (identity/api/base.py).
    "EXCEPTION_HANDLER": "identity.api.base.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# OpenAPI 3 schema of actas's own APIs, served at /api/schema/ (YAML; ?format=json for JSON).
SPECTACULAR_SETTINGS = {
    "TITLE": "actas API",
    "DESCRIPTION": (
        "actas's own APIs: SCIM 2.0 users (/t/{tenant}/scim2/Users, /Me, /o/scim2/Users for a "
        "switched token's child organization), the impersonation configuration "
        "(/t/{tenant}/api/server/v1/configs/impersonation) and the organizations a user may "
        "switch to. Every call needs an actas access token (Authorization: Bearer)."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "COMPONENT_SPLIT_PATCH": False,
}

# --- actas --------------------------------------------------------------------------------
# Sign-in failure budgets (identity/authenticators.py), counted over a window from the first
# failure: per account and client address (past it that address is refused for that account;
# the name is kept from when the budget was per user), per client address (refused for every
# account), and per account from all addresses, past which an address that has already failed
# for the account waits between attempts (1 s, doubling, up to the maximum).
ACTAS_LOGIN_MAX_FAILURES_PER_USER = env_int("ACTAS_LOGIN_MAX_FAILURES_PER_USER", 5)
ACTAS_LOGIN_MAX_FAILURES_PER_IP = env_int("ACTAS_LOGIN_MAX_FAILURES_PER_IP", 30)
ACTAS_LOGIN_FAILURE_WINDOW = env_int("ACTAS_LOGIN_FAILURE_WINDOW", 15 * 60)
ACTAS_LOGIN_ACCOUNT_DELAY_AFTER = env_int("ACTAS_LOGIN_ACCOUNT_DELAY_AFTER", 10)
ACTAS_LOGIN_ACCOUNT_DELAY_MAX = env_int("ACTAS_LOGIN_ACCOUNT_DELAY_MAX", 60)
# How many reverse proxies sit in front of actas. With N > 0 the client address is the N-th
# entry from the right of X-Forwarded-For (each proxy appends the address it saw); with 0
# the header is ignored, since a client could write anything there.
ACTAS_TRUSTED_PROXIES = env_int("ACTAS_TRUSTED_PROXIES", 0)
# Directory of the JWT signing key set (identity/oauth/tokens.py). Required outside the embedded
# default; `manage.py rotate_signing_key` creates and rotates it.
ACTAS_SIGNING_KEYS_DIR = os.environ.get("ACTAS_SIGNING_KEYS_DIR", "")
ACTAS_EMAIL_OTP_MAX_SENDS = env_int("ACTAS_EMAIL_OTP_MAX_SENDS", 5)  # per user and window
ACTAS_SSO_SESSION_MAX_AGE = env_int("ACTAS_SSO_SESSION_MAX_AGE", 8 * 3600)
ACTAS_CONSOLE_PAGE_SIZE = env_int("ACTAS_CONSOLE_PAGE_SIZE", 25)

# --- Observability (config/observability/, README: Deploy → Observability) --------------------
# /metrics: 404 unless ACTAS_METRICS=1; with ACTAS_METRICS_TOKEN it asks for that Bearer token.
ACTAS_METRICS = env_bool("ACTAS_METRICS", False)
ACTAS_METRICS_TOKEN = os.environ.get("ACTAS_METRICS_TOKEN", "")
# OpenTelemetry tracing of requests (exporter from the standard OTEL_* variables).
ACTAS_OTEL = env_bool("ACTAS_OTEL", False)
# LOG_FORMAT=json: one JSON object per line, with request_id, tenant and org (text otherwise).
# ACTAS_ACCESS_LOG=1: a line per request (logger actas.request, INFO) whatever LOG_LEVEL says.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text").strip().lower()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request": {"()": "config.observability.logs.RequestFilter"}},
    "formatters": {
        "text": {"format": "%(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request"],
            "formatter": "json" if LOG_FORMAT == "json" else "text",
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
    "loggers": {"actas.request": {"level": "INFO"}} if env_bool("ACTAS_ACCESS_LOG", False) else {},
}
