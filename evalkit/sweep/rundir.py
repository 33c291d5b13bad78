"""Which run folder a sweep writes to: resume the latest matching run, or start a new one.

``runs/<experiment>/<run_id>/manifest.json`` records the resolved config and its hash
(:meth:`~evalkit.experiment.Experiment.config_hash`, everything but the executor section). Re-running the same
experiment with the same resolved config reuses the newest run folder whose manifest has that hash and skips
the keys already finished there; a changed config (another ``--set``, ``--smoke``, an edited YAML) never mixes
into an old run: it gets a new folder. ``--new-run`` forces a new folder; ``--run-dir`` names one explicitly
(refused if its manifest holds a different config).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from evalkit.errors import FieldError
from evalkit.experiment import Experiment
from evalkit.results import REPO_ROOT, new_run_dir, read_manifests, write_manifest

DEFAULT_RUNS_ROOT = REPO_ROOT / "runs"


def _hash_of(run_dir: Path) -> str | None:
    manifests = read_manifests(run_dir)
    return manifests[0].get("config_hash") if manifests else None


def matching_runs(runs_root: Path, exp: Experiment) -> list[Path]:
    """Run folders of this experiment whose manifest config matches, oldest first."""
    root = Path(runs_root) / exp.name
    if not root.exists():
        return []
    runs = [d for d in root.iterdir() if d.is_dir() and (d / "manifest.json").exists()
            and _hash_of(d) == exp.config_hash()]
    return sorted(runs, key=lambda d: (json.loads((d / "manifest.json").read_text()).get("created", ""), d.name))


def open_run(exp: Experiment, *, runs_root: Path = DEFAULT_RUNS_ROOT, run_dir: Path | None = None,
             new_run: bool = False, argv: list[str] | None = None) -> tuple[Path, bool]:
    """(run folder, resumed?) for this experiment; writes the manifest of a new folder."""
    if run_dir is not None:
        run_dir = Path(run_dir)
        existing = _hash_of(run_dir) if run_dir.exists() else None
        if existing is not None and existing != exp.config_hash():
            raise FieldError("--run-dir", f"{run_dir} holds config {existing}, this experiment resolves to "
                                          f"{exp.config_hash()}: use another --run-dir or --new-run")
        if existing is not None:
            return run_dir, True
    elif not new_run:
        found = matching_runs(runs_root, exp)
        if found:
            return found[-1], True
    if run_dir is None:
        run_dir = new_run_dir(Path(runs_root) / exp.name)
    write_manifest(run_dir, experiment=exp.name, run_id=run_dir.name, config=exp.resolved(),
                   config_hash=exp.config_hash(), experiment_file=str(exp.path), smoke=exp.smoke,
                   sets=list(exp.sets), command=" ".join(["python -m evalkit sweep", *(argv or sys.argv[2:])]))
    return run_dir, False
