"""What ``report --publish`` verifies before it copies a run, and the digests that let ``report`` detect a published
file edited afterwards.

Not a paper figure: the guard between a run folder and the committed report (every figure and table is rendered
from ``reports/data/``).

* **Records.** Every record must pass :func:`evalkit.core.schema.record_problems` (its kind's schema and
  invariants: a cost record's key rebuilt from its fields, ``flops_agree`` / ``flops_rel_diff`` / status following
  from ``flops`` vs ``flops_analytic``, ``params`` / token counts / ``flops_analytic`` re-derived from its model
  config). A hand-edited number shows up as a record that contradicts itself or its model.
* **Manifests.** ``git_sha`` is a 40-hex commit (``-dirty`` allowed) and, where this checkout's git knows commits,
  one that exists (``git cat-file -e``); ``config_hash`` is recomputed from the stored ``config`` with the rule
  the verb that wrote it uses (``evalkit.core.runs.config_hash`` on the typed sweep / train config, the plain
  JSON hash for a figure fit).
* **Digests.** ``reports/data/SHA256SUMS`` lists the sha256 of every published file (``sha256sum`` format, paths
  relative to ``reports/data/``; ``sha256sum -c SHA256SUMS`` checks it too). ``publish`` adds the new run's
  files; ``report`` and ``report --check`` refuse, naming the file, when a file differs from its digest, is
  missing or is not listed, before rendering anything.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from evalkit.core.errors import EvalkitError, FieldError
from evalkit.core.experiments import REPO_ROOT
from evalkit.core.hashing import file_sha256, json_sha256
from evalkit.core.schema import numbers_close

SUMS = "SHA256SUMS"
SHA_RE = re.compile(r"[0-9a-f]{40}(-dirty)?")
MAX_LISTED = 8          # problems named in one error (the count of the rest follows)


class PublishError(FieldError):
    """A run (or the published data) fails verification; the message lists record keys / files and fields."""


# ---------------------------------------------------------------------------------------------------------------
# records: a cost record's fields re-derived from its model config (core.schema checks the rest)
# ---------------------------------------------------------------------------------------------------------------
def derived_cost_problems(rec: dict[str, Any]) -> list[str]:
    """params, geometry and flops_analytic re-derived from the record's model config (the registry's analytic
    cost: milliseconds, no model built)."""
    from evalkit import models

    try:
        cfg = models.resolve(rec["model"], rec["flavor"], rec.get("model_overrides") or None)
    except (EvalkitError, ValueError, KeyError, TypeError) as exc:
        return [f"model: {rec.get('model')!r} / flavor {rec.get('flavor')!r} / model_overrides do not resolve "
                f"({str(exc)[:120]})"]
    out = []
    params = int(models.param_count(cfg))
    if rec["params"] != params:
        out.append(f"params: {rec['params']!r}, but the model config has {params}")
    if rec["duration_s"] is None:
        return out
    point = models.VideoPoint(height=rec["height"], width=rec["width"], duration_s=rec["duration_s"], fps=rec["fps"])
    _, t, _, _ = models.latent_shape(cfg, point)
    for name, want in (("num_frames", models.num_frames(cfg, point)), ("latent_frames", int(t)),   # causal VAE: +1
                       ("num_tokens", int(models.num_tokens(cfg, point)))):
        if rec.get(name) != want:
            out.append(f"{name}: {rec.get(name)!r}, but the model config at {rec['height']}x{rec['width']}, "
                       f"{rec['duration_s']:g} s gives {want}")
    if isinstance(rec.get("flops_analytic"), (int, float)):
        analytic = models.estimate_flops(cfg, point).total * rec["batch"]
        if not numbers_close(float(rec["flops_analytic"]), float(analytic)):
            out.append(f"flops_analytic: {rec['flops_analytic']!r}, but the model config gives {analytic:.6g}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# manifests
# ---------------------------------------------------------------------------------------------------------------
def recomputed_hash(manifest: dict[str, Any]) -> str | None:
    """The config hash of the manifest's stored ``config`` under its verb's rule (None: a kind without one)."""
    from evalkit.core.runs import config_hash
    from evalkit.core.typed import from_dict

    kind, config = manifest.get("kind"), manifest.get("config")
    if kind == "sweep":
        from evalkit.sweep.config import NOT_HASHED, ExperimentConfig
        return config_hash(from_dict(ExperimentConfig, config, "config"), exclude=NOT_HASHED)
    if kind == "train":
        from evalkit.train.config import TrainExperiment
        return config_hash(from_dict(TrainExperiment, config, "config"))
    if kind == "figure_fit":
        return json_sha256(config)[:12]
    return None


def _commit_exists(sha: str, repo: Path) -> bool | None:
    """True / False where ``repo`` is a git checkout; None where git cannot tell (no git, no repository)."""
    try:
        inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=repo, capture_output=True,
                                text=True, timeout=30)
        if inside.returncode != 0:
            return None
        res = subprocess.run(["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=repo, capture_output=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.returncode == 0


def manifest_problems(path: Path, repo: Path = REPO_ROOT) -> list[str]:
    """Why the manifest at ``path`` cannot be trusted (empty: none found)."""
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [f"not readable JSON ({exc})"]
    if not isinstance(m, dict):
        return [f"expected a JSON object, got {type(m).__name__}"]
    out = []
    sha = m.get("git_sha")
    if not isinstance(sha, str) or not SHA_RE.fullmatch(sha):
        out.append(f"git_sha: {str(sha)[:60]!r} is not a 40-hex commit (optionally -dirty): the run's code is "
                   "unknown")
    elif set(sha[:40]) == {"0"} or _commit_exists(sha[:40], repo) is False:
        out.append(f"git_sha: {sha[:40]} is not a commit of this repository (git cat-file -e)")
    if "config_hash" in m or m.get("kind") in ("sweep", "train", "figure_fit"):
        try:
            want = recomputed_hash(m)
        except (FieldError, ValueError, TypeError) as exc:
            out.append(f"config: the stored config no longer types ({str(exc)[:160]})")
        else:
            if want is not None and m.get("config_hash") != want:
                out.append(f"config_hash: {m.get('config_hash')!r}, but the stored config hashes to {want!r}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# a run before it is published
# ---------------------------------------------------------------------------------------------------------------
def _listed(problems: list[str]) -> str:
    shown = problems[:MAX_LISTED]
    more = len(problems) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more else "")


def verify_run(run_dir: Path, repo: Path = REPO_ROOT) -> None:
    """Refuse (PublishError listing manifests / record keys and fields) a run whose manifests or records fail
    verification (see the module docstring)."""
    from evalkit.core.records import RESULTS_GLOB, iter_file
    from evalkit.core.schema import record_problems

    problems = []
    for mpath in sorted(Path(run_dir).glob("manifest*.json")):
        problems += [f"{mpath.name}: {p}" for p in manifest_problems(mpath, repo)]
    for path in sorted(Path(run_dir).glob(RESULTS_GLOB)):
        for rec in iter_file(path, strict=True):
            problems += [f"{path.name} record {str(rec.get('key'))[:120]!r}: {p}" for p in record_problems(rec, derive=derived_cost_problems)]
    if problems:
        raise PublishError("publish", f"{run_dir} fails verification ({len(problems)} problem(s)), nothing "
                                      f"published: {_listed(problems)}")


# ---------------------------------------------------------------------------------------------------------------
# digests of the published data
# ---------------------------------------------------------------------------------------------------------------
def data_files(data_dir: Path) -> list[Path]:
    """Every published file under ``data_dir`` (SHA256SUMS itself left out), relative, sorted."""
    if not data_dir.is_dir():
        return []
    return sorted(p.relative_to(data_dir) for p in data_dir.rglob("*") if p.is_file() and p.name != SUMS
                  and not any(part.startswith(".") for part in p.relative_to(data_dir).parts))


def read_sums(data_dir: Path) -> dict[str, str]:
    """path (relative, posix) -> sha256 as listed in ``data_dir/SHA256SUMS`` ({} when there is none)."""
    path = data_dir / SUMS
    if not path.is_file():
        return {}
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line)
        if not m:
            raise PublishError(str(path), f"line {n} is not '<sha256>  <path>': {line[:80]!r}")
        out[m.group(2)] = m.group(1)
    return out


def write_sums(data_dir: Path, sums: dict[str, str]) -> Path:
    """Write ``data_dir/SHA256SUMS`` (sorted, ``sha256sum`` format), atomically."""
    from evalkit.core.records import atomic_write_text

    path = data_dir / SUMS
    atomic_write_text(path, "".join(f"{h}  {p}\n" for p, h in sorted(sums.items())))
    return path


def sums_problems(data_dir: Path) -> list[str]:
    """Published files that differ from their digest, are missing or are not listed (empty: all agree)."""
    listed = read_sums(data_dir)
    present = {p.as_posix() for p in data_files(data_dir)}
    rel = "reports/data"
    out = [f"edited: {rel}/{p} differs from its digest in {rel}/{SUMS}" for p in sorted(present & listed.keys())
           if file_sha256(data_dir / p) != listed[p]]
    out += [f"missing: {rel}/{p} is listed in {rel}/{SUMS} but absent" for p in sorted(listed.keys() - present)]
    out += [f"unlisted: {rel}/{p} is not in {rel}/{SUMS} (publish runs with `python -m evalkit report "
            "--publish RUN_DIR`; data published before digests existed: `python -m evalkit report --rehash-data`)"
            for p in sorted(present - listed.keys())]
    return out


def check_sums(data_dir: Path) -> None:
    """Refuse (PublishError naming the files) published data that is not what was published."""
    problems = sums_problems(data_dir)
    if problems:
        raise PublishError(f"{data_dir.name}/{SUMS}", "the published data is not what was published (an edit after "
                                                     "publishing?), nothing rendered: " + _listed(problems))


def add_to_sums(data_dir: Path, run_dest: Path) -> Path:
    """SHA256SUMS with the files of the run just copied to ``run_dest`` added (the others kept as listed)."""
    sums = read_sums(data_dir)
    for p in sorted(run_dest.rglob("*")):
        if p.is_file():
            sums[p.relative_to(data_dir).as_posix()] = file_sha256(p)
    return write_sums(data_dir, sums)


def rehash(data_dir: Path, repo: Path = REPO_ROOT) -> tuple[Path, int]:
    """Verify every published run as publishing does, then write SHA256SUMS of every published file."""
    runs = sorted({(data_dir / p).parent for p in data_files(data_dir) if p.name == "manifest.json"})
    for run in runs:
        verify_run(run, repo)
    sums = {p.as_posix(): file_sha256(data_dir / p) for p in data_files(data_dir)}
    return write_sums(data_dir, sums), len(sums)


def is_published(run_dir: Path, data_dir: Path) -> bool:
    try:
        Path(os.path.abspath(run_dir)).relative_to(os.path.abspath(data_dir))
        return True
    except ValueError:
        return False
