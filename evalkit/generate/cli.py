"""``python -m evalkit generate``: checkpoint + prompts -> ``{prompt}-{index}.mp4`` and ``videos.jsonl``.

Sampling follows lingen-paper.md section 5/9 (Euler, flow matching, linear-quadratic schedule, 50 steps, CFG).
Everything that can be wrong (prompt file, checkpoint folder, weights, duration the model cannot represent) is
checked before the first sampling step.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from evalkit.cluster import add_cluster_args, resolve_cluster, strip_cluster_flags
from evalkit.errors import FieldError

EPILOG = """examples:
  python -m evalkit generate --checkpoint runs/train_tiny/RUN/checkpoints/lingen --prompts prompts.txt \\
      --samples 5 --out videos/lingen
  python -m evalkit generate --checkpoint CKPT --prompts vbench --vbench-info .cache/vbench-env/.../VBench_full_info.json \\
      --samples 5 --steps 50 --cfg-scale 7.5 --out videos/lingen-vbench
  RANK=1 WORLD_SIZE=4 python -m evalkit generate ...   # shard 1 of 4 writes videos.1.jsonl
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evalkit generate", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (config.json + model.safetensors)")
    p.add_argument("--prompts", required=True, help="'vbench' or a text file with one prompt per line")
    p.add_argument("--vbench-info", default=None, help="path of VBench_full_info.json (for --prompts vbench)")
    p.add_argument("--samples", type=int, default=5, help="videos per prompt (VBench: 5)")
    p.add_argument("--out", required=True, help="output folder for the mp4 files and videos.jsonl")
    p.add_argument("--steps", type=int, default=50, help="Euler steps (paper: 50)")
    p.add_argument("--schedule", default="linear-quadratic", choices=("linear-quadratic", "linear"))
    p.add_argument("--cfg-scale", type=float, default=7.5, help="classifier-free guidance scale (Movie Gen: 7.5)")
    p.add_argument("--seed", type=int, default=0, help="base seed; each video's seed derives from prompt+index")
    p.add_argument("--height", type=int, default=None, help="default: the checkpoint's training resolution")
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--duration-s", type=float, default=None, help="seconds; must be whole latent frames")
    p.add_argument("--fps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto: cuda:<LOCAL_RANK> when CUDA is present (one GPU per torchrun rank), else cpu")
    p.add_argument("--shards", type=int, default=1,
                   help="split the prompts into this many executor jobs (job r runs rank r of the items)")
    add_cluster_args(p)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="cluster.KEY=VALUE",
                   help="cluster option, e.g. --set cluster.partition=gpu (README: SLURM)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--pix-fmt", default="yuv420p", choices=("yuv420p", "yuv444p"))
    p.add_argument("--legacy-pt", action=argparse.BooleanOptionalAction, default=False,
                   help="allow a legacy model.pt (loaded with torch.load(weights_only=True))")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    return p


def resolve_point(config: dict, height, width, duration_s, fps):
    from evalkit.models import VideoPoint

    base = config.get("point") or {}
    vals = {"height": height, "width": width, "duration_s": duration_s, "fps": fps}
    for k, v in list(vals.items()):
        if v is None:
            if k not in base:
                raise FieldError(f"--{k.replace('_', '-')}", "not given and the checkpoint records no default")
            vals[k] = base[k]
    return VideoPoint(height=int(vals["height"]), width=int(vals["width"]),
                      duration_s=float(vals["duration_s"]), fps=int(vals["fps"]))


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from evalkit import checkpoint as ck
    from evalkit.distributed import dist_info, select_device
    from evalkit.generate.core import check_geometry, generate, make_items
    from evalkit.generate.prompts import load_prompts
    from evalkit.sampling import SamplerConfig

    # 1. cheap checks first: prompts, checkpoint folder and weights, sampler settings
    prompts = load_prompts(args.prompts, args.vbench_info)
    config = ck.validate_folder(args.checkpoint, args.legacy_pt)
    sampler = SamplerConfig(steps=args.steps, schedule=args.schedule, cfg_scale=args.cfg_scale)
    point = resolve_point(config, args.height, args.width, args.duration_s, args.fps)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    # 2. load, then check the requested duration/resolution against the model before sampling
    cluster = resolve_cluster(None, args.sets, executor=args.executor)
    if cluster.executor == "submitit" or args.shards > 1:   # fan out: job r runs this same command as rank r
        from evalkit.executors import cli_shard_items, run_items

        out = run_items(cli_shard_items(["generate", *strip_cluster_flags(argv, "--shards")], args.shards),
                        "evalkit.executors:cli_shard_item", executor=cluster,
                        run_dir=Path(str(Path(args.out)) + ".jobs"), dry_run=args.dry_run, name="evalkit-generate")
        print(json.dumps({k: out[k] for k in ("total", "skipped", "submitted", "done", "errors", "job_ids")}))
        return 1 if out["errors"] else 0
    if args.dry_run:
        print(json.dumps({"prompts": len(prompts), "items": len(prompts) * args.samples, "out": args.out}))
        return 0
    args.device = select_device(dist_info(), args.device)
    ckpt = ck.load_checkpoint(args.checkpoint, device=args.device, allow_legacy_pt=args.legacy_pt)
    check_geometry(ckpt, point)
    items = make_items(prompts, args.samples, args.seed)
    info = dist_info()
    counts = generate(ckpt, items, Path(args.out), sampler=sampler, point=point, batch_size=args.batch_size,
                      rank=info.rank, world_size=info.world_size, device=args.device, pix_fmt=args.pix_fmt,
                      progress=args.progress)
    print(json.dumps({"out": args.out, "prompts": len(prompts), "items": len(items), **counts,
                      "rank": info.rank, "world_size": info.world_size}))
    return 0
