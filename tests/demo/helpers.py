"""The demo application Pickup (demo/pickup), served for a test on a free port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from demo.pickup.app import Config, Pickup
from demo.pickup.server import server
from identity.models import Application
from identity.services.applications import application_update_protocol


@contextmanager
def served_pickup(actas_url: str) -> Iterator[str]:
    """Pickup against actas at ``actas_url``, with the demo tenant seeded (``seed_demo``): its
    URL; the port is only known once bound, so its redirect and post-logout URIs are then
    registered on the seeded application beside the default ones, and its access URL set."""
    httpd = server(None, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{httpd.server_port}"
    app = Application.objects.get(client_id="pickup")
    application_update_protocol(
        actor=None,
        application=app,
        client_type=app.client_type,
        grant_types=app.grant_types,
        redirect_uris=[*app.redirect_uris.split(), f"{url}/callback"],
        post_logout_redirect_uris=[*app.post_logout_redirect_uris.split(), f"{url}/"],
        pkce_required=app.pkce_required,
        access_token_lifetime=app.access_token_lifetime,
        refresh_token_lifetime=app.refresh_token_lifetime,
        id_token_lifetime=app.id_token_lifetime,
        subject_token_enabled=app.subject_token_enabled,
        subject_token_expiry=app.subject_token_expiry,
    )
    # My Account links the application by its access URL.
    Application.objects.filter(pk=app.pk).update(access_url=f"{url}/")
    httpd.set_app(Pickup(Config(actas_url=actas_url, public_url=url)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
