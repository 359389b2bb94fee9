"""Writes. Each service is keyword-only, takes the acting user, and audits in its transaction."""
