"""CogVideoX in torch: diffusers' ``CogVideoXTransformer3DModel`` from a
:class:`openmodels.cogvideox.spec.CogVideoXConfig`, and the forward's inputs as ``CogVideoXPipeline`` passes them.

Shapes: B batch, T / C / H / W latent frames / channels / height / width (CogVideoX takes frames before channels),
S text tokens, L = T (H / p) (W / p) video tokens, e head dim. ``forward(hidden_states (B, T, C, H, W),
encoder_hidden_states (B, S, text_embed_dim), timestep (B,), timestep_cond=None, ofs=None, image_rotary_emb=(cos,
sin) each (L, e) or None) -> sample (B, T, C, H, W)``. CogVideoX-5B's pipeline computes the 3D RoPE table
(``CogVideoXPipeline._prepare_rotary_positional_embeddings``) and passes it; here it is random (FLOP-free: the
count does not depend on its values).
"""
from __future__ import annotations

import torch

from openmodels.building import Tensors, build_transformer
from openmodels.cogvideox.spec import CogVideoXConfig


def build(cfg: CogVideoXConfig, device: str = "cpu", dtype: torch.dtype = torch.float32, kernels: str = "auto"):
    """diffusers' class on ``device`` (random weights); ``kernels`` is accepted for a uniform signature."""
    return build_transformer(cfg, device, dtype)


def inputs(cfg: CogVideoXConfig, latent_shape: tuple[int, int, int, int], *, batch: int = 1, device: str = "cpu",
           dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple:
    """(latents (B, T, C, H, W), text (B, S, text_embed_dim), timestep (B,), None, None, RoPE table or None)."""
    c, t, h, w = latent_shape
    make = Tensors(device, dtype, seed)
    x = make.randn(batch, t, c, h, w)                                   # (B, T, C, H, W)
    ctx, step = make.randn(batch, cfg.text_len, cfg.text_embed_dim), make.timestep(batch)
    rope = None
    if cfg.use_rotary_positional_embeddings:
        n = t * (h // cfg.patch_size) * (w // cfg.patch_size)
        rope = (make.randn(n, cfg.attention_head_dim), make.randn(n, cfg.attention_head_dim))
    return x, ctx, step, None, None, rope
