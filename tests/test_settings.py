"""Settings read from the environment; production refuses to start without a secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    drop = {"SECRET_KEY", "DEBUG", "DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "EMAIL_HOST"}
    clean = {k: v for k, v in os.environ.items() if k not in drop}
    clean.update(env)
    return subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_TASK_ALWAYS_EAGER)",
        ],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_missing_secret_key_outside_debug_is_an_error() -> None:
    result = _run({"DJANGO_SETTINGS_MODULE": "config.settings"})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_embedded_default_and_real_services() -> None:
    base = {"DJANGO_SETTINGS_MODULE": "config.settings", "SECRET_KEY": "x" * 50}
    embedded = _run(base)
    assert embedded.returncode == 0, embedded.stderr
    assert embedded.stdout.split() == ["django.db.backends.sqlite3", "True"]
    real = _run(
        base
        | {
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        }
    )
    assert real.returncode == 0, real.stderr
    assert real.stdout.split() == ["django.db.backends.postgresql", "False"]
