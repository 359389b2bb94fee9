"""Per-request metadata that the audit trail records (request id, client IP).

Services take the acting user explicitly; the request's id and address are ambient and
travel in a context variable set by ``identity.middleware.RequestContextMiddleware``.
"""

from __future__ import annotations

import contextvars
import ipaddress
import re
import uuid
from collections.abc import Iterator, Mapping
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


def client_ip(meta: Mapping[str, str], *, trusted_proxies: int) -> str | None:
    """The client's address: REMOTE_ADDR, or with ``trusted_proxies`` = N > 0 the N-th entry
    from the right of X-Forwarded-For (the address the outermost trusted proxy saw)."""
    if trusted_proxies > 0:
        hops = [h.strip() for h in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
        if len(hops) >= trusted_proxies:
            return normalise_ip(hops[-trusted_proxies])
    return normalise_ip(meta.get("REMOTE_ADDR"))


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
