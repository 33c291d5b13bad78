"""Planning a sweep: an :class:`~evalkit.sweep.config.Experiment` into :class:`~evalkit.measure.point.Point` s,
every one validated before any work.

Each (model, flavor, overrides) is resolved once (``models.resolve``) and every video checked against it
(``models.validate_point``: divisibility, positional tables, the mixer's own grid checks such as the TESA window);
nothing imports torch. Points are ordered model, flavor, resolution, duration ascending, so the largest (most
likely to OOM or time out) come last within each model (a sweep that runs out of memory or time has the rest
done). ``max_frames`` runs once per (model, flavor, resolution) as a point of its own with ``duration_s: None``.
An experiment with ``variations`` (a sensitivity sweep, evalkit.sweep.variations) repeats all of this once per
expanded variation, with its overrides and resolutions; the points (and so the records) carry the variation in
their :class:`~evalkit.measure.point.Tag`, and the record key names it. An experiment with ``parts``
(experiments/paper_latency.yaml) plans each part's complete config in the file's order (its priority order: the
budget planner runs the first parts first); the points carry the part, the key starts with ``<part>:`` and each
part's own settings (steps, latency iterations, ...) travel with its points.
"""
from __future__ import annotations

from evalkit import measure, models
from evalkit.core.errors import ChoiceError, EvalkitError, FieldError
from evalkit.measure.point import Point, Tag
from evalkit.sweep.config import Experiment, ExperimentConfig
from evalkit.sweep.variations import expand_variations


def _variation_points(exp: Experiment, c: ExperimentConfig, var: dict, tag: Tag, strict: bool = False) -> list[Point]:
    """The points of one point set of config ``c``: the experiment (or one part) as written, or one expanded
    variation."""
    if var["variation"] is not None:
        tag = Tag(**{**tag.fields(), "variation": var["variation"], "variation_axis": var["axis"],
                     "variation_value": var["value"]})
    per_point = tuple(m for m in c.measurements if m != "max_frames")
    settings = c.settings
    points: list[Point] = []
    for model in c.models:
        for flavor in c.flavors:
            where = f"{exp.name}{'.parts(' + tag.part + ')' if tag.part else ''}.models={model!r} flavors={flavor!r}"
            if var["variation"] is not None:
                where += f" variation={var['variation']!r}"
            try:
                cfg = models.resolve(model, flavor, dict(var["model_overrides"]) or None)
            except EvalkitError as exc:
                raise FieldError(where, str(exc)) from exc
            common = dict(experiment=exp.name, model=model, flavor=flavor, overrides=dict(var["model_overrides"]),
                          config=cfg, fps=c.fps, batch=c.batch, settings=settings, tag=tag, strict=strict)
            for res_name, (h, w) in var["resolutions"].items():
                for dur in sorted(c.durations_s):
                    try:
                        models.validate_point(cfg, models.VideoPoint(height=h, width=w, duration_s=dur, fps=c.fps))
                    except EvalkitError as exc:
                        raise FieldError(f"{where} resolutions.{res_name}={h}x{w} durations_s={dur:g}",
                                         str(exc)) from exc
                    if per_point:
                        points.append(Point(**common, resolution=res_name, height=h, width=w, duration_s=dur,
                                            measurements=per_point))
                if "max_frames" in c.measurements and (not c.max_frames.resolutions
                                                       or res_name in c.max_frames.resolutions):
                    points.append(Point(**common, resolution=res_name, height=h, width=w, duration_s=None,
                                        ref_duration_s=min(c.durations_s), measurements=("max_frames",)))
    return points


def plan_points(exp: Experiment, parts: list[str] | tuple[str, ...] | None = None) -> list[Point]:
    """Every point of the experiment (of the named ``parts`` only, when given), in priority order; raises
    (ChoiceError/FieldError) on the first invalid one."""
    if parts:
        names = [p.name for p, _ in exp.parts if p is not None]
        if not names:
            raise FieldError("--part", f"{exp.name} has no parts: drop --part")
        for name in parts:
            if name not in names:
                raise ChoiceError("--part", name, names, what="part")
    points: list[Point] = []
    for index, (part, c) in enumerate(exp.parts):
        if parts and part.name not in parts:
            continue
        where = exp.name if part is None else f"{exp.name}.parts[{index}]({part.name})"
        tag = Tag() if part is None else Tag(part=part.name, part_group=part.report_group, part_index=index,
                                             claim=part.claim)
        for i, m in enumerate(c.measurements):
            measure.MEASUREMENTS.entry(m, f"{where}.measurements[{i}]")
        for var in expand_variations(c, where):
            points += _variation_points(exp, c, var, tag, strict=part is not None and part.strict)
    return points


def due_points(points: list[Point], done_record_keys: set[str]) -> list[Point]:
    """Each point with only its measurements whose record is not done; fully done points are left out, so a
    re-run runs exactly the missing (point, measurement) records."""
    out = []
    for point in points:
        todo = [m for m in point.measurements if point.record_key(m) not in done_record_keys]
        if todo:
            out.append(point if len(todo) == len(point.measurements) else point.due(todo))
    return out
