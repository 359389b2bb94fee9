"""A Celery worker or beat without the signing keys refuses to start (config/celery.py), as the
web processes do: it would otherwise fail every task that signs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CELERY = Path(sys.executable).with_name("celery")


@pytest.mark.parametrize("process", ["worker", "beat"])
def test_refuses_to_start_without_signing_keys(tmp_path: Path, process: str) -> None:
    drop = {"DEBUG", "DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "EMAIL_HOST", "DJANGO_SETTINGS_MODULE"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="0",
        SECRET_KEY="celery-test-secret-" + "k" * 40,
        DATABASE_URL=f"sqlite:///{tmp_path / 'actas.sqlite3'}",
        # A broker nobody listens on: the check comes before any connection is made.
        CELERY_BROKER_URL="redis://127.0.0.1:1/0",
        ACTAS_SIGNING_KEYS_DIR=str(tmp_path / "keys"),
    )
    extra = ["--schedule", str(tmp_path / "schedule")] if process == "beat" else ["--pool", "solo"]
    result = subprocess.run(  # noqa: S603 (the project's celery)
        [str(CELERY), "-A", "config", process, "--loglevel", "INFO", *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "actas.E102" in result.stderr and "manage.py rotate_signing_key" in result.stderr
