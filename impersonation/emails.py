"""The email kinds impersonation adds to identity's editable emails (registered from
``ImpersonationConfig.ready()`` into ``identity.notifications.emails``' registry of kinds)."""

from __future__ import annotations

from identity.notifications.emails import BRAND_PLACEHOLDERS, Kind, email_kind_register

IMPERSONATION_STARTED = "impersonation_started"

IMPERSONATION_STARTED_KIND = Kind(
    IMPERSONATION_STARTED,
    "Impersonation started",
    {
        "user_name": ("The impersonated user's name", "Erin Example"),
        "impersonator_name": ("Who is acting as the user", "Sam Support"),
        "started_at": ("When it started (UTC)", "2026-01-15 09:30 UTC"),
        "expires_at": ("When it ends at the latest (UTC)", "2026-01-15 10:30 UTC"),
        "org_name": ("The organization", "Example Corp EU"),
        "reason": ("The reason the impersonator gave", "Ticket #4711: cannot see invoices"),
        "read_only": ('"yes" when read-only, else empty', "yes"),
        "access_url": (
            "The Access to my account page",
            "https://id.example.com/t/example/myaccount/access/",
        ),
        "report_url": (
            "Where to report misuse",
            "https://id.example.com/t/example/myaccount/access/#imp-00000000",
        ),
        **BRAND_PLACEHOLDERS,
    },
    position=10,
)


def register() -> None:
    email_kind_register(IMPERSONATION_STARTED_KIND)
