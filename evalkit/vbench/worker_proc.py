"""The VBench worker subprocess of ``vbench run``: started so that it never outlives the run that started it.

Each worker (``_worker.py`` in the VBench environment: one dimension on one shard, or the weight check) runs in its
own process group with the Linux parent-death signal set to SIGKILL (``prctl(PR_SET_PDEATHSIG)``): a ``kill -9``
of ``vbench run`` takes the worker with it. On SIGINT or SIGTERM (:func:`interrupts_raise` turns SIGTERM into the
same ``KeyboardInterrupt`` Ctrl-C raises) the running worker's group is terminated, then killed after a grace
period, before the exception goes on; the worker writes its results under ``work/`` and the runner moves them into
place only after a clean exit, so an interrupted shard is started again from scratch by the next run and every
finished one is kept (runner.py).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence

PR_SET_PDEATHSIG = 1    # linux/prctl.h
GRACE_S = 5.0


def _pre_exec(parent: int):
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6") if sys.platform.startswith("linux") else None

    def pre() -> None:      # in the child, between fork and exec
        if libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:      # the parent died before prctl took effect
            os._exit(1)
    return pre


def _stop(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(timeout=GRACE_S)
            break
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


def run_worker(cmd: Sequence[str]) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)`` whose child dies with this process and is stopped
    (its whole group) when this one is interrupted."""
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_pre_exec(os.getpid()))
    try:
        out, err = proc.communicate()
    except BaseException:
        _stop(proc)
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """Within the block SIGTERM raises ``KeyboardInterrupt`` (as SIGINT does), so workers are stopped and the CLI
    prints how to resume; the previous handler is restored after."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:      # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
