"""Limits on OAuth request parameters, checked before oauthlib sees them."""

from __future__ import annotations

from typing import Any

# Longest value accepted for any parameter, and for those DOT stores in short columns.
MAX_PARAM = 2048
MAX_STORED = {"nonce": 255, "code_challenge": 128, "code_challenge_method": 16, "client_id": 255}


def params_malformed(params: Any) -> bool:
    """A NUL byte, or a value too long to be real (or to store): refused before oauthlib, so
    the database never sees it. ``params``: anything with ``lists()`` (a QueryDict)."""
    for key, values in params.lists():
        limit = MAX_STORED.get(key, MAX_PARAM)
        if len(key) > 64 or any("\x00" in v or len(v) > limit for v in values):
            return True
    return False
