"""What every page shows while the browser is impersonating: the banner's facts."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from impersonation.selectors import live_session_for


def impersonation(request: HttpRequest) -> dict[str, Any]:
    """``impersonation`` (the live ImpersonationSession bound to this browser's SSO session,
    or None), with ``impersonation_seconds_left`` and ``impersonation_end_url``."""
    session = getattr(request, "sso_session", None) or None
    current = live_session_for(session) if session is not None else None
    if current is None:
        return {"impersonation": None}
    tenant = current.tenant
    return {
        "impersonation": current,
        "impersonation_seconds_left": max(0, int((current.expires_at - timezone.now()).total_seconds())),
        "impersonation_end_url": reverse("impersonation-end", kwargs={"tenant": tenant.handle}),
    }
