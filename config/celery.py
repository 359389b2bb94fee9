"""The Celery application. Tasks are thin: they take ids and call one service."""

import logging
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


def _log_through_django(loglevel: int | None = None, **kwargs: object) -> None:
    """With LOG_FORMAT=json, a worker and beat keep settings.LOGGING's handler (JSON lines, with
    the request fields empty) for themselves and their tasks, instead of Celery's own text
    handlers; ``--loglevel`` still sets the level."""
    import django

    django.setup()  # applies settings.LOGGING (again, if it ran already: idempotent)
    if loglevel:
        logging.getLogger().setLevel(loglevel)


# Connected only for JSON: any receiver at all makes Celery leave logging alone.
if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
    signals.setup_logging.connect(_log_through_django)
