from __future__ import annotations

from allauth.socialaccount.models import SocialAccount
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


@login_required
def private(request: HttpRequest) -> JsonResponse:
    account = SocialAccount.objects.filter(user=request.user, provider="actas").first()
    # What allauth kept of the sign-in: the claims of the ID token it decoded (and checked:
    # issuer, audience, expiry) and the userinfo answer.
    extra = account.extra_data if account else {}
    id_token = extra.get("id_token") or {}
    return JsonResponse(
        {
            "username": request.user.get_username(),
            "email": request.user.email,
            "uid": account.uid if account else None,
            "id_token": {k: id_token.get(k) for k in ("iss", "sub", "aud", "jti")},
            "userinfo": extra.get("userinfo"),
        }
    )
