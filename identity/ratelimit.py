"""Per-address request rate limits: a fixed-window counter in the shared cache.

``settings.ACTAS_RATE_LIMITS`` maps a limit's name to ``"<requests>/<seconds>"``; a view
decorated with :func:`rate_limited` counts each request against the client address's counter
for the current window (the address is the audit trail's, ``identity.context``, so it honours
``ACTAS_TRUSTED_PROXIES``). Past the limit the view is not called: the decorator answers with
the limit's ``refuse`` response, which carries ``Retry-After`` (the seconds left in the window).

The key is the address alone, not the client id a token request names: a client id is
chosen by the caller, so counting per (address, client) would let one address multiply its
budget by inventing client ids, and a second counter would cost a second round trip.

The counter is one cache round trip on Redis (``INCR`` and ``EXPIRE`` in one pipeline; the
window is in the key, so a counter never outlives its window by more than a second) and
``add`` + ``incr`` on other backends (local memory: in-process). When the cache cannot be
reached the request is let through: a rate limit protects availability, and refusing every
request while Redis is down would turn a cache outage into an outage of the token endpoint.
(The sign-in *failure* budgets, which protect passwords, fail closed instead.)

``ACTAS_RATE_LIMITS_ENABLED=0`` switches every limit off (benchmarks from one address).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.shortcuts import render

from identity import context

log = logging.getLogger(__name__)

View = TypeVar("View", bound=Callable[..., HttpResponseBase])
Refuse = Callable[[HttpRequest, int], HttpResponseBase]


@dataclass(frozen=True)
class Rate:
    requests: int
    seconds: int


def parse_rate(value: str) -> Rate | None:
    """``"600/60"`` → 600 requests per 60 seconds; ``""``, ``"0"`` or ``"off"`` → no limit."""
    value = (value or "").strip().lower()
    if value in {"", "0", "off", "none"}:
        return None
    requests, _, seconds = value.partition("/")
    rate = Rate(int(requests), int(seconds or "60"))
    if rate.requests <= 0 or rate.seconds <= 0:
        raise ValueError(f"bad rate limit {value!r}: expected <requests>/<seconds>")
    return rate


def rate_for(name: str) -> Rate | None:
    if not settings.ACTAS_RATE_LIMITS_ENABLED:
        return None
    return parse_rate(settings.ACTAS_RATE_LIMITS.get(name, ""))


def _count(key: str, ttl: int) -> int:
    """Add one to the counter ``key`` (created with time-to-live ``ttl``); return its value."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        raw = backend.make_and_validate_key(key)
        pipe = backend._cache.get_client(raw, write=True).pipeline(transaction=False)
        pipe.incr(raw)
        pipe.expire(raw, ttl)
        count, _ = pipe.execute()
        return int(count)
    if backend.add(key, 1, timeout=ttl):
        return 1
    try:
        return int(backend.incr(key))
    except ValueError:  # expired between add and incr
        backend.set(key, 1, timeout=ttl)
        return 1


def address_bucket(address: str) -> str:
    """What one budget covers: an IPv4 address, or an IPv6 /64 (one subscriber's network;
    counting single IPv6 addresses would give each holder of a /64 2^64 budgets)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def hit(name: str, rate: Rate, address: str, *, now: float | None = None) -> tuple[bool, int]:
    """Count one request of ``address`` against limit ``name``.

    Returns (allowed, retry_after_seconds)."""
    now = time.time() if now is None else now
    window = int(now // rate.seconds)
    digest = hashlib.sha256(address_bucket(address).encode()).hexdigest()[:32]
    key = f"actas:rl:{name}:{digest}:{window}"
    try:
        count = _count(key, rate.seconds + 1)
    except Exception:  # the cache is down: let the request through (see the module docstring)
        log.warning("rate limit %s: cache unavailable, not limiting", name, exc_info=True)
        return True, 0
    retry_after = max(1, int((window + 1) * rate.seconds - now + 0.999))
    return count <= rate.requests, retry_after


def rate_limited(
    name: str, *, refuse: Refuse, methods: tuple[str, ...] = ("POST",)
) -> Callable[[View], View]:
    """Limit the view's ``methods`` requests per client address by ``ACTAS_RATE_LIMITS[name]``."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method in methods:
                rate = rate_for(name)
                if rate is not None:
                    allowed, retry_after = hit(name, rate, context.current().ip or "unknown")
                    if not allowed:
                        response = refuse(request, retry_after)
                        response["Retry-After"] = str(retry_after)
                        return response
            return view(request, *args, **kwargs)

        return cast(View, wrapped)

    return decorator


def oauth_refusal(request: HttpRequest, retry_after: int) -> HttpResponseBase:
    """HTTP 429 with an OAuth error body. RFC 6749 §5.2 has no code for "too many requests";
    ``slow_down`` (RFC 8628 §3.5, in IANA's OAuth Extensions Error registry and defined for
    the token endpoint) says what is meant — the request was fine, send it again later and
    less often — where ``invalid_request`` would tell the client its request is malformed."""
    response = JsonResponse(
        {
            "error": "slow_down",
            "error_description": f"Too many requests from this address; retry in {retry_after} s.",
        },
        status=429,
    )
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


def signin_refusal(request: HttpRequest, retry_after: int) -> HttpResponseBase:
    return render(request, "identity/ratelimited.html", {"retry_after": retry_after}, status=429)


token_rate_limited = rate_limited("token", refuse=oauth_refusal)
introspect_rate_limited = rate_limited("introspect", refuse=oauth_refusal)
signin_rate_limited = rate_limited("signin", refuse=signin_refusal)
