"""Running a checked diffusers pipeline folder (:mod:`evalkit.runtime.pipeline_folder`): load it offline in one
precision, call it on a batch of prompts with one seed per video, and return the frames as uint8 (what
``video_io.write_video`` encodes).

Loading is ``DiffusionPipeline.from_pretrained(folder, dtype=..., local_files_only=True)`` with
``HF_HUB_OFFLINE=1``: a local folder only, never a download. One dtype for every component (a per-component dtype
works for WanPipeline but not for CogVideoXPipeline, which feeds the text encoder's dtype to the transformer);
diffusers keeps each model's ``_keep_in_fp32_modules`` in float32 itself, and the record lists the dtypes that
resulted. The noise of video i comes from ``torch.Generator("cpu").manual_seed(seed_i)``: the same seed gives the
same noise on any device and in any batch. Frames are asked for as ``output_type="np"``: (B, F, H, W, 3) floats in
[0, 1].
"""
from __future__ import annotations

import os
from collections import Counter
from typing import Any

import numpy as np

from evalkit.core.errors import ChoiceError, EvalkitError
from evalkit.runtime.pipeline_folder import PipelineFolder, Request

PRECISIONS = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def resolve_precision(name: str, device: str) -> str:
    """``auto``: bfloat16 on CUDA, float32 on CPU; else the named one (torch dtype name)."""
    if name == "auto":
        return "bfloat16" if str(device).startswith("cuda") else "float32"
    if name not in PRECISIONS:
        raise ChoiceError("--precision", name, ("auto", *PRECISIONS))
    return PRECISIONS[name]


def load(folder: PipelineFolder, *, precision: str, device: str) -> Any:
    """The pipeline of ``folder`` in ``precision`` (a torch dtype name) on ``device``, progress bars off."""
    os.environ["HF_HUB_OFFLINE"] = "1"     # before diffusers / transformers read it
    import torch

    try:
        from diffusers import DiffusionPipeline
    except ImportError as exc:
        raise EvalkitError(f"generate --pipeline needs diffusers: pip install -e '.[open]' ({exc})") from exc
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()        # the loaders' per-file bars (generate has its own)
    transformers_logging.disable_progress_bar()
    pipe = DiffusionPipeline.from_pretrained(str(folder.path), dtype=getattr(torch, precision), local_files_only=True)
    if type(pipe).__name__ != folder.pipeline:
        raise EvalkitError(f"--pipeline: {folder.path} loaded as {type(pipe).__name__}, not {folder.pipeline}")
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def component_dtypes(pipe: Any) -> dict[str, dict[str, int]]:
    """{component: {dtype: number of parameter tensors}} of every torch module of the pipeline."""
    out = {}
    for name, comp in sorted(pipe.components.items()):
        params = list(comp.parameters()) if hasattr(comp, "parameters") else []
        if params:
            out[name] = dict(sorted(Counter(str(p.dtype).replace("torch.", "") for p in params).items()))
    return out


def call_kwargs(folder: PipelineFolder, req: Request, prompts: list[str], seeds: list[int],
                negative_prompt: str) -> dict[str, Any]:
    """The pipeline call for one batch (one video per prompt, one CPU generator per video)."""
    import torch

    kind = folder.kind
    kw: dict[str, Any] = {"prompt": list(prompts), "height": req.height, "width": req.width,
                          kind.frames_arg: req.num_frames, "num_inference_steps": req.steps,
                          "guidance_scale": req.guidance_scale, "max_sequence_length": req.max_sequence_length,
                          "num_videos_per_prompt": 1, "output_type": "np",
                          "generator": [torch.Generator("cpu").manual_seed(int(s)) for s in seeds], **dict(kind.extra)}
    if kind.negative_prompt:
        kw["negative_prompt"] = [negative_prompt] * len(prompts)
    if kind.fps_arg:
        kw[kind.fps_arg] = req.fps
    return kw


def frames_uint8(frames: Any, expected: tuple[int, int, int]) -> np.ndarray:
    """The pipeline's ``output_type="np"`` frames (B, F, H, W, 3) in [0, 1] as uint8; an error when they are not
    finite (a diverged model: never a folder of black videos) or not the (F, H, W) asked for."""
    arr = np.asarray(frames, dtype=np.float32)
    if arr.ndim != 5 or arr.shape[-1] != 3:
        raise EvalkitError(f"the pipeline returned frames of shape {arr.shape}, not (B, F, H, W, 3)")
    if not np.isfinite(arr).all():
        raise EvalkitError("the pipeline produced non-finite frames (its weights hold NaN/inf or diverge at this "
                           "precision); nothing was written for this batch")
    if tuple(arr.shape[1:4]) != tuple(expected):
        raise EvalkitError(f"the pipeline returned {tuple(arr.shape[1:4])} (frames, height, width), asked for "
                           f"{tuple(expected)}")
    return (np.clip(arr, 0.0, 1.0) * 255.0).round().astype(np.uint8)
