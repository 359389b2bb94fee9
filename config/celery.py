"""The Celery application. Tasks are thin: they take ids and call one service."""

import os
import sys

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("actas")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
@signals.beat_init.connect
def _require_signing_keys(**kwargs: object) -> None:
    """A worker or beat without the signing keys would fail every task that signs: refuse to
    start, as the web processes do (identity.oauth.checks)."""
    from django.core.management.base import SystemCheckError

    from identity.oauth.checks import require_signing_keys

    try:
        require_signing_keys()
    except SystemCheckError as error:
        # Celery logs and swallows exceptions of signal handlers; SystemExit is not swallowed.
        print(error, file=sys.stderr)  # noqa: T201
        raise SystemExit(1) from error
