"""Per-view adjustments of the Content Security Policy (``settings.SECURE_CSP``).

The global policy allows nothing inline, nothing from elsewhere, and no framing. Two kinds of
page differ:

* Pages whose form submissions end in a redirect to an application (sign-in, authorize and
  consent, the impersonation confirmation, RP-initiated logout): Chromium checks
  ``form-action`` against every hop of the redirect chain that follows a form submission, so
  ``form-action 'self'`` would stop the browser on its way back to the client's registered
  redirect URI. These pages send the policy without ``form-action``
  (:func:`csp_redirecting_form`); their forms post to actas itself, and the redirect targets
  are checked against the registered URIs by the views.
* The Console's email-template preview shows the rendered email in a sandboxed ``srcdoc``
  frame (no scripts, opaque origin). A srcdoc document inherits the page's policy, so the
  email's own ``<style>``/``style=`` and its (https) logo need ``style-src 'unsafe-inline'``
  and ``img-src https:`` on that page (:func:`csp_email_preview`). The frame is ``srcdoc``,
  not a URL, so neither ``frame-ancestors`` nor X-Frame-Options is consulted for it: the page
  keeps ``frame-ancestors 'none'`` and X-Frame-Options DENY (scripts stay blocked twice, by
  the sandbox and by ``script-src``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils.csp import CSP

View = TypeVar("View", bound=Callable[..., HttpResponseBase])


def policy_without_form_action() -> dict[str, list[str]]:
    return {k: list(v) for k, v in settings.SECURE_CSP.items() if k != "form-action"}


def policy_for_email_preview() -> dict[str, list[str]]:
    policy = {k: list(v) for k, v in settings.SECURE_CSP.items()}
    policy["style-src"] = [CSP.SELF, CSP.UNSAFE_INLINE]
    policy["img-src"] = [CSP.SELF, "data:", "https:"]
    return policy


def _with_policy(policy: Callable[[], dict[str, list[str]]]) -> Callable[[View], View]:
    # Read at response time (not import time) so the policy follows the settings in force.
    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            response = view(request, *args, **kwargs)
            response._csp_config = policy()  # type: ignore[attr-defined]
            return response

        return cast(View, wrapped)

    return decorator


csp_redirecting_form = _with_policy(policy_without_form_action)


csp_email_preview = _with_policy(policy_for_email_preview)
