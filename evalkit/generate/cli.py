"""``python -m evalkit generate``: checkpoint (or a local diffusers pipeline) + prompts -> ``{prompt}-{index}.mp4``
and ``videos.jsonl``.

``--checkpoint``: a checkpoint of this harness; sampling follows Movie Gen (arXiv 2410.13720; Euler, flow matching,
linear-quadratic schedule, CFG) with the 50 steps LinGen states (arXiv 2412.09856). ``--pipeline``: a released
model's diffusers pipeline folder (Wan, CogVideoX, HunyuanVideo, LTX-Video, SANA-Video, Mochi), run with its own
scheduler, text encoder and VAE (``evalkit/generate/pipeline.py``).
Everything that can be wrong (prompt file, checkpoint or pipeline folder and weights, sampler settings, a duration
or size the model cannot represent, videos in ``--out`` made with other settings) is checked before the first
sampling step. One command writes into an ``--out`` folder at a time (one per rank under torchrun); a second one
refuses.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from evalkit.core.errors import FieldError
from evalkit.launch.config import add_launch_args, resolve_launch

EPILOG = """examples (<run_id>: a folder under runs/train_tiny/ made by `python -m evalkit train train_tiny`):
  python -m evalkit generate --checkpoint runs/train_tiny/<run_id>/checkpoints/lingen \\
      --prompts experiments/prompts/smoke.txt --samples 2 --steps 10 --out videos/lingen
  python -m evalkit generate --checkpoint runs/train_tiny/<run_id>/checkpoints/lingen --prompts vbench \\
      --samples 5 --steps 50 --cfg-scale 7.5 --out videos/lingen-vbench
  python -m evalkit generate --checkpoint runs/train_tiny/<run_id>/checkpoints/lingen \\
      --prompts experiments/prompts/smoke.txt --samples 2 --steps 20 --out videos/lingen --overwrite
  torchrun --standalone --nproc-per-node 4 -m evalkit generate --checkpoint runs/train_tiny/<run_id>/checkpoints/lingen \\
      --prompts vbench --out videos/lingen-vbench     # rank r writes videos.<r>.jsonl
  # a released model's diffusers pipeline folder (<folder>: saved with save_pretrained; nothing is downloaded)
  python -m evalkit generate --pipeline <folder>/Wan2.1-T2V-1.3B-Diffusers --prompts vbench --samples 5 \\
      --out videos/wan-1.3b                           # its defaults: 480x832, 81 frames, 16 fps, 50 steps, 5.0
  python -m evalkit generate --pipeline <folder>/CogVideoX-2b --prompts experiments/prompts/smoke.txt \\
      --samples 1 --num-frames 49 --steps 50 --precision bf16 --out videos/cogvideox-2b
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evalkit generate", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="checkpoint folder (config.json + model.safetensors)")
    src.add_argument("--pipeline", help="a local diffusers pipeline folder (model_index.json + components) of a "
                                        "released text-to-video model")
    p.add_argument("--prompts", required=True, help="'vbench' or a text file with one prompt per line")
    p.add_argument("--vbench-info", default=None, help="path of VBench_full_info.json (for --prompts vbench)")
    p.add_argument("--samples", type=int, default=5, help="videos per prompt (VBench: 5)")
    p.add_argument("--out", required=True, help="output folder for the mp4 files and videos.jsonl")
    p.add_argument("--steps", type=int, default=None,
                   help="sampling steps (checkpoint: 50 Euler steps, as the paper; pipeline: its default, e.g. 50)")
    p.add_argument("--schedule", default=None, choices=("linear-quadratic", "linear"),
                   help="checkpoint only (default linear-quadratic); a pipeline runs its own scheduler")
    p.add_argument("--cfg-scale", type=float, default=None,
                   help="classifier-free guidance scale (checkpoint: 7.5, Movie Gen; pipeline: its guidance_scale "
                        "default, e.g. Wan 5.0, CogVideoX 6.0)")
    p.add_argument("--seed", type=int, default=0, help="base seed; each video's seed derives from prompt+index")
    p.add_argument("--height", type=int, default=None, help="default: the checkpoint's training resolution")
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--duration-s", type=float, default=None,
                   help="seconds; must be whole latent frames (pipeline: frames = 1 + duration x fps)")
    p.add_argument("--num-frames", type=int, default=None,
                   help="pipeline only: frames, 1 + (VAE temporal compression) k (default: the pipeline's)")
    p.add_argument("--fps", type=int, default=None, help="frame rate of the mp4 (pipeline default: its release's)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="videos sampled at once (>= 1; checkpoint default 4, pipeline default 1)")
    p.add_argument("--precision", default=None, choices=("auto", "bf16", "fp16", "fp32"),
                   help="pipeline only: the dtype every component is loaded in (auto: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--negative-prompt", default=None, help="pipeline only: the CFG branch's prompt (default: '')")
    p.add_argument("--max-sequence-length", type=int, default=None,
                   help="pipeline only: prompt tokens (default: the pipeline's; CogVideoX: its transformer's)")
    p.add_argument("--overwrite", action=argparse.BooleanOptionalAction, default=False,
                   help="make again the videos of --out that were made with other settings (default: refuse)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto: cuda:<LOCAL_RANK> when CUDA is present (one GPU per torchrun rank), else cpu")
    p.add_argument("--shards", type=int, default=1,
                   help="split the prompts into this many executor jobs (job r runs rank r of the items)")
    add_launch_args(p)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="launch.KEY=VALUE",
                   help="launch option, e.g. --set launch.partition=gpu (README: SLURM)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--pix-fmt", default="yuv420p", choices=("yuv420p", "yuv444p"))
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
    from evalkit.generate.checks import sigterm_as_exit

    with sigterm_as_exit():
        return _main(argv)


def _main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from evalkit.generate.checks import check_args, make_out

    check_args(args)                  # numbers and --out, before any file is read
    if args.pipeline is not None:
        from evalkit.generate import pipeline

        args.precision = args.precision or "auto"
        args.negative_prompt = "" if args.negative_prompt is None else args.negative_prompt
        return pipeline.main(args, argv)
    from evalkit.generate.pipeline import PIPELINE_ONLY

    for name in PIPELINE_ONLY:
        if getattr(args, name) is not None:
            raise FieldError(f"--{name.replace('_', '-')}", "applies to --pipeline only")
    args.steps = 50 if args.steps is None else args.steps
    args.schedule = args.schedule or "linear-quadratic"
    args.cfg_scale = 7.5 if args.cfg_scale is None else args.cfg_scale
    args.batch_size = 4 if args.batch_size is None else args.batch_size
    from evalkit.runtime import checkpoint as ck
    from evalkit.generate.core import check_geometry, generate, make_items, run_rank
    from evalkit.generate.prompts import load_prompts
    from evalkit.runtime.sampling import SamplerConfig

    # 1. cheap checks first: prompts, checkpoint folder and weights, sampler settings, sizes
    prompts = load_prompts(args.prompts, args.vbench_info)
    config = ck.validate_folder(args.checkpoint)
    sampler = SamplerConfig(steps=args.steps, schedule=args.schedule, cfg_scale=args.cfg_scale)
    point = resolve_point(config, args.height, args.width, args.duration_s, args.fps)
    for flag, value in (("--batch-size", args.batch_size), ("--samples", args.samples), ("--shards", args.shards)):
        if value < 1:
            raise FieldError(flag, f"must be >= 1, got {value}")
    items = make_items(prompts, args.samples, args.seed)
    check_geometry(ck.model_config(config), ck.decoder_spec_of(config), point)
    launch = resolve_launch(None, args.sets, launcher=args.launcher)
    if not args.dry_run:
        make_out(Path(args.out))      # the last cheap check: the folder can be made (not /proc, not read-only)
    if launch.launcher != "inline" or args.shards > 1:   # fan out: job r runs this same command as rank r
        from types import SimpleNamespace

        from evalkit.generate.core import CRF, run_shards, video_inputs

        inputs = None if args.dry_run else video_inputs(
            SimpleNamespace(**ck.file_hashes(args.checkpoint, config["text_encoder"].get("kind", "builtin") == "builtin")),
            sampler, point, pix_fmt=args.pix_fmt, crf=CRF)
        return run_shards(argv, args, launch, items, inputs)
    if args.dry_run:
        print(json.dumps({"prompts": len(prompts), "items": len(items), "out": args.out}))
        return 0
    # 2. the work of this rank
    info, counts = run_rank(args, lambda device, info: generate(
        ck.load_checkpoint(args.checkpoint, device=device), items, Path(args.out), sampler=sampler, point=point,
        batch_size=args.batch_size, rank=info.rank, world_size=info.world_size, device=device,
        pix_fmt=args.pix_fmt, overwrite=args.overwrite, progress=args.progress))
    print(json.dumps({"out": args.out, "prompts": len(prompts), "items": len(items), **counts,
                      "rank": info.rank, "world_size": info.world_size}))
    return 0
