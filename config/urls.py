from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.generic import RedirectView

from identity import views as identity_views


@login_not_required
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


# Two mounts of the same pages, each its own application namespace, so reversing one never
# resolves to the other through the current request's namespace.
console = ("config.console_urls", "console")
org_console = ("config.console_urls", "org-console")

urlpatterns = [
    path("healthz", health, name="health"),
    path("", login_not_required(RedirectView.as_view(url="/t/acme/console/", permanent=False))),
    path("t/<slug:tenant>/login/", identity_views.login_view, name="login"),
    path("t/<slug:tenant>/logout/", identity_views.logout_view, name="logout"),
    path("t/<slug:tenant>/o/<uuid:org>/login/", identity_views.login_view, name="org-login"),
    path("t/<slug:tenant>/o/<uuid:org>/logout/", identity_views.logout_view, name="org-logout"),
    path("t/<slug:tenant>/oauth2/jwks", identity_views.jwks_view, name="jwks"),
    path("t/<slug:tenant>/console/", include(console, namespace="console")),
    path("t/<slug:tenant>/o/<uuid:org>/console/", include(org_console, namespace="org-console")),
]
