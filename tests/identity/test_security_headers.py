"""Content Security Policy and clickjacking protection on the pages a browser sees."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from django.template.loader import render_to_string
from django.test import Client

from impersonation.emails import IMPERSONATION_STARTED
from tests.conftest import World, console_url, sign_in
from tests.identity.oauth_helpers import REDIRECT, authorize_url, make_app, pkce_pair
from tests.impersonation.helpers import impersonation_app, subject_authorize_url

ROOT = Path(__file__).resolve().parents[2]


def _policy(response: object) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]  # type: ignore[index]
    directives = [d.split() for d in header.split(";") if d.strip()]
    return {d[0]: d[1:] for d in directives}


def _assert_base(policy: dict[str, list[str]]) -> None:
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in policy.get("script-src", []) + policy["default-src"]
    assert "'unsafe-eval'" not in policy.get("script-src", [])


def test_console_and_my_account_forbid_framing_and_foreign_form_targets(
    admin_client: Client, world: World
) -> None:
    for url in (console_url(world.root), console_url(world.root, "users/"), "/t/acme/myaccount/"):
        response = admin_client.get(url)
        assert response.status_code in (200, 302), url
        policy = _policy(response)
        _assert_base(policy)
        assert policy["form-action"] == ["'self'"], url
        assert "'unsafe-inline'" not in policy["style-src"], url
        assert response["X-Frame-Options"] == "DENY"


def test_pages_whose_forms_end_at_the_client_send_no_form_action(client: Client, world: World) -> None:
    """Chromium applies form-action to the redirects after a form submission: sign-in, authorize /
    consent, the impersonation confirmation and logout end at the client's redirect URI."""
    flow_pages = [
        client.get("/t/acme/login/"),
        client.post("/t/acme/login/", {"username": "target", "password": "wrong"}),
        client.get("/t/acme/oauth2/authorize?client_id=nobody&response_type=code"),
        client.get(f"/t/acme/o/{world.eu.pk}/oauth2/authorize?client_id=nobody&response_type=code"),
        client.get("/t/acme/oauth2/authorize?client_id=nobody&response_type=subject_token"),
        client.get("/t/acme/oidc/logout"),
    ]
    for response in flow_pages:
        policy = _policy(response)
        _assert_base(policy)
        assert "form-action" not in policy, response.request["PATH_INFO"]
        assert response["X-Frame-Options"] == "DENY"
    # The sign-in page really is such a page: its form posts back to itself.
    assert 'form method="post" novalidate' in flow_pages[0].content.decode()


def test_consent_and_confirmation_pages_send_no_form_action(client: Client, world: World) -> None:
    make_app(world, client_id="askfirst", skip_login_consent=False)
    impersonation_app(world)
    sign_in(client, world.impersonator)
    consent = client.get(authorize_url("askfirst", challenge=pkce_pair()[1]))
    assert consent.status_code == 200 and b"Allow App askfirst?" in consent.content
    confirmation = client.get(subject_authorize_url("pickup", world.target))
    assert confirmation.status_code == 200 and b"Impersonate Target?" in confirmation.content
    for page in (consent, confirmation):
        policy = _policy(page)
        _assert_base(policy)
        assert "form-action" not in policy
        assert page["X-Frame-Options"] == "DENY"
    # The answer to the confirmation is a redirect to the client (what form-action would block).
    answer = client.post(
        confirmation.context["action"], {"pending": confirmation.context["pending"], "decision": "cancel"}
    )
    assert answer.status_code == 302 and answer["Location"].startswith(REDIRECT)
    assert "form-action" not in _policy(answer)


def test_email_preview_frame_gets_the_styles_it_needs_and_nothing_more(
    admin_client: Client, world: World
) -> None:
    edit = console_url(world.root, f"email-templates/{IMPERSONATION_STARTED}/en/")
    response = admin_client.post(
        edit,
        {
            "subject": "Hi {{ user_name }}",
            "html_body": '<p style="color: red">{{ reason }}</p><script>alert(1)</script>',
            "text_body": "Reason: {{ reason }}\nReport: {{ report_url }}",
            "action": "preview",
        },
    )
    assert response.status_code == 200
    body = response.content.decode()
    frame = re.search(r"<iframe id=\"preview-html\"[^>]*>", body)
    assert frame is not None and 'sandbox=""' in frame.group(0) and 'class="preview-frame"' in frame.group(0)
    assert " style=" not in re.sub(r'srcdoc="[^"]*"', "", frame.group(0))
    assert "&lt;p style=&quot;color: red&quot;&gt;" in frame.group(0)  # the email, escaped, in srcdoc
    policy = _policy(response)
    # The srcdoc frame inherits this page's policy: inline styles and https images for the email.
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert "https:" in policy["img-src"]
    # Scripts, framing and form targets stay as strict as everywhere else.
    _assert_base(policy)
    assert policy["form-action"] == ["'self'"]
    assert response["X-Frame-Options"] == "DENY"
    # Other Console pages keep inline styles out.
    assert "'unsafe-inline'" not in _policy(admin_client.get(console_url(world.root)))["style-src"]


def test_the_500_page_inline_stylesheet_is_allowed_by_its_hash(client: Client) -> None:
    page = render_to_string("500.html")
    styles = re.findall(r"<style>(.*?)</style>", page, flags=re.S)
    assert len(styles) == 1
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    policy = _policy(client.get("/healthz"))
    assert f"'sha256-{digest}'" in policy["style-src"]


def test_templates_have_no_inline_script_or_style() -> None:
    """Everything a page runs or styles comes from static/ (emails are not pages; the 500 page's
    one stylesheet is allowed by hash)."""
    offenders = []
    for path in [*ROOT.glob("templates/**/*.html"), *ROOT.glob("*/templates/**/*.html")]:
        if path.name == "500.html" or ".venv" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        for pattern in (r"<script(?![^>]*\bsrc=)", r"<style\b", r"\sstyle=", r"\son[a-z]+=", r"javascript:"):
            if re.search(pattern, text, flags=re.I):
                offenders.append(f"{path.relative_to(ROOT)}: {pattern}")
    assert offenders == []
