"""Log records that say which request, tenant and organization they belong to.

:class:`RequestFilter` (on the root handler, settings.LOGGING) adds ``request_id`` (the id
``identity.middleware.RequestContextMiddleware`` gives every request, also sent back as
``X-Request-ID``), ``tenant`` (the ``/t/<tenant>/`` of the URL) and ``org`` (the
``/o/<uuid>/`` of the URL), empty outside a request. ``LOG_FORMAT=json`` writes one JSON
object per line (python-json-logger).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from identity import context

ACCESS_LOGGER = "actas.request"


@dataclass
class RequestScope:
    """Where the request is routed; filled in once its URL is resolved."""

    tenant: str = ""
    org: str = ""


_scope: contextvars.ContextVar[RequestScope | None] = contextvars.ContextVar("actas_log_scope", default=None)


@contextmanager
def scoped() -> Iterator[RequestScope]:
    scope = RequestScope()
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


class RequestFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        scope = _scope.get() or RequestScope()
        for name, value in (
            ("request_id", context.current().request_id),
            ("tenant", scope.tenant),
            ("org", scope.org),
        ):
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def route_resolved(*, tenant: object, org: object) -> None:
    """Record the URL's tenant and organization for the rest of the request's log records."""
    scope = _scope.get()
    if scope is not None:
        scope.tenant = str(tenant or "")
        scope.org = str(org or "")
