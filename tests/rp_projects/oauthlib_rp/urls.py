from django.urls import path

from oauthlib_rp import views

urlpatterns = [
    path("healthz", views.healthz),
    path("login/", views.login, name="login"),
    path("callback/", views.callback, name="callback"),
    path("private/", views.private),
]
