"""``python -m evalkit ls``: list registered models (flavors, parameters), measurements and experiment files.

Pure python: never imports torch (parameters come from each config's closed-form ``param_count``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from evalkit import models
from evalkit.core.experiments import EXPERIMENTS_DIR


EXAMPLES = """examples:
  python -m evalkit ls
  python -m evalkit ls --flavor 4b
  python -m evalkit ls --flavor t2v                # the released models (openmodels/)
  python -m evalkit ls --json
"""


def _first_comment(path: Path) -> str:
    with open(path) as fh:
        for line in fh:
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return ""


def _params(value: int) -> str:
    return f"{value / 1e9:.3f} B" if value >= 1e8 else f"{value / 1e6:.2f} M"


def collect(flavor: str | None = None) -> dict:
    rows = []
    every = sorted({fl for name in models.names() for fl in models.flavors(name)})
    if flavor is not None and flavor not in every:
        from evalkit.core.errors import ChoiceError
        raise ChoiceError("--flavor", flavor, every, what="flavor")
    for name in models.names():
        entry = models.REGISTRY.entry(name)
        fls = models.flavors(name)
        for fl in [f for f in fls if flavor is None or f == flavor]:   # --flavor: the models that have it
            cfg = models.resolve(name, fl)
            rows.append({"model": name, "flavor": fl, "params": models.param_count(cfg), "mixer": cfg.mixer,
                         "d_model": cfg.d_model, "depth": cfg.depth, "summary": entry.summary,
                         "first_flavor": fl == fls[0]})
    measurements = []
    try:
        from evalkit.measure import MEASUREMENTS
        measurements = [{"name": e.name, "version": e.meta.get("version"), "requires_gpu": e.meta.get(
            "requires_gpu"), "summary": e.summary} for e in MEASUREMENTS]
    except ImportError:  # the measurement package is optional for listing models
        pass
    experiments = [{"file": str(p.relative_to(EXPERIMENTS_DIR.parent)), "about": _first_comment(p)}
                   for p in sorted(EXPERIMENTS_DIR.glob("*.yaml"))]
    return {"models": rows, "measurements": measurements, "experiments": experiments}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m evalkit ls", description=__doc__.splitlines()[0],
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flavor", help="only this flavor (tiny, 1b, 2b, 4b, 8b; t2v: the released models)")
    parser.add_argument("--json", action=argparse.BooleanOptionalAction, default=False, help="print JSON")
    args = parser.parse_args(argv)
    data = collect(args.flavor)
    if args.json:
        print(json.dumps(data, indent=1))
        return 0
    print("models (python -m evalkit ls --json for details):")
    print(f"  {'model':<18}{'flavor':<8}{'params':>12}  {'mixer':<11}{'d x depth':<12}summary")
    for r in data["models"]:
        summary = r["summary"] if r["first_flavor"] or args.flavor else ""
        shape = f"{r['d_model']} x {r['depth']}"
        print(f"  {r['model']:<18}{r['flavor']:<8}{_params(r['params']):>12}  {r['mixer']:<11}{shape:<12}{summary}")
    if data["measurements"]:
        print("\nmeasurements:")
        for m in data["measurements"]:
            gpu = " (GPU)" if m["requires_gpu"] else ""
            print(f"  {m['name']:<12} v{m['version']}{gpu}  {m['summary']}")
    print("\nexperiments:")
    for e in data["experiments"]:
        print(f"  {e['file']:<32} {e['about']}")
    return 0
