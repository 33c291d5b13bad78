"""Variations of a sweep: named changes of the assumed quantities, each its own set of points (the sensitivity of
the paper's 68 s / 512p FLOPs ratio, Fig. 1 caption / Fig. 6b "up to 15x": experiments/sensitivity.yaml).

An experiment's ``variations:`` maps a name to a :class:`Variation`; :func:`expand_variations` turns them into
point sets for :func:`evalkit.sweep.plan.plan_points`: fixed ``model_overrides`` plus a ``grid`` whose keys are
override keys (dotted, as in ``model_overrides``) or ``resolution``; keys joined by ``+`` vary together. The
experiment's ``sensitivity:`` section (:class:`SensitivitySettings`) says how ``report`` judges the result.
Pure python (no torch).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from evalkit.core.errors import FieldError
from evalkit.core.typed import flat


@dataclass(frozen=True, kw_only=True)
class Variation:
    """A named change of assumed quantities (one axis of a sensitivity sweep).

    ``model_overrides`` (dotted or nested keys) go over the experiment's own. ``grid`` maps an override key, or
    ``resolution`` ([height, width], replacing the experiment's resolutions), to a list of values; keys joined by
    ``+`` vary together (``"d_model+heads": [[1536, 12], [3072, 24]]``). Every combination of the grid's keys is
    one set of points, named ``<name>[key=value,...]``; without a grid the variation is one set named ``<name>``.
    """
    axis: str = ""                                          # the quantity varied; default: the variation's name
    model_overrides: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class SensitivitySettings:
    """How ``report`` reads a sweep with variations: the DiT/LinGen FLOPs ratio at ``duration_s`` against the
    paper's ``target_ratio`` +- ``ratio_tol``, and which geometries count as "4B" (both models within
    ``params_band_billions``). The values used live in the experiment file, each marked stated/assumed."""
    duration_s: float = 68.0
    target_ratio: float = 15.0
    ratio_tol: float = 0.10
    params_band_billions: tuple[float, float] = (3.6, 4.4)




def _label(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(_label(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _frame(value: Any, where: str) -> tuple[int, int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or len(value) != 2 or \
            not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise FieldError(where, f"expected [height, width], positive integers in pixels, got {value!r}")
    return int(value[0]), int(value[1])


def _grid_axes(name: str, var: Variation, where: str) -> list[list[dict[str, Any]]]:
    """One list of {key: value} choices per grid entry (tied keys give one dict of several keys)."""
    axes = []
    for key, values in var.grid.items():
        keys = key.split("+")
        if not values:
            raise FieldError(f"{where}.grid.{key}", "needs at least one value")
        combos = []
        for i, v in enumerate(values):
            if len(keys) > 1 and (not isinstance(v, (list, tuple)) or len(v) != len(keys)):
                raise FieldError(f"{where}.grid.{key}[{i}]", f"expected {len(keys)} values ({', '.join(keys)}) "
                                 f"that vary together, got {v!r}")
            combo = dict(zip(keys, v if len(keys) > 1 else [v]))
            if "resolution" in combo:
                combo["resolution"] = _frame(combo["resolution"], f"{where}.grid.{key}[{i}]")
            combos.append(combo)
        axes.append(combos)
    return axes


def expand_variations(cfg: Any, where: str) -> list[dict[str, Any]]:
    """One entry per point set of an ExperimentConfig: ``variation`` (name), ``axis``, ``value`` (label), flat
    ``model_overrides`` (the experiment's, then the variation's, then the grid's) and ``resolutions``. Without
    variations: one entry with ``variation`` None (the experiment as written)."""
    base = flat(cfg.model_overrides)
    if not cfg.variations:
        return [{"variation": None, "axis": None, "value": None, "model_overrides": base,
                 "resolutions": dict(cfg.resolutions)}]
    out = []
    for name, var in cfg.variations.items():
        axes = _grid_axes(name, var, f"{where}.variations.{name}")
        for combo in itertools.product(*axes) if axes else [()]:
            chosen = {k: v for part in combo for k, v in part.items()}
            resolutions = dict(cfg.resolutions)
            labels = []
            if "resolution" in chosen:
                h, w = chosen.pop("resolution")
                resolutions = {f"{h}x{w}": (h, w)}
                labels.append(("resolution", (h, w)))
            labels += [(k.rsplit(".", 1)[-1], v) for k, v in chosen.items()]
            value = ",".join(f"{k}={_label(v)}" for k, v in labels)
            out.append({"variation": f"{name}[{value}]" if value else name, "axis": var.axis or name,
                        "value": value, "resolutions": resolutions,
                        "model_overrides": {**base, **flat(var.model_overrides), **chosen}})
    names = [v["variation"] for v in out]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise FieldError(f"{where}.variations", f"two variations expand to the same name {dup!r}")
    return out
