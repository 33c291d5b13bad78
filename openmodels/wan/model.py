"""Wan2.1 / Wan2.2 in torch: diffusers' ``WanTransformer3DModel`` from a :class:`openmodels.wan.spec.WanConfig`,
and the forward's inputs as ``WanPipeline`` passes them.

Shapes: B batch, C latent channels, T / H / W latent frames / height / width, S text tokens, L = T H W / patch
tokens. ``forward(hidden_states (B, C, T, H, W), timestep (B,) or (B, L), encoder_hidden_states (B, S, text_dim))
-> sample (B, C, T, H, W)`` (a ``Transformer2DModelOutput``).
"""
from __future__ import annotations

import torch

from openmodels.building import Tensors, build_transformer
from openmodels.wan.spec import WanConfig


def build(cfg: WanConfig, device: str = "cpu", dtype: torch.dtype = torch.float32, kernels: str = "auto"):
    """diffusers' class on ``device`` (random weights); ``kernels`` is accepted for a uniform signature (attention
    goes through diffusers' SDPA processor)."""
    return build_transformer(cfg, device, dtype)


def inputs(cfg: WanConfig, latent_shape: tuple[int, int, int, int], *, batch: int = 1, device: str = "cpu",
           dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(latents (B, C, T, H, W), timestep (B,) (Wan2.2 TI2V: (B, L), one per token), text (B, S, text_dim))."""
    c, t, h, w = latent_shape
    pt, ph, pw = cfg.patch
    make = Tensors(device, dtype, seed)
    x = make.randn(batch, c, t, h, w)
    step = make.timestep(batch, (t // pt) * (h // ph) * (w // pw)) if cfg.expand_timesteps else make.timestep(batch)
    return x, step, make.randn(batch, cfg.text_len, cfg.text_dim)
