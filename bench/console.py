#!/usr/bin/env python3
"""Console pages at scale: 10,000 organizations and 100,000 users on PostgreSQL.

Run by hand (not by CI):  .venv/bin/python bench/console.py [--requests 40] [--reuse]

1. (Re)creates the database ``actas_console_bench``, migrates it and runs
   ``manage.py seed_scale`` (timed).
2. Starts actas under gunicorn (sync, 2 workers) on loopback and signs in to the tenant's
   Console as its administrator, through the real sign-in page.
3. Requests each page sequentially over loopback, one at a time, and reports p50 / p95 / max
   of the client-side latency (on loopback with one request in flight this is the server's
   time plus well under a millisecond).
   The server's own time comes from a ``Server-Timing`` header that bench/console_settings.py
   adds (Django's wall clock, the worker's CPU time, SQL time and query count); the p95 goal
   (< 100 ms) is checked against that wall clock.
4. Counts the SQL queries of each page in-process (Django's test client against the same
   database, ``CaptureQueriesContext``), also with a page size of 5 and 100 for the user lists.

Writes bench/results/console.json and prints the markdown table of bench/CONSOLE.md. Every
server it starts is stopped by its own PID on exit.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from run import (  # noqa: E402 - the lead's bench helpers (loopback HTTP client, gunicorn server)
    HOST,
    PY,
    BenchError,
    Jar,
    Server,
    log,
    recreate_databases,
    request,
    run_cmd,
    walk,
)

ROOT = BENCH.parent
DB = "actas_console_bench"
TENANT = "scale"
ADMIN, ADMIN_PASSWORD = "admin", "actas-scale-1"
SECRET = "actas-console-bench-secret-key-" + "x" * 40
GOAL_MS = 100.0

COUNT_SCRIPT = r"""
import json, os
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from identity.models import User
urls = json.loads(os.environ["BENCH_URLS"])
client = Client()
assert client.post("/t/scale/login/", {"username": "admin", "password": "actas-scale-1"}).status_code == 302
out = {}
for name, url in urls.items():
    sizes = {}
    for size in (5, settings.ACTAS_CONSOLE_PAGE_SIZE, 100):
        with override_settings(ACTAS_CONSOLE_PAGE_SIZE=size), CaptureQueriesContext(connection) as ctx:
            r = client.get(url)
        assert r.status_code == 200, (name, url, r.status_code)
        sizes[str(size)] = len(ctx.captured_queries)
    out[name] = sizes
print("BENCH_COUNTS " + json.dumps(out))
"""


def pg_rows(sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(dbname=DB, host=HOST, port=5432, user="postgres") as conn:
        return list(conn.execute(sql).fetchall())  # type: ignore[call-overload,unused-ignore]


def pick_targets() -> dict[str, str]:
    """Ids of the organizations and the user the pages are requested for."""
    (root, tree_id), *_ = pg_rows(
        f"SELECT id, tree_id FROM organizations_organization WHERE handle = '{TENANT}' AND parent_id IS NULL"
    )

    def at_level(level: int) -> str:
        rows = pg_rows(
            f"SELECT id FROM organizations_organization WHERE tree_id = {tree_id} AND level = {level} "
            "AND rght - lft > 1 ORDER BY name LIMIT 1 OFFSET 1"
        )
        return str(rows[0][0])

    member = pg_rows(
        f"SELECT id FROM identity_user WHERE organization_id = '{root}' AND username <> '{ADMIN}' "
        "ORDER BY username LIMIT 1"
    )[0][0]
    deep = at_level(3)
    deep_member = pg_rows(
        f"SELECT id FROM identity_user WHERE organization_id = '{deep}' ORDER BY username LIMIT 1"
    )[0][0]
    return {
        "root": str(root),
        "level1": at_level(1),
        "level2": at_level(2),
        "level3": deep,
        "member": str(member),
        "deep_member": str(deep_member),
    }


def pages(t: dict[str, str], base: str, jar: Jar) -> dict[str, str]:
    c = f"/t/{TENANT}/console/"

    def org(org_id: str) -> str:
        return f"/t/{TENANT}/o/{org_id}/console/"

    urls = {
        "tree: root": c + "organizations/",
        "tree: children, depth 1": c + f"organizations/{t['level1']}/children/",
        "tree: children, depth 3": c + f"organizations/{t['level3']}/children/",
        "tree: opened at depth 2 (?node=)": c + f"organizations/?node={t['level2']}",
        "users: root (own members)": c + "users/",
        "users: root subtree, page 1": c + "users/?scope=subtree",
        "users: root subtree, page 6 (5 cursors in)": "",
        "users: level-1 subtree, page 1": org(t["level1"]) + "users/?scope=subtree",
        "users: level-2 subtree, page 1": org(t["level2"]) + "users/?scope=subtree",
        "users: level-3 org Console": org(t["level3"]) + "users/",
        "search: root subtree q=ja": c + "users/?scope=subtree&q=ja",
        "search: root subtree q=smith": c + "users/?scope=subtree&q=smith",
        "search: root subtree q=maria.s": c + "users/?scope=subtree&q=maria.s",
        "search: level-1 subtree q=e": org(t["level1"]) + "users/?scope=subtree&q=e",
        "search: no match q=zzzq": c + "users/?scope=subtree&q=zzzq",
        "search: root own members q=a": c + "users/?q=a",
        "user detail (root)": c + f"users/{t['member']}/",
        "user detail (depth 3)": org(t["level3"]) + f"users/{t['deep_member']}/",
        "impersonations": c + "impersonations/",
        "logs": c + "logs/",
    }
    url = urls["users: root subtree, page 1"]
    for _ in range(5):
        r = request("GET", base + url, headers=jar.header())
        m = re.search(r'href="([^"]+)" rel="next"', r.body.decode())
        if r.status != 200 or m is None:
            raise BenchError(f"no next page at {url}: HTTP {r.status}")
        url = m.group(1).replace("&amp;", "&")
    urls["users: root subtree, page 6 (5 cursors in)"] = url
    return urls


SERVER_TIMING = re.compile(r"(\w+);dur=([0-9.]+)(?:;desc=\"(\d+) queries\")?")


def pct(values: list[float], q: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(len(ordered) * q) - 1)], 1)


def measure(base: str, url: str, jar: Jar, n: int) -> dict[str, Any]:
    """``n`` sequential requests (after 3 to warm the worker and its prepared statements):
    the client's latency, and the server's own time from its Server-Timing header."""
    client: list[float] = []
    server: dict[str, list[float]] = {"app": [], "cpu": [], "db": []}
    queries: set[int] = set()
    for i in range(n + 3):
        t0 = time.perf_counter()
        r = request("GET", base + url, headers=jar.header())
        dt = (time.perf_counter() - t0) * 1000
        if r.status != 200:
            raise BenchError(f"{url}: HTTP {r.status} {r.text()}")
        if i < 3:
            continue
        client.append(dt)
        for name, dur, count in SERVER_TIMING.findall(r.headers.get("Server-Timing", "")):
            server[name].append(float(dur))
            if count:
                queries.add(int(count))
    out: dict[str, Any] = {
        "client_p50": pct(client, 0.5),
        "client_p95": pct(client, 0.95),
        "n": len(client),
        "server_queries": sorted(queries),
    }
    for name, values in server.items():
        if values:
            out[f"{name}_p50"], out[f"{name}_p95"], out[f"{name}_max"] = (
                pct(values, 0.5),
                pct(values, 0.95),
                round(max(values), 1),
            )
    return out


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=40, help="sequential requests per page")
    ap.add_argument("--orgs", type=int, default=10_000)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--port", type=int, default=8741)
    ap.add_argument("--reuse", action="store_true", help="keep the seeded database of an earlier run")
    a = ap.parse_args()
    workdir = Path(tempfile.gettempdir()) / "actas-console-bench"  # server log, signing keys
    workdir.mkdir(parents=True, exist_ok=True)
    logfile = workdir / "actas.log"
    logfile.write_text("")
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")}
    env.update(
        PYTHONDONTWRITEBYTECODE="1",
        DATABASE_URL=f"postgres://postgres@{HOST}:5432/{DB}",
        SECRET_KEY=SECRET,
        DEBUG="0",
        ACTAS_RATE_LIMITS_ENABLED="0",
        ACTAS_SIGNING_KEYS_DIR=str(workdir / "keys"),
        BASE_URL=f"http://{HOST}:{a.port}",
        ALLOWED_HOSTS=f"{HOST},localhost,testserver",
        LOG_LEVEL="WARNING",
    )
    for k in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "REDIS_URL", "EMAIL_HOST", "EMAIL_URL"):
        env.pop(k, None)
    manage = [str(PY), "manage.py"]
    result: dict[str, Any] = {"orgs": a.orgs, "users": a.users, "requests_per_page": a.requests}
    previous = BENCH / "results" / "console.json"
    if a.reuse and previous.exists():  # keep the seeding time of the run that seeded
        earlier = json.loads(previous.read_text())
        result.update({k: earlier[k] for k in ("migrate_s", "seed_s") if k in earlier}, seeded_earlier=True)
    # The signing keys first: every process (migrate included) checks for them.
    run_cmd([*manage, "rotate_signing_key", "--publish-old-for", "60"], env, ROOT, logfile)
    if not a.reuse:
        recreate_databases([DB])
        t0 = time.perf_counter()
        run_cmd([*manage, "migrate", "-v", "0"], env, ROOT, logfile)
        result["migrate_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        run_cmd(
            [*manage, "seed_scale", "--tenant", TENANT, "--orgs", str(a.orgs), "--users", str(a.users),
             "--no-progress", "--admin-password", ADMIN_PASSWORD],
            env, ROOT, logfile, timeout=1800,
        )  # fmt: skip
        result["seed_s"] = round(time.perf_counter() - t0, 1)
        log(
            f"migrated in {result['migrate_s']} s, "
            f"seeded {a.orgs} orgs / {a.users} users in {result['seed_s']} s"
        )
    targets = pick_targets()
    # actas's settings plus the Server-Timing middleware (bench/console_settings.py)
    server_env = dict(env, DJANGO_SETTINGS_MODULE="console_settings", PYTHONPATH=str(BENCH))
    server = Server("actas", a.port, "config.wsgi:application", ROOT, server_env, "/healthz", logfile, DB)
    try:
        server.start(workers=2)
        server.wait_ready()
        base = server.base
        jar = Jar()
        r, _ = walk("console sign-in", base + f"/t/{TENANT}/console/", jar, ADMIN, ADMIN_PASSWORD)
        if r.status != 200 or b"Console" not in r.body:
            raise BenchError(f"sign-in did not reach the Console: HTTP {r.status}")
        urls = pages(targets, base, jar)
        result["load_before"] = load_avg()
        timings = {}
        for name, url in urls.items():
            timings[name] = measure(base, url, jar, a.requests)
            m = timings[name]
            log(
                f"{name:<44} server p50 {m['app_p50']:6.1f} p95 {m['app_p95']:6.1f} ms (cpu p95 "
                f"{m['cpu_p95']:5.1f}, db p95 {m['db_p95']:5.1f}), client p95 {m['client_p95']:6.1f} ms"
            )
        result["load_after"] = load_avg()
    finally:
        server.stop()
    out = subprocess.run(
        [*manage, "shell", "-v", "0", "-c", COUNT_SCRIPT],
        env=dict(env, BENCH_URLS=json.dumps(urls), DB_PREPARED_STATEMENTS="1"),
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_COUNTS ")), None)
    if line is None:
        raise BenchError(f"query counts failed: {out.stderr[-2000:]}")
    counts = json.loads(line.removeprefix("BENCH_COUNTS "))
    result["pages"] = {name: {"url": urls[name], **timings[name], "queries": counts[name]} for name in urls}
    result["all_under_goal"] = all(p["app_p95"] < GOAL_MS for p in result["pages"].values())
    (BENCH / "results" / "console.json").write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    return 0 if result["all_under_goal"] else 1


def table(result: dict[str, Any]) -> str:
    lines = [
        "| page | server p50 ms | server p95 ms | server max ms | CPU p95 ms | SQL p95 ms "
        "| client p95 ms | queries (5 / 25 / 100 rows a page) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, p in result["pages"].items():
        q = " / ".join(str(v) for v in p["queries"].values())
        lines.append(
            f"| {name} | {p['app_p50']} | {p['app_p95']} | {p['app_max']} | {p['cpu_p95']} | {p['db_p95']} "
            f"| {p['client_p95']} | {q} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
