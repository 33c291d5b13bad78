"""The flags of ``python -m evalkit generate`` checked before anything is read or loaded (both ``--checkpoint`` and
``--pipeline``): numbers that must be finite and positive, the thread count, and the ``--out`` folder.

``--out`` is checked twice. :func:`check_args` (no side effects; ``--dry-run`` stops after it): not empty (an empty
path would write into the current directory), not an existing file, under a folder that exists or can be made.
:func:`make_out` (after every other cheap check, just before the first long step): the folder is created, and an
operating-system refusal (``/proc`` or ``/sys``, a read-only or full filesystem, no permission) is a named error
instead of a traceback. :func:`sigterm_as_exit` makes a SIGTERM unwind like Ctrl-C (nothing half-written left).
"""
from __future__ import annotations

import contextlib
import errno
import math
import os
import signal
import threading
from pathlib import Path
from typing import Any

from evalkit.core.errors import FieldError


def _positive(flag: str, value: Any, *, integer: bool = False, zero: bool = False) -> None:
    if value is None:
        return
    ok = math.isfinite(value) and (value >= 0 if zero else value > 0)
    if not ok:
        what = ("a whole number" if integer else "a finite number") + (" >= 0" if zero else " > 0")
        raise FieldError(flag, f"must be {what}, got {value}")


def check_out(value: str) -> Path:
    """The ``--out`` folder as a path, refused (FieldError) if it is empty, an existing non-folder, or under a
    path whose nearest existing part is not a folder. Reads only."""
    if not value or not value.strip():
        raise FieldError("--out", f"{value!r} is empty: name the folder for the videos and videos.jsonl (an empty "
                                  "path would write into the current directory)")
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise FieldError("--out", f"{value!r} exists and is not a folder: choose a folder for the videos")
    above = path.absolute().parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise FieldError("--out", f"{value!r} cannot be made: {str(above)!r} is not a folder")
    return path


def check_args(args: Any) -> None:
    """Every numeric flag and ``--out``, before the prompts, the checkpoint or the pipeline folder are read."""
    check_out(args.out)
    _positive("--duration-s", args.duration_s)
    for flag, name in (("--height", "height"), ("--width", "width"), ("--fps", "fps"), ("--steps", "steps"),
                       ("--num-frames", "num_frames"), ("--batch-size", "batch_size"), ("--samples", "samples"),
                       ("--shards", "shards"), ("--max-sequence-length", "max_sequence_length")):
        _positive(flag, getattr(args, name, None), integer=True)
    _positive("--threads", args.threads, integer=True, zero=True)
    if args.cfg_scale is not None:
        _positive("--cfg-scale", args.cfg_scale, zero=True)
    threads = os.cpu_count() or 1
    if args.threads > 64 * threads:
        raise FieldError("--threads", f"{args.threads} threads on a machine with {threads} CPUs: give at most "
                                      f"{64 * threads} (0: torch's default)")


def make_out(path: Path) -> Path:
    """Create the ``--out`` folder (and its parents); the operating system's refusal as a FieldError."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FieldError("--out", f"{str(path)!r} cannot be created: {exc.strerror or exc} (errno "
                                  f"{exc.errno}); choose a writable folder") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise FieldError("--out", f"{str(path)!r} is not writable; choose a writable folder")
    return path


@contextlib.contextmanager
def sigterm_as_exit():
    """While the body runs, SIGTERM (what ``kill``, SLURM and submitit send) raises ``SystemExit(143)`` as Ctrl-C
    raises KeyboardInterrupt: the stack unwinds, so a half-written video's temporary file is removed and the
    writer lock released; what was recorded stays, and a rerun resumes from it. Only in the main thread (the
    only one signal handlers may be set from); the previous handler comes back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum, frame):
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)


@contextlib.contextmanager
def disk_errors(out: str):
    """A full, over-quota, read-only or failing filesystem while videos are written: a FieldError naming
    ``--out`` and the file instead of a traceback. What was recorded before stays (each video is written to a
    temporary name, renamed, then recorded; the temporary file of the failed one is removed), so the same command
    resumes once there is room."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            raise
        raise FieldError("--out", f"{out}: {exc.strerror} ({exc.filename or 'while writing'}; errno {exc.errno}): "
                                  "the videos recorded so far are kept; make room (or choose another --out) and "
                                  "run the same command again to resume") from None
