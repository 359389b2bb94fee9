import os

from django.core.wsgi import get_wsgi_application

from config.observability.tracing import setup_tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Tracing (ACTAS_OTEL) adds its middleware: before the application builds its chain.
setup_tracing()
application = get_wsgi_application()

# A serving process without its signing keys would answer every token request with a 500:
# refuse to start instead (gunicorn then reports that the worker failed to boot).
from identity.oauth.checks import require_signing_keys  # noqa: E402

require_signing_keys()
