from __future__ import annotations

import jwt
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


@login_required
def private(request: HttpRequest) -> JsonResponse:
    # The ID token mozilla-django-oidc verified and kept (OIDC_STORE_ID_TOKEN): shown, not trusted.
    id_token = request.session.get("oidc_id_token", "")
    claims = jwt.decode(id_token, options={"verify_signature": False}) if id_token else {}
    return JsonResponse(
        {
            "username": request.user.get_username(),
            "email": request.user.email,
            "id_token": {k: claims.get(k) for k in ("iss", "sub", "aud", "jti")},
        }
    )


def signin_failed(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Sign-in failed", status=403, content_type="text/plain")
