"""Extension points of identity's Console pages: what other apps add to them.

identity renders what is registered here without naming (or importing) the apps that register.
An app registers from its ``AppConfig.ready()``; registering a name again replaces the entry.

``user page panels`` (``user_page_panel_register``): sections of a Console user page
(``identity.console.users.user_detail``), shown after the account status, in registration
order. A panel is a template and a function ``(request, console, member) -> context``; its
template is rendered with that context and the request (so ``{% load console %}`` and
``{% console_url %}`` work in it, ``console`` being in the context the function returns).
A panel that has nothing to show renders nothing (its template decides).
Registered by: ``impersonation`` (the Impersonate User action, ``impersonation.console``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from identity.console.shell import Console
from identity.models import User

PanelContext = Callable[[HttpRequest, Console, User], dict[str, Any]]


@dataclass(frozen=True)
class UserPagePanel:
    name: str
    template: str
    context: PanelContext


_USER_PAGE_PANELS: dict[str, UserPagePanel] = {}


def user_page_panel_register(panel: UserPagePanel) -> None:
    """Add ``panel`` to every Console user page (call from an ``AppConfig.ready()``)."""
    _USER_PAGE_PANELS[panel.name] = panel


def user_page_panels(request: HttpRequest, console: Console, member: User) -> list[SafeString]:
    """The registered panels of ``member``'s page, rendered (HTML, in registration order)."""
    return [
        render_to_string(panel.template, panel.context(request, console, member), request=request)
        for panel in _USER_PAGE_PANELS.values()
    ]
