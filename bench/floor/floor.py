"""The floor: the perf-floor kit's `/hello`, `/sign/RS256` and token-exchange-shaped
`/exchange/RS256` endpoints (shared/perf-floor/probe_project), re-created as one module so that
bench/run.py can serve them beside actas and take ratios in the same run. Django with the
default `startproject` middleware stack, DEBUG off, no database; the RSA key is parsed once
at import (path in BENCH_FLOOR_KEY), its public half too.

- `/sign/RS256`: sign the 15-claim payload.
- `/verify-2-sign-1`: the kit's `/exchange/RS256`: POST `subject_token` and `actor_token`, verify
  both (RS256 signature and `aud`; not `exp`, as in the kit), sign the payload with the subject's
  `sub` and the actor's `sub` in `act`.
- `/db/<n>/sign`, `/db/<n>/verify-2-sign-1` (only with BENCH_FLOOR_DB, a PostgreSQL database
  name): the same work plus ``n`` statements in one transaction, the cheapest kind a token
  endpoint issues: ``n - 1`` primary-key reads of a 1,000-row table and one insert of the minted
  token's id, through Django's cursor (psycopg, as actas). What a token endpoint that issues ``n``
  statements could reach at best on this machine (bench/statement_floor.py).

    gunicorn --chdir bench/floor floor:application
"""

import os
import secrets
import time
import uuid
from pathlib import Path

import django
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpResponseBadRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

settings.configure(
    DEBUG=False,
    SECRET_KEY="floor-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
    ],
    MIDDLEWARE=[
        "django.middleware.security.SecurityMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ],
    DATABASES=(
        {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": os.environ["BENCH_FLOOR_DB"],
                "HOST": "127.0.0.1",
                "PORT": "5432",
                "USER": "postgres",
                "CONN_MAX_AGE": 60,
            }
        }
        if os.environ.get("BENCH_FLOOR_DB")
        else {}
    ),
    USE_TZ=True,
)
django.setup()

_loaded = serialization.load_pem_private_key(Path(os.environ["BENCH_FLOOR_KEY"]).read_bytes(), password=None)
if not isinstance(_loaded, rsa.RSAPrivateKey):
    raise SystemExit("BENCH_FLOOR_KEY must be an RSA private key")
KEY: rsa.RSAPrivateKey = _loaded
PUB = KEY.public_key()
AUDIENCE = "https://api.example.org"


def claims(sub: str | None = None, actor: str | None = None) -> dict[str, object]:
    """The kit's 15-claim access-token payload (Asgardeo-like, plus an RFC 8693 `act`)."""
    now = int(time.time())
    return {
        "iss": "https://idp.example.org/t/acme/oauth2/token",
        "sub": sub or "5b6b7c1e-3f0a-4d6c-9a53-2f1e0c9d8b7a",
        "aud": ["Wsoqnf3IQ1iDsZjKaQb7LZ1FKFsa", "https://api.example.org"],
        "azp": "Wsoqnf3IQ1iDsZjKaQb7LZ1FKFsa",
        "client_id": "Wsoqnf3IQ1iDsZjKaQb7LZ1FKFsa",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": str(uuid.uuid4()),
        "scope": "openid profile email internal_user_mgt_view internal_org_user_mgt_list",
        "aut": "APPLICATION_USER",
        "org_id": "10084a8d-113f-4211-a0d5-efe36b082211",
        "org_name": "acme",
        "username": "alice@example.org",
        "act": {"sub": actor or "0d4b2a1c-6e5f-4a3b-8c7d-9e8f7a6b5c4d"},
    }


def hello(request):
    return JsonResponse({"status": "ok", "service": "probe", "version": 1})


def _token_response(token: str) -> JsonResponse:
    response = JsonResponse(
        {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        }
    )
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
def sign(request, alg):
    if alg != "RS256":
        return HttpResponseBadRequest("alg")
    return _token_response(jwt.encode(claims(), KEY, algorithm="RS256", headers={"kid": "k1"}))


@csrf_exempt
def verify_2_sign_1(request):
    """Token-exchange-shaped work: verify the subject and actor tokens, mint one with `act`."""
    if request.method != "POST":
        return HttpResponseBadRequest("POST")
    options = {"verify_exp": False}
    try:
        st = jwt.decode(request.POST["subject_token"], PUB, ["RS256"], audience=AUDIENCE, options=options)
        at = jwt.decode(request.POST["actor_token"], PUB, ["RS256"], audience=AUDIENCE, options=options)
    except (KeyError, jwt.InvalidTokenError) as e:
        return HttpResponseBadRequest(str(e))
    token = jwt.encode(claims(sub=st["sub"], actor=at["sub"]), KEY, algorithm="RS256", headers={"kid": "k1"})
    return _token_response(token)


def _statements(n: int, jti: str) -> None:
    """``n - 1`` primary-key reads and one insert, in one transaction (the caller's)."""
    from django.db import connection

    with connection.cursor() as cursor:
        for _ in range(max(0, n - 1)):
            cursor.execute("SELECT id, v FROM floor_row WHERE id = %s", [secrets.randbelow(1000) + 1])
            cursor.fetchone()
        if n > 0:
            cursor.execute("INSERT INTO floor_token (jti) VALUES (%s)", [jti])


@csrf_exempt
def db_sign(request, n):
    from django.db import transaction

    payload = claims()
    with transaction.atomic():
        _statements(n, str(payload["jti"]))
        token = jwt.encode(payload, KEY, algorithm="RS256", headers={"kid": "k1"})
    return _token_response(token)


@csrf_exempt
def db_verify_2_sign_1(request, n):
    from django.db import transaction

    if request.method != "POST":
        return HttpResponseBadRequest("POST")
    options = {"verify_exp": False}
    try:
        st = jwt.decode(request.POST["subject_token"], PUB, ["RS256"], audience=AUDIENCE, options=options)
        at = jwt.decode(request.POST["actor_token"], PUB, ["RS256"], audience=AUDIENCE, options=options)
    except (KeyError, jwt.InvalidTokenError) as e:
        return HttpResponseBadRequest(str(e))
    payload = claims(sub=st["sub"], actor=at["sub"])
    with transaction.atomic():
        _statements(n, str(payload["jti"]))
        token = jwt.encode(payload, KEY, algorithm="RS256", headers={"kid": "k1"})
    return _token_response(token)


urlpatterns = [
    path("db/<int:n>/sign", db_sign),
    path("db/<int:n>/verify-2-sign-1", db_verify_2_sign_1),
    path("healthz", hello),
    path("hello", hello),
    path("sign/<str:alg>", sign),
    path("verify-2-sign-1", verify_2_sign_1),
]

application = get_wsgi_application()
