"""gunicorn settings for actas: `gunicorn -c config/gunicorn.conf.py config.wsgi:application ...`.

With ``PROMETHEUS_MULTIPROC_DIR`` set (a directory only gunicorn's workers write), each worker
keeps its metrics in files there and a scrape of ``/metrics`` by any worker adds them all up
(prometheus-client's multiprocess mode). The directory is emptied when gunicorn starts, so a
restart begins from zero rather than adding files of processes long gone, and a worker that
exits is marked dead so its live gauges are dropped (its counters stay in the totals).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any


def on_starting(server: Any) -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
