"""Pickup's in-memory sessions: one per browser (a random HttpOnly cookie), with the sign-in,
the authorization requests in flight and the messages to show."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from demo.pickup.limits import MAX_FLASH, MAX_NAMES, MAX_PENDING, MAX_SESSIONS, PENDING_AGE, SESSION_IDLE
from demo.pickup.oidc import ROOT, Tokens

# --- sessions --------------------------------------------------------------------------------


@dataclass
class Pending:
    """An authorization request Pickup sent and has not had the answer to."""

    kind: Literal["signin", "impersonate"]
    nonce: str
    verifier: str  # PKCE; empty for impersonation
    org: str = ROOT  # whose endpoints it was sent to, and whose token endpoint gets the answer
    created: float = field(default_factory=time.monotonic)


@dataclass
class SignedIn:
    tokens: Tokens
    id_token: str  # the logout hint: the user's own, or under impersonation the impersonator's
    org: str = ROOT  # the organization whose endpoints issued the tokens (and refresh them)


@dataclass
class Session:
    sid: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    touched: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: OrderedDict[str, Pending] = field(default_factory=OrderedDict)
    signed_in: SignedIn | None = None
    names: OrderedDict[str, str] = field(default_factory=OrderedDict)  # sub → what Pickup calls them
    # The organizations the last "Impersonate a user" form offered: value (ROOT or an id) → name.
    choices: dict[str, str] = field(default_factory=dict)
    # The organizations below the signed-in one that the user is a member of (organization_switch).
    switches: dict[str, str] = field(default_factory=dict)
    flash: list[str] = field(default_factory=list)

    def say(self, message: str) -> None:
        self.flash = [*self.flash, message][-MAX_FLASH:]

    def learn_name(self, claims: Mapping[str, Any]) -> None:
        label = person_label(claims)
        if label:
            self.names[str(claims["sub"])] = label
            self.names.move_to_end(str(claims["sub"]))
            while len(self.names) > MAX_NAMES:
                self.names.popitem(last=False)

    def start(
        self, kind: Literal["signin", "impersonate"], *, verifier: str = "", org: str = ROOT
    ) -> tuple[str, str]:
        """A new pending request; its (state, nonce)."""
        now = time.monotonic()
        for state in [s for s, p in self.pending.items() if now - p.created > PENDING_AGE]:
            del self.pending[state]
        while len(self.pending) >= MAX_PENDING:
            self.pending.popitem(last=False)
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.pending[state] = Pending(kind, nonce, verifier, org)
        return state, nonce

    def finish(self, state: str, kind: Literal["signin", "impersonate"]) -> Pending | None:
        """The pending request this ``state`` answers (once), if it is of ``kind`` and recent."""
        pending = self.pending.pop(state, None) if state else None
        if pending is None or pending.kind != kind or time.monotonic() - pending.created > PENDING_AGE:
            return None
        return pending


class SessionStore:
    """At most MAX_SESSIONS, each forgotten after SESSION_IDLE seconds without a request."""

    def __init__(self) -> None:
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_create(self, sid: str) -> tuple[Session, bool]:
        now = time.monotonic()
        with self._lock:
            # Least recently used first: drop the idle ones from the front.
            while self._sessions and now - next(iter(self._sessions.values())).touched > SESSION_IDLE:
                self._sessions.popitem(last=False)
            session = self._sessions.get(sid) if sid else None
            created = session is None
            if session is None:
                if len(self._sessions) >= MAX_SESSIONS:
                    self._sessions.popitem(last=False)
                session = Session(secrets.token_urlsafe(32))
                self._sessions[session.sid] = session
            session.touched = now
            self._sessions.move_to_end(session.sid)
            return session, created


def person_label(claims: Mapping[str, Any]) -> str:
    """``username (Full Name)`` from whichever of the two the claims carry."""
    username, name = str(claims.get("preferred_username", "")), str(claims.get("name", ""))
    if username and name:
        return f"{username} ({name})"
    return username or name
