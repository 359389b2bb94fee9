from __future__ import annotations

from typing import Any

from django import template

from identity.console.shell import Console

register = template.Library()


@register.simple_tag(takes_context=True)
def console_url(context: template.Context, name: str, *args: Any, org: Any = None) -> str:
    """``{% console_url "users" %}`` in the current Console; ``org=`` for another one."""
    console: Console = context["console"]
    if org is not None:
        return console.url_for(org, name, *args)
    return console.url(name, *args)


@register.simple_tag(takes_context=True)
def sign_in_addresses(context: template.Context) -> dict[str, str]:
    """The addresses people of the current Console's organization sign in at (absolute, from
    ``BASE_URL``): its Console and its My Account. ``{% sign_in_addresses as addresses %}``."""
    from django.conf import settings
    from django.urls import reverse

    console: Console = context["console"]
    org, tenant = console.org, console.tenant.handle
    if org.parent_id is None:
        myaccount = reverse("myaccount:profile", kwargs={"tenant": tenant})
    else:
        myaccount = reverse("org-myaccount:profile", kwargs={"tenant": tenant, "org": org.pk})
    return {
        "console": f"{settings.BASE_URL}{console.url('home')}",
        "myaccount": f"{settings.BASE_URL}{myaccount}",
    }


@register.simple_tag(takes_context=True)
def application_endpoints(context: template.Context) -> list[dict[str, str]]:
    """What an integrator configures for an application used in the current Console's
    organization (absolute, from ``BASE_URL``): the issuer and discovery document (one per
    tenant), and the endpoints, a child organization's own where it has them.
    ``{% application_endpoints as endpoints %}``."""
    from django.conf import settings
    from django.urls import reverse

    console: Console = context["console"]
    tenant, org = console.tenant.handle, console.org

    def at(name: str) -> str:
        return f"{settings.BASE_URL}{reverse(name, kwargs={'tenant': tenant})}"

    if org.parent_id is None:
        authorize, token = at("oauth2-authorize"), at("oauth2-token")
    else:
        kwargs = {"tenant": tenant, "org": org.pk}
        authorize = f"{settings.BASE_URL}{reverse('org-oauth2-authorize', kwargs=kwargs)}"
        token = f"{settings.BASE_URL}{reverse('org-oauth2-token', kwargs=kwargs)}"
    rows = [
        ("issuer", "Issuer", at("oauth2-token")),
        ("discovery", "Discovery document", at("oidc-discovery")),
        ("authorize", "Authorization endpoint", authorize),
        ("token", "Token endpoint", token),
        ("userinfo", "Userinfo endpoint", at("oauth2-userinfo")),
        ("jwks", "JWKS (signing keys)", at("jwks")),
        ("logout", "Logout endpoint", at("oidc-logout")),
    ]
    return [{"id": f"endpoint-{key}", "label": label, "url": url} for key, label, url in rows]
