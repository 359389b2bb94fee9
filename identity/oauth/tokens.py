"""Every JWT actas signs or verifies goes through this module (the only one importing ``jwt``).

Keys
    A key set lives in a directory (``ACTAS_SIGNING_KEYS_DIR``): ``keyset.json`` names the
    active key and the retired keys still published, each private key in ``<kid>.pem``
    (mode 0600). Keys are parsed once per process and cached as key objects (a PEM parsed
    per call makes RS256 signing ~100x slower); the cache is refreshed when ``keyset.json``
    changes, so a rotation in one process reaches the others. A development key set is
    generated on first use only in the embedded default (DEBUG or no DATABASE_URL); elsewhere a
    missing key set is an error. ``manage.py rotate_signing_key`` makes a new active key and
    keeps the previous one published until every token it signed has expired.

Verification
    Algorithms are pinned to the key's own (never taken from the token), the ``kid`` must
    name a published key, ``typ`` must be the expected one (an ID token is not an access
    token), and ``iss``, ``exp``, ``iat`` are always required; ``aud`` is checked whenever the
    caller knows it.
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import hashlib
import json
import os
import secrets
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

SUPPORTED_ALGORITHMS: Final = ("RS256", "ES256")
KEYSET_FILE: Final = "keyset.json"
LEEWAY_SECONDS: Final = 30

ANY_AUDIENCE: Final = object()
"""Pass as ``audience`` when any audience is acceptable and the caller checks it itself
(actas's own APIs accept tokens issued to any client of the tenant)."""


class TokenError(Exception):
    """A token that must not be accepted. ``reason`` is for logs and the audit trail, never
    for the client (which gets a generic OAuth error)."""

    def __init__(self, reason: str, *, kind: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        # "issuer" or "audience" when only those were wrong (RFC 8693 answers invalid_target).
        self.kind = kind


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    created: dt.datetime
    retired_at: dt.datetime | None
    publish_until: dt.datetime | None

    def is_published(self, now: dt.datetime) -> bool:
        return self.publish_until is None or self.publish_until > now

    @property
    def public_key(self) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.get_default_algorithms()[self.alg].to_jwk(self.public_key))
        # `use` only: RFC 7517 §4.3 says `use` and `key_ops` SHOULD NOT be used together, and
        # some relying-party libraries refuse a key set whose keys carry both.
        jwk.pop("key_ops", None)
        jwk.update({"kid": self.kid, "use": "sig", "alg": self.alg})
        return dict(jwk)


@dataclass(frozen=True)
class KeySet:
    active: SigningKey
    keys: Mapping[str, SigningKey]  # every published key, the active one included


# --- key files ----------------------------------------------------------------------------------


def keys_dir() -> Path:
    configured = getattr(settings, "ACTAS_SIGNING_KEYS_DIR", "")
    if configured:
        return Path(configured)
    if settings.DEBUG or settings.EMBEDDED:
        return Path(settings.BASE_DIR) / "var" / "keys"
    raise ImproperlyConfigured(
        "ACTAS_SIGNING_KEYS_DIR is not set: outside the embedded default actas needs a signing key "
        "set (create one with `manage.py rotate_signing_key`)."
    )


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwk_thumbprint(public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 thumbprint (SHA-256), used as the ``kid``."""
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        members = {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}
    else:
        point = public_key.public_numbers()
        size = (public_key.curve.key_size + 7) // 8
        members = {
            "crv": "P-256",
            "kty": "EC",
            "x": base64.urlsafe_b64encode(point.x.to_bytes(size, "big")).rstrip(b"=").decode(),
            "y": base64.urlsafe_b64encode(point.y.to_bytes(size, "big")).rstrip(b"=").decode(),
        }
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def _generate(alg: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unsupported signing algorithm {alg!r}")


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise key-set writers across processes."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(directory / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_manifest(directory: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((directory / KEYSET_FILE).read_text()))
    except FileNotFoundError:
        return None


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    tmp = directory / f".{KEYSET_FILE}.{secrets.token_hex(4)}"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    os.replace(tmp, directory / KEYSET_FILE)


def _write_private_key(directory: Path, kid: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    name = f"{kid}.pem"
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return name


def rotate_signing_key(
    *, alg: str = "RS256", publish_old_for: dt.timedelta, directory: Path | None = None
) -> str:
    """Make a new active key; keep the previous one published for ``publish_old_for`` (the
    longest lifetime of a token it may have signed); drop keys whose time is up. Returns the
    new ``kid``."""
    directory = directory or keys_dir()
    if alg not in SUPPORTED_ALGORITHMS:
        raise ValueError(f"unsupported signing algorithm {alg!r}")
    with _locked(directory):
        kid = _rotate_unlocked(directory, alg=alg, publish_old_for=publish_old_for)
    _cache.clear()
    return kid


def _rotate_unlocked(directory: Path, *, alg: str, publish_old_for: dt.timedelta) -> str:
    now = timezone.now()
    manifest = _read_manifest(directory) or {"active": None, "keys": []}
    key = _generate(alg)
    kid = jwk_thumbprint(key.public_key())
    entries = []
    for entry in manifest["keys"]:
        if entry["kid"] == manifest["active"]:
            entry["retired_at"] = now.isoformat()
            entry["publish_until"] = (now + publish_old_for).isoformat()
        until = entry.get("publish_until")
        if until and dt.datetime.fromisoformat(until) <= now:
            (directory / entry["file"]).unlink(missing_ok=True)
            continue
        entries.append(entry)
    entries.append(
        {
            "kid": kid,
            "alg": alg,
            "file": _write_private_key(directory, kid, key),
            "created": now.isoformat(),
            "retired_at": None,
            "publish_until": None,
        }
    )
    _write_manifest(directory, {"active": kid, "keys": entries})
    return kid


# --- the per-process cache -----------------------------------------------------------------------


class _KeySetCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stamp: tuple[str, int, int, int] | None = None
        self._keyset: KeySet | None = None

    def clear(self) -> None:
        with self._lock:
            self._stamp, self._keyset = None, None

    def get(self) -> KeySet:
        directory = keys_dir()
        manifest_path = directory / KEYSET_FILE
        try:
            info = manifest_path.stat()
            stamp = (str(directory), info.st_mtime_ns, info.st_ino, info.st_size)
        except FileNotFoundError:
            if not (settings.DEBUG or settings.EMBEDDED):
                raise ImproperlyConfigured(
                    f"No signing key set in {directory}: run `manage.py rotate_signing_key`."
                ) from None
            with _locked(directory):
                if not manifest_path.exists():  # another process may have made it meanwhile
                    _rotate_unlocked(directory, alg="RS256", publish_old_for=dt.timedelta(0))
            info = manifest_path.stat()
            stamp = (str(directory), info.st_mtime_ns, info.st_ino, info.st_size)
        keyset = self._keyset
        if keyset is not None and self._stamp == stamp:
            return keyset
        with self._lock:
            if self._keyset is None or self._stamp != stamp:
                self._keyset = load_keyset(directory)
                self._stamp = stamp
            return self._keyset


_cache = _KeySetCache()


def load_keyset(directory: Path) -> KeySet:
    """Parse the key set (PEM parsing happens here and nowhere else)."""
    manifest = _read_manifest(directory)
    if not manifest or not manifest.get("active"):
        raise ImproperlyConfigured(f"{directory / KEYSET_FILE} names no active key.")
    now = timezone.now()
    keys: dict[str, SigningKey] = {}
    for entry in manifest["keys"]:
        until = dt.datetime.fromisoformat(entry["publish_until"]) if entry.get("publish_until") else None
        if until is not None and until <= now and entry["kid"] != manifest["active"]:
            continue
        pem = (directory / entry["file"]).read_bytes()
        private_key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ImproperlyConfigured(f"{entry['file']} is not an RSA or EC private key.")
        keys[entry["kid"]] = SigningKey(
            kid=entry["kid"],
            alg=entry["alg"],
            private_key=private_key,
            created=dt.datetime.fromisoformat(entry["created"]),
            retired_at=dt.datetime.fromisoformat(entry["retired_at"]) if entry.get("retired_at") else None,
            publish_until=until,
        )
    return KeySet(active=keys[manifest["active"]], keys=keys)


def current_keyset() -> KeySet:
    return _cache.get()


def jwks() -> dict[str, Any]:
    """The public keys to publish: the active one and retired ones still in use."""
    now = timezone.now()
    return {"keys": [key.public_jwk() for key in current_keyset().keys.values() if key.is_published(now)]}


# --- mint and verify -----------------------------------------------------------------------------


def new_jti() -> str:
    return secrets.token_urlsafe(24)


def mint(claims: Mapping[str, Any], *, typ: str) -> str:
    """Sign ``claims`` with the active key; the header carries ``kid`` and ``typ``."""
    key = current_keyset().active
    return jwt.encode(dict(claims), key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": typ})


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, to pick the key: only the first segment is decoded here (pyjwt's
    ``get_unverified_header`` decodes and checks all three, which ``jwt.decode`` then does
    again); the signature check below still reads the whole token."""
    encoded, dot, _rest = token.partition(".")
    try:
        if not dot or not encoded:
            raise ValueError("not a compact JWS")
        found = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenError(f"malformed token: {exc}") from exc
    if not isinstance(found, dict):
        raise TokenError("malformed token: header is not an object")
    return found


def verify(
    token: str,
    *,
    typ: str,
    issuer: str,
    audience: str | object,
    required: tuple[str, ...] = ("exp", "iat", "iss", "sub"),
    max_age: int | None = None,
    verify_exp: bool = True,
) -> dict[str, Any]:
    """Verify signature, ``typ``, ``iss``, ``exp``/``nbf``/``iat`` and ``aud``; return the claims.

    ``audience`` is the expected audience, or ``ANY_AUDIENCE`` when the caller checks it.
    ``max_age`` additionally bounds how long ago the token was issued (``iat``).
    ``verify_exp=False`` accepts an expired token (only a logout hint may be one).
    """
    if not isinstance(token, str) or not token or len(token) > 16_384:
        raise TokenError("malformed token")
    header = _unverified_header(token)
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise TokenError("token names no key")
    key = current_keyset().keys.get(kid)
    if key is None or not key.is_published(timezone.now()):
        raise TokenError("token signed by an unknown or withdrawn key")
    if str(header.get("typ", "")).lower() != typ.lower():
        raise TokenError(f"token type is {header.get('typ')!r}, expected {typ!r}")
    check_aud = audience is not ANY_AUDIENCE
    expected_aud = audience if isinstance(audience, str) else None
    if check_aud and expected_aud is None:
        raise TypeError("audience must be a string or ANY_AUDIENCE")
    try:
        claims = jwt.decode(
            token,
            key.public_key,
            algorithms=[key.alg],
            issuer=issuer,
            audience=expected_aud,
            leeway=LEEWAY_SECONDS,
            options={"require": list(required), "verify_aud": check_aud, "verify_exp": verify_exp},
        )
    except jwt.InvalidIssuerError as exc:
        raise TokenError(f"rejected: wrong issuer: {exc}", kind="issuer") from exc
    except jwt.InvalidAudienceError as exc:
        raise TokenError(f"rejected: wrong audience: {exc}", kind="audience") from exc
    except jwt.PyJWTError as exc:
        raise TokenError(f"rejected: {exc.__class__.__name__}: {exc}") from exc
    if max_age is not None:
        issued = claims.get("iat")
        if (
            not isinstance(issued, int | float)
            or timezone.now().timestamp() - issued > max_age + LEEWAY_SECONDS
        ):
            raise TokenError("token issued too long ago")
    return dict(claims)
