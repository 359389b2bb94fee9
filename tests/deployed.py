"""The environment of an actas process started as the README's Deploy section says (DEBUG off,
a database file and a key directory of the test's own), and `manage.py` run in it: for the tests
that start real processes (tests/config, tests/identity/test_oauth_checks.py)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Services of the test run that a deployed process must not inherit.
INHERITED = {
    "DEBUG",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "REDIS_URL",
    "EMAIL_HOST",
    "DJANGO_SETTINGS_MODULE",
}


def deployed_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in INHERITED}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=f"sqlite:///{tmp / 'actas.sqlite3'}",
        ACTAS_SIGNING_KEYS_DIR=str(tmp / "keys"),
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (our own manage.py)
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
