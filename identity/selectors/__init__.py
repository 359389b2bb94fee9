"""Reads of identity, one module per concern (this package re-exports nothing).

``users`` (members of an organization, sharing), ``applications`` (availability, login flows,
API authorizations), ``roles``, ``permissions`` (the permission question: which scopes a user
holds for an application in an organization, and the OAuth scope checks) and
``permission_map`` (who holds what where: dominance, impersonated scopes, organization switch).
"""
