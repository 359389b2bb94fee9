import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# A serving process without its signing keys would answer every token request with a 500:
# refuse to start instead (gunicorn then reports that the worker failed to boot).
from identity.oauth.checks import require_signing_keys  # noqa: E402

require_signing_keys()
