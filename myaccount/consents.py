"""My Account → Applications: the consents the user gave, and revoking one."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_POST

from identity.selectors.consents import consent_of
from identity.services.consents import consent_revoke
from myaccount.views import Portal, SeeOther, portal_page


@require_POST
@portal_page(impersonated=False)
def consent_revoke_view(request: HttpRequest, portal: Portal, consent: int) -> HttpResponse:
    """Only the user revokes their own consents (never while someone impersonates them)."""
    found = consent_of(user=portal.user, consent_id=consent)
    if found is None:
        raise Http404("No such consent.")
    name = found.application.name
    consent_revoke(actor=portal.user, consent=found)
    messages.success(
        request, f"{name} no longer has your consent; it will ask again next time you sign in to it."
    )
    return SeeOther(portal.url("applications"))
