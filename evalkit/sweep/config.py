"""The sweep's experiment files (``kind: sweep``) into a typed, frozen, checked :class:`Experiment`.

A sweep file describes one cost sweep of the paper: models x flavors x resolutions x durations x measurements
(Fig. 1b / Fig. 6 scaling, Fig. 20 size ladder, Table 2 ablation latencies). Loading goes, once:

1. the file is found and read (``evalkit.core.experiments``); its ``smoke:`` section is popped and, with
   ``--smoke``, deep-merged over the rest (without ``--smoke`` its keys are still typed, so it cannot rot);
2. ``--set key=value`` overrides are applied over the file's values and every key's default (so any key can be
   set), and the result is typed into :class:`ExperimentConfig` (unknown keys are errors that list the valid keys
   and the closest match) and checked (ranges, plain names, duplicates; each settings section by its owner);
3. every part is resolved into its complete, checked config (:func:`part_configs`).

``evalkit.sweep.plan`` then turns the experiment into validated points (every model, flavor and video checked
before any work; ``python -m evalkit validate`` does exactly this). The settings sections belong to the
measurements that read them (``sampling`` to ``evalkit.measure.point``, ``flops`` / ``latency`` / ``memory`` /
``max_frames`` to their modules), ``launch:`` to ``evalkit.launch``, ``budget:`` to ``evalkit.sweep.budget``.

**Parts.** A file whose claims are heterogeneous point sets (experiments/paper_latency.yaml: Fig. 6a, Table 2,
Fig. 20, max frames: other models, flavors, durations, steps, measurements) lists them under ``parts:``, in
priority order. A part is ``name`` (plain, unique), optional ``group`` (parts rendered together, e.g. the 512p
points and the 256p curve of one figure; default: its name), optional ``claim`` (the paper's words), and any of
:data:`PART_KEYS` as a partial override of the rest of the file (deep-merged; ``resolutions`` and
``model_overrides`` replace whole). With ``--smoke`` the ``smoke:`` section goes over the base *and* over every
part (a part with ``smoke: false`` is left out). Records and keys name their part (``evalkit.sweep.plan``),
reports group by it. Parts and ``variations`` do not combine.

**Hash.** :meth:`Experiment.config_hash` hashes what changes results (not ``launch:`` nor ``budget:``, which change
where and how many points run, not what a record measures), leaving out keys at their default
(``evalkit.core.runs.config_hash``): a new setting added to the schema with a default does not orphan existing
runs. This module never imports torch.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evalkit.core.errors import FieldError
from evalkit.core.experiments import read_experiment
from evalkit.core.runs import config_hash
from evalkit.core.typed import apply_overrides, deep_merge, defaults_dict, from_dict, plain_name, to_dict
from evalkit.launch.config import LaunchConfig
from evalkit.measure.flops import FlopsSettings
from evalkit.measure.latency import LatencySettings
from evalkit.measure.max_frames import MaxFramesSettings
from evalkit.measure.memory import MemorySettings
from evalkit.measure.point import SamplingSettings, Settings
from evalkit.sweep.budget import BudgetSettings
from evalkit.sweep.variations import SensitivitySettings, Variation

DEFAULT_EXPERIMENT = "scaling"
MeasurementName = Literal["flops", "latency", "memory", "max_frames"]
# keys a part may override (the rest of a sweep file: its identity, launch, budget, variations, is shared)
PART_KEYS = ("description", "models", "flavors", "model_overrides", "resolutions", "durations_s", "fps", "batch",
             "measurements", "sampling", "flops", "latency", "memory", "max_frames")
PART_OWN_KEYS = ("name", "group", "claim", "strict", "overrides")
# a part's `smoke: false` (left out of --smoke) is read while the file is merged and never typed or hashed: a
# new flag must not change the config hash of every existing file with parts
SMOKE_FLAG = "smoke"
# mappings replaced whole by an override, never merged key by key
REPLACED_WHOLE = ("resolutions", "model_overrides", "variations", "overrides")
# sections that change where and how many points run, not what a record measures: not part of the config hash
NOT_HASHED = ("launch", "budget")


@dataclass(frozen=True, kw_only=True)
class Part:
    """One named point set of a sweep file (``parts:``): a partial override of the rest of the file.

    In YAML the override keys sit next to ``name`` (``- {name: table2, models: [...], durations_s: [17]}``);
    loaded, they are ``overrides``."""
    name: str
    group: str = ""          # parts with one group are rendered together (default: the part's own name)
    claim: str = ""          # the paper's claim this part measures (documentation; copied into records)
    # under `sweep --budget-s`: its points get all the work their settings ask for before any later point gets
    # any (the headline claim first, fully); otherwise each point first gets its minimal work in file order
    strict: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def report_group(self) -> str:
        return self.group or self.name


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
    # empty: one set of points (model_overrides); else one set per expanded variation (evalkit.sweep.variations)
    variations: dict[str, Variation] = field(default_factory=dict)
    sensitivity: SensitivitySettings = field(default_factory=SensitivitySettings)
    budget: BudgetSettings = field(default_factory=BudgetSettings)   # sweep --budget-s (evalkit.sweep.budget)
    # empty: one point set; else one per part, in priority order (see the module docstring)
    parts: tuple[Part, ...] = ()

    @property
    def settings(self) -> Settings:
        """The sections the measurements of every point of this config read."""
        return Settings(sampling=self.sampling, flops=self.flops, latency=self.latency, memory=self.memory,
                        max_frames=self.max_frames)


@dataclass(frozen=True, kw_only=True)
class Experiment:
    """A loaded experiment: the typed config, its parts resolved, and where it came from."""
    config: ExperimentConfig
    path: Path
    smoke: bool
    sets: tuple[str, ...]
    # (part, its complete config) in priority order; ((None, config),) for a file without parts
    parts: tuple[tuple[Part | None, ExperimentConfig], ...]

    @property
    def name(self) -> str:
        return self.config.name

    def resolved(self) -> dict[str, Any]:
        return to_dict(self.config)

    def config_hash(self) -> str:
        """Hash of everything that changes results, defaults left out (see the module docstring)."""
        return config_hash(self.config, exclude=NOT_HASHED)


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
                from evalkit.core.errors import ChoiceError

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
    from evalkit.core.errors import ChoiceError

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
        own = {k: item[k] for k in (*PART_OWN_KEYS, SMOKE_FLAG) if k in item}
        if not isinstance(own.get(SMOKE_FLAG, True), bool):
            raise FieldError(f"{fld}.{SMOKE_FLAG}", f"expected true or false, got {own[SMOKE_FLAG]!r}")
        over = dict(item.get("overrides") or {}) if nested else {k: v for k, v in item.items()
                                                                 if k not in (*PART_OWN_KEYS, SMOKE_FLAG)}
        if not isinstance(over, Mapping):
            raise FieldError(f"{fld}.overrides", f"expected a mapping, got {over!r}")
        extra = [k for k in item if k not in (*PART_OWN_KEYS, SMOKE_FLAG)] if nested else []
        for k in list(over) + extra:
            if k not in PART_KEYS or k in extra:
                raise ChoiceError(f"{fld}.{k}", k, PART_KEYS + PART_OWN_KEYS[:-1] + (SMOKE_FLAG,),
                                  what="key of a part")
        _normalise_resolutions(over, fld)
        out.append({**own, "overrides": over})
    data["parts"] = out


def _no_duplicates(values: Sequence[Any], field_name: str) -> None:
    seen = set()
    for i, v in enumerate(values):
        if v in seen:
            raise FieldError(f"{field_name}[{i}]", f"{v!r} is listed twice (it would be planned and run twice)")
        seen.add(v)


def _check(cfg: ExperimentConfig, where: str) -> None:
    """Range checks that the type system does not express (each settings section checks its own)."""
    from evalkit.core.errors import ChoiceError
    from evalkit.sweep.budget import check_budget

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
    for name, value in (("fps", cfg.fps), ("batch", cfg.batch)):
        if value < 1:
            raise FieldError(f"{where}.{name}", f"must be >= 1, got {value}")
    cfg.settings.check(where)
    if not cfg.measurements:
        raise FieldError(f"{where}.measurements", "needs at least one measurement")
    for i, r in enumerate(cfg.max_frames.resolutions):
        if r not in cfg.resolutions:
            raise ChoiceError(f"{where}.max_frames.resolutions[{i}]", r, cfg.resolutions, what="resolution")
    check_budget(cfg.budget, where)


def part_configs(cfg: ExperimentConfig, where: str) -> tuple[tuple[Part | None, ExperimentConfig], ...]:
    """Every part of ``cfg`` as a complete, checked config (the file without ``parts``, the part's overrides
    deep-merged over it); errors name the part."""
    if not cfg.parts:
        return ((None, cfg),)
    if cfg.variations:
        raise FieldError(f"{where}.parts", "parts and variations do not combine: give each variation its own file, "
                                           "or each part its own model_overrides")
    names = [p.name for p in cfg.parts]
    for i, p in enumerate(cfg.parts):
        plain_name(f"{where}.parts[{i}].name", p.name)
        if p.group:
            plain_name(f"{where}.parts[{i}]({p.name}).group", p.group)
    _no_duplicates(names, f"{where}.parts")
    base = to_dict(cfg)
    base["parts"] = []
    out = []
    for i, part in enumerate(cfg.parts):
        fld = f"{where}.parts[{i}]({part.name})"
        merged = deep_merge(base, part.overrides, replace=REPLACED_WHOLE)
        _normalise_resolutions(merged, fld)
        pcfg = from_dict(ExperimentConfig, merged, fld)
        _check(pcfg, fld)
        out.append((part, pcfg))
    return tuple(out)


def _with_smoke(data: dict[str, Any], smoke_over: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The file with its smoke section merged over it, and over every part (it shrinks their points too)."""
    merged = deep_merge(data, smoke_over, replace=REPLACED_WHOLE)
    _normalise_resolutions(merged, where)
    if "parts" in smoke_over:
        _normalise_parts(merged, where)
    else:
        over = {k: v for k, v in smoke_over.items() if k in PART_KEYS}
        merged["parts"] = [{**p, "overrides": deep_merge(p["overrides"], over, replace=REPLACED_WHOLE)}
                           for p in merged.get("parts", []) if p.get(SMOKE_FLAG, True) is not False]
    return merged


def _untyped_flags_removed(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without the parts' ``smoke`` flags (read by :func:`_with_smoke`, not part of the typed config)."""
    if not data.get("parts"):
        return data
    return {**data, "parts": [{k: v for k, v in p.items() if k != SMOKE_FLAG} for p in data["parts"]]}


def parse_experiment(raw: Mapping[str, Any], *, where: str, smoke: bool = False,
                     sets: Sequence[str] = ()) -> ExperimentConfig:
    """A raw YAML mapping (with an optional ``smoke:`` section) into the one validated config asked for."""
    if not isinstance(raw, Mapping):
        raise FieldError(where, f"expected a mapping at the top level, got {type(raw).__name__}")
    data = dict(raw)
    smoke_over = data.pop("smoke", None) or {}
    if not isinstance(smoke_over, Mapping):
        raise FieldError(f"{where}.smoke", "expected a mapping of overrides")
    _normalise_resolutions(data, where)
    _normalise_parts(data, where)
    if smoke:
        data, where = _with_smoke(data, smoke_over, f"{where}.smoke"), f"{where}.smoke"
    elif smoke_over:      # the unused smoke section's keys and values are typed too: a stale one fails here
        from_dict(ExperimentConfig, _untyped_flags_removed(_with_smoke(data, smoke_over, f"{where}.smoke")),
                  f"{where}.smoke")
    if sets:              # every key can be set, including the ones the file leaves at their default
        data = apply_overrides(deep_merge(defaults_dict(ExperimentConfig), data, replace=REPLACED_WHOLE), list(sets))
        _normalise_resolutions(data, "--set")
        _normalise_parts(data, "--set")
    cfg = from_dict(ExperimentConfig, _untyped_flags_removed(data), where)
    _check(cfg, where)
    return cfg


def load_experiment(name_or_path: str | Path = DEFAULT_EXPERIMENT, *, smoke: bool = False,
                    sets: Sequence[str] = ()) -> Experiment:
    path, raw = read_experiment(name_or_path, kind="sweep")
    cfg = parse_experiment(raw, where=path.stem, smoke=smoke, sets=sets)
    return Experiment(config=cfg, path=path, smoke=smoke, sets=tuple(sets), parts=part_configs(cfg, cfg.name))


__all__ = ["ExperimentConfig", "Experiment", "Part", "part_configs", "load_experiment", "parse_experiment",
           "DEFAULT_EXPERIMENT"]
