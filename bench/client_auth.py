"""CPU of client authentication on the token path (run by hand, in-process, no server).

    .venv/bin/python bench/client_auth.py [--n 20000]

Times, with time.process_time over N calls each: actas's ClientSecretHasher (HMAC-SHA256 with a
server key, constant-time compare) verifying a generated 256-bit secret, Django's default
PBKDF2 hasher verifying the same secret (what DOT's hash_client_secret costs with Django's
defaults), and one RS256 signature with actas's cached key object. Prints a table and writes
bench/results/client_auth.json. The target (issue 7): client authentication <= 1 ms CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _per_call_ms(fn: Callable[[], object], n: int) -> float:
    fn()
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="calls per fast cell (PBKDF2 gets n/2000)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "client_auth.json"))
    a = ap.parse_args()
    keys = tempfile.mkdtemp(prefix="actas-bench-keys-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", "bench-client-auth-" + secrets.token_hex(8))
    os.environ["ACTAS_SIGNING_KEYS_DIR"] = keys
    os.environ.setdefault("DEBUG", "0")
    import django

    django.setup()
    import datetime as dt

    from django.contrib.auth.hashers import PBKDF2PasswordHasher, check_password, make_password

    from identity.oauth import tokens

    tokens.rotate_signing_key(alg="RS256", publish_old_for=dt.timedelta(seconds=60))
    secret = secrets.token_urlsafe(32)
    hmac_encoded = make_password(secret, hasher="client_secret_hmac")
    pbkdf2_encoded = PBKDF2PasswordHasher().encode(secret, PBKDF2PasswordHasher().salt())
    claims = {"iss": "bench", "sub": "bench", "aud": "bench", "exp": int(time.time()) + 600}
    rows = {
        "client secret, HMAC-SHA256 (actas)": _per_call_ms(lambda: check_password(secret, hmac_encoded), a.n),
        "client secret, wrong, HMAC-SHA256": _per_call_ms(
            lambda: check_password("x" + secret, hmac_encoded), a.n
        ),
        "client secret, PBKDF2 (Django default)": _per_call_ms(
            lambda: check_password(secret, pbkdf2_encoded), max(3, a.n // 2000)
        ),
        "RS256 signature, cached key (actas tokens.mint)": _per_call_ms(
            lambda: tokens.mint(claims, typ="at+jwt"), max(200, a.n // 20)
        ),
    }
    width = max(len(k) for k in rows)
    print(f"{'case':<{width}}  CPU ms/call")
    for name, ms in rows.items():
        print(f"{name:<{width}}  {ms:10.4f}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(
        json.dumps({"date": time.strftime("%Y-%m-%d"), "cpu_ms_per_call": rows, "target_ms": 1.0}, indent=2)
        + "\n"
    )
    return 0 if rows["client secret, HMAC-SHA256 (actas)"] <= 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
