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
from evalkit.launch.jobs import item_json, item_key, resolve_fn


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


def slow_once_then(item: dict[str, Any], run_dir: Path, job_tag: str | None) -> Any:
    """Runs ``item['wrapped_fn']`` on the item; the first call (marker file ``item['slow_once']`` absent) first
    creates the marker and sleeps ``item['sleep_s']`` seconds (an item long enough to be cancelled, requeued,
    drained or timed out while it runs). Later calls (a requeued or resubmitted job) run at full speed."""
    marker = item.get("slow_once")
    if marker and not Path(marker).exists():
        Path(marker).write_text(f"slow in pid {os.getpid()} for {item['key']}\n")
        time.sleep(float(item.get("sleep_s", 60)))
    return resolve_fn(item["wrapped_fn"])(item, run_dir, job_tag)


def save_frames() -> None:
    """From now on, every video evalkit writes in this process also leaves the uint8 frames it handed to the
    encoder in ``<video>.frames.npy`` (exact comparisons: the mp4 bytes are not reproducible, see
    test_distributed_generate.py)."""
    import numpy as np

    import evalkit.runtime.video_io as vio

    if getattr(vio.write_video, "saves_frames", False):
        return
    real = vio.write_video

    def write_video(path, frames, *args, **kw):
        np.save(str(path) + ".frames.npy", np.asarray(frames))
        return real(path, frames, *args, **kw)

    write_video.saves_frames = True
    vio.write_video = write_video


def saving_frames_then(item: dict[str, Any], run_dir: Path, job_tag: str | None) -> Any:
    """``item['wrapped_fn']`` on the item with :func:`save_frames` on (inside a launcher's job process)."""
    save_frames()
    return resolve_fn(item["wrapped_fn"])(item, run_dir, job_tag)


def cli_with_faults(argv: list[str]) -> int:
    """``python tests/faults.py <verb> ...``: ``python -m evalkit <verb> ...`` whose launcher items get the faults
    of the JSON file named by ``$EVALKIT_TEST_FAULTS`` (``{item key: {"fn": "faults:...", **fields}}``); items
    without a fault, and every item when the variable is unset, run unchanged. ``$EVALKIT_TEST_SAVE_FRAMES``
    set: :func:`save_frames` in this process."""
    import json

    import evalkit.launch
    from evalkit.cli import main

    spec = json.loads(Path(os.environ["EVALKIT_TEST_FAULTS"]).read_text()) \
        if os.environ.get("EVALKIT_TEST_FAULTS") else {}
    real = evalkit.launch.run_items

    def run_items(items, fn, **kw):
        faulty = [it for it in items if item_key(it) in spec]
        if not faulty:
            return real(items, fn, **kw)
        wrapper = {spec[item_key(it)]["fn"] for it in faulty}
        assert len(wrapper) == 1, f"one fault function per command, got {wrapper}"
        # typed items (sweep points) travel as their JSON with the fault's fields added
        items = [{**item_json(it), "wrapped_fn": fn,
                  **{k: v for k, v in spec.get(item_key(it), {}).items() if k != "fn"}} for it in items]
        return real(items, wrapper.pop(), **kw)

    evalkit.launch.run_items = run_items
    if os.environ.get("EVALKIT_TEST_SAVE_FRAMES"):
        save_frames()
    return main(argv)


if __name__ == "__main__":
    import sys

    sys.exit(cli_with_faults(sys.argv[1:]))
