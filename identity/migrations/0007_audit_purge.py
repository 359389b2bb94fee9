"""The audit retention path (`manage.py audit_purge`).

The chain head gains a checkpoint (``base_seq``/``base_hash``: events up to ``base_seq`` were
exported and deleted, the first remaining one follows ``base_hash``). On PostgreSQL the
append-only trigger now lets exactly one DELETE through: in a transaction that has set
``SET LOCAL actas.audit_purge = 'on'``, of an event the tenant's checkpoint already covers
(``seq <= base_seq``), so the purge must move the checkpoint first, in the same transaction.
UPDATE is refused as before, and so is any other DELETE.
"""

from django.db import migrations, models

PURGEABLE = """
CREATE OR REPLACE FUNCTION actas_audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND current_setting('actas.audit_purge', true) = 'on'
       AND OLD.seq <= (SELECT h.base_seq FROM identity_auditchainhead h WHERE h.tenant_id = OLD.tenant_id)
    THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit events are append-only (%% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION actas_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only (%% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PURGEABLE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY)


class Migration(migrations.Migration):
    dependencies = [("identity", "0006_branding_email_templates")]
    operations = [
        migrations.AddField(
            model_name="auditchainhead",
            name="base_seq",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="auditchainhead",
            name="base_hash",
            field=models.CharField(default="0000000000000000000000000000000000000000000000000000000000000000", max_length=64),
        ),
        migrations.RunPython(forwards, backwards),
    ]
