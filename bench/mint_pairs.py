"""Mint (subject token, ID token) pairs for the impersonation cases through actas's own services,
without the browser (run by bench/run.py inside actas's Django, through `manage.py shell`).

Per pair, exactly what the real authorize -> sign-in -> confirmation flow leaves behind:

1. a fresh SSO session of `admin` in the tenant `acme` (``sso_session_start``, amr
   ``BasicAuthenticator``, its ``login-success`` audit row), as the password sign-in does
   (without its PBKDF2 hash, the ~0.3 s of CPU that capped the old minting);
2. the whole policy chain for `admin` impersonating `alice` via Pickup
   (``impersonation_check``, stage ``confirm``, scopes ``openid internal_user_impersonate``);
3. the subject token (``subject_token_issue``: its row, its audit row, reason ``bench``);
4. an ID token for Pickup in that session (``oauth_id_token_issue``: ``sid``/``isk``, ``amr``,
   ``nonce``, its IDToken row), as the confirmation view issues for
   ``response_type=id_token subject_token``.

Two modes:

- one-shot: ``BENCH_PAIRS_N`` pairs written to ``BENCH_PAIRS_OUT``, one ``subject<TAB>id`` line each;
- serve (``BENCH_PAIRS_SERVE=1``): read a count per line on stdin, answer with that many
  ``PAIR subject<TAB>id`` lines and ``DONE <n> <seconds>`` on stdout (``ERROR <message>`` on a
  failure), so run.py pays Django's start-up once and mints right before each cell.
"""

import os
import sys
import time

from identity.models import Application, User
from identity.oauth.claims import oauth_id_token_issue
from identity.services.sessions import sso_session_start
from impersonation import policy
from impersonation.services import impersonation_check
from impersonation.subject_tokens import subject_token_issue
from organizations.selectors import tenant_get

TENANT = os.environ.get("BENCH_PAIRS_TENANT", "acme")
ACTOR = os.environ.get("BENCH_PAIRS_ACTOR", "admin")
SUBJECT = os.environ.get("BENCH_PAIRS_SUBJECT", "alice")
CLIENT = os.environ.get("BENCH_PAIRS_CLIENT", "pickup")

tenant = tenant_get(handle=TENANT)
if tenant is None:
    raise SystemExit(f"tenant {TENANT} is missing: run manage.py seed_demo first")
actor = User.objects.get(organization=tenant, username=ACTOR)
subject = User.objects.get(organization=tenant, username=SUBJECT)
application = Application.objects.select_related("organization").get(client_id=CLIENT)
scopes = ["openid", policy.impersonate_scope_for(tenant)]


def mint_one() -> tuple[str, str]:
    session = sso_session_start(
        user=actor, org=tenant, amr=["BasicAuthenticator"], ip="127.0.0.1", user_agent="bench/mint_pairs"
    )
    attempt = impersonation_check(
        actor=actor,
        subject_id=str(subject.pk),
        org=tenant,
        application=application,
        sso_session=session,
        requested_scopes=scopes,
        read_only=False,
        stage="confirm",
    )
    subject_token = subject_token_issue(actor=actor, attempt=attempt, sso_session=session, reason="bench")
    id_token, _stored = oauth_id_token_issue(
        tenant=tenant,
        org=tenant,
        client=application,
        user=actor,
        scopes=["openid"],
        session=session,
        base={"nonce": "n"},
    )
    return subject_token, id_token


if os.environ.get("BENCH_PAIRS_SERVE") == "1":
    print("READY", flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        if line == "QUIT":
            break
        t0 = time.perf_counter()
        try:
            out = [mint_one() for _ in range(int(line))]
        except Exception as e:  # noqa: BLE001 - reported to run.py
            print(f"ERROR {type(e).__name__}: {' '.join(str(e).split())[:300]}", flush=True)
            continue
        sys.stdout.write("".join(f"PAIR {s}\t{i}\n" for s, i in out))
        print(f"DONE {len(out)} {time.perf_counter() - t0:.3f}", flush=True)
else:
    n = int(os.environ.get("BENCH_PAIRS_N", "1"))
    pairs = [mint_one() for _ in range(n)]
    with open(os.environ["BENCH_PAIRS_OUT"], "w") as fh:
        fh.writelines(f"{s}\t{i}\n" for s, i in pairs)
