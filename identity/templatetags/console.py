from __future__ import annotations

from typing import Any

from django import template

from identity.console_shell import Console

register = template.Library()


@register.simple_tag(takes_context=True)
def console_url(context: template.Context, name: str, *args: Any, org: Any = None) -> str:
    """``{% console_url "users" %}`` in the current Console; ``org=`` for another one."""
    console: Console = context["console"]
    if org is not None:
        return console.url_for(org, name, *args)
    return console.url(name, *args)
