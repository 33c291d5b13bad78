"""A sweep point: one model at one video size with the settings its measurements read, resolved once.

``evalkit.sweep.plan`` builds every :class:`Point` of an experiment (resolving the model config and checking the
video against it, before any work); the measurements (``run(point, ctx)``), the predictor and the budget planner
(``evalkit.sweep.predict`` / ``budget``) and the runner take it as it is. It is turned into JSON only to cross a
process boundary (``to_json`` / ``from_json``: the process and submitit launchers), where the config is read back
into its mixer's class without resolving the preset again. Everything the records say about a point (tokens,
parameters, its key) is derived here, in one place.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from evalkit import measure, models
from evalkit.core.errors import ChoiceError, FieldError
from evalkit.core.schema import cost_key, point_key
from evalkit.core.typed import from_dict, to_dict


@dataclass(frozen=True, kw_only=True)
class SamplingSettings:
    """How one video is sampled: per-video cost = forward x steps x cfg_factor (computed by reports)."""
    steps: int = 50          # assumed: common flow-matching default; Fig. 20 states 100 steps
    # assumed: classifier-free guidance doubles the work of a step (the sampler runs the conditional and the
    # unconditional branch as one forward of twice the batch, evalkit.runtime.sampling.sample); 1 = no guidance
    cfg_factor: int = 2

    def check(self, where: str) -> None:
        if self.steps < 1:
            raise FieldError(f"{where}.steps", f"must be >= 1, got {self.steps}")
        if self.cfg_factor not in (1, 2):
            raise ChoiceError(f"{where}.cfg_factor", self.cfg_factor, (1, 2))


class Settings:
    """The settings sections the measurements of a point read, as attributes (``settings.latency.warmup``):
    ``sampling`` and one section per registered measurement, typed by the dataclass the measurement's module owns
    (named in the registry, ``evalkit.measure``). Frozen; :meth:`replace` makes a changed copy."""

    __slots__ = ("_sections",)

    def __init__(self, **sections: Any) -> None:
        classes = section_classes()
        unknown = [k for k in sections if k not in classes]
        if unknown:
            raise ChoiceError(f"settings.{unknown[0]}", unknown[0], classes, what="settings section")
        object.__setattr__(self, "_sections", {name: sections.get(name) or cls() for name, cls in classes.items()})

    def __getattr__(self, name: str) -> Any:
        try:
            return self._sections[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Settings) and self._sections == other._sections

    def __repr__(self) -> str:
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in self._sections.items())})"

    def replace(self, **sections: Any) -> Settings:
        return Settings(**{**self._sections, **sections})

    def check(self, where: str) -> None:
        for name, section in self._sections.items():
            section.check(f"{where}.{name}")

    def to_json(self) -> dict[str, Any]:
        return {name: to_dict(section) for name, section in self._sections.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "settings") -> Settings:
        classes = section_classes()
        return cls(**{name: from_dict(classes[name], value, f"{where}.{name}") for name, value in data.items()
                      if name in classes})


@functools.cache
def section_classes() -> dict[str, type]:
    """Section name -> its settings dataclass: ``sampling`` here, each measurement's from its module (imported
    lazily by name, so this module imports none of them)."""
    out: dict[str, type] = {"sampling": SamplingSettings}
    for entry in measure.MEASUREMENTS:
        module, _, attr = entry.meta["settings"].partition(":")
        out[entry.name] = getattr(importlib.import_module(module), attr)
    return out


@dataclass(frozen=True, kw_only=True)
class Tag:
    """Which point set of its experiment a point belongs to: a part (``parts:``) and/or an expanded variation
    (``variations:``). Records carry the fields that are set."""
    part: str | None = None              # the part's name; the key starts with "<part>:"
    part_group: str | None = None        # parts with one group are rendered together
    part_index: int | None = None        # its place in the file's priority order
    claim: str | None = None             # the paper's claim the part measures
    variation: str | None = None         # e.g. "width[d_model=3072,heads=24,ffn_dim=8448]"
    variation_axis: str | None = None    # the assumed quantity it varies
    variation_value: str | None = None   # its value on that axis ("" for a variation without a grid)

    def fields(self) -> dict[str, Any]:
        return {k: v for k, v in to_dict(self).items() if v is not None}


@dataclass(frozen=True, kw_only=True)
class Point:
    """One (model, flavor, overrides, frame, duration, batch) of a sweep and the measurements due there.

    ``duration_s`` is None for a max-frames point (a bisection over durations from ``ref_duration_s``)."""
    experiment: str
    model: str                           # registry name
    flavor: str
    overrides: Mapping[str, Any] = field(default_factory=dict)   # flat dotted keys: the records' model_overrides
    config: Any                          # the resolved mixer config (backbone.config.BackboneConfig)
    resolution: str                      # the experiment's name of the frame
    height: int
    width: int
    fps: int
    batch: int
    duration_s: float | None
    ref_duration_s: float | None = None
    measurements: tuple[str, ...]
    settings: Settings
    tag: Tag = field(default_factory=Tag)
    strict: bool = False                 # its part is planned strictly first under a budget (evalkit.sweep.budget)
    budget: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # the budget planner's figures

    # ---- derived ------------------------------------------------------------------------------------------------
    def at(self, duration_s: float) -> models.VideoPoint:
        """This point's frame at another duration (max-frames probes)."""
        return models.VideoPoint(height=self.height, width=self.width, duration_s=duration_s, fps=self.fps)

    @functools.cached_property
    def video(self) -> models.VideoPoint | None:
        return None if self.duration_s is None else self.at(self.duration_s)

    @functools.cached_property
    def params(self) -> int:
        return int(models.param_count(self.config))

    @functools.cached_property
    def geometry(self) -> tuple[int | None, int | None, int | None]:
        """(raw frames, latent frames, tokens); all None for a max-frames point."""
        if self.video is None:
            return None, None, None
        _, t, _, _ = models.latent_shape(self.config, self.video)
        return models.num_frames(self.config, self.video), int(t), int(models.num_tokens(self.config, self.video))

    @property
    def num_tokens(self) -> int | None:
        return self.geometry[2]

    @functools.cached_property
    def flops_analytic(self) -> float:
        """Analytic FLOPs of one denoiser forward at the point's batch (2 FLOPs per multiply-add)."""
        return models.estimate_flops(self.config, self.video).total * self.batch

    @property
    def variant(self) -> str:
        return models.variant(self.model)

    def record_fields(self) -> dict[str, Any]:
        """The fields every record of this point carries (records.CostRecord's point fields)."""
        num_frames, latent_frames, num_tokens = self.geometry
        return {"experiment": self.experiment, "model": self.model, "flavor": self.flavor, "variant": self.variant,
                "resolution": self.resolution, "height": self.height, "width": self.width,
                "duration_s": self.duration_s, "fps": self.fps, "num_frames": num_frames,
                "latent_frames": latent_frames, "num_tokens": num_tokens, "params": self.params,
                "batch": self.batch, "model_overrides": dict(self.overrides), **self.tag.fields()}

    @functools.cached_property
    def key(self) -> str:
        """The point's key: the prefix of its records' keys (the launcher's item key)."""
        return point_key(self.record_fields())

    def record_key(self, measurement: str) -> str:
        from evalkit.measure import version

        return cost_key(self.record_fields(), measurement, version(measurement))

    @property
    def record_keys(self) -> dict[str, str]:
        """measurement -> record key, for the measurements due at this point."""
        return {m: self.record_key(m) for m in self.measurements}

    def due(self, measurements: tuple[str, ...] | list[str]) -> Point:
        """The same point with only ``measurements`` due."""
        return dataclasses.replace(self, measurements=tuple(measurements))

    # ---- the process boundary ------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "experiment": self.experiment, "model": self.model, "flavor": self.flavor,
                "overrides": dict(self.overrides), "config": to_dict(self.config), "resolution": self.resolution,
                "height": self.height, "width": self.width, "fps": self.fps, "batch": self.batch,
                "duration_s": self.duration_s, "ref_duration_s": self.ref_duration_s,
                "measurements": list(self.measurements), "settings": self.settings.to_json(),
                "tag": to_dict(self.tag), "strict": self.strict,
                "budget": {k: dict(v) for k, v in self.budget.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Point:
        return cls(experiment=data["experiment"], model=data["model"], flavor=data["flavor"],
                   overrides=dict(data["overrides"]), config=models.config_from_dict(data["config"], "point.config"),
                   resolution=data["resolution"], height=int(data["height"]), width=int(data["width"]),
                   fps=int(data["fps"]), batch=int(data["batch"]), duration_s=data["duration_s"],
                   ref_duration_s=data.get("ref_duration_s"), measurements=tuple(data["measurements"]),
                   settings=Settings.from_json(data["settings"], "point.settings"),
                   tag=from_dict(Tag, data.get("tag") or {}, "point.tag"), strict=bool(data.get("strict")),
                   budget=dict(data.get("budget") or {}))


def as_point(item: Point | Mapping[str, Any]) -> Point:
    """A launcher item as a Point (JSON when it crossed a process boundary)."""
    return item if isinstance(item, Point) else Point.from_json(item)
