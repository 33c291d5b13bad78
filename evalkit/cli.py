"""``python -m evalkit <verb>``: a thin dispatcher. Each verb lives in its own module, imported only when run."""
from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

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
    except KeyboardInterrupt:
        print("interrupted: finished records are kept; re-run the same command to resume", file=sys.stderr)
        return 130
