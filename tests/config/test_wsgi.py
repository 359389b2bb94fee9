"""Served as deployed (config/wsgi.py under gunicorn, DEBUG off): styled pages from
collectstatic's hashed, compressed files; actas's own cookie names; and no serving process at
all without the signing keys.

Each test runs the real commands of the README's Deploy section in subprocesses, against a
database file of its own, and gunicorn on a free port.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.deployed import deployed_env, free_port, gunicorn, manage, serving, stop

SECRET = "deploy-test-secret-" + "k" * 40


def _env(tmp: Path, port: int) -> dict[str, str]:
    return deployed_env(
        tmp,
        SECRET_KEY=SECRET,
        STATIC_ROOT=str(tmp / "static"),
        BASE_URL=f"http://127.0.0.1:{port}",
        ALLOWED_HOSTS="127.0.0.1",
    )


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """actas deployed as the README says: keys, migrate, collectstatic, gunicorn (DEBUG=0)."""
    tmp = tmp_path_factory.mktemp("deploy")
    port = free_port()
    env = _env(tmp, port)
    for step in (
        ("rotate_signing_key",),
        ("migrate", "--no-input", "-v", "0"),
        ("collectstatic", "--no-input", "-v", "0"),
        ("seed_demo",),
    ):
        done = manage(env, *step)
        assert done.returncode == 0, (step, done.stdout[-2000:], done.stderr[-2000:])
    with serving(env, tmp / "gunicorn.log", port=port) as base:
        yield base


def test_a_page_loads_styled_with_its_scripts(deployed: str) -> None:
    page = requests.get(f"{deployed}/t/acme/login/", timeout=10)
    assert page.status_code == 200
    assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text)
    stylesheets = [a for a in assets if a.endswith(".css")]
    scripts = [a for a in assets if a.endswith(".js")]
    assert stylesheets and scripts, assets
    for asset in stylesheets + scripts:
        # collectstatic's content-hashed name (name.<12 hex>.ext), served for a year.
        assert re.search(r"\.[0-9a-f]{12}\.(css|js)$", asset), asset
        found = requests.get(deployed + asset, headers={"Accept-Encoding": "gzip"}, timeout=10)
        assert found.status_code == 200, asset
        assert found.headers["Content-Type"].startswith(
            "text/css" if asset.endswith(".css") else "text/javascript"
        )
        assert (
            "max-age=315360000" in found.headers["Cache-Control"]
            and "immutable" in found.headers["Cache-Control"]
        )
        assert found.headers.get("Content-Encoding") == "gzip", asset
        assert len(found.content) > 100
    assert requests.get(f"{deployed}/static/no-such-file.css", timeout=10).status_code == 404


def test_cookies_have_names_of_their_own(deployed: str) -> None:
    page = requests.get(f"{deployed}/t/acme/login/", timeout=10)
    assert "actas_csrf" in page.cookies
    assert "csrftoken" not in page.cookies and "sessionid" not in page.cookies


def test_discovery_and_jwks_answer_json(deployed: str) -> None:
    discovery = requests.get(f"{deployed}/t/acme/oauth2/token/.well-known/openid-configuration", timeout=10)
    assert discovery.status_code == 200 and discovery.json()["issuer"] == f"{deployed}/t/acme/oauth2/token"
    jwks = requests.get(discovery.json()["jwks_uri"], timeout=10)
    assert jwks.status_code == 200 and jwks.json()["keys"]


def test_gunicorn_refuses_to_start_without_signing_keys(tmp_path: Path) -> None:
    port = free_port()
    env = _env(tmp_path, port)  # ACTAS_SIGNING_KEYS_DIR names a directory nobody created
    log = tmp_path / "gunicorn.log"
    proc = gunicorn(env, port, log)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        stop(proc)
        pytest.fail("gunicorn kept running without signing keys")
    assert proc.returncode != 0
    text = log.read_text()
    assert "actas.E102" in text and "manage.py rotate_signing_key" in text, text[-3000:]
