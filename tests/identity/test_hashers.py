"""The keyed fast hash for generated client secrets."""

from __future__ import annotations

from django.contrib.auth.hashers import check_password, make_password
from django.test import override_settings

from identity.hashers import ClientSecretHasher


def test_round_trip_and_salt() -> None:
    a = make_password("s3cret-value", hasher="client_secret_hmac")
    b = make_password("s3cret-value", hasher="client_secret_hmac")
    assert a != b and a.startswith("client_secret_hmac$")
    assert check_password("s3cret-value", a)
    assert not check_password("s3cret-valuf", a)


def test_key_matters() -> None:
    encoded = make_password("s3cret-value", hasher="client_secret_hmac")
    with override_settings(ACTAS_CLIENT_SECRET_KEY="a-different-server-key"):
        assert not check_password("s3cret-value", encoded)


def test_malformed_hash_is_rejected_not_raised() -> None:
    assert ClientSecretHasher().verify("x", "client_secret_hmac$only-two") is False
