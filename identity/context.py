"""Per-request metadata that the audit trail records (request id, client IP).

Services take the acting user explicitly; the request's id and address are ambient and
travel in a context variable set by ``identity.middleware.RequestContextMiddleware``.
"""

from __future__ import annotations

import contextvars
import ipaddress
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str | None = None


_EMPTY = RequestContext()
_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "actas_request_context", default=None
)


def current() -> RequestContext:
    return _current.get() or _EMPTY


def normalise_ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return ipaddress.ip_address(value.strip()).compressed
    except ValueError:
        return None


def new_request_id(candidate: str | None = None) -> str:
    if candidate and _REQUEST_ID_RE.match(candidate):
        return candidate
    return uuid.uuid4().hex


@contextmanager
def bound(ctx: RequestContext) -> Iterator[RequestContext]:
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)
