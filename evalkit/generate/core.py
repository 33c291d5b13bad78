"""Generation: (prompt, index, seed) items -> ``{prompt}-{index}.mp4`` + a ``videos.jsonl`` manifest.

Items are a pure function of (prompts, samples, base seed): the seed of a video depends only on its prompt, its
index and the base seed, so it does not move when the prompt list changes or the work is split. Under
``torchrun`` rank r takes ``launch.torchrun.shard(items, r, N)`` and appends to its own ``videos.<r>.jsonl``
(one process writes ``videos.jsonl``); :func:`read_videos` merges them.

Resume by content: a video is done only if the latest manifest record of its file has the same
``inputs_sha256`` (checkpoint weights and config, text encoder, sampler settings, seed, geometry, encoder
settings: :func:`video_inputs`) and the file on disk still has the recorded size and sha256 (so it is the whole
file this tool wrote, decodable as written). A missing, truncated, zero-byte or replaced file is made again; a
file made with other inputs is refused before any sampling (``overwrite=True`` makes it again), never silently
kept. Files are written atomically (video_io), then recorded.
"""
from __future__ import annotations

import dataclasses
import hashlib
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.core.errors import FieldError
from evalkit.core.hashing import file_sha256, json_sha256
from evalkit.core.records import VIDEOS_GLOB, append, iter_file, videos_file
from evalkit.core.schema import make_record
from evalkit.launch.torchrun import shard
from evalkit.runtime.sampling import SamplerConfig, initial_noise, sample


CRF = 10   # libx264 quality of every video written (lower is better; 10 is near-lossless at these sizes)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Item:
    prompt: str
    index: int
    seed: int

    @property
    def name(self) -> str:
        return video_name(self.prompt, self.index)


def video_name(prompt: str, index: int) -> str:
    """VBench's naming rule: the exact prompt, a dash, the sample index (VBench README, 'prompt-index.mp4')."""
    return f"{prompt}-{index}.mp4"


def seed_for(prompt: str, index: int, base_seed: int = 0) -> int:
    return (base_seed * 1_000_003 + zlib.crc32(prompt.encode()) * 1009 + index) % (2 ** 31 - 1)


def make_items(prompts: list[str], samples: int, base_seed: int = 0) -> list[Item]:
    if samples < 1:
        raise FieldError("--samples", f"must be >= 1, got {samples}")
    return [Item(prompt=p, index=i, seed=seed_for(p, i, base_seed)) for p in prompts for i in range(samples)]


def read_videos(out_dir: str | Path) -> list[dict[str, Any]]:
    """The latest video record of every file of ``out_dir``, merged over its shard manifests (by creation time,
    then file order)."""
    recs: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(out_dir).glob(VIDEOS_GLOB)):
        for rec in iter_file(path):
            old = recs.get(rec["file"])
            if old is None or str(rec.get("created", "")) >= str(old.get("created", "")):
                recs[rec["file"]] = rec
    return list(recs.values())


def video_inputs(ckpt, sampler: SamplerConfig, point, *, pix_fmt: str, crf: int) -> dict[str, Any]:
    """Everything except (prompt, index, seed) that changes a video's frames or its file."""
    return {"checkpoint_sha256": ckpt.sha256, "checkpoint_config_sha256": ckpt.config_sha256,
            "text_encoder_sha256": ckpt.text_sha256, "sampler": "euler-flow-matching", "steps": sampler.steps,
            "schedule": sampler.schedule, "cfg_scale": sampler.cfg_scale, "sigma_min": sampler.sigma_min,
            "height": point.height, "width": point.width, "duration_s": point.duration_s, "fps": point.fps,
            "pix_fmt": pix_fmt, "crf": crf}


def inputs_sha256(inputs: dict[str, Any], item: Item) -> str:
    return json_sha256({**inputs, "prompt": item.prompt, "index": item.index, "seed": item.seed})


def _changed(old: dict[str, Any], new: dict[str, Any], item: Item) -> str:
    fields = [k for k in (*new, "seed") if old.get(k) != (item.seed if k == "seed" else new[k])]
    return ", ".join(f"{k}: {old.get(k)!r} -> {(item.seed if k == 'seed' else new[k])!r}" for k in fields[:4]) \
        or "recorded without the inputs this version checks"


def plan(items: list[Item], out_dir: Path, inputs: dict[str, Any], *, overwrite: bool) -> tuple[list[Item], int]:
    """(items to make, items already done). Refuses (FieldError) items whose file was made with other inputs,
    unless ``overwrite``; see the module docstring."""
    recorded = {r["file"]: r for r in read_videos(out_dir)} if out_dir.exists() else {}
    todo, conflicts = [], []
    for it in items:
        rec, path = recorded.get(it.name), out_dir / it.name
        if rec is None:
            todo.append(it)                          # never recorded (an unrecorded file is a killed write)
        elif rec.get("inputs_sha256") != inputs_sha256(inputs, it):
            if not overwrite:
                conflicts.append(f"{it.name} ({_changed(rec, inputs, it)})")
            todo.append(it)
        elif not (path.is_file() and path.stat().st_size == rec.get("mp4_bytes")
                  and file_sha256(path) == rec.get("mp4_sha256")):
            todo.append(it)                          # missing, truncated or replaced since it was recorded
    if conflicts:
        more = f" (+{len(conflicts) - 3} more)" if len(conflicts) > 3 else ""
        raise FieldError("--out", f"{out_dir} holds videos made with other settings: {'; '.join(conflicts[:3])}"
                                  f"{more}. Pass --overwrite to make them again, or choose another --out")
    return todo, len(items) - len(todo)


def run_shards(argv: list[str], args: Any, launch, items: list[Item], inputs: dict[str, Any] | None) -> int:
    """``--shards N`` / a cluster launcher: job r runs this same command as rank r and resumes from its own
    records. What is done is decided here by the videos' records (:func:`plan`: the same inputs, the file as
    recorded), never by the jobs' provenance files: a deleted or replaced video, or changed weights under the same
    path, is made again. When every video is done nothing is submitted. ``inputs`` None (a dry run): plan only."""
    import json

    from evalkit.launch import cli_shard_items, run_items
    from evalkit.launch.config import strip_launch_flags

    shards = cli_shard_items(["generate", *strip_launch_flags(argv, "--shards")], args.shards)
    if inputs is not None and not plan(items, Path(args.out), inputs, overwrite=args.overwrite)[0]:
        print(json.dumps({"total": len(shards), "skipped": len(shards), "submitted": 0, "done": 0, "errors": [],
                          "job_ids": [], "videos_done": len(items)}))
        return 0
    out = run_items(shards, "evalkit.launch:cli_shard_item", launch=launch, skip_done=set(),
                    run_dir=Path(str(Path(args.out)) + ".jobs"), dry_run=args.dry_run, name="evalkit-generate")
    print(json.dumps({k: out[k] for k in ("total", "skipped", "submitted", "done", "errors", "job_ids")}))
    return 1 if out["errors"] else 0


def run_rank(args: Any, make) -> tuple[Any, dict[str, int]]:
    """This process's share of the command (one process, a torchrun rank or one shard's job): torch's CPU threads,
    one writer per ``--out`` (per rank: a second command refuses instead of making every video twice), disk errors
    named, the device; ``make(device, info)`` samples and returns its counts. Returns (dist info, counts)."""
    from evalkit.core.runs import WriterLock
    from evalkit.generate.checks import disk_errors
    from evalkit.launch.torchrun import dist_info, select_device

    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    info = dist_info()
    with disk_errors(args.out), \
            WriterLock(args.out, f"rank{info.rank}of{info.world_size}" if info.is_distributed else None):
        counts = make(select_device(info, args.device), info)
    return info, counts


def record_video(manifest: Path, item: Item, path: Path, inputs: dict[str, Any], **fields: Any) -> None:
    """Append the manifest record of a video file just written (its inputs, size and sha256)."""
    fields = {"file": item.name, "prompt": item.prompt, "index": item.index, "seed": item.seed,
              "inputs_sha256": inputs_sha256(inputs, item), **inputs, "mp4_sha256": file_sha256(path),
              "mp4_bytes": path.stat().st_size, **fields}
    append(manifest, make_record("video", key=item.name, **fields))


def check_geometry(cfg, decoder_spec, point) -> tuple[int, ...]:
    """Validate the requested video against the model config and decoder (before any weights are loaded) and
    return the latent shape."""
    from evalkit import models

    frames = point.duration_s * point.fps
    if frames <= 0 or abs(frames - round(frames)) > 1e-6:
        raise FieldError("duration_s", f"{point.duration_s} s x {point.fps} fps = {frames:g} frames, not a whole "
                                       "positive number of frames")
    models.validate_point(cfg, point)
    shape = tuple(models.latent_shape(cfg, point))
    dec = decoder_spec
    if dec.kind == "pixel":
        comp = tuple(cfg.latent.compression)
        if tuple(dec.compression) != comp:
            raise FieldError("decoder.compression", f"{tuple(dec.compression)} differs from the model's latent "
                                                    f"compression {comp}")
        if shape[0] != 3 * comp[1] * comp[2]:
            raise FieldError("latent.channels", f"the pixel decoder needs {3 * comp[1] * comp[2]} channels, the "
                                                f"model has {shape[0]}")
    return shape


def generate(ckpt, items: list[Item], out_dir: str | Path, *, sampler: SamplerConfig, point, batch_size: int = 4,
             rank: int = 0, world_size: int = 1, device: str = "cpu", pix_fmt: str = "yuv420p", crf: int = CRF,
             overwrite: bool = False, progress: bool = True, extra: dict | None = None) -> dict[str, int]:
    """Sample every item of this shard that is not done (see the module docstring); returns counts
    {written, skipped}."""
    import torch

    from evalkit.runtime.decoders import build_decoder
    from evalkit.runtime.video_io import remove_stale_temps, write_video

    if batch_size < 1:
        raise FieldError("--batch-size", f"must be >= 1, got {batch_size}")
    out_dir = Path(out_dir)
    shape = check_geometry(ckpt.model.cfg, ckpt.decoder_spec, point)
    inputs = video_inputs(ckpt, sampler, point, pix_fmt=pix_fmt, crf=crf)
    mine = shard(items, rank, world_size)
    todo, skipped = plan(mine, out_dir, inputs, overwrite=overwrite)
    decoder = build_decoder(ckpt.decoder_spec, device)
    out_dir.mkdir(parents=True, exist_ok=True)
    for it in todo:                  # a killed run's temporary files of this shard's items
        remove_stale_temps(out_dir / it.name)
    manifest = videos_file(out_dir, rank, world_size)
    num_frames = round(point.duration_s * point.fps)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(todo), desc=f"generate[{rank}/{world_size}]", unit="video", file=sys.stderr)
    dtype = next(ckpt.model.parameters()).dtype
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        t0 = time.perf_counter()
        with torch.no_grad():
            ctx, mask = ckpt.text_encoder([it.prompt for it in batch])
            nctx, nmask = ckpt.text_encoder([""] * len(batch))
            noise = initial_noise(shape, [it.seed for it in batch], device, dtype)
            x = sample(ckpt.model, noise, ctx.to(dtype), mask, nctx.to(dtype), nmask, sampler)
        if not torch.isfinite(x).all():   # e.g. a diverged checkpoint: never write black videos as results
            from evalkit.runtime.checkpoint import CheckpointError

            raise CheckpointError(f"sampling produced non-finite values for {batch[0].name!r} (checkpoint "
                                  f"{ckpt.path}): its weights hold NaN/inf or diverge; nothing was written for it")
        videos = decoder.to_uint8(x)
        seconds = (time.perf_counter() - t0) / len(batch)
        for it, frames in zip(batch, videos):
            if frames.shape[0] != num_frames:
                raise FieldError("duration_s", f"decoded {frames.shape[0]} frames, expected {num_frames}")
            path = write_video(out_dir / it.name, frames, point.fps, pix_fmt=pix_fmt, crf=crf)
            record_video(
                manifest, it, path, inputs,
                # the sampled uint8 frames handed to the encoder: exact, whereas libx264 can encode identical
                # frames into slightly different bitstreams from one call to the next (seen at 32x32 px)
                frames_sha256=hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest(),
                checkpoint=str(ckpt.path), model=ckpt.config["model"]["name"],
                flavor=ckpt.config["model"]["flavor"], num_frames=num_frames, seconds_per_video=seconds,
                device=device, rank=rank, world_size=world_size, **(extra or {}))
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    return {"written": len(todo), "skipped": skipped}
