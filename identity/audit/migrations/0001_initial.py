"""The audit app takes over AuditChainHead, AuditEvent from identity.

State only: the tables keep their names (``db_table``), rows, indexes, constraints and, for
the audit trail, the PostgreSQL trigger written by identity's migrations 0002 and 0007.
identity's migration 0009 removes the models from identity's state after this one. The
content types are renamed so the permissions that refer to them follow the models."""

import django.db.models.deletion
from django.db import migrations, models


MODELS = ['auditchainhead', 'auditevent']


def _content_types_follow(apps, schema_editor):
    content_type = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    taken = set(
        content_type.objects.using(db).filter(app_label='audit', model__in=MODELS).values_list("model", flat=True)
    )
    content_type.objects.using(db).filter(app_label="identity", model__in=set(MODELS) - taken).update(
        app_label='audit'
    )


def _content_types_return(apps, schema_editor):
    content_type = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    taken = set(
        content_type.objects.using(db).filter(app_label="identity", model__in=MODELS).values_list("model", flat=True)
    )
    content_type.objects.using(db).filter(app_label='audit', model__in=set(MODELS) - taken).update(
        app_label="identity"
    )


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('organizations', '0001_initial'),
        # The tables were created by identity's migrations; they stay as they are.
        ('identity', '0008_user_search_indexes'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='AuditChainHead',
                    fields=[
                        ('tenant', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, primary_key=True, related_name='+', serialize=False, to='organizations.organization')),
                        ('seq', models.PositiveBigIntegerField(default=0)),
                        ('hash', models.CharField(max_length=64)),
                        ('base_seq', models.PositiveBigIntegerField(default=0)),
                        ('base_hash', models.CharField(default='0000000000000000000000000000000000000000000000000000000000000000', max_length=64)),
                    ],
                    options={
                        'db_table': 'identity_auditchainhead',
                    },
                ),
                migrations.CreateModel(
                    name='AuditEvent',
                    fields=[
                        ('id', models.BigAutoField(primary_key=True, serialize=False)),
                        ('seq', models.PositiveBigIntegerField()),
                        ('created_at', models.DateTimeField()),
                        ('org_id', models.UUIDField(blank=True, null=True)),
                        ('action', models.CharField(max_length=100)),
                        ('outcome', models.CharField(choices=[('success', 'Success'), ('failure', 'Failure')], default='success', max_length=16)),
                        ('actor_id', models.UUIDField(blank=True, null=True)),
                        ('actor_label', models.CharField(blank=True, max_length=255)),
                        ('impersonator_id', models.UUIDField(blank=True, null=True)),
                        ('impersonator_label', models.CharField(blank=True, max_length=255)),
                        ('subject_id', models.UUIDField(blank=True, null=True)),
                        ('subject_label', models.CharField(blank=True, max_length=255)),
                        ('target_type', models.CharField(blank=True, max_length=64)),
                        ('target_id', models.CharField(blank=True, max_length=255)),
                        ('client_id', models.CharField(blank=True, max_length=255)),
                        ('scopes', models.TextField(blank=True)),
                        ('request_id', models.CharField(blank=True, max_length=64)),
                        ('ip', models.CharField(blank=True, max_length=45, null=True)),
                        ('data', models.JSONField(blank=True, default=dict)),
                        ('prev_hash', models.CharField(max_length=64)),
                        ('hash', models.CharField(max_length=64)),
                        ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='organizations.organization')),
                    ],
                    options={
                        'db_table': 'identity_auditevent',
                        'ordering': ['tenant_id', 'seq'],
                        'indexes': [models.Index(fields=['tenant', 'created_at'], name='audit_tenant_time_idx'), models.Index(fields=['tenant', 'action', 'created_at'], name='audit_tenant_action_idx'), models.Index(fields=['subject_id', 'created_at'], name='audit_subject_idx'), models.Index(fields=['impersonator_id', 'created_at'], name='audit_impersonator_idx')],
                        'constraints': [models.UniqueConstraint(fields=('tenant', 'seq'), name='audit_seq_in_tenant')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(_content_types_follow, _content_types_return),
    ]
