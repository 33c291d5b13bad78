"""Experiment files (``experiments/<name>.yaml``) into typed, frozen configs; the ``validate`` verb.

An experiment file describes one cost sweep of the paper: models x flavors x resolutions x durations x
measurements (Fig. 1b / Fig. 6 scaling, Fig. 20 size ladder, Table 2 ablation latencies). Loading goes:

1. YAML -> dict; the ``smoke:`` section is popped (and, with ``--smoke``, deep-merged over the rest);
2. dict -> :class:`ExperimentConfig` with :func:`evalkit.typed.from_dict` (unknown keys are errors that list the
   valid keys and the closest match);
3. ``--set key=value`` overrides are applied to the *complete* config (defaults included), then validated again;
4. every model/flavor/point is checked with ``models.resolve`` / ``models.validate_point`` by
   :func:`evalkit.sweep.plan.plan_points` before any work (``python -m evalkit validate`` does exactly 1-4).

This module never imports torch.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from evalkit.cluster import ClusterConfig
from evalkit.errors import ChoiceError, FieldError
from evalkit.typed import apply_overrides, from_dict, to_dict

REPO_ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS_DIR = REPO_ROOT / "experiments"
DEFAULT_EXPERIMENT = "scaling"

MeasurementName = Literal["flops", "latency", "memory", "max_frames"]
DType = Literal["float32", "bfloat16", "float16"]


@dataclass(frozen=True, kw_only=True)
class SamplingSettings:
    """How one video is sampled: per-video cost = forward x steps x cfg_factor (computed by reports)."""
    steps: int = 50          # assumed: common flow-matching default; Fig. 20 states 100 steps
    cfg_factor: int = 2      # assumed: classifier-free guidance as 2 forwards per step (unbatched)


@dataclass(frozen=True, kw_only=True)
class FlopsSettings:
    rel_tol: float = 0.01            # counted vs analytic: > 1% -> status "flagged" (issue 3)
    fvcore: bool = True              # also record fvcore's multiply-add count (on meta tensors)
    fvcore_max_tokens: int = 0       # 0 = every point; else only points with num_tokens <= this
    # when fvcore's trace fails on meta, points this small are traced again on real CPU tensors
    fvcore_cpu_fallback_max_tokens: int = 4096
    fvcore_cpu_fallback_max_params: int = 50_000_000


@dataclass(frozen=True, kw_only=True)
class LatencySettings:
    scope: Literal["denoiser_forward", "sampling_loop"] = "denoiser_forward"
    warmup: int = 3
    min_iterations: int = 5
    min_seconds: float = 2.0
    max_iterations: int = 200
    dtype_cuda: DType = "bfloat16"
    dtype_cpu: DType = "float32"
    kernels: Literal["auto", "ref", "fused"] = "auto"
    # CPU only: time points whose analytic forward cost (one denoiser call) is at most this many GFLOPs;
    # larger ones get a "skipped" row (no CUDA). Chosen so a tiny-model point takes well under a second.
    cpu_budget_gflop: float = 20.0


@dataclass(frozen=True, kw_only=True)
class MemorySettings:
    dtype_cuda: DType = "bfloat16"


@dataclass(frozen=True, kw_only=True)
class MaxFramesSettings:
    resolutions: tuple[str, ...] = ()   # names from `resolutions`; empty = all of them
    max_duration_s: float = 272.0       # upper end of the bisection (4x the paper's 68 s)
    dtype_cuda: DType = "bfloat16"


@dataclass(frozen=True, kw_only=True)
class ExecutorSettings:
    isolate: bool = False               # one fresh subprocess per point (an OOM/crash costs one point)
    point_timeout_s: float = 3600.0     # isolate only: a point running longer is killed and recorded as error
    # processes counting FLOPs in parallel on a CPU box (meta device; timing measurements always run serially
    # in the main process, and with CUDA present everything runs serially)
    flops_workers: int = 1


@dataclass(frozen=True, kw_only=True)
class ExperimentConfig:
    name: str
    description: str = ""
    models: tuple[str, ...]
    flavors: tuple[str, ...]
    model_overrides: dict[str, Any] = field(default_factory=dict)
    resolutions: dict[str, tuple[int, int]]      # name -> (height, width) in pixels
    durations_s: tuple[float, ...]
    fps: int = 16                                # assumed: 1088 raw frames / 68 s (paper Table 1)
    batch: int = 1
    measurements: tuple[MeasurementName, ...] = ("flops",)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    flops: FlopsSettings = field(default_factory=FlopsSettings)
    latency: LatencySettings = field(default_factory=LatencySettings)
    memory: MemorySettings = field(default_factory=MemorySettings)
    max_frames: MaxFramesSettings = field(default_factory=MaxFramesSettings)
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)   # submitit/SLURM fan-out (evalkit.cluster)


@dataclass(frozen=True, kw_only=True)
class Experiment:
    """A loaded experiment: the typed config plus where it came from."""
    config: ExperimentConfig
    path: Path
    smoke: bool
    sets: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.config.name

    def resolved(self) -> dict[str, Any]:
        return to_dict(self.config)

    def config_hash(self) -> str:
        """Hash of everything that changes results (the executor and cluster sections do not)."""
        data = self.resolved()
        data.pop("executor", None)
        data.pop("cluster", None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and key not in (
                "resolutions", "model_overrides"):  # these two are replaced whole, never merged
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _normalise_resolutions(data: dict[str, Any], where: str) -> None:
    """Accept ``512p: [512, 896]`` or ``512p: {height: 512, width: 896}``; check positivity."""
    res = data.get("resolutions")
    if res is None:
        return
    if not isinstance(res, Mapping) or not res:
        raise FieldError(f"{where}.resolutions", f"expected a non-empty mapping name -> [height, width], got {res!r}")
    out = {}
    for name, value in res.items():
        fld = f"{where}.resolutions.{name}"
        if isinstance(value, Mapping):
            unknown = [k for k in value if k not in ("height", "width")]
            if unknown:
                raise ChoiceError(f"{fld}.{unknown[0]}", unknown[0], ("height", "width"), what="key")
            if "height" not in value or "width" not in value:
                raise FieldError(fld, "needs both height and width")
            value = [value["height"], value["width"]]
        if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
            raise FieldError(fld, f"expected [height, width] in pixels, got {value!r}")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
            raise FieldError(fld, f"height and width must be positive integers, got {value!r}")
        out[str(name)] = list(value)
    data["resolutions"] = out


def _check(cfg: ExperimentConfig, where: str) -> None:
    """Range checks that the type system does not express."""
    if not cfg.models:
        raise FieldError(f"{where}.models", "needs at least one model name")
    if not cfg.flavors:
        raise FieldError(f"{where}.flavors", "needs at least one flavor")
    if not cfg.durations_s:
        raise FieldError(f"{where}.durations_s", "needs at least one duration (max_frames starts from the shortest)")
    for i, d in enumerate(cfg.durations_s):
        if d <= 0:
            raise FieldError(f"{where}.durations_s[{i}]", f"must be > 0 seconds, got {d}")
    for name, value in (("fps", cfg.fps), ("batch", cfg.batch), ("sampling.steps", cfg.sampling.steps),
                        ("sampling.cfg_factor", cfg.sampling.cfg_factor),
                        ("latency.min_iterations", cfg.latency.min_iterations)):
        if value < 1:
            raise FieldError(f"{where}.{name}", f"must be >= 1, got {value}")
    if not cfg.measurements:
        raise FieldError(f"{where}.measurements", "needs at least one measurement")
    for i, r in enumerate(cfg.max_frames.resolutions):
        if r not in cfg.resolutions:
            raise ChoiceError(f"{where}.max_frames.resolutions[{i}]", r, cfg.resolutions, what="resolution")


def experiment_names() -> list[str]:
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))


def find_experiment(name_or_path: str | Path) -> Path:
    """``scaling`` -> experiments/scaling.yaml; a path is used as is."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise FieldError("experiment", f"file not found: {path}")
        return path
    candidate = EXPERIMENTS_DIR / f"{name_or_path}.yaml"
    if not candidate.exists():
        raise ChoiceError("experiment", str(name_or_path), experiment_names(), what="experiment")
    return candidate


def read_yaml(path: Path) -> Any:
    """The parsed YAML file; a syntax error is a FieldError naming the file."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise FieldError(str(path), f"not valid YAML: {exc}") from exc


def parse_experiment(raw: Mapping[str, Any], *, where: str, smoke: bool = False,
                     sets: Sequence[str] = ()) -> ExperimentConfig:
    """A raw YAML mapping (with an optional ``smoke:`` section) into a validated config."""
    if not isinstance(raw, Mapping):
        raise FieldError(where, f"expected a mapping at the top level, got {type(raw).__name__}")
    data = dict(raw)
    smoke_over = data.pop("smoke", None) or {}
    if not isinstance(smoke_over, Mapping):
        raise FieldError(f"{where}.smoke", "expected a mapping of overrides")
    _normalise_resolutions(data, where)
    base = from_dict(ExperimentConfig, data, where)       # the base is always valid on its own
    _check(base, where)
    merged = _deep_merge(to_dict(base), smoke_over)        # ... and so is base+smoke (checked even unused)
    _normalise_resolutions(merged, f"{where}.smoke")
    smoke_cfg = from_dict(ExperimentConfig, merged, f"{where}.smoke")
    _check(smoke_cfg, f"{where}.smoke")
    cfg = smoke_cfg if smoke else base
    if sets:
        full = apply_overrides(to_dict(cfg), list(sets))
        _normalise_resolutions(full, "--set")
        cfg = from_dict(ExperimentConfig, full, "--set")
        _check(cfg, "--set")
    return cfg


def load_experiment(name_or_path: str | Path = DEFAULT_EXPERIMENT, *, smoke: bool = False,
                    sets: Sequence[str] = ()) -> Experiment:
    path = find_experiment(name_or_path)
    raw = read_yaml(path)
    cfg = parse_experiment(raw or {}, where=path.stem, smoke=smoke, sets=sets)
    return Experiment(config=cfg, path=path, smoke=smoke, sets=tuple(sets))


def add_experiment_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", nargs="?", default=DEFAULT_EXPERIMENT,
                        help=f"experiment name under experiments/ or a YAML path (default: {DEFAULT_EXPERIMENT})")
    parser.add_argument("--smoke", action=argparse.BooleanOptionalAction, default=False,
                        help="apply the file's smoke: section (a fast run)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set sampling.steps=100 (repeatable)")


def validate_main(argv: Sequence[str]) -> int:
    """``python -m evalkit validate [experiment] [--smoke] [--set k=v]``: load and check, run nothing."""
    parser = argparse.ArgumentParser(
        prog="python -m evalkit validate",
        description="Load an experiment file, apply --smoke/--set, and check every model, flavor and point "
                    "(models.resolve / models.validate_point) without running anything.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m evalkit validate\n  python -m evalkit validate size_ladder --smoke\n"
               "  python -m evalkit validate ablations --set durations_s=[17]\n")
    add_experiment_args(parser)
    args = parser.parse_args(list(argv))
    exp = load_experiment(args.experiment, smoke=args.smoke, sets=args.sets)
    from evalkit.sweep.plan import plan_points

    points = plan_points(exp)
    n_meas = sum(len(p["measurements"]) for p in points)
    print(f"{exp.path}: ok ({'smoke, ' if exp.smoke else ''}config {exp.config_hash()})")
    print(f"  models {', '.join(exp.config.models)} x flavors {', '.join(exp.config.flavors)}; "
          f"resolutions {', '.join(f'{k}={h}x{w}' for k, (h, w) in exp.config.resolutions.items())}; "
          f"durations {', '.join(f'{d:g}' for d in exp.config.durations_s)} s")
    print(f"  {len(points)} points, {n_meas} point x measurement records planned "
          f"({', '.join(exp.config.measurements)})")
    return 0


__all__ = [
    "ExperimentConfig", "Experiment", "load_experiment", "parse_experiment", "validate_main", "find_experiment",
    "experiment_names", "add_experiment_args", "DEFAULT_EXPERIMENT",
]
