"""``generate --pipeline PATH``: a local diffusers pipeline folder (a released model: Wan, CogVideoX, HunyuanVideo,
LTX-Video, SANA-Video, Mochi) + prompts -> ``{prompt}-{index}.mp4`` and ``videos.jsonl``, with the contract of
``generate --checkpoint`` (:mod:`evalkit.generate.core`): items and seeds, VBench's file names, one manifest record
per video, resume by content, one writer per folder, ranks under torchrun, shards through the launchers.

Order of work: the folder is checked (:func:`evalkit.runtime.pipeline_folder.inspect_folder`) and the request
(size, frames, steps, text length) against it; every file of the folder is hashed; the videos already made with
the same inputs are found (a video made with other inputs is refused unless ``--overwrite``); only then is the
pipeline loaded. The inputs of a video (:func:`pipeline_inputs`) are the sha256 of the folder's weights and of its
configs and tokenizer files, the diffusers version, steps, guidance scale, negative prompt, text length,
precision, height, width, frames, fps and the encoder settings; with the prompt, the index and the seed they make
its ``inputs_sha256``.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.core.errors import FieldError
from evalkit.core.hashing import file_sha256, json_sha256
from evalkit.core.records import videos_file
from evalkit.generate.core import CRF, Item, plan, record_video
from evalkit.launch.torchrun import shard
from evalkit.runtime.pipeline_folder import PipelineFolder, Request, check_request

# flags of generate --checkpoint that a pipeline does not take (its own scheduler and text encoder run)
CHECKPOINT_ONLY = ("schedule",)
PIPELINE_ONLY = ("num_frames", "precision", "negative_prompt", "max_sequence_length")


def folder_hashes(folder: PipelineFolder) -> dict[str, str]:
    """{"weights": sha256 of {file: sha256} of the weight files, "config": the same of every other file}."""
    weights = {p for files in folder.weights.values() for p in files}
    split: dict[str, dict[str, str]] = {"weights": {}, "config": {}}
    for f in folder.files:
        split["weights" if f in weights else "config"][f.relative_to(folder.path).as_posix()] = file_sha256(f)
    return {k: json_sha256(v) for k, v in split.items()}


def diffusers_version() -> str:
    try:
        return metadata.version("diffusers")
    except metadata.PackageNotFoundError:
        return "absent"


def pipeline_inputs(folder: PipelineFolder, req: Request, hashes: dict[str, str], *, precision: str,
                    negative_prompt: str, pix_fmt: str, crf: int) -> dict[str, Any]:
    """Everything except (prompt, index, seed) that changes a video's frames or its file."""
    return {"pipeline_class": folder.pipeline, "pipeline_weights_sha256": hashes["weights"],
            "pipeline_config_sha256": hashes["config"], "diffusers_version": diffusers_version(),
            "sampler": f"diffusers:{folder.components['scheduler'][1]}", "steps": req.steps,
            "guidance_scale": req.guidance_scale, "negative_prompt": negative_prompt,
            "max_sequence_length": req.max_sequence_length, "precision": precision, "height": req.height,
            "width": req.width, "num_frames": req.num_frames, "fps": req.fps, "duration_s": req.duration_s,
            "call_extra": dict(folder.kind.extra), "pix_fmt": pix_fmt, "crf": crf}


def resolve_request(folder: PipelineFolder, args: Any) -> Request:
    """The video asked for: flags over the pipeline's defaults (size, frames, fps, steps, guidance, text length),
    checked against the folder (FieldError naming the flag)."""
    for name in CHECKPOINT_ONLY:
        if getattr(args, name) is not None:
            raise FieldError(f"--{name.replace('_', '-')}", "applies to --checkpoint only: a pipeline runs its own "
                                                            "scheduler (scheduler/scheduler_config.json)")
    height, width, frames = folder.default_height_width_frames()
    fps = args.fps if args.fps is not None else folder.default_fps
    if args.num_frames is not None and args.duration_s is not None:
        raise FieldError("--duration-s", "give either --num-frames or --duration-s (frames = 1 + duration x fps)")
    if args.duration_s is not None:
        n = args.duration_s * fps
        if not n > 0 or abs(n - round(n)) > 1e-6:
            raise FieldError("--duration-s", f"{args.duration_s} s x {fps} fps = {n:g} frame intervals, not a whole "
                                             "positive number")
        frames = 1 + round(n)
    elif args.num_frames is not None:
        frames = args.num_frames
    kind = folder.kind
    req = Request(height=args.height or height, width=args.width or width, num_frames=frames, fps=fps,
                  steps=args.steps if args.steps is not None else kind.steps,
                  guidance_scale=args.cfg_scale if args.cfg_scale is not None else kind.guidance,
                  max_sequence_length=args.max_sequence_length or _text_len(folder))
    if not np.isfinite(req.guidance_scale) or req.guidance_scale < 0:
        raise FieldError("--cfg-scale", f"must be a finite number >= 0, got {req.guidance_scale}")
    check_request(folder, req)
    return req


def _text_len(folder: PipelineFolder) -> int:
    t = folder.configs["transformer"]
    if folder.pipeline == "CogVideoXPipeline":     # the transformer's positions fix it (CogVideoXPatchEmbed)
        return int(t.get("max_text_seq_length", folder.kind.text_len))
    return folder.kind.text_len


def generate_pipeline(folder: PipelineFolder, req: Request, items: list[Item], out_dir: str | Path, *,
                      precision: str, negative_prompt: str = "", batch_size: int = 1, rank: int = 0,
                      world_size: int = 1, device: str = "cpu", pix_fmt: str = "yuv420p", crf: int = CRF,
                      overwrite: bool = False, progress: bool = True) -> dict[str, int]:
    """Make every item of this rank's shard that is not done (see the module docstring); {written, skipped}."""
    from evalkit.runtime.pipeline import call_kwargs, component_dtypes, frames_uint8, load
    from evalkit.runtime.video_io import remove_stale_temps, write_video

    if batch_size < 1:
        raise FieldError("--batch-size", f"must be >= 1, got {batch_size}")
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    hashes = folder_hashes(folder)
    hash_s = time.perf_counter() - t0
    inputs = pipeline_inputs(folder, req, hashes, precision=precision, negative_prompt=negative_prompt,
                             pix_fmt=pix_fmt, crf=crf)
    todo, skipped = plan(shard(items, rank, world_size), out_dir, inputs, overwrite=overwrite)
    if not todo:
        return {"written": 0, "skipped": skipped}
    pipe = load(folder, precision=precision, device=device)
    dtypes = component_dtypes(pipe)
    out_dir.mkdir(parents=True, exist_ok=True)
    for it in todo:                  # a killed run's temporary files of this shard's items
        remove_stale_temps(out_dir / it.name)
    manifest = videos_file(out_dir, rank, world_size)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(todo), desc=f"generate[{rank}/{world_size}]", unit="video", file=sys.stderr)
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        t1 = time.perf_counter()
        out = pipe(**call_kwargs(folder, req, [it.prompt for it in batch], [it.seed for it in batch],
                                 negative_prompt))
        videos = frames_uint8(out.frames, (req.num_frames, req.height, req.width))
        seconds = (time.perf_counter() - t1) / len(batch)
        for it, frames in zip(batch, videos):
            path = write_video(out_dir / it.name, frames, req.fps, pix_fmt=pix_fmt, crf=crf)
            record_video(manifest, it, path, inputs,
                         frames_sha256=hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest(),
                         pipeline=str(folder.path), model=folder.kind.family, component_dtypes=dtypes,
                         seconds_per_video=seconds, hash_seconds=round(hash_s, 3), device=str(device), rank=rank,
                         world_size=world_size, scheduler_config=folder.configs["scheduler"])
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    return {"written": len(todo), "skipped": skipped}


def main(args: Any, argv: list[str]) -> int:
    """The ``--pipeline`` branch of ``python -m evalkit generate`` (cheap checks, fan-out, then the work)."""
    from evalkit.generate.checks import make_out
    from evalkit.generate.core import make_items, run_rank
    from evalkit.generate.prompts import load_prompts
    from evalkit.launch.config import resolve_launch
    from evalkit.launch.torchrun import dist_info, select_device
    from evalkit.runtime.pipeline import resolve_precision
    from evalkit.runtime.pipeline_folder import inspect_folder

    # 1. cheap checks first: prompts, the folder and every component, the request against the VAE
    prompts = load_prompts(args.prompts, args.vbench_info)
    folder = inspect_folder(args.pipeline)
    req = resolve_request(folder, args)
    batch_size = 1 if args.batch_size is None else args.batch_size
    for flag, value in (("--batch-size", batch_size), ("--samples", args.samples), ("--shards", args.shards)):
        if value < 1:
            raise FieldError(flag, f"must be >= 1, got {value}")
    resolve_precision(args.precision, "cpu")          # a bad name fails here, before any job starts
    items = make_items(prompts, args.samples, args.seed)
    launch = resolve_launch(None, args.sets, launcher=args.launcher)
    if not args.dry_run:
        make_out(Path(args.out))      # the last cheap check: the folder can be made (not /proc, not read-only)
    if launch.launcher != "inline" or args.shards > 1:   # fan out: job r runs this same command as rank r
        from evalkit.generate.core import run_shards

        inputs = None if args.dry_run else pipeline_inputs(
            folder, req, folder_hashes(folder), precision=resolve_precision(args.precision, select_device(
                dist_info(), args.device)), negative_prompt=args.negative_prompt, pix_fmt=args.pix_fmt, crf=CRF)
        return run_shards(argv, args, launch, items, inputs)
    if args.dry_run:
        print(json.dumps({"prompts": len(prompts), "items": len(items), "out": args.out, "pipeline": folder.pipeline,
                          "height": req.height, "width": req.width, "num_frames": req.num_frames, "fps": req.fps,
                          "steps": req.steps, "guidance_scale": req.guidance_scale}))
        return 0
    # 2. the work of this rank
    info, counts = run_rank(args, lambda device, info: generate_pipeline(
        folder, req, items, Path(args.out), precision=resolve_precision(args.precision, device),
        negative_prompt=args.negative_prompt, batch_size=batch_size, rank=info.rank, world_size=info.world_size,
        device=device, pix_fmt=args.pix_fmt, overwrite=args.overwrite, progress=args.progress))
    print(json.dumps({"out": args.out, "pipeline": folder.pipeline, "prompts": len(prompts), "items": len(items),
                      **counts, "rank": info.rank, "world_size": info.world_size}))
    return 0
