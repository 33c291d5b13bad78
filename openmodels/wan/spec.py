"""Wan2.1 / Wan2.2 (Wan-Video, https://github.com/Wan-Video/Wan2.1, https://github.com/Wan-Video/Wan2.2) as the
harness sees them, pure python: diffusers' ``WanTransformer3DModel`` (huggingface/diffusers
``src/diffusers/models/transformers/transformer_wan.py``) as a config, its parameter and FLOP terms, its entry.

Per block, L video tokens, S text tokens, width d = heads x head_dim, FFN width F (2 FLOPs per multiply-add):
    self-attention   q, k, v, out 2 L (4 d^2)  +  scores and values 4 L^2 d      (3D RoPE: free)
    cross-attention  q, out 2 L (2 d^2)  +  k, v of the text 2 S (2 d^2)  +  4 L S d
    FFN              2 L (2 d F)                                                 (GELU-tanh)
Outside the blocks: the Conv3d patch embedding 2 L (C pt ph pw) d, the timestep MLP (freq_dim -> d -> d) and its
projection to 6 d (on r rows: r = 1, or r = L for Wan2.2 TI2V-5B whose pipeline passes one timestep per token,
``expand_timesteps``), the text embedding 2 S (text_dim d + d^2), the output projection 2 L d (C pt ph pw).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from backbone.config import ModelFamily, Triple
from openmodels.base import (HARNESS_FIELDS, OpenModelConfig, attn, breakdown, lin, linear_params, refuse,
                             timestep_mlp)


@dataclass(frozen=True, kw_only=True)
class WanConfig(OpenModelConfig):
    """``WanTransformer3DModel``'s arguments (defaults: the class's, diffusers 0.42.1) + the harness's members."""

    name: str = "wan2.1-14b"
    mixer: Literal["wan"] = "wan"
    patch_size: Triple = (1, 2, 2)
    num_attention_heads: int = 40
    attention_head_dim: int = 128
    in_channels: int = 16
    out_channels: int = 16
    text_dim: int = 4096
    freq_dim: int = 256
    ffn_dim: int = 13824
    num_layers: int = 40
    cross_attn_norm: bool = True
    qk_norm: str | None = "rms_norm_across_heads"
    eps: float = 1e-6
    image_dim: int | None = None
    added_kv_proj_dim: int | None = None
    rope_max_seq_len: int = 1024
    pos_embed_seq_len: int | None = None
    # a pipeline setting (model_index.json of Wan2.2 TI2V-5B), not the class's: one timestep per video token
    expand_timesteps: bool = False

    transformer_class: ClassVar[str] = "WanTransformer3DModel"
    harness_fields: ClassVar[tuple[str, ...]] = (*HARNESS_FIELDS, "expand_timesteps")

    @property
    def patch(self) -> Triple:
        return tuple(self.patch_size)

    @property
    def max_grid(self) -> Triple:
        # WanRotaryPosEmbed precomputes rope_max_seq_len positions per axis and slices them per call
        return (self.rope_max_seq_len,) * 3

    def check(self) -> None:
        super().check()
        refuse("added_kv_proj_dim", self.added_kv_proj_dim, "image-to-video conditioning (Wan I2V)")
        refuse("image_dim", self.image_dim, "image-to-video conditioning (Wan I2V)")
        refuse("pos_embed_seq_len", self.pos_embed_seq_len, "image-to-video conditioning (Wan I2V)")

    def param_count(self) -> int:
        d, F, P = self.d_model, self.ffn_dim, math.prod(self.patch_size)
        attention = 4 * linear_params(d, d) + 2 * d              # q, k, v, out (+ bias), RMSNorm of q and k over d
        block = (2 * attention                                  # attn1 (self), attn2 (cross)
                 + (2 * d if self.cross_attn_norm else 0)       # norm2: affine LayerNorm before the cross-attention
                 + linear_params(d, F) + linear_params(F, d)    # ffn
                 + 6 * d)                                       # scale_shift_table
        embed = (self.in_channels * P * d + d                   # patch_embedding (Conv3d)
                 + linear_params(self.freq_dim, d) + linear_params(d, d)   # time_embedder
                 + linear_params(d, 6 * d)                      # time_proj
                 + linear_params(self.text_dim, d) + linear_params(d, d))  # text_embedder
        out = linear_params(d, self.out_channels * P) + 2 * d   # proj_out, scale_shift_table
        return embed + self.num_layers * block + out

    def flops_breakdown(self, grid: Triple) -> dict[str, float]:
        d, S, n = self.d_model, self.text_len, self.num_layers
        L, P = math.prod(grid), math.prod(self.patch_size)
        rows_t = L if self.expand_timesteps else 1
        mixer = lin(L, d, 3 * d) + attn(L, L, d) + lin(L, d, d)
        cross = lin(L, d, d) + lin(S, d, 2 * d) + attn(L, S, d) + lin(L, d, d)
        ffn = lin(L, d, self.ffn_dim) + lin(L, self.ffn_dim, d)
        other = (lin(L, self.in_channels * P, d)                                   # patch_embedding
                 + timestep_mlp(rows_t, self.freq_dim, d) + lin(rows_t, d, 6 * d)  # time_embedder, time_proj
                 + lin(S, self.text_dim, d) + lin(S, d, d)                        # text_embedder
                 + lin(L, d, self.out_channels * P))                              # proj_out
        return breakdown(n * mixer, n * cross, n * ffn, other)


ENTRY = ModelFamily(name="wan", config=WanConfig, module="openmodels.wan.model",
                    preset=Path(__file__).with_name("preset.yaml"), base_flavors=None)
