#!/usr/bin/env python3
"""What a token endpoint that issues N statements can reach on this machine, at best.

Serves the floor (bench/floor, Django with the default middleware, DEBUG off) with a PostgreSQL
database and measures, interleaved in one run, `/sign/RS256` and `/verify-2-sign-1` (the
ratios' denominators of bench/run.py) against the same work plus N statements in one
transaction (`/db/N/...`: N - 1 primary-key reads of a 1,000-row table and one insert, through
Django's cursor and psycopg, as actas). The ratio of `/db/N/sign` to `/sign` is the ceiling of
"x of /sign" for any endpoint that needs N statements, whatever else it does; actas's statements
are joins and ORM inserts, so it can only be lower.

    .venv/bin/python bench/statement_floor.py [--duration 10] [--rounds 3] [--conns 2]

Needs wrk and PostgreSQL at 127.0.0.1:5432 (user postgres); uses the database
`statement_floor_bench` (recreated). Prints a Markdown table; writes bench/results/statement-floor.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # noqa: E402 (bench/run.py, imported from its folder)

DB = "statement_floor_bench"


def prepare_database() -> None:
    import psycopg

    bench.recreate_databases([DB])
    with psycopg.connect(dbname=DB, autocommit=True, connect_timeout=5, **bench.PG) as conn:  # type: ignore[arg-type]
        conn.execute("CREATE TABLE floor_row (id integer PRIMARY KEY, v text NOT NULL)")
        conn.execute("INSERT INTO floor_row SELECT g, md5(g::text) FROM generate_series(1, 1000) g")
        conn.execute("CREATE TABLE floor_token (id bigserial PRIMARY KEY, jti text NOT NULL UNIQUE)")
        conn.execute("ANALYZE")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10, help="seconds per cell and round (default 10)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=2)
    ap.add_argument("--statements", default="3,7,12,14,16", help="N of the /db/N/sign cells")
    ap.add_argument("--exchange-statements", default="16", help="N of the /db/N/verify-2-sign-1 cells")
    ap.add_argument("--port", type=int, default=18101)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    if shutil.which("wrk") is None:
        print("statement_floor: wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    workdir = Path(tempfile.mkdtemp(prefix="actas-statement-floor-"))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_pem = workdir / "rsa.pem"
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    prepare_database()
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(BENCH_FLOOR_KEY=str(key_pem), BENCH_FLOOR_DB=DB, PYTHONDONTWRITEBYTECODE="1")
    server = bench.Server(
        "floor", a.port, "floor:application", bench.BENCH / "floor", env, "/healthz", workdir / "floor.log"
    )
    server.db = DB
    exchange = bench.floor_exchange_form(key)
    base = f"http://{bench.HOST}:{a.port}"
    cells = [bench.Cell("client_credentials", "floor", "/sign/RS256", a.conns, "GET", f"{base}/sign/RS256")]
    cells += [
        bench.Cell("client_credentials", "floor", f"/db/{n}/sign", a.conns, "GET", f"{base}/db/{n}/sign")
        for n in (int(x) for x in a.statements.split(",") if x)
    ]
    cells.append(
        bench.Cell(
            "token_exchange",
            "floor",
            "/verify-2-sign-1",
            a.conns,
            "POST",
            f"{base}/verify-2-sign-1",
            body=exchange,
        )
    )
    cells += [
        bench.Cell(
            "token_exchange",
            "floor",
            f"/db/{n}/verify-2-sign-1",
            a.conns,
            "POST",
            f"{base}/db/{n}/verify-2-sign-1",
            body=exchange,
        )
        for n in (int(x) for x in a.exchange_statements.split(",") if x)
    ]
    try:
        server.start(a.workers)
        server.wait_ready()
        for cell in cells:
            bench.run_wrk(cell, server, 1, workdir, 0, 0)  # warm-up
        for rnd in range(1, a.rounds + 1):
            for cell in cells:
                r = bench.run_wrk(cell, server, a.duration, workdir, 0, 0)
                if r["errors"]:
                    raise bench.BenchError(f"{cell.label}: {r['errors']} errors; see {server.logfile}")
                cell.runs.append(r)
                bench.log(f"round {rnd} {cell.label:28} {r['rps']:8.1f} req/s p50 {r['p50_ms']:.2f} ms")
    finally:
        server.stop()
    rows: list[dict[str, Any]] = []
    ref = {
        "client_credentials": cells[0],
        "token_exchange": next(c for c in cells if c.case == "token_exchange"),
    }
    for cell in cells:
        rps = statistics.median(x["rps"] for x in cell.runs)
        ref_rps = statistics.median(x["rps"] for x in ref[cell.case].runs)
        rows.append(
            {
                "endpoint": cell.label,
                "rps": rps,
                "ratio": round(rps / ref_rps, 3),
                "of": ref[cell.case].label,
                "p50_ms": statistics.median(x["p50_ms"] for x in cell.runs),
                "app_cpu_ms_per_req": statistics.median(x["app_cpu_ms_per_req"] for x in cell.runs),
                "db_cpu_ms_per_req": statistics.median(x["db_cpu_ms_per_req"] for x in cell.runs),
            }
        )
    print(f"\n{a.conns} connections, {a.workers} sync workers, {a.rounds} rounds x {a.duration:g} s, medians")
    print("| endpoint | req/s | ratio | p50 ms | CPU ms/req app + db |\n|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['endpoint']} | {r['rps']:,.0f} | {r['ratio']:.2f} of {r['of']} | {r['p50_ms']:.2f} | "
            f"{r['app_cpu_ms_per_req']:.2f} + {r['db_cpu_ms_per_req']:.2f} |"
        )
    out = bench.BENCH / "results" / "statement-floor.json"
    out.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d %H:%M"),
                "machine": bench.machine(),
                "args": vars(a),
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"\nwrote {out}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
