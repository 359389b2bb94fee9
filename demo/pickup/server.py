"""Serve Pickup with the standard library's WSGI server, one thread per request."""

from __future__ import annotations

import os
import sys
from socketserver import ThreadingMixIn
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from demo.pickup.app import Config, Pickup


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class Handler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The path only: a query may hold an authorization code.
        self.log_message("%s %s %s", self.command, urlsplit(self.path).path, code)


def server(app: Pickup | None, host: str, port: int) -> ThreadingWSGIServer:
    """A server bound to ``host:port`` (0: any free port); ``app`` may be set later with
    ``set_app`` once the bound port, and so Pickup's URL, is known."""
    bound = make_server(host, port, app, server_class=ThreadingWSGIServer, handler_class=Handler)  # type: ignore[arg-type]
    assert isinstance(bound, ThreadingWSGIServer)
    return bound


def main() -> None:
    config = Config.from_env(os.environ)
    httpd = server(Pickup(config), config.host, config.port)
    print(
        f"Pickup: {config.public_url}/ (actas at {config.actas_url}, tenant {config.tenant})", file=sys.stderr
    )
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
