"""The signing key set is checked before a process serves anything.

Outside the embedded default a missing or unreadable key set used to surface only when the
first token was asked for (an HTML 500 at discovery and at the token endpoint). It is a system
check error instead: ``manage.py check`` and ``migrate`` report it, and every process that
serves (``config.wsgi``) or runs tasks (``config.celery``) refuses to start with it
(:func:`require_signing_keys`).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import SystemCheckError

from identity.oauth import tokens

TAG = "signing_keys"
FIX = (
    "Create the key set with `python manage.py rotate_signing_key` (run with the same "
    "ACTAS_SIGNING_KEYS_DIR as the server; the directory must be readable by its user)."
)


@register(TAG)
def check_signing_keys(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Outside the embedded default (where a development key set is made on first use), the
    key set in ``ACTAS_SIGNING_KEYS_DIR`` must exist and load."""
    if settings.DEBUG or settings.EMBEDDED:
        return []
    configured = getattr(settings, "ACTAS_SIGNING_KEYS_DIR", "")
    if not configured:
        return [Error("ACTAS_SIGNING_KEYS_DIR is not set.", hint=FIX, id="actas.E101")]
    try:
        directory = tokens.keys_dir()
        if not (directory / tokens.KEYSET_FILE).is_file():
            return [Error(f"No signing key set in {configured}.", hint=FIX, id="actas.E102")]
        tokens.load_keyset(directory)
    except (ImproperlyConfigured, OSError, ValueError, KeyError, TypeError) as exc:
        return [
            Error(f"The signing key set in {configured} cannot be read: {exc}", hint=FIX, id="actas.E103")
        ]
    return []


def require_signing_keys() -> None:
    """Refuse to start a serving or task process without its signing keys."""
    errors = check_signing_keys()
    if errors:
        raise SystemCheckError(
            "actas cannot start:\n" + "\n".join(f"{e.id}: {e.msg}\n\tHINT: {e.hint}" for e in errors)
        )
