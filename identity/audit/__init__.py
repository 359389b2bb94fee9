"""The audit trail: append-only, hash-chained events per tenant, their verification and
retention. The lowest layer of identity: it imports organizations' models and selectors and
nothing of identity's core (people are recorded by id and label, never by foreign key)."""
