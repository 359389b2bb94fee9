"""The demo application Pickup (demo/pickup), served for a test on a free port."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management import call_command

from demo.pickup.app import Config, Pickup
from demo.pickup.server import server


@contextmanager
def pickup_server() -> Iterator[tuple[str, Any]]:
    """A Pickup HTTP server bound to a free port, not yet configured: its URL and the server
    (``server.set_app(Pickup(Config(...)))`` once the client's credentials are known)."""
    httpd = server(None, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{httpd.server_port}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield url, httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@contextmanager
def served_pickup(actas_url: str, *, password: str) -> Iterator[str]:
    """The demo tenant seeded (``seed_demo --pickup-url``, every password ``password``) with
    Pickup serving on a free port as its client ``pickup``: Pickup's URL."""
    with pickup_server() as (url, httpd):
        call_command("seed_demo", password=password, pickup_url=f"{url}/", stdout=io.StringIO())
        httpd.set_app(Pickup(Config(actas_url=actas_url, public_url=url)))
        yield url
