"""Generation: (prompt, index, seed) items -> ``{prompt}-{index}.mp4`` + ``videos.jsonl`` (issue 6).

Items are a pure function of (prompts, samples, base seed): the seed of a video depends only on its prompt, its
index and the base seed, so it does not move when the prompt list changes or the work is split. A launcher with
N processes gives rank r the items ``items[r::N]`` (``shard_items``); each shard appends to its own
``videos.<rank>.jsonl`` (a single process writes ``videos.jsonl``) and ``read_videos`` merges them. A video whose
file exists is skipped, so an interrupted run resumes; files are written atomically (video_io).
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

from evalkit.errors import FieldError
from evalkit.results import append_record, iter_jsonl, now_iso
from evalkit.sampling import SamplerConfig, initial_noise, sample


@dataclasses.dataclass(frozen=True, kw_only=True)
class Item:
    prompt: str
    index: int
    seed: int

    @property
    def name(self) -> str:
        return video_name(self.prompt, self.index)


def video_name(prompt: str, index: int) -> str:
    """VBench's naming rule: the exact prompt, a dash, the sample index (vbench.md section 4.3)."""
    return f"{prompt}-{index}.mp4"


def seed_for(prompt: str, index: int, base_seed: int = 0) -> int:
    return (base_seed * 1_000_003 + zlib.crc32(prompt.encode()) * 1009 + index) % (2 ** 31 - 1)


def make_items(prompts: list[str], samples: int, base_seed: int = 0) -> list[Item]:
    if samples < 1:
        raise FieldError("--samples", f"must be >= 1, got {samples}")
    return [Item(prompt=p, index=i, seed=seed_for(p, i, base_seed)) for p in prompts for i in range(samples)]


def shard_items(items: list[Item], rank: int = 0, world_size: int = 1) -> list[Item]:
    if world_size < 1 or not 0 <= rank < world_size:
        raise FieldError("rank", f"rank {rank} is outside 0..{world_size - 1}")
    return items[rank::world_size]


def manifest_path(out_dir: Path, rank: int = 0, world_size: int = 1) -> Path:
    return out_dir / ("videos.jsonl" if world_size == 1 else f"videos.{rank}.jsonl")


def read_videos(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every video record of ``out_dir``, merged over its shard manifests (last record per file wins)."""
    recs: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(out_dir).glob("videos*.jsonl")):
        for rec in iter_jsonl(path):
            recs[rec["file"]] = rec
    return list(recs.values())


def check_geometry(ckpt, point) -> tuple[int, ...]:
    """Validate the requested video against the model (before any sampling) and return the latent shape."""
    from evalkit import models

    cfg = ckpt.model.cfg
    frames = point.duration_s * point.fps
    if frames <= 0 or abs(frames - round(frames)) > 1e-6:
        raise FieldError("duration_s", f"{point.duration_s} s x {point.fps} fps = {frames:g} frames, not a whole "
                                       "positive number of frames")
    models.validate_point(cfg, point)
    shape = tuple(models.latent_shape(cfg, point))
    dec = ckpt.decoder_spec
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
             rank: int = 0, world_size: int = 1, device: str = "cpu", pix_fmt: str = "yuv420p", crf: int = 10,
             progress: bool = True, extra: dict | None = None) -> dict[str, int]:
    """Sample every item of this shard that has no file yet; returns counts {written, skipped}."""
    import torch

    from evalkit.decoders import build_decoder

    out_dir = Path(out_dir)
    shape = check_geometry(ckpt, point)
    decoder = build_decoder(ckpt.decoder_spec, device)
    mine = shard_items(items, rank, world_size)
    todo = [it for it in mine if not (out_dir / it.name).exists()]
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = manifest_path(out_dir, rank, world_size)
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
        videos = decoder.to_uint8(x)
        seconds = (time.perf_counter() - t0) / len(batch)
        from evalkit.video_io import write_video
        for it, frames in zip(batch, videos):
            if frames.shape[0] != num_frames:
                raise FieldError("duration_s", f"decoded {frames.shape[0]} frames, expected {num_frames}")
            write_video(out_dir / it.name, frames, point.fps, pix_fmt=pix_fmt, crf=crf)
            append_record(manifest, {
                "key": it.name, "file": it.name, "prompt": it.prompt, "index": it.index, "seed": it.seed,
                # the sampled uint8 frames handed to the encoder: exact, whereas libx264 can encode identical
                # frames into slightly different bitstreams from one call to the next (seen at 32x32 px)
                "frames_sha256": hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest(),
                "checkpoint": str(ckpt.path), "checkpoint_sha256": ckpt.sha256,
                "model": ckpt.config["model"]["name"], "flavor": ckpt.config["model"]["flavor"],
                "sampler": "euler-flow-matching", "steps": sampler.steps, "schedule": sampler.schedule,
                "cfg_scale": sampler.cfg_scale, "sigma_min": sampler.sigma_min,
                "height": point.height, "width": point.width, "duration_s": point.duration_s, "fps": point.fps,
                "num_frames": num_frames, "pix_fmt": pix_fmt, "seconds_per_video": seconds, "device": device,
                "rank": rank, "world_size": world_size, "created": now_iso(), **(extra or {})})
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    return {"written": len(todo), "skipped": len(mine) - len(todo)}
