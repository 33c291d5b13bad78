"""SANA-Video in torch: diffusers' ``SanaVideoTransformer3DModel`` from a
:class:`openmodels.sana_video.spec.SanaVideoConfig`, and the forward's inputs as ``SanaVideoPipeline`` passes them.

Shapes: B batch, C / T / H / W latent channels / frames / height / width, S text tokens. ``forward(hidden_states
(B, C, T, H, W), encoder_hidden_states (B, S, caption_channels), timestep (B,), guidance=None,
encoder_attention_mask (B, S)) -> sample (B, C, T, H, W)``.
"""
from __future__ import annotations

import torch

from openmodels.building import Tensors, build_transformer
from openmodels.sana_video.spec import SanaVideoConfig


def build(cfg: SanaVideoConfig, device: str = "cpu", dtype: torch.dtype = torch.float32, kernels: str = "auto"):
    """diffusers' class on ``device`` (random weights); ``kernels`` is accepted for a uniform signature."""
    return build_transformer(cfg, device, dtype)


def inputs(cfg: SanaVideoConfig, latent_shape: tuple[int, int, int, int], *, batch: int = 1, device: str = "cpu",
           dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple:
    """(latents (B, C, T, H, W), text (B, S, caption_channels), timestep (B,), None, mask (B, S))."""
    c, t, h, w = latent_shape
    make = Tensors(device, dtype, seed)
    return (make.randn(batch, c, t, h, w), make.randn(batch, cfg.text_len, cfg.caption_channels),
            make.timestep(batch), None, make.mask(batch, cfg.text_len))
