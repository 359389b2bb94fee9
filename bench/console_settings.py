"""Settings for bench/console.py: actas's own, plus a ``Server-Timing`` header on every response.

Used only by the benchmark (``DJANGO_SETTINGS_MODULE=console_settings`` with bench/ on the
path); production settings are untouched. The header carries the request's time inside Django
(``app``: wall clock from the outermost middleware in to the response out), the worker's CPU
time (``cpu``, which a busy machine does not inflate the way it inflates wall time) and the
time and number of its SQL queries (``db``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from config.settings import *  # noqa: F403
from config.settings import MIDDLEWARE as _MIDDLEWARE

MIDDLEWARE = ["console_settings.ServerTiming", *_MIDDLEWARE]


class ServerTiming:
    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        from django.db import connection

        db = {"n": 0, "s": 0.0}

        def timed(execute: Any, sql: Any, params: Any, many: Any, context: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                db["n"] += 1
                db["s"] += time.perf_counter() - t0

        wall, cpu = time.perf_counter(), time.thread_time()
        with connection.execute_wrapper(timed):
            response = self.get_response(request)
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        response["Server-Timing"] = (
            f"app;dur={wall * 1000:.2f}, cpu;dur={cpu * 1000:.2f}, "
            f'db;dur={db["s"] * 1000:.2f};desc="{db["n"]} queries"'
        )
        return response
