"""``python -m evalkit <verb>``: a thin dispatcher. Each verb lives in its own module, imported only when run.

Errors a user can fix are one line on stderr and exit status 2: an ``EvalkitError`` (a field, its choices, the
closest match), and an ``OSError`` the disk raised (full, read-only, over quota, a name too long), named with
what was being written, the path and the errno (:func:`disk_message`; ``EVALKIT_TRACEBACK=1`` shows its
traceback instead). Anything else is a bug: its traceback."""
from __future__ import annotations

import errno
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from evalkit.core.errors import ChoiceError, EvalkitError

# verb -> (module:function taking argv and returning an exit code, one-line summary)
VERBS: dict[str, tuple[str, str]] = {
    "ls": ("evalkit.ls:main", "list registered models, flavors, variants, measurements and experiments"),
    "validate": ("evalkit.validate:main", "load and validate an experiment file (sweep or train) without running it"),
    "sweep": ("evalkit.sweep.cli:main", "FLOPs, latency and memory over resolution x duration (Fig. 1b/6/20, Table 2)"),
    "report": ("evalkit.report.cli:main", "render tables and figures into reports/ from records (--check for CI)"),
    "vbench": ("evalkit.vbench.cli:main", "VBench / VBench-Long / custom-prompt evaluation of a folder of videos"),
    "generate": ("evalkit.generate.cli:main", "sample mp4 videos from a checkpoint for a prompt suite"),
    "train": ("evalkit.train.cli:main", "train the tiny models on the synthetic captioned-video set"),
    "records": ("evalkit.core.records:records_main", "check or repair records files (a torn line after a crash)"),
    "humaneval": ("evalkit.humaneval.cli:main", "blind pairwise human preference study of video folders (Fig. 8/9/12)"),
    "figure": ("evalkit.figure.cli:main", "digitize the project page's cost figure; fit the geometry to its FLOPs"),
}

USAGE = "usage: python -m evalkit <verb> [options]   (python -m evalkit <verb> --help)\n\nverbs:\n" + "\n".join(
    f"  {verb:<9} {summary}" for verb, (_, summary) in VERBS.items()
) + "\n\nexamples:\n  python -m evalkit ls\n  python -m evalkit sweep\n  python -m evalkit report --check\n"


# the disk refused a write: the user's environment, not a bug (one line naming path, what and errno; no traceback)
DISK_ERRNOS = frozenset(getattr(errno, n) for n in ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "ENAMETOOLONG",
                                                    "EFBIG", "EIO", "ENOTDIR", "EISDIR", "ENOENT", "EXDEV")
                        if hasattr(errno, n))
WRITE_ERRNOS = ("ENOSPC", "EDQUOT", "EROFS", "EFBIG", "EIO")   # the disk took the path but not the bytes
# what a file of a run folder is, by its name (the message says what was being written)
WHAT = (("results", ".jsonl", "records"), ("videos", ".jsonl", "the video manifest"),
        ("manifest", ".json", "the run's manifest"), (".writer", ".lock", "the writer lock"),
        ("", ".torn", "a torn line's sidecar"), ("", ".log", "a job's log"), ("", ".mp4", "a video"),
        ("", ".safetensors", "a checkpoint"), ("", ".png", "a plot"), ("", ".svg", "a plot"),
        ("SHA256SUMS", "", "the published data's digests"), ("", ".sqlite", "the study database"))


def _what(path: str | None) -> str:
    if not path:
        return "a file"
    p = Path(path)
    name = p.name
    for stem, suffix in ((".manifest", ".tmp"),):
        if name.startswith(stem) and name.endswith(suffix):
            return "the run's manifest"
    if p.parent.name == "jobs" or p.parent.parent.name == "jobs":
        return "a job's provenance file"
    base = name.split(".tmp")[0] if ".tmp" in name else name
    for candidate in (name, base, base.lstrip(".")):
        for stem, suffix, what in WHAT:
            if candidate.startswith(stem) and candidate.endswith(suffix) and (stem or suffix):
                return what
    return "a folder" if p.suffix == "" else "a file"


def disk_message(exc: OSError) -> str:
    """One line for an OSError the disk raised: path, what was being written, errno name and what to do."""
    name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    path = exc.filename or ""
    if not path and isinstance(exc.args[-1], str) and exc.args[-1].startswith(os.sep):
        path = exc.args[-1].split(":")[0]
    hint = {"ENOSPC": "free some space", "EDQUOT": "free some of your quota", "EROFS": "write to a writable folder",
            "EACCES": "write to a folder you may write", "EPERM": "write to a folder you may write",
            "ENAMETOOLONG": "use a shorter --out / --run-dir / name",
            "ENOTDIR": "a part of the path is a file, not a folder: choose another path",
            "EISDIR": "the path is a folder: choose a file name",
            "ENOENT": "the folder does not exist or cannot hold files: choose another path"}.get(name, "fix the disk")
    verb = "cannot write" if name in WRITE_ERRNOS else "cannot create or open"
    return (f"{verb} {_what(path)}{f' {path}' if path else ''}: {exc.strerror or exc} ({name}). Records "
            f"already written are kept; {hint}, then re-run the same command to resume")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    verb, rest = args[0], args[1:]
    try:
        if verb not in VERBS:
            raise ChoiceError("verb", verb, VERBS)
        module, _, func = VERBS[verb][0].partition(":")
        return int(getattr(importlib.import_module(module), func)(rest) or 0)
    except EvalkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS or os.environ.get("EVALKIT_TRACEBACK"):
            raise
        print(f"error: {disk_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished records are kept; re-run the same command to resume", file=sys.stderr)
        return 130
