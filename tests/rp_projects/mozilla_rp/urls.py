from django.urls import include, path

from mozilla_rp import views

urlpatterns = [
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("healthz", views.healthz),
    path("private/", views.private),
    path("signin-failed/", views.signin_failed),
]
