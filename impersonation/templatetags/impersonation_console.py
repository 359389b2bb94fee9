"""The Impersonate User action on a Console user page (identity's template loads this tag,
so identity's code never imports impersonation)."""

from __future__ import annotations

from typing import Any

from django import template

from impersonation.console import impersonate_action

register = template.Library()


@register.inclusion_tag("impersonation/console/_user_action.html", takes_context=True)
def impersonate_user_action(context: template.Context, member: Any) -> dict[str, Any]:
    console = context["console"]
    return {
        "console": console,
        "member": member,
        "action": impersonate_action(request=context["request"], console=console, member=member),
    }
