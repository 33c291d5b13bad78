"""Training loop and evaluation of one small model: the small-scale analogue of the paper's Fig. 10-11.

1. resolve the registry model (tiny flavor + pixel-space overrides), build it with a builtin text encoder whose
   width is the model's text width; 2. train with the flow-matching objective (sampling.flow_matching_loss), AdamW,
   linear warm-up + cosine decay, caption dropout for CFG, on a data stream that is identical for every model
   (same seed); 3. write ``train_loss`` records and the checkpoint; 4. generate one video per caption from the
   checkpoint (the same ``generate`` path users run) and score them with the alignment suite from the mp4 files.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.runtime.decoders import DecoderSpec, PixelDecoder
from evalkit.core.records import append, results_file
from evalkit.core.schema import make_record, train_loss_key
from evalkit.train.config import ModelEntry, TrainExperiment
from evalkit.train.data import DataConfig, all_captions, caption, render, sample_batch, to_model_pixels


def video_point(data: DataConfig):
    from evalkit.models import VideoPoint

    return VideoPoint(height=data.height, width=data.width, duration_s=data.num_frames / data.fps, fps=data.fps)


def lr_at(step: int, spec) -> float:
    if step < spec.warmup:
        return spec.lr * (step + 1) / spec.warmup
    frac = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
    return spec.lr * (spec.min_lr_ratio + (1 - spec.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def train_model(exp: TrainExperiment, entry: ModelEntry, run_dir: Path, base: dict[str, Any],
                log=print) -> Path:
    """Train ``entry`` and save its checkpoint under ``run_dir/checkpoints/<label>``; returns the folder."""
    import torch

    from evalkit import models
    from evalkit.runtime.checkpoint import save_checkpoint
    from evalkit.runtime.sampling import flow_matching_loss
    from evalkit.runtime.text import build_builtin

    spec = exp.train
    if spec.threads:
        torch.set_num_threads(spec.threads)
    overrides = exp.model_overrides(entry)
    cfg = models.resolve(entry.name, entry.flavor, overrides or None)
    point = video_point(exp.data)
    models.validate_point(cfg, point)
    torch.manual_seed(spec.seed)
    model = models.build(cfg, device="cpu")
    _, _, ctx = models.dummy_inputs(cfg, point, batch=1)
    text_spec = dataclasses.replace(exp.text_encoder, dim=int(ctx.shape[-1]),
                                    max_len=exp.text_encoder.max_len or int(ctx.shape[1]))
    text = build_builtin(text_spec)
    decoder_spec = DecoderSpec(kind="pixel", compression=tuple(cfg.latent.compression))
    pixel = PixelDecoder(decoder_spec)
    params = list(model.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay, betas=(0.9, 0.99))
    rng = np.random.default_rng(spec.seed)               # 1. identical data stream for every model
    gen = torch.Generator().manual_seed(spec.seed)       #    and identical noise / times
    n_params = sum(p.numel() for p in model.parameters())
    log(f"[train] {entry.key}: {entry.name}/{entry.flavor} params={n_params:,} steps={spec.steps} "
        f"batch={spec.batch} latent={tuple(models.latent_shape(cfg, point))} tokens={models.num_tokens(cfg, point)}")
    model.train(), text.train()
    t0, acc, n_acc = time.perf_counter(), 0.0, 0
    for step in range(spec.steps):
        lr = lr_at(step, spec)
        for g in opt.param_groups:
            g["lr"] = lr
        videos, caps, _ = sample_batch(exp.data, spec.batch, rng)
        caps = ["" if d else c for c, d in zip(caps, rng.random(len(caps)) < spec.cfg_dropout)]
        x1 = pixel.encode(to_model_pixels(videos))                          # (B, C, T, H, W)
        context, mask = text(caps)
        loss = flow_matching_loss(model, x1, context, mask, generator=gen)  # 2. flow-matching objective
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if spec.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, spec.grad_clip)
        opt.step()
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"{entry.key}: loss is {loss.item()} at step {step}")
        acc, n_acc = acc + loss.item(), n_acc + 1
        if (step + 1) % spec.log_every == 0 or step + 1 == spec.steps:
            seconds = time.perf_counter() - t0
            rec = make_record("train_loss", key=train_loss_key(entry.key, step + 1), **base, model=entry.name,
                              label=entry.key, flavor=entry.flavor, variant=models.variant(entry.name),
                              step=step + 1, loss=acc / n_acc, loss_window=n_acc, lr=lr, seconds=seconds,
                              params=n_params, batch=spec.batch)
            append(results_file(run_dir), rec)            # 3. loss curve, flushed as it goes
            log(f"[train] {entry.key} step {step + 1}/{spec.steps} loss {acc / n_acc:.4f} lr {lr:.2e} "
                f"{seconds:.0f}s")
            acc, n_acc = 0.0, 0
    model.eval(), text.eval()
    out = run_dir / "checkpoints" / entry.key
    data = dataclasses.asdict(exp.data)
    save_checkpoint(out, model, name=entry.name, flavor=entry.flavor, overrides=overrides, text_spec=text_spec,
                    decoder_spec=decoder_spec, text_encoder=text,
                    extra={"point": {"height": point.height, "width": point.width, "duration_s": point.duration_s,
                                     "fps": point.fps},
                           "train": {**dataclasses.asdict(spec), "seconds": time.perf_counter() - t0,
                                     "experiment": exp.experiment, "data": data}})
    return out


def eval_prompts(exp: TrainExperiment) -> list[str]:
    caps = [caption(*c) for c in all_captions(exp.data)]
    return caps[: exp.eval.max_prompts] if exp.eval.max_prompts else caps


def score_folder(folder: Path, min_travel: float) -> tuple[dict[str, float], int]:
    """Alignment scores of every video listed in ``folder``'s manifest, read back from the mp4 files."""
    from evalkit.generate.core import read_videos
    from evalkit.train.alignment import aggregate, parse_caption, score_video
    from evalkit.runtime.video_io import read_video

    scores = []
    for rec in sorted(read_videos(folder), key=lambda r: r["file"]):
        frames, _ = read_video(folder / rec["file"])
        color, _, direction = parse_caption(rec["prompt"])
        scores.append(score_video(frames, color, direction, min_travel))
    return aggregate(scores), len(scores)


def reference_videos(exp: TrainExperiment, folder: Path) -> None:
    """Ground-truth data-set videos for the eval prompts, written through the same mp4 path (calibration);
    resumed by content like ``generate`` (a video is remade unless recorded with the same inputs and intact)."""
    from evalkit.generate.core import make_items, plan, record_video
    from evalkit.core.records import videos_file
    from evalkit.runtime.video_io import write_video

    inputs = {"source": "dataset", "data": dataclasses.asdict(exp.data), "pix_fmt": exp.eval.pix_fmt}
    items = make_items(eval_prompts(exp), exp.eval.samples_per_prompt, exp.eval.seed)
    todo, _ = plan(items, folder, inputs, overwrite=True)
    for it in todo:
        c, s, d = it.prompt.split()[1], it.prompt.split()[2], it.prompt.split()[4]
        path = write_video(folder / it.name, render(exp.data, c, s, d, np.random.default_rng(it.seed)),
                           exp.data.fps, pix_fmt=exp.eval.pix_fmt)
        record_video(videos_file(folder), it, path, inputs, source="dataset")
