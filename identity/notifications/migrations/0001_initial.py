"""The notifications app takes over OrganizationBranding, EmailTemplate, OutboxMessage from identity.

State only: the tables keep their names (``db_table``), rows, indexes, constraints and, for
the audit trail, the PostgreSQL trigger written by identity's migrations 0002 and 0007.
identity's migration 0009 removes the models from identity's state after this one. The
content types are renamed so the permissions that refer to them follow the models."""

import django.db.models.deletion
import identity.notifications.models
import uuid
from django.db import migrations, models


MODELS = ['organizationbranding', 'emailtemplate', 'outboxmessage']


def _content_types_follow(apps, schema_editor):
    content_type = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    taken = set(
        content_type.objects.using(db).filter(app_label='notifications', model__in=MODELS).values_list("model", flat=True)
    )
    content_type.objects.using(db).filter(app_label="identity", model__in=set(MODELS) - taken).update(
        app_label='notifications'
    )


def _content_types_return(apps, schema_editor):
    content_type = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    taken = set(
        content_type.objects.using(db).filter(app_label="identity", model__in=MODELS).values_list("model", flat=True)
    )
    content_type.objects.using(db).filter(app_label='notifications', model__in=set(MODELS) - taken).update(
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
                    name='OrganizationBranding',
                    fields=[
                        ('organization', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='branding', serialize=False, to='organizations.organization')),
                        ('display_name', models.CharField(blank=True, max_length=120)),
                        ('support_email', models.EmailField(blank=True, max_length=254)),
                        ('logo_url', models.URLField(blank=True, max_length=500, validators=[identity.notifications.models.validate_https_url])),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        'verbose_name_plural': 'organization brandings',
                        'db_table': 'identity_organizationbranding',
                    },
                ),
                migrations.CreateModel(
                    name='EmailTemplate',
                    fields=[
                        ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ('kind', models.CharField(choices=[('impersonation_started', 'Impersonation started'), ('email_otp', 'Email sign-in code')], max_length=32)),
                        ('locale', models.CharField(default='en', max_length=16)),
                        ('subject', models.CharField(max_length=300)),
                        ('html_body', models.TextField()),
                        ('text_body', models.TextField()),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='organizations.organization')),
                    ],
                    options={
                        'db_table': 'identity_emailtemplate',
                        'constraints': [models.UniqueConstraint(fields=('organization', 'kind', 'locale'), name='email_template_unique_org_kind_locale')],
                    },
                ),
                migrations.CreateModel(
                    name='OutboxMessage',
                    fields=[
                        ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ('locale', models.CharField(default='en', max_length=16)),
                        ('kind', models.CharField(max_length=64)),
                        ('template', models.CharField(max_length=100)),
                        ('to_email', models.EmailField(max_length=254)),
                        ('context', models.JSONField(blank=True, default=dict)),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('sent', 'Sent'), ('failed', 'Failed')], default='pending', max_length=16)),
                        ('attempts', models.PositiveSmallIntegerField(default=0)),
                        ('next_attempt_at', models.DateTimeField()),
                        ('last_error', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('sent_at', models.DateTimeField(blank=True, null=True)),
                        ('organization', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='organizations.organization')),
                        ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='organizations.organization')),
                    ],
                    options={
                        'db_table': 'identity_outboxmessage',
                        'indexes': [models.Index(fields=['status', 'next_attempt_at'], name='outbox_due_idx')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(_content_types_follow, _content_types_return),
    ]
