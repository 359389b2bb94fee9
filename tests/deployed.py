"""The environment of an actas process started as the README's Deploy section says (DEBUG off,
a database file and a key directory of the test's own), `manage.py` run in it, and gunicorn
serving it on a free port: for the tests that start real processes (tests/config,
tests/identity/test_oauth_checks.py)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).with_name("gunicorn")
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gunicorn(
    env: dict[str, str], port: int, log: Path, *, workers: int = 1, conf: bool = False
) -> subprocess.Popen[bytes]:
    """gunicorn serving config/wsgi.py with ``env`` on ``port``, its output in ``log``."""
    args = [str(GUNICORN), "config.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", str(workers)]
    if conf:
        args += ["-c", "config/gunicorn.conf.py"]
    # gunicorn 27's default control socket is one path per user: several servers would clash.
    args += ["--timeout", "60", "--no-control-socket"]
    with log.open("wb") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def serving(
    env: dict[str, str], log: Path, *, port: int | None = None, workers: int = 1, conf: bool = False
) -> Iterator[str]:
    """gunicorn with ``env`` (on ``port``, else a free one), once it answers /healthz; its base
    URL. Stopped afterwards."""
    port = port or free_port()
    proc = gunicorn(env, port, log, workers=workers, conf=conf)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or the worker still booting
                pass
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "gunicorn did not answer /healthz within 60 s"
            time.sleep(0.2)
        yield base
    finally:
        stop(proc)
