"""On PostgreSQL, refuse UPDATE and DELETE of audit events at the database level.

(SQLite, the embedded default, has no such guard; the hash chain still detects tampering.)
TRUNCATE is left alone so test databases can be flushed; the chain head catches a truncated
table (its sequence number is ahead of the remaining events).
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION actas_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only (%% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_event_append_only
    BEFORE UPDATE OR DELETE ON identity_auditevent
    FOR EACH ROW EXECUTE FUNCTION actas_audit_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS audit_event_append_only ON identity_auditevent;
DROP FUNCTION IF EXISTS actas_audit_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("identity", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
