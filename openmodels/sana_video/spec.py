"""SANA-Video (Chen et al., arXiv 2509.24695) as the harness sees it, pure python: diffusers'
``SanaVideoTransformer3DModel`` (huggingface/diffusers ``src/diffusers/models/transformers/transformer_sana_video.py``)
as a config, its parameter and FLOP terms, its entry.

The one released model here whose self-attention is linear in the number of tokens: ReLU linear attention (the
mixer ``baselines/linear_attn`` puts on LinGen's backbone) and a Mix-FFN with a temporal convolution. Per block, L
video tokens, S text tokens, width d, head dim e, cross-attention width dc, FFN hidden width hc = mlp_ratio d:
    linear attention  q, k, v, out 2 L (4 d^2)  +  key sum 2 L d  +  2 x 2 L e d  (K^T V per head, then Q (K^T V))
    cross-attention   q, out 2 L (2 d dc)  +  k, v 2 S (2 cross_attention_dim dc)  +  4 L S dc
    Mix-FFN           1x1 conv d -> 2 hc, 3x3 depthwise conv on 2 hc (2 L 2hc 9), 1x1 conv hc -> d,
                      temporal (3, 1) conv d -> d (2 L 3 d^2)
Outside the blocks: the Conv3d patch embedding, the AdaLayerNormSingle timestep MLP and its 6 d projection, the
caption projection, the output projection.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from backbone.config import ModelFamily, Triple
from openmodels.base import OpenModelConfig, attn, breakdown, lin, linear_params, refuse, timestep_mlp

TIME_FREQ = 256   # AdaLayerNormSingle's sinusoidal timestep width


@dataclass(frozen=True, kw_only=True)
class SanaVideoConfig(OpenModelConfig):
    """``SanaVideoTransformer3DModel``'s arguments (defaults: the class's, diffusers 0.42.1) + the harness's
    members."""

    name: str = "sana-video"
    mixer: Literal["sana_video"] = "sana_video"
    in_channels: int = 16
    out_channels: int | None = 16
    num_attention_heads: int = 20
    attention_head_dim: int = 112
    num_layers: int = 20
    num_cross_attention_heads: int | None = 20
    cross_attention_head_dim: int | None = 112
    cross_attention_dim: int | None = 2240
    caption_channels: int = 2304
    mlp_ratio: float = 2.5
    dropout: float = 0.0
    attention_bias: bool = False
    sample_size: int = 30
    patch_size: Triple = (1, 2, 2)
    norm_elementwise_affine: bool = False
    norm_eps: float = 1e-6
    interpolation_scale: int | None = None
    guidance_embeds: bool = False
    guidance_embeds_scale: float = 0.1
    qk_norm: str | None = "rms_norm_across_heads"
    rope_max_seq_len: int = 1024

    transformer_class: ClassVar[str] = "SanaVideoTransformer3DModel"
    blocks_attr: ClassVar[str] = "transformer_blocks"

    @property
    def patch(self) -> Triple:
        return tuple(self.patch_size)

    @property
    def text_dim(self) -> int:
        return self.caption_channels

    @property
    def max_grid(self) -> Triple:
        return (self.rope_max_seq_len,) * 3      # WanRotaryPosEmbed: rope_max_seq_len positions per axis

    @property
    def cross_width(self) -> int:
        return self.num_cross_attention_heads * self.cross_attention_head_dim

    def check(self) -> None:
        super().check()
        refuse("guidance_embeds", self.guidance_embeds, "a guidance-distilled SANA variant")
        if None in (self.num_cross_attention_heads, self.cross_attention_head_dim, self.cross_attention_dim):
            raise ValueError("cross_attention_dim: the text-to-video model has a cross-attention (heads, head dim, "
                             "width all set)")

    def param_count(self) -> int:
        d, dc, cad = self.d_model, self.cross_width, self.cross_attention_dim
        hc, P = int(self.mlp_ratio * d), math.prod(self.patch_size)
        cout = self.out_channels or self.in_channels
        attn1 = 3 * linear_params(d, d, self.attention_bias) + linear_params(d, d) + 2 * d   # q, k, v, out; RMSNorm
        attn2 = linear_params(d, dc) + 2 * linear_params(cad, dc) + linear_params(dc, d) + 2 * dc
        ffn = (linear_params(d, 2 * hc)                      # conv_inverted (1x1)
               + 2 * hc * 9 + 2 * hc                         # conv_depth (3x3 depthwise)
               + hc * d                                      # conv_point (1x1, no bias)
               + 3 * d * d)                                  # conv_temp ((3, 1), no bias)
        block = attn1 + attn2 + ffn + 6 * d                  # + scale_shift_table
        embed = (self.in_channels * P * d + d                # patch_embedding (Conv3d)
                 + linear_params(TIME_FREQ, d) + linear_params(d, d) + linear_params(d, 6 * d)   # time_embed
                 + linear_params(self.caption_channels, d) + linear_params(d, d) + d)   # caption proj. + norm
        return embed + self.num_layers * block + 2 * d + linear_params(d, P * cout)

    def flops_breakdown(self, grid: Triple) -> dict[str, float]:
        d, e, dc, S, n = self.d_model, self.attention_head_dim, self.cross_width, self.text_len, self.num_layers
        L, P = math.prod(grid), math.prod(self.patch_size)
        hc = int(self.mlp_ratio * d)
        cout = self.out_channels or self.in_channels
        # SanaLinearAttnProcessor3_0: q, k, v; (sum_j relu(k_j))^T relu(q_i); V K^T per head; (V K^T) Q; out
        mixer = lin(L, d, 3 * d) + 2 * L * d + 2 * (2 * L * e * d) + lin(L, d, d)
        cross = lin(L, d, dc) + lin(S, self.cross_attention_dim, 2 * dc) + attn(L, S, dc) + lin(L, dc, d)
        ffn = lin(L, d, 2 * hc) + 2 * L * 2 * hc * 9 + lin(L, hc, d) + 3 * lin(L, d, d)
        other = (lin(L, self.in_channels * P, d)                                  # patch_embedding
                 + timestep_mlp(1, TIME_FREQ, d) + lin(1, d, 6 * d)               # time_embed
                 + lin(S, self.caption_channels, d) + lin(S, d, d)                # caption_projection
                 + lin(L, d, P * cout))                                           # proj_out
        return breakdown(n * mixer, n * cross, n * ffn, other)


ENTRY = ModelFamily(name="sana_video", config=SanaVideoConfig, module="openmodels.sana_video.model",
                    preset=Path(__file__).with_name("preset.yaml"), base_flavors=None)
