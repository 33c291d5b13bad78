"""Experiment files (``experiments/<name>.yaml``): finding and reading them, for every verb that runs one.

Every file says what it is for in its first key, ``kind:``: ``sweep`` (``python -m evalkit sweep``, typed by
``evalkit.sweep.config``) or ``train`` (``python -m evalkit train``, typed by ``evalkit.train.config``); each verb
lists and accepts only the files of its kind (:func:`find_experiment`), and ``python -m evalkit validate`` reads
the kind to choose the loader. Each verb types the mapping itself; this module only finds, reads and names.
Never imports torch.
"""
from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evalkit.core import safe_yaml
from evalkit.core.errors import ChoiceError, FieldError

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS_DIR = REPO_ROOT / "experiments"
KINDS = ("sweep", "train")
VERB_OF = {"sweep": "python -m evalkit sweep", "train": "python -m evalkit train"}


def read_yaml(path: Path | str) -> Any:
    """The parsed YAML file, through the one limited loader (``evalkit.core.safe_yaml``: size, depth, aliases,
    lengths, plain tags only); a syntax error or a refusal is a FieldError naming the file."""
    return safe_yaml.load(path)


def file_kind(path: Path) -> str | None:
    """The ``kind:`` of an experiment file (None when it has none or is not a mapping)."""
    raw = read_yaml(path)
    return raw.get("kind") if isinstance(raw, Mapping) else None


def experiment_names(kind: str | None = None) -> list[str]:
    """Names of the files under experiments/ (of one ``kind`` when given)."""
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml") if kind is None or file_kind(p) == kind)


def find_experiment(name_or_path: str | Path, kind: str | None = None) -> Path:
    """``scaling`` -> experiments/scaling.yaml; a path is used as is. With ``kind``, a file of another kind is an
    error naming the verb that runs it, and the choices listed are the files of this kind."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise FieldError("experiment", f"file not found: {path}")
    else:
        path = EXPERIMENTS_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise ChoiceError("experiment", str(name_or_path), experiment_names(kind), what=f"{kind or ''} "
                              "experiment".lstrip())
    if kind is not None:
        raw = read_yaml(path)
        if not isinstance(raw, Mapping):
            raise FieldError(path.stem, f"expected a mapping at the top level, got {type(raw).__name__}")
        got = raw.get("kind")
        if got != kind:
            if got in VERB_OF:
                raise FieldError("experiment", f"{path} is a {got} experiment (kind: {got}); run it with "
                                               f"`{VERB_OF[got]} {path.stem}`")
            raise ChoiceError(f"{path.stem}.kind", got, KINDS, what="kind")
    return path


def read_experiment(name_or_path: str | Path, kind: str) -> tuple[Path, dict[str, Any]]:
    """(path, the top-level mapping) of an experiment file of ``kind``."""
    path = find_experiment(name_or_path, kind=kind)
    raw = read_yaml(path) or {}
    if not isinstance(raw, Mapping):
        raise FieldError(path.stem, f"expected a mapping at the top level, got {type(raw).__name__}")
    return path, dict(raw)


def repo_relative(path: Path | str) -> str:
    """``path`` relative to the repository when it lies inside it (what manifests record: no machine paths)."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def add_experiment_args(parser: argparse.ArgumentParser, default: str | None, *, smoke: bool = True) -> None:
    """The positional experiment (name under experiments/ or a YAML path), ``--smoke`` and ``--set``."""
    parser.add_argument("experiment", nargs="?", default=default,
                        help=f"experiment name under experiments/ or a YAML path (default: {default})")
    if smoke:
        parser.add_argument("--smoke", action=argparse.BooleanOptionalAction, default=False,
                            help="apply the file's smoke: section (a fast run; sweep files)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set sampling.steps=100 (repeatable)")
