"""The audit trail: events and each tenant's hash-chain head."""

from __future__ import annotations

from django.db import models

from organizations.models import Organization


class AuditEvent(models.Model):
    """One append-only audit record, hash-chained per tenant.

    People are referenced by id plus a label captured at write time (not by foreign key), so
    the trail outlives deleted accounts. On PostgreSQL a trigger refuses UPDATE and DELETE.
    """

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+", db_constraint=True)
    seq = models.PositiveBigIntegerField()
    created_at = models.DateTimeField()
    org_id = models.UUIDField(null=True, blank=True)
    action = models.CharField(max_length=100)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    actor_id = models.UUIDField(null=True, blank=True)
    actor_label = models.CharField(max_length=255, blank=True)
    impersonator_id = models.UUIDField(null=True, blank=True)
    impersonator_label = models.CharField(max_length=255, blank=True)
    subject_id = models.UUIDField(null=True, blank=True)
    subject_label = models.CharField(max_length=255, blank=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=255, blank=True)
    client_id = models.CharField(max_length=255, blank=True)
    scopes = models.TextField(blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    # Text, not inet: the hash covers exactly the characters written.
    ip = models.CharField(max_length=45, null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        db_table = "identity_auditevent"  # the table keeps the name it had under identity
        ordering = ["tenant_id", "seq"]
        constraints = [models.UniqueConstraint(fields=["tenant", "seq"], name="audit_seq_in_tenant")]
        indexes = [
            models.Index(fields=["tenant", "created_at"], name="audit_tenant_time_idx"),
            models.Index(fields=["tenant", "action", "created_at"], name="audit_tenant_action_idx"),
            models.Index(fields=["subject_id", "created_at"], name="audit_subject_idx"),
            models.Index(fields=["impersonator_id", "created_at"], name="audit_impersonator_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.seq} {self.action}"


class AuditChainHead(models.Model):
    """The head of a tenant's chain; locked by every writer so the chain stays linear."""

    tenant = models.OneToOneField(Organization, primary_key=True, on_delete=models.PROTECT, related_name="+")
    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64)
    # The checkpoint left by `manage.py audit_purge`: events up to base_seq were exported and
    # deleted; the first remaining event follows base_hash (the genesis hash when none were).
    base_seq = models.PositiveBigIntegerField(default=0)
    base_hash = models.CharField(max_length=64, default="0" * 64)

    class Meta:
        db_table = "identity_auditchainhead"

    def __str__(self) -> str:
        return f"chain head of {self.tenant_id} at {self.seq}"
