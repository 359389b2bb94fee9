"""Pickup: a tiny OpenID Connect relying party of actas's demo tenant (DESIGN §8).

It signs a user in with the authorization code flow (PKCE S256), and lets an administrator
impersonate a user: actas's subject token plus the impersonator's ID token go through the
RFC 8693 token exchange to an access token for the target carrying ``act``. Opened from an
organization's My Account (``/?orgId=<organization id>``), it signs in at that organization, and
its impersonation form offers the organizations the signed-in user belongs to. Run it with
``python -m demo.pickup`` from the repository root; see ``demo.pickup.app.Config`` for the
environment it reads.
"""
