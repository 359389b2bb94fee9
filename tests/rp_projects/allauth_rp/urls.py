from django.urls import include, path

from allauth_rp import views

urlpatterns = [
    path("accounts/", include("allauth.urls")),
    path("healthz", views.healthz),
    path("private/", views.private),
]
