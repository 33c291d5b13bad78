"""Mochi-1 in torch: diffusers' ``MochiTransformer3DModel`` from a :class:`openmodels.mochi.spec.MochiConfig`, the
forward's inputs as ``MochiPipeline`` passes them, and the two changes that let it run on ``meta``.

Shapes: B batch, C / T / H / W latent channels / frames / height / width, S text tokens. ``forward(hidden_states
(B, C, T, H, W), encoder_hidden_states (B, S, text_embed_dim), timestep (B,), encoder_attention_mask (B, S)) ->
sample (B, C, T, H, W)``.

diffusers' Mochi does not run on the ``meta`` device as it stands (diffusers 0.42.1, torch 2.13), for two reasons:

1. ``MochiRoPE._create_rope`` wraps its einsum in ``torch.autocast(freqs.device.type, torch.float32)``, and torch
   refuses an autocast context for device type ``meta`` ("unsupported autocast device_type", no flag changes that).
   On meta, ``model.rope`` is replaced by :class:`MetaSafeRoPE`, which computes the same einsum in float32 (both
   operands are cast to float32 inside the context anyway) without the context; on any other device it runs the
   original method. ``tests/openmodels/test_openmodels.py`` checks the two agree on CPU tensors, and that the unchanged
   model still fails on meta (so the workaround is dropped once diffusers or torch no longer need it).
2. ``MochiAttnProcessor2_0`` drops each sample's padding tokens with ``torch.nonzero(mask)``, whose output size
   depends on the data, so torch has no meta kernel for it. torch's own switch
   ``torch.fx.experimental._config.meta_nonzero_assume_all_nonzero`` makes meta ``nonzero`` assume every element
   non-zero, i.e. every prompt token valid: the cost of a full-length prompt. It is switched on only while the meta
   model's forward runs (a forward pre-hook and an always-called forward hook of that model).

Nothing in diffusers or torch is patched globally; a model built on another device is diffusers' class unchanged.
"""
from __future__ import annotations

import torch

from openmodels.building import Tensors, build_transformer
from openmodels.mochi.spec import MochiConfig


def rope_fp32(freqs: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``MochiRoPE._create_rope`` without its autocast context: (cos, sin) of pos (L, 3) x freqs (3, heads, f)."""
    angles = torch.einsum("nd,dhf->nhf", pos.to(torch.float32), freqs.to(torch.float32))   # (L, heads, f)
    return torch.cos(angles), torch.sin(angles)


def _meta_safe_rope(rope: torch.nn.Module) -> torch.nn.Module:
    from diffusers.models.transformers.transformer_mochi import MochiRoPE

    class MetaSafeRoPE(MochiRoPE):
        """MochiRoPE whose ``_create_rope`` also runs on ``meta`` (see the module docstring, 1.)."""

        def _create_rope(self, freqs: torch.Tensor, pos: torch.Tensor):
            if freqs.device.type == "meta":
                return rope_fp32(freqs, pos)
            return super()._create_rope(freqs, pos)

    new = MetaSafeRoPE()
    new.target_area = rope.target_area
    return new


def _nonzero_on_meta(model: torch.nn.Module) -> None:
    """Switch torch's meta ``nonzero`` rule on while ``model``'s forward runs (see the module docstring, 2.)."""
    from torch.fx.experimental import _config as fx_config

    held = []

    def enter(_module, _args):
        ctx = fx_config.patch(meta_nonzero_assume_all_nonzero=True)
        ctx.__enter__()
        held.append(ctx)

    def leave(_module, _args, _out):
        if held:
            held.pop().__exit__(None, None, None)

    model.register_forward_pre_hook(enter)
    model.register_forward_hook(leave, always_call=True)


def build(cfg: MochiConfig, device: str = "cpu", dtype: torch.dtype = torch.float32, kernels: str = "auto",
          meta_workaround: bool = True):
    """diffusers' class on ``device`` (random weights); on ``meta`` with the two changes of the module docstring
    (``meta_workaround=False``: as diffusers builds it, which fails there). ``kernels`` is accepted for a uniform
    signature."""
    model = build_transformer(cfg, device, dtype)
    if torch.device(device).type == "meta" and meta_workaround:
        model.rope = _meta_safe_rope(model.rope)
        _nonzero_on_meta(model)
    return model


def inputs(cfg: MochiConfig, latent_shape: tuple[int, int, int, int], *, batch: int = 1, device: str = "cpu",
           dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple:
    """(latents (B, C, T, H, W), text (B, S, text_embed_dim), timestep (B,), mask (B, S), every token valid)."""
    c, t, h, w = latent_shape
    make = Tensors(device, dtype, seed)
    return (make.randn(batch, c, t, h, w), make.randn(batch, cfg.text_len, cfg.text_embed_dim),
            make.timestep(batch), make.mask(batch, cfg.text_len))
