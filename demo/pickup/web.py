"""Pickup's requests and responses: a parsed WSGI request (bounded body and fields) and the
response the application returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from demo.pickup.limits import COOKIE, MAX_BODY, MAX_FIELD, MAX_FIELDS

# --- requests and responses ------------------------------------------------------------------


class BadRequest(Exception):
    pass


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    cookie: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, Any]) -> Request:
        method = str(environ.get("REQUEST_METHOD", "GET"))
        form: dict[str, str] = {}
        if method == "POST":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                raise BadRequest("bad Content-Length") from None
            if not 0 <= length <= MAX_BODY:
                raise BadRequest("request body too large")
            form = _fields(environ["wsgi.input"].read(length).decode("utf-8", "replace"))
        cookie = ""
        try:
            jar = SimpleCookie(str(environ.get("HTTP_COOKIE", ""))[:MAX_FIELD])
        except CookieError:
            jar = SimpleCookie()
        if COOKIE in jar:
            cookie = jar[COOKIE].value[:64]
        return cls(
            method=method,
            path=str(environ.get("PATH_INFO", "/")),
            query=_fields(str(environ.get("QUERY_STRING", ""))),
            form=form,
            cookie=cookie,
        )


def _fields(encoded: str) -> dict[str, str]:
    """Form fields, first value of each; at most MAX_FIELDS of at most MAX_FIELD characters."""
    if len(encoded) > MAX_BODY:
        raise BadRequest("request too large")
    try:
        parsed = parse_qs(encoded, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise BadRequest("too many fields") from None
    fields = {name: values[0] for name, values in parsed.items()}
    if any(len(value) > MAX_FIELD or "\x00" in value for value in fields.values()):
        raise BadRequest("field too long")
    return fields


@dataclass
class Response:
    status: HTTPStatus
    body: str = ""
    location: str = ""
    script_nonce: str = ""


def redirect(location: str) -> Response:
    return Response(HTTPStatus.SEE_OTHER, location=location)
