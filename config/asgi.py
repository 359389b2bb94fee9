import os

from django.core.asgi import get_asgi_application

from config.observability.tracing import setup_tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Tracing (ACTAS_OTEL) adds its middleware: before the application builds its chain.
setup_tracing()
application = get_asgi_application()

from identity.oauth.checks import require_signing_keys  # noqa: E402

require_signing_keys()
