"""My Account's pages, mounted twice by ``config.urls``: ``/t/<t>/myaccount/`` (namespace
``myaccount``) and ``/t/<t>/o/<org>/myaccount/`` (namespace ``org-myaccount``). The callback
answers only under the tenant's mount (the one registered redirect URI)."""

from django.urls import path

from myaccount import consents, views

urlpatterns = [
    path("", views.profile, name="profile"),
    path("applications/", views.applications, name="applications"),
    path("applications/consents/<int:consent>/revoke", consents.consent_revoke_view, name="consent-revoke"),
    path("security/", views.security, name="security"),
    path("security/sign-out-others", views.sign_out_others, name="sign-out-others"),
    path("access/", views.access, name="access"),
    path("access/<uuid:impersonation>/end", views.impersonation_end, name="impersonation-end"),
    path("access/<uuid:impersonation>/report", views.impersonation_report, name="impersonation-report"),
    path("callback", views.callback, name="callback"),
]
