"""Email throughput: N impersonation starts -> N emails in an SMTP sink through a real Celery
worker (issue 7 item 4). Run by hand:

    .venv/bin/python bench/email_throughput.py [--starts 1000] [--concurrency 4]

What it does (see bench/EMAIL.md):

1. Drops and recreates the PostgreSQL database ``actas_email_bench`` (it refuses any name not
   ending in ``_bench``), migrates it and seeds, through actas's services, a tenant
   ``emailbench`` whose bootstrap administrator holds the Impersonator role, ``--starts``
   target users (each with its own address) and one fresh SSO session of the administrator per
   start (one impersonation per sign-in).
2. Starts an aiosmtpd sink in a process of its own (it records each message's arrival time, ``To``
   and ``Message-ID``), FLUSHDBs its own Redis database (``--redis-url``, default db 11), and
   starts a real ``celery -A config worker`` (prefork, ``--workers`` = cores) and a real
   ``celery -A config beat`` as subprocesses, pointed at the bench database, that Redis
   database and the sink.
3. Warms the worker up with a few starts (not measured), then performs ``--starts``
   impersonation starts through ``impersonation.services.impersonation_begin`` (the service
   the Console and the token exchange call) in ``--concurrency`` threads, recording for each
   the moment the call returned (its transaction committed, the publish handed to the
   background thread).
4. Waits (``--timeout``) until every target's email arrived, then a few more seconds for
   duplicates, and reports: emails/s (first start -> last delivery, and steady state between
   the 10th and 90th percentile of arrivals), start-to-delivery p50/p95/max, duplicates and
   missing; the outbox rows' final states; the load average.
5. Writes ``bench/results/email.json`` and the results section of ``bench/EMAIL.md``.
6. Stops the worker and beat by their process ids (SIGTERM, then SIGKILL) and the sink, on
   exit, error, Ctrl-C or SIGTERM. The database stays until the next run.

A message is matched to its start by its recipient (each start targets a distinct user) and
checked against the outbox row's stable Message-ID (``<outbox pk@host>``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
RESULTS_JSON = ROOT / "bench" / "results" / "email.json"
EMAIL_MD = ROOT / "bench" / "EMAIL.md"
RESULTS_BEGIN = "<!-- results:begin (written by bench/email_throughput.py) -->"
RESULTS_END = "<!-- results:end -->"
TENANT = "emailbench"
DOMAIN = "bench.test"
TARGET_P95 = 5.0  # seconds, issue 7 item 4


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=1000, help="impersonation starts (= emails)")
    parser.add_argument("--concurrency", type=int, default=4, help="threads performing the starts")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="Celery worker processes")
    parser.add_argument("--warmup", type=int, default=0, help="unmeasured starts first (default 2 x workers)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the last email")
    parser.add_argument("--db", default="actas_email_bench", help="PostgreSQL database (dropped!)")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11", help="a Redis db of its own")
    parser.add_argument("--no-beat", action="store_true", help="do not start celery beat")
    parser.add_argument("--out", default=str(RESULTS_JSON))
    parser.add_argument("--md", default=str(EMAIL_MD), help="markdown file whose results section is written")
    parser.add_argument("--no-md", action="store_true", help="do not touch the markdown file")
    parser.add_argument("--keep-logs", action="store_true", help="keep the worker/beat logs (temp dir)")
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def recreate_database(pg: str, name: str) -> None:
    import psycopg

    if not name.endswith("_bench"):
        raise SystemExit(f"refusing to drop {name!r}: the bench database must end in _bench")
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


# --- the SMTP sink ----------------------------------------------------------------------------


class SinkHandler:
    """aiosmtpd handler: every accepted message with its arrival time (``time.monotonic``,
    CLOCK_MONOTONIC, the same clock in every process of the machine)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[tuple[float, str, str]] = []  # (arrival, to, message-id)
        self.connections = 0

    async def handle_EHLO(  # noqa: N802 (aiosmtpd API)
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: Any
    ) -> Any:
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        import email

        arrival = time.monotonic()
        message = email.message_from_bytes(envelope.original_content or envelope.content)
        with self.lock:
            self.received.append((arrival, str(message["To"]), str(message["Message-ID"])))
        return "250 Message accepted for delivery"


def sink_main(port: int, commands: Any) -> None:
    """The sink's own process (a real SMTP server is not in the process that makes the load:
    in the bench process it would wait for the GIL behind the start threads)."""
    from aiosmtpd.controller import Controller

    handler = SinkHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    commands.send("ready")
    try:
        while True:
            command = commands.recv()
            with handler.lock:
                if command == "count":
                    commands.send(len(handler.received))
                elif command == "snapshot":
                    commands.send((list(handler.received), handler.connections))
                elif command == "clear":
                    handler.received.clear()
                    handler.connections = 0
                    commands.send("ok")
                else:
                    commands.send("bye")
                    return
    finally:
        controller.stop()


class Sink:
    """The parent's handle on the sink process."""

    def __init__(self, port: int) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=sink_main, args=(port, child), name="smtp-sink", daemon=True)
        self.process.start()
        if not self.pipe.poll(30) or self.pipe.recv() != "ready":
            raise SystemExit("the SMTP sink did not start")
        self.connections = 0

    def _ask(self, command: str) -> Any:
        self.pipe.send(command)
        return self.pipe.recv()

    def count(self) -> int:
        return int(self._ask("count"))

    def snapshot(self) -> list[tuple[float, str, str]]:
        received, self.connections = self._ask("snapshot")
        return list(received)

    def clear(self) -> None:
        self._ask("clear")

    def stop(self) -> None:
        if self.process.is_alive():
            try:
                self._ask("stop")
            except (OSError, EOFError):
                pass
            self.process.join(timeout=10)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(timeout=5)


# --- subprocesses -----------------------------------------------------------------------------


class Processes:
    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        handle = log.open("wb")
        proc = subprocess.Popen(  # noqa: S603
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the prefork children go with it
        )
        handle.close()
        self.procs.append((name, proc))
        return proc

    def stop_all(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # the group led by the pid we started
            except ProcessLookupError:
                continue
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                print(f"{name} (pid {proc.pid}) did not stop in 15 s: SIGKILL", file=sys.stderr)
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)
        self.procs.clear()


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) of the live processes in process group ``pgid``."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # (fields after the command: state, ppid, pgrp, ...)
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def git_state() -> dict[str, Any]:
    def run(*argv: str) -> str:
        try:
            done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=False)
            return done.stdout
        except OSError:
            return ""

    return {"head": run("rev-parse", "HEAD").strip(), "dirty": bool(run("status", "--porcelain").strip())}


# --- the run ----------------------------------------------------------------------------------


def main() -> int:  # noqa: C901 - one linear script
    args = parse_args()
    warmup = args.warmup or 2 * args.workers
    tmp = Path(tempfile.mkdtemp(prefix="actas-email-bench-"))
    smtp_port = free_port()
    db_url = f"{args.pg}/{args.db}"
    env_overrides = {
        "DATABASE_URL": db_url,
        "CELERY_BROKER_URL": args.redis_url,
        "REDIS_URL": args.redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_port),
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "actas-email-bench-secret-not-for-production",
        "DEBUG": "0",  # DEBUG=1 keeps every query in memory
        "ACTAS_SIGNING_KEYS_DIR": str(tmp / "keys"),
        "BASE_URL": "http://127.0.0.1:18001",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    os.environ.update(env_overrides)
    for key in ("CELERY_RESULT_BACKEND",):
        os.environ.pop(key, None)
    child_env = dict(os.environ, PYTHONPATH=str(ROOT))  # this checkout's code in the worker

    print(f"database {args.db}: drop, create, migrate, seed", flush=True)
    recreate_database(args.pg, args.db)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    call_command("rotate_signing_key", publish_old_for=60)  # every process checks for the keys
    call_command("migrate", verbosity=0)

    from identity.notifications.models import OutboxMessage
    from identity.notifications.outbox import message_id
    from identity.services.sessions import sso_session_start
    from identity.services.tenants import tenant_bootstrap
    from identity.services.users import user_create
    from impersonation.models import ImpersonationSession
    from impersonation.selectors import myaccount_for
    from impersonation.services import impersonation_begin

    total = warmup + args.starts
    seed_started = time.monotonic()
    _system, admin = tenant_bootstrap(
        actor=None,
        handle=TENANT,
        name="Email Bench",
        admin_username="admin",
        admin_password="actas-email-bench-1",
        admin_email=f"admin@{DOMAIN}",
    )
    tenant = admin.organization
    myaccount = myaccount_for(org=tenant)
    if myaccount is None:
        raise SystemExit("My Account is not available in the bench tenant")
    targets = [
        user_create(
            actor=None,
            org=tenant,
            username=f"t{i:05d}",
            password=None,
            email=f"t{i:05d}@{DOMAIN}",
            given_name=f"Target {i}",
        )
        for i in range(total)
    ]
    sessions = [sso_session_start(user=admin, org=tenant, amr=["pwd"]) for _ in range(total)]
    print(f"seeded {total} targets and sign-ins in {time.monotonic() - seed_started:.1f} s", flush=True)

    import redis

    redis.Redis.from_url(args.redis_url).flushdb()

    sink = Sink(smtp_port)
    procs = Processes()

    def on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        celery = str(VENV_BIN / "celery")
        procs.start(
            "worker",
            [
                celery,
                "-A",
                "config",
                "worker",
                "--loglevel=WARNING",
                "-P",
                "prefork",
                f"--concurrency={args.workers}",
                "-n",
                f"emailbench-{os.getpid()}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
            child_env,
            tmp / "worker.log",
        )
        if not args.no_beat:
            procs.start(
                "beat",
                [celery, "-A", "config", "beat", "--loglevel=WARNING", "-s", str(tmp / "beat-schedule")],
                child_env,
                tmp / "beat.log",
            )
        from config.celery import app

        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=1.0):
            if time.monotonic() > deadline:
                raise SystemExit(f"the worker did not answer in 60 s; see {tmp / 'worker.log'}")
            for name, proc in procs.procs:
                if proc.poll() is not None:
                    raise SystemExit(f"{name} exited with {proc.returncode}; see {tmp / (name + '.log')}")

        def start(i: int) -> tuple[int, float, float]:
            before = time.monotonic()
            impersonation_begin(
                actor=admin,
                subject_id=str(targets[i].pk),
                org=tenant,
                application=myaccount,
                sso_session=sessions[i],
                reason=f"Email bench {i}",
                read_only=False,
                channel=ImpersonationSession.Channel.CONSOLE,
                subject=targets[i],
            )
            return i, before, time.monotonic()  # returned: committed, publish handed off

        def run_starts(indexes: list[int]) -> list[tuple[int, float, float]]:
            def work(chunk: list[int]) -> list[tuple[int, float, float]]:
                try:
                    return [start(i) for i in chunk]
                finally:
                    connections.close_all()

            chunks = [indexes[n :: args.concurrency] for n in range(args.concurrency)]
            with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                done = [item for part in pool.map(work, chunks) for item in part]
            return done

        def wait_for(count: int, timeout: float) -> bool:
            deadline = time.monotonic() + timeout
            while sink.count() < count:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
            return True

        print(f"warm-up: {warmup} starts", flush=True)
        run_starts(list(range(warmup)))
        if not wait_for(warmup, 60):
            raise SystemExit(f"warm-up emails did not arrive; see {tmp / 'worker.log'}")
        time.sleep(1.0)
        sink.clear()

        measured = list(range(warmup, total))
        load_before = os.getloadavg()
        cpu_before = os.times()
        worker_pid = procs.procs[0][1].pid
        worker_cpu_before = group_cpu_seconds(worker_pid)
        print(f"measured: {args.starts} starts in {args.concurrency} threads", flush=True)
        starts = run_starts(measured)
        starts_done = time.monotonic()
        complete = wait_for(args.starts, args.timeout)
        all_arrived = time.monotonic()
        time.sleep(3.0)  # anything sent twice arrives meanwhile
        load_after = os.getloadavg()
        cpu_after = os.times()
        worker_cpu = group_cpu_seconds(worker_pid) - worker_cpu_before
        received = sink.snapshot()
        smtp_connections = sink.connections

        # --- the numbers ------------------------------------------------------------------
        by_address = {targets[i].email: (i, before, after) for i, before, after in starts}
        arrivals: dict[str, list[tuple[float, str]]] = {}
        stray = 0
        for arrival, to, mid in received:
            if to not in by_address:
                stray += 1
                continue
            arrivals.setdefault(to, []).append((arrival, mid))
        duplicates = sum(len(v) - 1 for v in arrivals.values())
        missing = [addr for addr in by_address if addr not in arrivals]
        latencies = sorted(min(a for a, _ in arrivals[addr]) - by_address[addr][2] for addr in arrivals)
        start_durations = [after - before for _, before, after in starts]
        first_start = min(before for _, before, _ in starts)
        last_commit = max(after for _, _, after in starts)
        firsts = sorted(min(a for a, _ in v) for v in arrivals.values())
        last_delivery = firsts[-1] if firsts else float("nan")
        span = last_delivery - first_start
        lo, hi = int(len(firsts) * 0.1), int(len(firsts) * 0.9) - 1
        steady = (
            (hi - lo) / (firsts[hi] - firsts[lo]) if hi > lo and firsts[hi] > firsts[lo] else float("nan")
        )

        rows = OutboxMessage.objects.filter(to_email__in=list(by_address))
        expected_ids = {row.to_email: message_id(row) for row in rows}
        id_mismatch = sum(
            1 for addr, got in arrivals.items() for _, mid in got if expected_ids.get(addr) != mid
        )
        states: dict[str, int] = {}
        for status, attempts in rows.values_list("status", "attempts"):
            key = f"{status}/attempts={attempts}"
            states[key] = states.get(key, 0) + 1

        result: dict[str, Any] = {
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "git": git_state(),
            "config": {
                "starts": args.starts,
                "concurrency": args.concurrency,
                "workers": args.workers,
                "warmup": warmup,
                "beat": not args.no_beat,
                "cores": os.cpu_count(),
                "database": args.db,
                "broker": args.redis_url,
            },
            "complete": complete,
            "received": len(received),
            "delivered": len(arrivals),
            "duplicates": duplicates,
            "missing": len(missing),
            "stray": stray,
            "message_id_mismatch": id_mismatch,
            "smtp_connections": smtp_connections,
            "outbox_rows": states,
            "starts": {
                "wall_s": round(last_commit - first_start, 3),
                "per_s": round(len(starts) / (last_commit - first_start), 1),
                "p50_ms": round(percentile(start_durations, 50) * 1000, 1),
                "p95_ms": round(percentile(start_durations, 95) * 1000, 1),
                "max_ms": round(max(start_durations) * 1000, 1),
            },
            "emails": {
                "wall_s": round(span, 3),
                "per_s_overall": round(len(arrivals) / span, 1) if span > 0 else None,
                "per_s_steady": round(steady, 1),
                "drain_after_last_start_s": round(last_delivery - last_commit, 3),
            },
            "start_to_delivery_s": {
                "p50": round(percentile(latencies, 50), 3),
                "p95": round(percentile(latencies, 95), 3),
                "p99": round(percentile(latencies, 99), 3),
                "max": round(max(latencies), 3) if latencies else None,
                "mean": round(statistics.fmean(latencies), 3) if latencies else None,
            },
            "target_p95_s": TARGET_P95,
            "load": {
                "loadavg_before": [round(x, 2) for x in load_before],
                "loadavg_after": [round(x, 2) for x in load_after],
                "bench_process_cpu_s": round(
                    (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system), 2
                ),
                "worker_cpu_s": round(worker_cpu, 2),
                "worker_cpu_ms_per_email": round(worker_cpu / max(1, len(arrivals)) * 1000, 1),
            },
        }
        result["ok"] = bool(
            complete
            and duplicates == 0
            and not missing
            and id_mismatch == 0
            and result["start_to_delivery_s"]["p95"] < TARGET_P95
        )
        del starts_done, all_arrived
        print(json.dumps(result, indent=2), flush=True)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        if not args.no_md:
            write_markdown(Path(args.md), result)
        for name, proc in procs.procs:
            if proc.poll() is not None:
                print(f"warning: {name} exited early ({proc.returncode})", file=sys.stderr)
        return 0 if result["ok"] else 1
    finally:
        procs.stop_all()
        sink.stop()
        connections.close_all()
        if args.keep_logs:
            print(f"logs kept in {tmp}")
        else:
            for path in tmp.iterdir():
                path.unlink()
            tmp.rmdir()


def write_markdown(path: Path, r: dict[str, Any]) -> None:
    c, s, e, lat = r["config"], r["starts"], r["emails"], r["start_to_delivery_s"]
    lines = [
        RESULTS_BEGIN,
        "",
        f"### Latest run — {r['when']} (HEAD `{r['git']['head'][:10]}`"
        f"{', dirty tree' if r['git']['dirty'] else ''})",
        "",
        f"{c['starts']} impersonation starts in {c['concurrency']} threads, a prefork worker of "
        f"{c['workers']} processes{', celery beat running' if c['beat'] else ''}, {c['cores']} cores "
        f"shared by everything (PostgreSQL, Redis, the bench process, the worker).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| emails delivered / expected | {r['delivered']} / {c['starts']} |",
        f"| duplicates / missing / wrong Message-ID | {r['duplicates']} / {r['missing']} / "
        f"{r['message_id_mismatch']} |",
        f"| emails/s, first start → last delivery | {e['per_s_overall']} ({e['wall_s']} s) |",
        f"| emails/s, steady state (10th–90th percentile of arrivals) | {e['per_s_steady']} |",
        f"| starts/s ({c['concurrency']} threads) | {s['per_s']} (p50 {s['p50_ms']} ms, p95 {s['p95_ms']} ms "
        f"per start) |",
        f"| start-to-delivery p50 / p95 / p99 / max | {lat['p50']} s / **{lat['p95']} s** / {lat['p99']} s "
        f"/ {lat['max']} s (target p95 < {r['target_p95_s']:g} s) |",
        f"| last delivery after the last start | {e['drain_after_last_start_s']} s |",
        f"| SMTP connections opened | {r['smtp_connections']} |",
        f"| outbox rows | {', '.join(f'{k}: {v}' for k, v in sorted(r['outbox_rows'].items()))} |",
        f"| worker CPU per email | {r['load']['worker_cpu_ms_per_email']} ms "
        f"({r['load']['worker_cpu_s']} s in all) |",
        f"| load average before → after | {r['load']['loadavg_before'][0]} → "
        f"{r['load']['loadavg_after'][0]} |",
        "",
        f"Verdict: **{'pass' if r['ok'] else 'FAIL'}**. Raw numbers: `bench/results/email.json`.",
        "",
        RESULTS_END,
    ]
    section = "\n".join(lines)
    text = path.read_text() if path.exists() else ""
    if RESULTS_BEGIN in text and RESULTS_END in text:
        head, rest = text.split(RESULTS_BEGIN, 1)
        tail = rest.split(RESULTS_END, 1)[1]
        text = head + section + tail
    else:
        text = (
            (text.rstrip() + "\n\n## Results\n\n" if text else "# Email throughput\n\n## Results\n\n")
            + section
            + "\n"
        )
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
