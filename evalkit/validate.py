"""``python -m evalkit validate [experiment] [--smoke] [--set k=v]``: load and check any experiment file, run nothing.

A ``kind: sweep`` file goes through the sweep's loader and planner (every model, flavor and point checked with
``models.resolve`` / ``models.validate_point``); a ``kind: train`` file through the train loader (every model entry
resolved against the data set's video geometry). This is exactly what ``sweep`` / ``train`` check before any work.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from evalkit.core.errors import ChoiceError
from evalkit.core.experiments import KINDS, add_experiment_args, file_kind, find_experiment

EPILOG = """examples:
  python -m evalkit validate
  python -m evalkit validate size_ladder --smoke
  python -m evalkit validate ablations --set durations_s=[17]
  python -m evalkit validate train_tiny --set train.steps=50
"""


def _sweep(name: str, smoke: bool, sets: Sequence[str]) -> None:
    from evalkit.sweep.config import load_experiment
    from evalkit.sweep.plan import plan_points

    exp = load_experiment(name, smoke=smoke, sets=sets)
    points = plan_points(exp)
    n_meas = sum(len(p.measurements) for p in points)
    print(f"{exp.path}: ok (sweep, {'smoke, ' if exp.smoke else ''}config {exp.config_hash()})")
    print(f"  models {', '.join(exp.config.models)} x flavors {', '.join(exp.config.flavors)}; "
          f"resolutions {', '.join(f'{k}={h}x{w}' for k, (h, w) in exp.config.resolutions.items())}; "
          f"durations {', '.join(f'{d:g}' for d in exp.config.durations_s)} s"
          + (f"; {len({p.tag.variation for p in points})} variations" if exp.config.variations else ""))
    if exp.config.parts:
        print(f"  {len(exp.config.parts)} parts in priority order: "
              + ", ".join(f"{p.name} ({sum(1 for s in points if s.tag.part == p.name)} points)"
                          for p in exp.config.parts))
    print(f"  {len(points)} points, {n_meas} point x measurement records planned "
          f"({', '.join(sorted({m for s in points for m in s.measurements}))})")


def _train(name: str, sets: Sequence[str]) -> None:
    from evalkit import models
    from evalkit.train.config import load_train
    from evalkit.train.loop import video_point

    exp = load_train(name, list(sets))
    point = video_point(exp.data)
    for m in exp.models:
        models.validate_point(models.resolve(m.name, m.flavor, exp.model_overrides(m) or None), point)
    print(f"{name}: ok (train, {len(exp.models)} models: {', '.join(m.key for m in exp.models)}; "
          f"{exp.train.steps} steps)")


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m evalkit validate", description=__doc__.split("\n\n")[1],
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_experiment_args(p, "scaling")   # the same positional, --smoke (sweep files only) and --set as sweep
    args = p.parse_args(list(argv))
    path = find_experiment(args.experiment)
    kind = file_kind(path)
    if kind == "sweep":
        _sweep(str(path), args.smoke, args.sets)
    elif kind == "train":
        _train(str(path), args.sets)
    else:
        raise ChoiceError(f"{path.stem}.kind", kind, KINDS, what="kind")
    return 0
