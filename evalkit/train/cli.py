"""``python -m evalkit train``: train the tiny models on the synthetic captioned-video set, generate, score.

Runs an experiment file (``experiments/train_tiny.yaml``): for every model, train (``train_loss`` records +
checkpoint), generate one video per caption through the same code path as ``evalkit generate``, and score the mp4
files with the alignment suite (``alignment`` records), plus the same scores on ground-truth data-set videos as a
calibration row (model ``dataset``). Output: ``runs/<experiment>/<run_id>/`` with manifest.json, results.jsonl,
checkpoints/<label>/ and videos/<label>/. Running the same command again resumes the newest run with the same
config (``--new-run`` starts afresh; ``--run-dir`` names one, refused if it holds another config): finished
checkpoints, videos and records are kept, and alignment scores count as done only for the checkpoint they were
computed from. One command writes into a run folder at a time.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from evalkit.core.records import append, read_records, results_file
from evalkit.core.schema import alignment_key, make_record
from evalkit.core.runs import DEFAULT_RUNS_ROOT, WriterLock, open_run

EPILOG = """examples (<run_id>: the folder the first command prints):
  python -m evalkit train train_tiny
  python -m evalkit train train_tiny --only lingen,dit --set train.steps=50
  python -m evalkit train train_tiny                     # again: resumes the newest run with this config
  python -m evalkit report --publish runs/train_tiny/<run_id>
"""

ALIGNMENT_VERSION = 2   # = evalkit.train.alignment.VERSION (kept here so importing the CLI stays light)
METRICS = ("color_accuracy", "direction_accuracy", "temporal_consistency")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evalkit train", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", nargs="?", default="train_tiny",
                   help="train experiment name under experiments/ or a YAML path (default: train_tiny)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a YAML key")
    p.add_argument("--only", default=None, help="comma-separated model labels to run (default: all)")
    p.add_argument("--run-dir", default=None, help="write into this run folder (resume it if it exists)")
    p.add_argument("--new-run", action=argparse.BooleanOptionalAction, default=False,
                   help="start a new run folder instead of resuming the newest one with the same config")
    p.add_argument("--runs-root", default=str(DEFAULT_RUNS_ROOT))
    p.add_argument("--eval", action=argparse.BooleanOptionalAction, default=True,
                   help="generate and score alignment after training")
    p.add_argument("--rescore", action=argparse.BooleanOptionalAction, default=False,
                   help="score the existing videos again (after a metric change; new records replace old keys)")
    p.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True,
                   help="also score ground-truth data-set videos (the calibration row 'dataset')")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=False)
    return p


def _alignment_records(base, label, name, flavor, variant, checkpoint, checkpoint_sha256, scores, n):
    return [make_record("alignment", key=alignment_key(label, metric), **base, model=name, label=label,
                        flavor=flavor, variant=variant, checkpoint=checkpoint, checkpoint_sha256=checkpoint_sha256,
                        metric=metric, value=scores[metric], n_videos=n, alignment_version=ALIGNMENT_VERSION)
            for metric in METRICS]


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from evalkit import models
    from evalkit.core.errors import ChoiceError
    from evalkit.core.typed import to_dict
    from evalkit.train.config import config_hash, load_train
    from evalkit.train.loop import video_point

    exp = load_train(args.experiment, args.set)
    entries = list(exp.models)
    if args.only:
        labels = [m.key for m in entries]
        wanted = [s.strip() for s in args.only.split(",") if s.strip()]
        for w in wanted:
            if w not in labels:
                raise ChoiceError("--only", w, labels, what="model label")
        entries = [m for m in entries if m.key in wanted]
    if exp.train.threads:
        import torch
        torch.set_num_threads(exp.train.threads)
    point = video_point(exp.data)
    for m in entries:  # 1. every model resolves and can represent the video before any training
        models.validate_point(models.resolve(m.name, m.flavor, exp.model_overrides(m) or None), point)

    run_dir, resumed = open_run(Path(args.runs_root) / exp.experiment, config_hash(exp),
                                run_dir=Path(args.run_dir) if args.run_dir else None, new_run=args.new_run,
                                manifest={"experiment": exp.experiment, "kind": "train", "config": to_dict(exp),
                                          "command": "python -m evalkit train " + " ".join(shlex.quote(a)
                                                                                         for a in argv)})
    base = {"experiment": exp.experiment, "run_id": run_dir.name}
    print(f"[train] {'resuming' if resumed else 'new run'} {run_dir}", file=sys.stderr)
    summary = {"run_dir": str(run_dir), "resumed": resumed, "models": {}}
    with WriterLock(run_dir):
        for m in entries:
            summary["models"][m.key] = run_one(exp, m, run_dir, base, args)
        if args.eval and args.reference:
            summary["models"]["dataset"] = run_reference(exp, run_dir, base)
    print(json.dumps(summary))
    return 0


def run_one(exp, entry, run_dir: Path, base: dict, args) -> dict:
    from evalkit import models
    from evalkit.runtime.checkpoint import WEIGHTS, load_checkpoint
    from evalkit.generate.core import generate, make_items
    from evalkit.runtime.sampling import SamplerConfig
    from evalkit.train.loop import eval_prompts, score_folder, train_model, video_point

    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    ckpt_dir = run_dir / "checkpoints" / entry.key
    if (ckpt_dir / WEIGHTS).exists():
        log(f"[train] {entry.key}: checkpoint exists, not retraining")
    else:
        train_model(exp, entry, run_dir, base, log)
    if not args.eval:
        return {"checkpoint": str(ckpt_dir)}
    ev = exp.eval
    ckpt = load_checkpoint(ckpt_dir)
    scored = {r["key"]: r.get("checkpoint_sha256") for r in read_records([run_dir]) if r.get("kind") == "alignment"}
    if not args.rescore and all(scored.get(alignment_key(entry.key, k)) == ckpt.sha256 for k in METRICS):
        log(f"[eval] {entry.key}: alignment already recorded for this checkpoint")
        return {"checkpoint": str(ckpt_dir)}
    videos = run_dir / "videos" / entry.key
    t0 = time.perf_counter()
    sampler = SamplerConfig(steps=ev.steps, schedule=ev.schedule, cfg_scale=ev.cfg_scale)
    # overwrite: these videos are derived data of this run's checkpoint; a retrained one replaces them
    generate(ckpt, make_items(eval_prompts(exp), ev.samples_per_prompt, ev.seed), videos, sampler=sampler,
             point=video_point(exp.data), batch_size=ev.batch_size, pix_fmt=ev.pix_fmt, overwrite=True,
             progress=args.progress)
    scores, n = score_folder(videos, ev.min_travel)
    log(f"[eval] {entry.key}: {json.dumps(scores)} over {n} videos ({time.perf_counter() - t0:.0f}s)")
    for rec in _alignment_records(base, entry.key, entry.name, entry.flavor, models.variant(entry.name),
                                  str(ckpt_dir.relative_to(run_dir)), ckpt.sha256, scores, n):
        append(results_file(run_dir), rec)
    return {"checkpoint": str(ckpt_dir), **scores, "n_videos": n}


def run_reference(exp, run_dir: Path, base: dict) -> dict:
    from evalkit.train.loop import reference_videos, score_folder

    folder = run_dir / "videos" / "dataset"
    reference_videos(exp, folder)
    scores, n = score_folder(folder, exp.eval.min_travel)
    for rec in _alignment_records(base, "dataset", "dataset", "-", "reference", "", None, scores, n):
        append(results_file(run_dir), rec)
    return {**scores, "n_videos": n}
