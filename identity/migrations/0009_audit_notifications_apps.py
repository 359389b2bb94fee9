"""The audit trail and the outbox, branding and email templates move to their own apps
(``identity.audit``, label ``audit``; ``identity.notifications``, label ``notifications``).

State only: identity forgets the five models after the new apps have taken them over in their
own state (their ``0001_initial``). No table is renamed, no row is moved, and the PostgreSQL
trigger refusing UPDATE and DELETE of audit events (0002, 0007 above) stays as it is."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("identity", "0008_user_search_indexes"),
        ("audit", "0001_initial"),
        ("notifications", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="AuditEvent"),
                migrations.DeleteModel(name="AuditChainHead"),
                migrations.DeleteModel(name="OutboxMessage"),
                migrations.DeleteModel(name="OrganizationBranding"),
                migrations.DeleteModel(name="EmailTemplate"),
            ],
            database_operations=[],
        ),
    ]
