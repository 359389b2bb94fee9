"""Pickup's pages: HTML built from escaped values, with the CSRF token in every form."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any, Final

from demo.pickup.limits import MAX_REASON
from demo.pickup.sessions import Session

# --- pages -----------------------------------------------------------------------------------

STYLE: Final = """
body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#1d2733}
h1{margin:0}header p{margin:.2rem 0 1.5rem;color:#5b6775}section{margin:1.5rem 0}
.banner{background:#fff3cd;border:2px solid #d39e00;padding:.8rem 1rem;border-radius:6px;font-weight:600}
.flash{background:#e8f1fb;padding:.5rem 1rem;border-radius:6px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}dt{color:#5b6775}dd{margin:0}
code{word-break:break-all}form.inline{display:inline}label{display:block;margin:.5rem 0}
input[type=text],select{width:100%;padding:.3rem;box-sizing:border-box}
button{margin:.3rem .3rem .3rem 0;padding:.4rem .9rem}
"""


def page(title: str, body: str, flash: Iterable[str] = ()) -> str:
    """A whole page; ``body`` is HTML already escaped, ``title`` and ``flash`` are text."""
    notes = "".join(f'<p class="flash" role="status">{escape(m)}</p>' for m in flash)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        "<header><h1>Pickup</h1><p>A demo application that signs in with actas.</p></header>"
        f"<main>{notes}{body}</main></body></html>"
    )


def _form(action: str, csrf: str, label: str, fields: str = "") -> str:
    """A POST form of Pickup's own; with ``fields`` (HTML) a block, else an inline button."""
    layout = "" if fields else ' class="inline"'
    return (
        f'<form{layout} method="post" action="{escape(action)}">'
        f'<input type="hidden" name="csrf_token" value="{escape(csrf)}">{fields}'
        f'<button type="submit">{escape(label)}</button></form>'
    )


def switch_form(csrf: str, switches: Mapping[str, str], who: str) -> str:
    """Open an organization below this one with the token Pickup holds (organization_switch)."""
    options = "".join(f'<option value="{escape(v)}">{escape(name)}</option>' for v, name in switches.items())
    fields = f'<label>Organization<select name="org">{options}</select></label>'
    return (
        '<section aria-labelledby="switch-title"><h2 id="switch-title">Open an organization</h2><p>'
        f"{escape(who)} is also a member of these organizations. Pickup trades its token for one "
        "in the organization you choose (the <code>organization_switch</code> grant); an "
        "impersonation stays one: the new token keeps <code>act</code>.</p>"
        f"{_form('/switch', csrf, 'Switch organization', fields)}</section>"
    )


def impersonate_form(csrf: str, choices: Mapping[str, str] | None = None) -> str:
    """``choices``: the organizations to pick from (value → name); None: the root only."""
    where = ""
    if choices:
        options = "".join(
            f'<option value="{escape(v)}">{escape(name)}</option>' for v, name in choices.items()
        )
        where = f'<label>Organization<select name="org">{options}</select></label>'
    fields = (
        f"{where}<label>User id of the person to impersonate (<code>requested_subject</code>)"
        '<input type="text" name="requested_subject" required maxlength="36"></label>'
        f'<label>Reason<input type="text" name="reason" maxlength="{MAX_REASON}"></label>'
    )
    scope = (
        "You impersonate a user of the organization you choose: the one you signed in to, or one "
        "below it where you are a member (actas signs you in there if needed)."
        if choices
        else "This impersonates in the tenant's root organization; to impersonate in another "
        "organization, sign in there first (open Pickup from its My Account)."
    )
    return (
        '<section aria-labelledby="impersonate-title"><h2 id="impersonate-title">Impersonate a user</h2>'
        "<p>For an administrator holding Pickup's impersonator role. "
        "actas asks you to sign in if needed, then to confirm on its own page. A user's id is on their "
        f"page in actas's Console (Users).</p><p>{escape(scope)}</p>"
        f"{_form('/impersonate', csrf, 'Impersonate', fields)}</section>"
    )


def signed_out_body(csrf: str) -> str:
    return (
        f"<section><h2>You are not signed in</h2>{_form('/signin', csrf, 'Sign in with actas')}</section>"
        + impersonate_form(csrf)
    )


def signed_in_body(session: Session, claims: Mapping[str, Any], info: Mapping[str, Any]) -> str:
    act = claims.get("act")
    sub = str(claims.get("sub", ""))
    target = session.names.get(sub, sub)
    org_name = str(claims.get("org_name", ""))
    where = f" in {org_name}" if org_name else ""
    parts: list[str] = []
    if isinstance(act, dict):
        actor = str(act.get("sub", ""))
        known = session.names.get(actor)
        impersonator = f"{known} — user id {actor}" if known else f"user id {actor}"
        acting = f"Acting as {target}{where} for {impersonator}"
        parts.append(f'<p class="banner" role="status">{escape(acting)}</p>')
    expires = int(claims.get("exp", 0))
    rows = [
        ("User id (sub)", sub),
        ("Name", str(info.get("name", ""))),
        ("Username", str(info.get("preferred_username", ""))),
        ("Email", str(info.get("email", ""))),
        ("Organization", org_name),
        ("Organization id (org_id)", str(claims.get("org_id", ""))),
        ("Scopes", str(claims.get("scope", ""))),
        (
            "Access token expires",
            f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(expires))} "
            f"(in {max(0, expires - int(time.time()))} s)",
        ),
    ]
    if isinstance(act, dict):
        rows.append(("Impersonator (act)", str(act.get("sub", ""))))
        rows.append(("Impersonation id", str(claims.get("impersonation_id", ""))))
    listing = "".join(f"<dt>{escape(k)}</dt><dd><code>{escape(v)}</code></dd>" for k, v in rows if v)
    buttons = _form("/refresh", session.csrf, "Refresh token")
    if isinstance(act, dict):
        buttons += _form("/end", session.csrf, "End impersonation")
    buttons += _form("/signout", session.csrf, "Sign out")
    heading = "Who Pickup sees" if isinstance(act, dict) else f"Signed in as {target}{where}"
    parts.append(f"<section><h2>{escape(heading)}</h2><dl>{listing}</dl>{buttons}</section>")
    if not isinstance(act, dict):
        parts.append(impersonate_form(session.csrf, session.choices))
    if session.switches:
        parts.append(switch_form(session.csrf, session.switches, target))
    return "".join(parts)


def relay_page(csrf: str, nonce: str) -> str:
    """The answer to an ``id_token subject_token`` request is in the URL fragment, which never
    reaches a server: this script posts it to Pickup, same origin, and drops it from the
    address bar."""
    script = (
        'const form = document.getElementById("relay");'
        "for (const [name, value] of new URLSearchParams(location.hash.slice(1))) {"
        ' const input = document.createElement("input");'
        ' input.type = "hidden"; input.name = name; input.value = value; form.append(input);'
        "}"
        'history.replaceState(null, "", location.pathname);'
        "form.submit();"
    )
    return page(
        "Pickup",
        "<p>Finishing impersonation…</p><noscript><p>This step needs JavaScript: it hands actas's answer "
        "from the address fragment to Pickup.</p></noscript>"
        f'<form id="relay" method="post" action="/callback">'
        f'<input type="hidden" name="csrf_token" value="{escape(csrf)}"></form>'
        f'<script nonce="{escape(nonce)}">{script}</script>',
    )
