"""HunyuanVideo in torch: diffusers' ``HunyuanVideoTransformer3DModel`` from a
:class:`openmodels.hunyuan.spec.HunyuanVideoConfig`, and the forward's inputs as ``HunyuanVideoPipeline`` passes
them.

Shapes: B batch, C / T / H / W latent channels / frames / height / width, S text tokens. ``forward(hidden_states
(B, C, T, H, W), timestep (B,), encoder_hidden_states (B, S, text_embed_dim), encoder_attention_mask (B, S),
pooled_projections (B, pooled_projection_dim), guidance (B,)) -> sample (B, C, T, H, W)``. The released
text-to-video model is guidance-distilled: the pipeline embeds the guidance scale (x 1000) and runs one forward per
step (no CFG pass unless ``true_cfg_scale`` > 1).
"""
from __future__ import annotations

import torch

from openmodels.building import Tensors, build_transformer
from openmodels.hunyuan.spec import HunyuanVideoConfig


def build(cfg: HunyuanVideoConfig, device: str = "cpu", dtype: torch.dtype = torch.float32, kernels: str = "auto"):
    """diffusers' class on ``device`` (random weights); ``kernels`` is accepted for a uniform signature."""
    return build_transformer(cfg, device, dtype)


def inputs(cfg: HunyuanVideoConfig, latent_shape: tuple[int, int, int, int], *, batch: int = 1, device: str = "cpu",
           dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple:
    """(latents (B, C, T, H, W), timestep (B,), text (B, S, text_embed_dim), mask (B, S), pooled (B, 768),
    guidance (B,))."""
    c, t, h, w = latent_shape
    make = Tensors(device, dtype, seed)
    return (make.randn(batch, c, t, h, w), make.timestep(batch), make.randn(batch, cfg.text_len, cfg.text_embed_dim),
            make.mask(batch, cfg.text_len), make.randn(batch, cfg.pooled_projection_dim), make.timestep(batch))
