"""A Celery worker or beat without the signing keys refuses to start (config/celery.py), as the
web processes do: it would otherwise fail every task that signs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.deployed import ROOT, deployed_env

CELERY = Path(sys.executable).with_name("celery")


@pytest.mark.parametrize("process", ["worker", "beat"])
def test_refuses_to_start_without_signing_keys(tmp_path: Path, process: str) -> None:
    env = deployed_env(
        tmp_path,
        # A broker nobody listens on: the check comes before any connection is made.
        CELERY_BROKER_URL="redis://127.0.0.1:1/0",
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
