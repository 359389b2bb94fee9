"""Email: the outbox, an organization's branding and its own email templates, and the
registry of email kinds (``emails.email_kind_register``) other apps register into from their
``AppConfig.ready()``. Sits above the audit trail and below identity's core."""
