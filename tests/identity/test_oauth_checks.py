"""The signing key set is a system check (identity/oauth/checks.py): `manage.py check` fails
without it and names the command that fixes it; with it, and with the documented production
settings, `check --deploy` is clean."""

from __future__ import annotations

import subprocess
from pathlib import Path

from django.test import override_settings

from identity.oauth import checks
from tests.deployed import deployed_env, manage


def _manage(tmp: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return manage(deployed_env(tmp, **extra), *args, timeout=120)


def test_check_fails_without_keys_and_names_the_fix(tmp_path: Path) -> None:
    result = _manage(tmp_path, "check")
    assert result.returncode != 0
    assert "actas.E102" in result.stderr and "manage.py rotate_signing_key" in result.stderr, result.stderr
    # The fix works before any migration, and then the check passes.
    made = _manage(tmp_path, "rotate_signing_key")
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "keys" / "keyset.json").is_file()
    again = _manage(tmp_path, "check")
    assert again.returncode == 0, again.stderr


def test_deploy_check_is_clean_with_the_documented_production_settings(tmp_path: Path) -> None:
    production = {
        "BASE_URL": "https://id.example.org",
        "ALLOWED_HOSTS": "id.example.org",
        "ACTAS_TRUSTED_PROXIES": "1",
    }
    assert _manage(tmp_path, "rotate_signing_key", **production).returncode == 0
    result = _manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **production)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_unreadable_key_set_is_an_error(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "keyset.json").write_text("{not json")
    with override_settings(DEBUG=False, EMBEDDED=False, ACTAS_SIGNING_KEYS_DIR=str(keys)):
        found = checks.check_signing_keys()
    assert [e.id for e in found] == ["actas.E103"]
    assert "rotate_signing_key" in str(found[0].hint)


def test_the_embedded_default_makes_its_own(tmp_path: Path) -> None:
    with override_settings(DEBUG=True, ACTAS_SIGNING_KEYS_DIR=str(tmp_path / "none")):
        assert checks.check_signing_keys() == []
    with override_settings(DEBUG=False, EMBEDDED=False, ACTAS_SIGNING_KEYS_DIR=""):
        assert [e.id for e in checks.check_signing_keys()] == ["actas.E101"]
