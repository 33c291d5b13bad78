"""Planning a sweep: an :class:`~evalkit.experiment.Experiment` into point specs, all validated before any work.

A *point spec* is a plain JSON-able dict (so it can go to a subprocess or a cluster job unchanged): the model,
flavor, resolution, duration, fps, batch, the measurements to run at that point with their record keys, and the
settings sections those measurements read. ``models.resolve`` / ``models.validate_point`` are called for every
(model, flavor) and every point here; nothing imports torch.

Points are ordered model, flavor, resolution, duration ascending, so the largest (most likely to OOM or time
out) come last within each model (so a sweep that runs out of memory or time has the rest done). ``max_frames`` runs once per (model,
flavor, resolution) as its own spec with ``duration_s: null``. An experiment with ``variations`` (a sensitivity
sweep, evalkit.variations) repeats all of this once per expanded variation, with its overrides and resolutions;
the specs (and so the records) carry ``variation``, ``variation_axis`` and ``variation_value``, and the record
key names the variation. An experiment with ``parts`` (experiments/paper_latency.yaml) plans each part's complete
config in the file's order (its priority order: the budget planner runs the first parts first); the specs carry
``part``, ``part_group``, ``part_index`` and ``claim``, the key starts with ``<part>:`` and each part's own
settings (steps, latency iterations, ...) travel in its specs.
"""
from __future__ import annotations

from typing import Any

from evalkit import measure, models
from evalkit.errors import ChoiceError, EvalkitError, FieldError
from evalkit.experiment import Experiment, ExperimentConfig
from evalkit.records import cost_key, variant_of
from evalkit.typed import to_dict
from evalkit.variations import expand_variations

SETTINGS_SECTIONS = ("sampling", "flops", "latency", "memory", "max_frames")


def _geometry(cfg: Any, point: Any) -> dict[str, Any]:
    _, t, _, _ = models.latent_shape(cfg, point)
    return {"num_frames": round(point.duration_s * point.fps), "latent_frames": int(t),
            "num_tokens": int(models.num_tokens(cfg, point))}


def _variation_specs(exp: Experiment, c: ExperimentConfig, var: dict[str, Any], settings: dict[str, Any],
                     per_point: list[str], tag: dict[str, Any]) -> list[dict[str, Any]]:
    """The specs of one point set of config ``c``: the experiment (or one part) as written, or one expanded
    variation; ``tag`` (the part's fields) goes into every spec."""
    tag = {**tag} if var["variation"] is None else {**tag, "variation": var["variation"],
                                                     "variation_axis": var["axis"], "variation_value": var["value"]}
    specs: list[dict[str, Any]] = []
    for model in c.models:
        for flavor in c.flavors:
            overrides = dict(var["model_overrides"]) or None
            where = f"{exp.name}{'.parts(' + tag['part'] + ')' if tag.get('part') else ''}.models={model!r} " \
                    f"flavors={flavor!r}"
            if var["variation"] is not None:
                where += f" variation={var['variation']!r}"
            try:
                cfg = models.resolve(model, flavor, overrides)
            except EvalkitError as exc:
                raise FieldError(where, str(exc)) from exc
            params = int(models.param_count(cfg))
            common = {"experiment": exp.name, "model": model, "flavor": flavor, "variant": variant_of(model),
                      "model_overrides": dict(var["model_overrides"]), "fps": c.fps, "batch": c.batch,
                      "params": params, "settings": settings, **tag}
            for res_name, (h, w) in var["resolutions"].items():
                for dur in sorted(c.durations_s):
                    point = models.VideoPoint(height=h, width=w, duration_s=dur, fps=c.fps)
                    try:
                        models.validate_point(cfg, point)
                    except EvalkitError as exc:
                        raise FieldError(f"{where} resolutions.{res_name}={h}x{w} durations_s={dur:g}",
                                         str(exc)) from exc
                    if not per_point:
                        continue
                    spec = {**common, "resolution": res_name, "height": h, "width": w, "duration_s": dur,
                            **_geometry(cfg, point), "measurements": list(per_point)}
                    specs.append(spec)
                if "max_frames" in c.measurements and (not c.max_frames.resolutions
                                                       or res_name in c.max_frames.resolutions):
                    specs.append({**common, "resolution": res_name, "height": h, "width": w, "duration_s": None,
                                  "ref_duration_s": min(c.durations_s), "num_frames": None,
                                  "latent_frames": None, "num_tokens": None, "measurements": ["max_frames"]})
    return specs


def plan_points(exp: Experiment, parts: list[str] | tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Every point spec of the experiment (of the named ``parts`` only, when given), in priority order; raises
    (ChoiceError/FieldError) on the first invalid one."""
    resolved = exp.parts()
    if parts:
        names = [p.name for p, _ in resolved if p is not None]
        if not names:
            raise FieldError("--part", f"{exp.name} has no parts: drop --part")
        for name in parts:
            if name not in names:
                raise ChoiceError("--part", name, names, what="part")
    specs: list[dict[str, Any]] = []
    for index, (part, c) in enumerate(resolved):
        if parts and part.name not in parts:
            continue
        where = exp.name if part is None else f"{exp.name}.parts[{index}]({part.name})"
        tag = {} if part is None else {"part": part.name, "part_group": part.report_group, "part_index": index,
                                       "claim": part.claim}
        settings = {k: to_dict(getattr(c, k)) for k in SETTINGS_SECTIONS}
        for i, m in enumerate(c.measurements):
            measure.MEASUREMENTS.entry(m, f"{where}.measurements[{i}]")
        per_point = [m for m in c.measurements if m != "max_frames"]
        for var in expand_variations(c, where):
            specs += _variation_specs(exp, c, var, settings, per_point, tag)
    for spec in specs:
        spec["keys"] = {m: cost_key(spec, m, measure.version(m)) for m in spec["measurements"]}
    return specs


def point_items(specs: list[dict[str, Any]], done_record_keys: set[str]) -> list[dict[str, Any]]:
    """Point specs as launcher items for ``fn="evalkit.sweep.runner:run_point"``: each keeps only its measurements
    whose record key is not done, and gets ``key`` = the point's record-key prefix. Fully done points are left
    out, so a re-run runs exactly the missing (point, measurement) records."""
    out = []
    for spec in specs:
        todo = [m for m in spec["measurements"] if spec["keys"][m] not in done_record_keys]
        if todo:
            first = spec["keys"][spec["measurements"][0]]
            out.append({**spec, "measurements": todo, "key": first.rsplit("/", 1)[0]})
    return out
