"""The ``process`` launcher: each job in a fresh ``python -m evalkit.launch run-job SPEC`` subprocess.

This is the one isolation path of the harness (sweep points with ``--launcher process``, any verb that fans
out): an out-of-memory kill, a segfault or a CUDA error costs that job only. Per job:

1. the spec is written to ``<run>/jobs/specs/<tag>.json`` and the child's output to ``<run>/logs/<tag>.log``;
2. at most ``launch.workers`` children run at once, all started from this thread;
3. a child running past ``launch.timeout_s`` is killed with its whole process group;
4. a child that ends without finishing its items gets them marked ``error`` with the reason: exit status,
   timeout, or ``oom`` when it was SIGKILLed without a timeout (on Linux the signature of the kernel's
   out-of-memory killer) or its log says "out of memory".

Children die with their parent: each is started in its own process group with the Linux parent-death signal set
to SIGKILL (``prctl(PR_SET_PDEATHSIG)``), so a ``kill -9`` of the launching command leaves no worker behind to
write into the run; on Ctrl-C or an exception the launcher kills the groups it started before returning.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from evalkit.launch.config import LaunchConfig
from evalkit.launch.jobs import JobSpec, mark_unfinished, read_job, write_json_atomic

PR_SET_PDEATHSIG = 1   # linux/prctl.h
_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None and sys.platform.startswith("linux"):
        _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _LIBC


def _die_with_parent(parent: int) -> Callable[[], None]:
    libc = _libc()   # loaded before the fork: the child only calls into it

    def pre_exec() -> None:
        if libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:   # the parent died between fork and prctl
            os._exit(1)
    return pre_exec


def child_command(spec_path: Path) -> list[str]:
    return [sys.executable, "-m", "evalkit.launch", "run-job", str(spec_path)]


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _outcome(proc_rc: int, timed_out: bool, timeout_s: float, log: Path) -> tuple[str, bool]:
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
    if timed_out:
        return f"killed after launch.timeout_s={timeout_s:g} s; log: {log}", False
    if proc_rc == -signal.SIGKILL:
        return (f"subprocess killed by SIGKILL (most likely the kernel's out-of-memory killer); log: {log}",
                True)
    oom = "out of memory" in tail.lower()
    why = f"killed by signal {-proc_rc}" if proc_rc < 0 else f"exit status {proc_rc}"
    last = tail.strip().splitlines()[-1][:300] if tail.strip() else ""
    return f"subprocess {why}{': ' + last if last else ''}; log: {log}", oom


def run_jobs(specs: Sequence[JobSpec], cfg: LaunchConfig,
             on_item: Callable[[str, str], None] | None = None) -> None:
    """Run every job in its own subprocess (see the module docstring); returns when all have ended."""
    pending = list(specs)
    running: dict[subprocess.Popen, tuple[JobSpec, float, Path]] = {}
    parent = os.getpid()
    try:
        while pending or running:
            while pending and len(running) < cfg.workers:
                spec = pending.pop(0)
                run_dir = Path(spec.run_dir)
                spec_path = run_dir / "jobs" / "specs" / f"{spec.tag}.json"
                write_json_atomic(spec_path, spec.to_json())
                log = run_dir / "logs" / f"{spec.tag}.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                with open(log, "ab") as fh:
                    proc = subprocess.Popen(child_command(spec_path), stdout=fh, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            preexec_fn=_die_with_parent(parent))
                running[proc] = (spec, time.monotonic(), log)
            for proc in list(running):
                spec, start, log = running[proc]
                rc = proc.poll()
                timed_out = rc is None and cfg.timeout_s > 0 and time.monotonic() - start > cfg.timeout_s
                if timed_out:
                    _kill_group(proc)
                    rc = proc.returncode
                if rc is None:
                    continue
                del running[proc]
                if rc != 0 or timed_out:
                    message, oom = _outcome(rc, timed_out, cfg.timeout_s, log)
                    mark_unfinished(spec, message, oom=oom)
                if on_item is not None:
                    state = read_job(spec.run_dir, spec.tag) or {"items": {}}
                    for key in spec.keys:
                        on_item(key, state["items"].get(key, {}).get("status", "error"))
            if running:
                time.sleep(0.05)
    finally:
        for proc in running:   # an exception or Ctrl-C here: no child outlives this call
            _kill_group(proc)
