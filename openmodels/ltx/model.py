"""LTX-Video in torch: diffusers' ``LTXVideoTransformer3DModel`` from a :class:`openmodels.ltx.spec.LTXVideoConfig`,
and the forward's inputs as ``LTXPipeline`` passes them.

Shapes: B batch, C latent channels, T / H / W latent frames / height / width, L = T H W tokens (patch 1), S text
tokens. The pipeline packs the latent into tokens (``LTXPipeline._pack_latents``: (B, C, T, H, W) -> (B, L, C)) and
passes the grid and the RoPE scale (VAE temporal compression / frame rate, spatial compression twice):
``forward(hidden_states (B, L, C), encoder_hidden_states (B, S, caption_channels), timestep (B,),
encoder_attention_mask (B, S), num_frames T, height H, width W, rope_interpolation_scale) -> sample (B, L, C)``.
"""
from __future__ import annotations

import torch

from openmodels.building import Tensors, build_transformer
from openmodels.ltx.spec import LTXVideoConfig


def build(cfg: LTXVideoConfig, device: str = "cpu", dtype: torch.dtype = torch.float32, kernels: str = "auto"):
    """diffusers' class on ``device`` (random weights); ``kernels`` is accepted for a uniform signature."""
    return build_transformer(cfg, device, dtype)


def inputs(cfg: LTXVideoConfig, latent_shape: tuple[int, int, int, int], *, batch: int = 1, device: str = "cpu",
           dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple:
    """(packed latents (B, L, C), text (B, S, caption_channels), timestep (B,), mask (B, S), T, H, W, RoPE scale)."""
    c, t, h, w = latent_shape
    pt, ph, pw = cfg.patch
    ct, cs, _ = cfg.latent.compression
    make = Tensors(device, dtype, seed)
    tokens = (t // pt) * (h // ph) * (w // pw)
    x = make.randn(batch, tokens, c * pt * ph * pw)                     # (B, L, C pt ph pw)
    return (x, make.randn(batch, cfg.text_len, cfg.caption_channels), make.timestep(batch),
            make.mask(batch, cfg.text_len), t, h, w, (ct / cfg.latent.fps, cs, cs))
