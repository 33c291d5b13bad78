"""Experiment files (``experiments/<name>.yaml``) into typed, frozen configs.

Every file says what it is for in its first key, ``kind:``: ``sweep`` (read here and by ``python -m evalkit
sweep``) or ``train`` (``evalkit.train.config``, ``python -m evalkit train``); each verb lists and accepts only the
files of its kind. A sweep file describes one cost sweep of the paper: models x flavors x resolutions x durations
x measurements (Fig. 1b / Fig. 6 scaling, Fig. 20 size ladder, Table 2 ablation latencies). Loading goes:

1. YAML -> dict; the ``smoke:`` section is popped (and, with ``--smoke``, deep-merged over the rest);
2. dict -> :class:`ExperimentConfig` with :func:`evalkit.typed.from_dict` (unknown keys are errors that list the
   valid keys and the closest match);
3. ``--set key=value`` overrides are applied to the *complete* config (defaults included), then validated again;
4. every model/flavor/point is checked with ``models.resolve`` / ``models.validate_point`` by
   :func:`evalkit.sweep.plan.plan_points` before any work (``python -m evalkit validate`` does exactly 1-4).

Checks beyond the types: the name is a plain file name (it becomes ``runs/<name>/``), numbers are finite and in
range, no model, flavor, duration, resolution or measurement is listed twice, and CPU latency budgets stay at
sizes a CPU finishes in minutes.

**Parts.** A file whose claims are heterogeneous point sets (experiments/paper_latency.yaml: Fig. 6a, Table 2,
Fig. 20, max frames: other models, flavors, durations, steps, measurements) lists them under ``parts:``, in
priority order. A part is ``name`` (plain, unique), optional ``group`` (parts rendered together, e.g. the 512p
points and the 256p curve of one figure; default: its name), optional ``claim`` (the paper's words), and any of
:data:`PART_KEYS` as a partial override of the rest of the file (deep-merged; ``resolutions`` and
``model_overrides`` replace whole). Each part resolves to a complete, checked config (:func:`part_configs`); with
``--smoke`` the ``smoke:`` section goes over the base *and* over every part. Records and keys name their part
(``evalkit.sweep.plan``), reports group by it (``evalkit.report``). Parts and ``variations`` do not combine.

**Budget.** The ``budget:`` section (:class:`evalkit.sweep.predict.BudgetSettings`) holds the default of
``sweep --budget-s`` and the throughput profiles its planner predicts with; like ``launch:`` it is not part of
the config hash (it changes which points run and their iteration counts, not what a record measures).

This module never imports torch.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from evalkit.errors import ChoiceError, FieldError
from evalkit.launch.config import LaunchConfig
from evalkit.sweep.predict import BudgetSettings, check_budget
from evalkit.typed import apply_overrides, from_dict, plain_name, to_dict
from evalkit.variations import SensitivitySettings, Variation

REPO_ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS_DIR = REPO_ROOT / "experiments"
DEFAULT_EXPERIMENT = "scaling"
KINDS = ("sweep", "train")
# CPU latency points above this many GFLOP per timed call would take many minutes each on a CPU (a 2-core box
# does roughly 0.05-0.2 TFLOP/s in float32); time larger points on a GPU
CPU_BUDGET_GFLOP_MAX = 2000.0

MeasurementName = Literal["flops", "latency", "memory", "max_frames"]
DType = Literal["float32", "bfloat16", "float16"]


@dataclass(frozen=True, kw_only=True)
class SamplingSettings:
    """How one video is sampled: per-video cost = forward x steps x cfg_factor (computed by reports)."""
    steps: int = 50          # assumed: common flow-matching default; Fig. 20 states 100 steps
    # assumed: classifier-free guidance doubles the work of a step (the sampler runs the conditional and the
    # unconditional branch as one forward of twice the batch, evalkit.sampling.sample); 1 = no guidance
    cfg_factor: int = 2


@dataclass(frozen=True, kw_only=True)
class FlopsSettings:
    rel_tol: float = 0.01            # counted vs analytic: > 1% -> status "flagged"
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
    # > 0: stop timing once another iteration would end more than this many seconds after the measurement
    # started (warm-up included; at least one timed iteration). `sweep --budget-s` sets it per point.
    max_seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class MemorySettings:
    dtype_cuda: DType = "bfloat16"


@dataclass(frozen=True, kw_only=True)
class MaxFramesSettings:
    resolutions: tuple[str, ...] = ()   # names from `resolutions`; empty = all of them
    max_duration_s: float = 272.0       # upper end of the bisection (4x the paper's 68 s)
    dtype_cuda: DType = "bfloat16"
    # > 0: probe as if the GPU had only this many GiB (torch.cuda.set_per_process_memory_fraction), e.g. an
    # 80 GB H100 on a larger card; 0 = the whole card
    memory_limit_gib: float = 0.0
    # > 0: stop the bisection before a probe predicted to end later than this many seconds after the start (the
    # record then gives the bracket found so far); `sweep --budget-s` sets it per point
    max_seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ExperimentConfig:
    kind: Literal["sweep"]
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
    launch: LaunchConfig = field(default_factory=LaunchConfig)   # where the points run (evalkit.launch)
    # empty: one set of points (model_overrides); else one set per expanded variation (evalkit.variations)
    variations: dict[str, Variation] = field(default_factory=dict)
    sensitivity: SensitivitySettings = field(default_factory=SensitivitySettings)
    budget: BudgetSettings = field(default_factory=BudgetSettings)   # sweep --budget-s (evalkit.sweep.budget)
    # empty: one point set; else one per part, in priority order (see the module docstring)
    parts: tuple[Part, ...] = ()


# keys a part may override (the rest of a sweep file: its identity, launch, budget, variations, is shared)
PART_KEYS = ("description", "models", "flavors", "model_overrides", "resolutions", "durations_s", "fps", "batch",
             "measurements", "sampling", "flops", "latency", "memory", "max_frames")
PART_OWN_KEYS = ("name", "group", "claim", "overrides")


@dataclass(frozen=True, kw_only=True)
class Part:
    """One named point set of a sweep file (``parts:``): a partial override of the rest of the file.

    In YAML the override keys sit next to ``name`` (``- {name: table2, models: [...], durations_s: [17]}``);
    loaded, they are ``overrides``."""
    name: str
    group: str = ""          # parts with one group are rendered together (default: the part's own name)
    claim: str = ""          # the paper's claim this part measures (documentation; copied into records)
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def report_group(self) -> str:
        return self.group or self.name


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
        """Hash of everything that changes results (the launch and budget sections do not)."""
        data = self.resolved()
        data.pop("launch", None)
        data.pop("budget", None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]

    def parts(self) -> list[tuple[Part | None, ExperimentConfig]]:
        """(part, its complete config) in priority order; ``[(None, config)]`` for a file without parts."""
        return part_configs(self.config, self.name)


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and key not in (
                "resolutions", "model_overrides", "variations", "overrides"):  # replaced whole, never merged
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


def _normalise_parts(data: dict[str, Any], where: str) -> None:
    """``parts:`` items as written (override keys next to ``name``) into :class:`Part` mappings (``overrides``);
    an item already in that form (a config turned back into a dict) is kept. Unknown keys are errors."""
    parts = data.get("parts")
    if parts is None:
        return
    if isinstance(parts, (str, bytes)) or not isinstance(parts, Sequence):
        raise FieldError(f"{where}.parts", f"expected a list of parts ({{name: ..., <overrides>}}), got {parts!r}")
    out = []
    for i, item in enumerate(parts):
        fld = f"{where}.parts[{i}]"
        if not isinstance(item, Mapping):
            raise FieldError(fld, f"expected a mapping with a name and overrides, got {item!r}")
        if "name" not in item:
            raise FieldError(f"{fld}.name", "is required but missing")
        fld = f"{where}.parts[{i}]({item['name']})"
        nested = "overrides" in item
        own = {k: item[k] for k in PART_OWN_KEYS if k in item}
        over = dict(item.get("overrides") or {}) if nested else {k: v for k, v in item.items()
                                                                 if k not in PART_OWN_KEYS}
        if not isinstance(over, Mapping):
            raise FieldError(f"{fld}.overrides", f"expected a mapping, got {over!r}")
        extra = [k for k in item if k not in PART_OWN_KEYS] if nested else []
        for k in list(over) + extra:
            if k not in PART_KEYS or k in extra:
                raise ChoiceError(f"{fld}.{k}", k, PART_KEYS + PART_OWN_KEYS[:3], what="key of a part")
        _normalise_resolutions(over, fld)
        out.append({**own, "overrides": over})
    data["parts"] = out


def part_configs(cfg: ExperimentConfig, where: str) -> list[tuple[Part | None, ExperimentConfig]]:
    """Every part of ``cfg`` as a complete, checked config (the file without ``parts``, the part's overrides
    deep-merged over it); errors name the part."""
    if not cfg.parts:
        return [(None, cfg)]
    base = to_dict(cfg)
    base["parts"] = []
    out = []
    for i, part in enumerate(cfg.parts):
        fld = f"{where}.parts[{i}]({part.name})"
        merged = _deep_merge(base, part.overrides)
        _normalise_resolutions(merged, fld)
        pcfg = from_dict(ExperimentConfig, merged, fld)
        _check(pcfg, fld)
        out.append((part, pcfg))
    return out


def _check_parts(cfg: ExperimentConfig, where: str) -> None:
    if not cfg.parts:
        return
    if cfg.variations:
        raise FieldError(f"{where}.parts", "parts and variations do not combine: give each variation its own file, "
                                           "or each part its own model_overrides")
    names = [p.name for p in cfg.parts]
    for i, p in enumerate(cfg.parts):
        plain_name(f"{where}.parts[{i}].name", p.name)
        if p.group:
            plain_name(f"{where}.parts[{i}]({p.name}).group", p.group)
    _no_duplicates(names, f"{where}.parts")
    part_configs(cfg, where)


def _no_duplicates(values: Sequence[Any], field_name: str) -> None:
    seen = set()
    for i, v in enumerate(values):
        if v in seen:
            raise FieldError(f"{field_name}[{i}]", f"{v!r} is listed twice (it would be planned and run twice)")
        seen.add(v)


def _check(cfg: ExperimentConfig, where: str) -> None:
    """Range checks that the type system does not express."""
    plain_name(f"{where}.name", cfg.name)
    if not cfg.models:
        raise FieldError(f"{where}.models", "needs at least one model name")
    if not cfg.flavors:
        raise FieldError(f"{where}.flavors", "needs at least one flavor")
    if not cfg.durations_s:
        raise FieldError(f"{where}.durations_s", "needs at least one duration (max_frames starts from the shortest)")
    for i, d in enumerate(cfg.durations_s):
        if not d > 0:
            raise FieldError(f"{where}.durations_s[{i}]", f"must be > 0 seconds, got {d}")
    for name, values in (("models", cfg.models), ("flavors", cfg.flavors), ("durations_s", cfg.durations_s),
                         ("measurements", cfg.measurements), ("max_frames.resolutions", cfg.max_frames.resolutions),
                         ("resolutions", [tuple(v) for v in cfg.resolutions.values()])):
        _no_duplicates(list(values), f"{where}.{name}")
    for name, value in (("fps", cfg.fps), ("batch", cfg.batch), ("sampling.steps", cfg.sampling.steps),
                        ("latency.min_iterations", cfg.latency.min_iterations),
                        ("latency.max_iterations", cfg.latency.max_iterations)):
        if value < 1:
            raise FieldError(f"{where}.{name}", f"must be >= 1, got {value}")
    if cfg.sampling.cfg_factor not in (1, 2):
        raise ChoiceError(f"{where}.sampling.cfg_factor", cfg.sampling.cfg_factor, (1, 2))
    for name, value in (("latency.warmup", cfg.latency.warmup), ("latency.min_seconds", cfg.latency.min_seconds),
                        ("latency.cpu_budget_gflop", cfg.latency.cpu_budget_gflop),
                        ("flops.rel_tol", cfg.flops.rel_tol)):
        if value < 0:
            raise FieldError(f"{where}.{name}", f"must be >= 0, got {value}")
    if not cfg.max_frames.max_duration_s > 0:
        raise FieldError(f"{where}.max_frames.max_duration_s", f"must be > 0, got {cfg.max_frames.max_duration_s}")
    if cfg.latency.cpu_budget_gflop > CPU_BUDGET_GFLOP_MAX:
        raise FieldError(f"{where}.latency.cpu_budget_gflop",
                         f"{cfg.latency.cpu_budget_gflop:g} GFLOP per timed call is hours of CPU time for a large "
                         f"point (a 2-core CPU does ~0.05-0.2 TFLOP/s); the most allowed is {CPU_BUDGET_GFLOP_MAX:g}: "
                         "time larger points on a GPU")
    if not cfg.measurements:
        raise FieldError(f"{where}.measurements", "needs at least one measurement")
    for i, r in enumerate(cfg.max_frames.resolutions):
        if r not in cfg.resolutions:
            raise ChoiceError(f"{where}.max_frames.resolutions[{i}]", r, cfg.resolutions, what="resolution")
    for name, value in (("latency.max_seconds", cfg.latency.max_seconds),
                        ("max_frames.memory_limit_gib", cfg.max_frames.memory_limit_gib),
                        ("max_frames.max_seconds", cfg.max_frames.max_seconds)):
        if value < 0:
            raise FieldError(f"{where}.{name}", f"must be >= 0 (0: no limit), got {value}")
    check_budget(cfg.budget, where)


def file_kind(path: Path) -> str | None:
    """The ``kind:`` of an experiment file (None when it has none or is not a mapping)."""
    raw = read_yaml(path)
    return raw.get("kind") if isinstance(raw, Mapping) else None


def experiment_names(kind: str | None = None) -> list[str]:
    """Names of the files under experiments/ (of one ``kind`` when given)."""
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml") if kind is None or file_kind(p) == kind)


VERB_OF = {"sweep": "python -m evalkit sweep", "train": "python -m evalkit train"}


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
    legacy = [k for k in ("executor", "cluster") if k in data]
    legacy += [s.split("=", 1)[0] for s in sets if s.split(".", 1)[0].strip() in ("executor", "cluster")]
    if legacy:
        raise FieldError(f"{where if legacy[0] in data else '--set'} {legacy[0]}",
                         "the executor: and cluster: sections are now one launch: section (launcher: inline | "
                         "process | submitit; isolation = launcher: process; README: Running on a SLURM cluster)")
    smoke_over = data.pop("smoke", None) or {}
    if not isinstance(smoke_over, Mapping):
        raise FieldError(f"{where}.smoke", "expected a mapping of overrides")
    _normalise_resolutions(data, where)
    _normalise_parts(data, where)
    base = from_dict(ExperimentConfig, data, where)       # the base is always valid on its own
    _check(base, where)
    _check_parts(base, where)
    merged = _deep_merge(to_dict(base), smoke_over)        # ... and so is base+smoke (checked even unused)
    _normalise_resolutions(merged, f"{where}.smoke")
    if "parts" in smoke_over:
        _normalise_parts(merged, f"{where}.smoke")
    else:   # the smoke section goes over every part too (it shrinks the part's models and points as well)
        over = {k: v for k, v in smoke_over.items() if k in PART_KEYS}
        merged["parts"] = [{**p, "overrides": _deep_merge(p["overrides"], over)} for p in merged.get("parts", [])]
    smoke_cfg = from_dict(ExperimentConfig, merged, f"{where}.smoke")
    _check(smoke_cfg, f"{where}.smoke")
    _check_parts(smoke_cfg, f"{where}.smoke")
    cfg = smoke_cfg if smoke else base
    if sets:
        full = apply_overrides(to_dict(cfg), list(sets))
        _normalise_resolutions(full, "--set")
        _normalise_parts(full, "--set")
        cfg = from_dict(ExperimentConfig, full, "--set")
        _check(cfg, "--set")
        _check_parts(cfg, "--set")
    return cfg


def load_experiment(name_or_path: str | Path = DEFAULT_EXPERIMENT, *, smoke: bool = False,
                    sets: Sequence[str] = ()) -> Experiment:
    path = find_experiment(name_or_path, kind="sweep")
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


__all__ = [
    "ExperimentConfig", "Experiment", "Part", "part_configs", "load_experiment", "parse_experiment", "find_experiment",
    "experiment_names", "add_experiment_args", "DEFAULT_EXPERIMENT",
]
