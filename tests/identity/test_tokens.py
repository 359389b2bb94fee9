"""identity.oauth.tokens: keys, kid, JWKS, mint and verify with everything pinned."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
import time_machine
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import timezone
from joserfc import jwt as jose_jwt
from joserfc.jwk import JWKRegistry, KeySet

from identity.oauth import tokens

ISS = "http://127.0.0.1:8000/t/acme/oauth2/token"


@pytest.fixture(autouse=True)
def key_dir(tmp_path: Path, settings: Any) -> Iterator[Path]:
    """A key set of this test's own, made the way production makes one."""
    settings.ACTAS_SIGNING_KEYS_DIR = str(tmp_path / "keys")
    tokens.rotate_signing_key(publish_old_for=dt.timedelta(0))
    yield tmp_path / "keys"
    tokens._cache.clear()


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISS, "sub": "user-1", "aud": "pickup", "iat": now, "nbf": now, "exp": now + 300} | extra


def test_round_trip_and_header() -> None:
    token = tokens.mint(claims(scope="openid"), typ="at+jwt")
    header = pyjwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256"
    assert header["kid"] == tokens.current_keyset().active.kid
    assert tokens.verify(token, typ="at+jwt", issuer=ISS, audience="pickup")["scope"] == "openid"


def test_dev_key_set_is_generated_once_with_private_files(tmp_path: Path, settings: Any) -> None:
    settings.ACTAS_SIGNING_KEYS_DIR = str(tmp_path / "dev-keys")
    settings.EMBEDDED = True
    tokens._cache.clear()
    first = tokens.current_keyset().active.kid
    assert tokens.current_keyset().active.kid == first
    pems = list((tmp_path / "dev-keys").glob("*.pem"))
    assert len(pems) == 1 and pems[0].stat().st_mode & 0o777 == 0o600


@override_settings(DEBUG=False, EMBEDDED=False)
def test_no_generated_key_outside_the_embedded_default(tmp_path: Path, settings: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    settings.ACTAS_SIGNING_KEYS_DIR = str(tmp_path / "empty")
    tokens._cache.clear()
    with pytest.raises(ImproperlyConfigured):
        tokens.current_keyset()
    assert not (tmp_path / "empty" / "keyset.json").exists()


def test_keys_are_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens.current_keyset()
    calls: list[int] = []
    real = tokens.serialization.load_pem_private_key

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(tokens.serialization, "load_pem_private_key", counting)
    for _ in range(50):
        tokens.verify(tokens.mint(claims(), typ="at+jwt"), typ="at+jwt", issuer=ISS, audience="pickup")
    assert calls == []


@pytest.mark.parametrize(
    ("mutate", "kwargs"),
    [
        (lambda c: c | {"iss": "https://evil.example/"}, {}),
        (lambda c: c | {"aud": "other-client"}, {}),
        (lambda c: c | {"exp": int(time.time()) - 120}, {}),
        (lambda c: c | {"nbf": int(time.time()) + 600}, {}),
        (lambda c: {k: v for k, v in c.items() if k != "exp"}, {}),
        (lambda c: {k: v for k, v in c.items() if k != "sub"}, {}),
        (lambda c: c | {"iat": int(time.time()) - 4000}, {"max_age": 3600}),
    ],
)
def test_claims_are_enforced(mutate: Any, kwargs: dict[str, Any]) -> None:
    token = tokens.mint(mutate(claims()), typ="at+jwt")
    with pytest.raises(tokens.TokenError):
        tokens.verify(token, typ="at+jwt", issuer=ISS, audience="pickup", **kwargs)


def test_type_confusion_is_refused() -> None:
    id_token = tokens.mint(claims(), typ="JWT")
    with pytest.raises(tokens.TokenError, match="type"):
        tokens.verify(id_token, typ="at+jwt", issuer=ISS, audience="pickup")


def test_algorithm_is_pinned_not_read_from_the_token() -> None:
    key = tokens.current_keyset().active
    public_pem = key.public_key.public_bytes(
        tokens.serialization.Encoding.PEM, tokens.serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # The classic confusion attack: HS256 "signed" with the public key as the secret.
    segments = [
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")
        for part in ({"alg": "HS256", "kid": key.kid, "typ": "at+jwt"}, claims())
    ]
    import hashlib
    import hmac

    signing_input = b".".join(segments)
    signature = base64.urlsafe_b64encode(hmac.new(public_pem, signing_input, hashlib.sha256).digest()).rstrip(
        b"="
    )
    forged = (signing_input + b"." + signature).decode()
    with pytest.raises(tokens.TokenError):
        tokens.verify(forged, typ="at+jwt", issuer=ISS, audience="pickup")
    unsigned = pyjwt.encode(
        claims(),
        None,  # type: ignore[arg-type]
        algorithm="none",
        headers={"kid": key.kid, "typ": "at+jwt"},
    )
    with pytest.raises(tokens.TokenError):
        tokens.verify(unsigned, typ="at+jwt", issuer=ISS, audience="pickup")


@pytest.mark.parametrize("junk", ["", "a.b", "not a token", "x" * 20000, "e30.e30.e30", None])
def test_malformed_tokens(junk: Any) -> None:
    with pytest.raises(tokens.TokenError):
        tokens.verify(junk, typ="at+jwt", issuer=ISS, audience="pickup")


def test_tampered_signature_and_unknown_kid() -> None:
    token = tokens.mint(claims(), typ="at+jwt")
    head, body, sig = token.split(".")
    with pytest.raises(tokens.TokenError):
        tokens.verify(f"{head}.{body}.{sig[:-4]}AAAA", typ="at+jwt", issuer=ISS, audience="pickup")
    other = pyjwt.encode(claims(), "x" * 64, algorithm="HS256", headers={"kid": "nope", "typ": "at+jwt"})
    with pytest.raises(tokens.TokenError, match="unknown"):
        tokens.verify(other, typ="at+jwt", issuer=ISS, audience="pickup")


def test_any_audience_is_explicit() -> None:
    token = tokens.mint(claims(aud="some-client"), typ="at+jwt")
    assert (
        tokens.verify(token, typ="at+jwt", issuer=ISS, audience=tokens.ANY_AUDIENCE)["aud"] == "some-client"
    )


def test_rotation_keeps_the_old_key_until_its_tokens_expire(key_dir: Path) -> None:
    old_kid = tokens.current_keyset().active.kid
    old_token = tokens.mint(claims(), typ="at+jwt")
    new_kid = tokens.rotate_signing_key(publish_old_for=dt.timedelta(seconds=600))
    assert new_kid != old_kid
    assert {k["kid"] for k in tokens.jwks()["keys"]} == {old_kid, new_kid}
    assert tokens.verify(old_token, typ="at+jwt", issuer=ISS, audience="pickup")["sub"] == "user-1"
    assert pyjwt.get_unverified_header(tokens.mint(claims(), typ="at+jwt"))["kid"] == new_kid
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=601)):
        tokens._cache.clear()
        assert {k["kid"] for k in tokens.jwks()["keys"]} == {new_kid}
        with pytest.raises(tokens.TokenError):
            tokens.verify(old_token, typ="at+jwt", issuer=ISS, audience="pickup", required=("iss",))
        tokens.rotate_signing_key(publish_old_for=dt.timedelta(seconds=60))
    assert not (key_dir / f"{old_kid}.pem").exists()


def test_rotate_command(db: None, key_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = tokens.current_keyset().active.kid
    call_command("rotate_signing_key", "--alg", "ES256")
    keyset = tokens.current_keyset()
    assert keyset.active.alg == "ES256" and first in keyset.keys
    assert "New active signing key" in capsys.readouterr().out
    token = tokens.mint(claims(), typ="at+jwt")
    assert pyjwt.get_unverified_header(token)["alg"] == "ES256"
    assert tokens.verify(token, typ="at+jwt", issuer=ISS, audience="pickup")


def test_jwks_verifies_with_an_independent_jose_library() -> None:
    tokens.rotate_signing_key(alg="ES256", publish_old_for=dt.timedelta(seconds=600))
    for _ in range(2):
        token = tokens.mint(claims(), typ="at+jwt")
        keyset = KeySet.import_key_set(tokens.jwks())  # type: ignore[arg-type]
        decoded = jose_jwt.decode(token, keyset, algorithms=["RS256", "ES256"])
        jose_jwt.JWTClaimsRegistry(iss={"essential": True, "value": ISS}).validate(decoded.claims)
        assert decoded.claims["sub"] == "user-1"
        tokens.rotate_signing_key(alg="RS256", publish_old_for=dt.timedelta(seconds=600))
    for jwk in tokens.jwks()["keys"]:
        assert JWKRegistry.import_key(jwk).thumbprint() == jwk["kid"]
        assert "d" not in jwk and jwk["use"] == "sig"
        assert "key_ops" not in jwk  # RFC 7517 §4.3: not both `use` and `key_ops`


def test_jwks_endpoint(db: None, client: Client) -> None:
    from identity.services.tenants import tenant_bootstrap

    tenant_bootstrap(
        actor=None, handle="acme", name="Acme", admin_username="admin", admin_password="a-long-password-1"
    )
    response = client.get("/t/acme/oauth2/jwks")
    assert response.status_code == 200
    assert response["Cache-Control"] == "public, max-age=300"
    assert [k["kid"] for k in response.json()["keys"]] == [tokens.current_keyset().active.kid]
    assert client.get("/t/nope/oauth2/jwks").status_code == 404
    assert client.post("/t/acme/oauth2/jwks").status_code == 405


def test_a_retired_key_stops_working_when_its_time_is_up() -> None:
    old_token = tokens.mint(claims(), typ="at+jwt")
    tokens.rotate_signing_key(publish_old_for=dt.timedelta(seconds=5))
    assert tokens.verify(old_token, typ="at+jwt", issuer=ISS, audience="pickup")
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=6)):
        # No reload of the key set happens in between: the check is made at use.
        assert len(tokens.jwks()["keys"]) == 1
        with pytest.raises(tokens.TokenError):
            tokens.verify(old_token, typ="at+jwt", issuer=ISS, audience="pickup", required=("iss",))
