"""Fault injection for the launcher tests (test code only: production modules carry none).

Work functions a launcher can run by name (``"faults:..."``): child processes find this module because the tests
put ``tests/`` on ``PYTHONPATH`` (the ``faults_on_path`` fixture in conftest.py).
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from evalkit.launch import selftest_item
from evalkit.launch.jobs import resolve_fn


def flaky_item(item: dict[str, Any], run_dir: Path, job_tag: str | None) -> list[dict[str, Any]]:
    """``selftest_item``, plus: ``kill_once`` (a marker path): the first call SIGKILLs its own process after
    writing its first record (a job killed mid-item), later calls run normally; ``sleep_once``: the first call
    sleeps ``sleep_s`` seconds after its records (a job that times out / is preempted); ``fail``: raise."""
    marker = item.get("kill_once")
    if marker and not Path(marker).exists():
        recs = selftest_item({**item, "n_records": 1}, run_dir, job_tag)
        Path(marker).write_text(f"killed pid {os.getpid()}\n")
        os.kill(os.getpid(), signal.SIGKILL)
        return recs
    recs = selftest_item(item, run_dir, job_tag)
    marker = item.get("sleep_once")
    if marker and not Path(marker).exists():
        Path(marker).write_text(f"slept in pid {os.getpid()}\n")
        time.sleep(float(item.get("sleep_s", 60)))
    if item.get("fail"):
        raise RuntimeError(f"item {item['key']} asked to fail")
    return recs


def kill_once_then(item: dict[str, Any], run_dir: Path, job_tag: str | None) -> Any:
    """The first call (marker file ``item['kill_once']`` absent) creates the marker and SIGKILLs its own process
    before doing anything, as a preempted or OOM-killed job would be; every other call runs
    ``item['wrapped_fn']`` on the item."""
    marker = item.get("kill_once")
    if marker and not Path(marker).exists():
        Path(marker).write_text(f"killed pid {os.getpid()} before {item['key']}\n")
        os.kill(os.getpid(), signal.SIGKILL)
    return resolve_fn(item["wrapped_fn"])(item, run_dir, job_tag)


def sleep_forever(item: dict[str, Any], run_dir: Path, job_tag: str | None) -> Any:
    """Writes its pid to ``item['pid_file']`` and sleeps (a worker that would outlive a killed parent)."""
    Path(item["pid_file"]).write_text(str(os.getpid()))
    time.sleep(3600)
