"""Pickup's limits: sessions, requests in flight, request bodies and form fields."""

from __future__ import annotations

from typing import Final

COOKIE: Final = "pickup_session"
MAX_SESSIONS: Final = 1000
SESSION_IDLE: Final = 3600  # seconds
MAX_PENDING: Final = 4  # authorization requests in flight per session
PENDING_AGE: Final = 600  # seconds
MAX_FLASH: Final = 5
MAX_NAMES: Final = 16
MAX_BODY: Final = 64 * 1024
MAX_FIELD: Final = 16 * 1024
MAX_FIELDS: Final = 16
MAX_REASON: Final = 500
