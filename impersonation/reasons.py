"""The reason an impersonator gives: what is kept of it (invisible characters removed, white
space collapsed, at most MAX_REASON characters) and whether it is enough."""

from __future__ import annotations

import unicodedata

from organizations.models import Organization
from organizations.selectors import org_effective_settings

MAX_REASON = 500


# Removed from a reason: control characters, zero-width spaces and the byte-order mark, and
# the bidirectional controls that could make the Console or the email show it reordered.
# (The zero-width joiners stay: some scripts and emoji need them.)
_REMOVED: dict[int, str | None] = {
    **dict.fromkeys([*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)], " "),
    **dict.fromkeys(
        [0x200B, 0x2060, 0xFEFF, 0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)], None
    ),
}


# Letters and symbols that draw nothing (fillers, the blank braille pattern).
_BLANK = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e\u034f")


# Unicode categories that show nothing on their own: separators, format and control
# characters, marks without a base, unassigned and private-use code points.
_INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn", "Mn", "Me"})


def _normalise_reason(reason: str) -> str:
    return " ".join((reason or "").translate(_REMOVED).split())


def _has_visible_text(text: str) -> bool:
    """Does ``text`` show at least one character to a reader?"""
    return any(ch not in _BLANK and unicodedata.category(ch) not in _INVISIBLE_CATEGORIES for ch in text)


def reason_clean(reason: str) -> str:
    """The reason as kept: invisible control characters removed, white space collapsed, and
    empty when nothing in it is visible."""
    clean = _normalise_reason(reason)[:MAX_REASON]
    return clean if _has_visible_text(clean) else ""


def impersonation_reason_check(*, org: Organization, reason: str) -> tuple[str, str]:
    """The reason as it will be kept, and what is wrong with it ("" when nothing): at most
    ``MAX_REASON`` characters, and, where the organization requires one, with visible text
    (spaces, zero-width and other invisible characters alone are no reason)."""
    clean = _normalise_reason(reason)
    if len(clean) > MAX_REASON:
        return clean, f"Give a reason of at most {MAX_REASON} characters."
    if not _has_visible_text(clean):
        clean = ""
        if org_effective_settings(org).impersonation_reason_required:
            return clean, (
                "Give a reason for this impersonation: spaces and invisible characters alone are not one."
            )
    return clean, ""
