"""Mochi-1 (Genmo, github.com/genmoai/models: a 10B asymmetric diffusion transformer, AsymmDiT) as the harness sees
it, pure python: diffusers' ``MochiTransformer3DModel`` (huggingface/diffusers
``src/diffusers/models/transformers/transformer_mochi.py``) as a config, its parameter and FLOP terms, its entry.

Asymmetric joint attention: video tokens of width d and text tokens of the narrower width dc attend together; the
text stream has its own (smaller) projections and MLP. L video tokens, S text tokens of which S_v are the prompt's
(``MochiAttnProcessor2_0`` drops the padding per sample; the count on ``meta`` takes all S valid, the cost of a
full-length prompt), SwiGLU widths ff = 8 d / 3 and ffc = 8 dc / 3 (2 FLOPs per multiply-add):
    joint attention  video q, k, v 2 L (3 d^2) + text q, k, v 2 S (3 dc d) + 4 (L + S_v)^2 d + video out 2 L d^2
                     + text out 2 S d dc (every block but the last, which has no text output: context_pre_only)
    FFN              2 L (3 d ff) video, 2 S (3 dc ffc) text (not in the last block)
    modulation       d -> 4 d (video), d -> 4 dc (text; the last block: d -> dc)
Outside the blocks: the per-frame Conv2d patch embedding, the timestep MLP, the attention pooling of the text into
the conditioning vector, the caption projection 2 S (text_embed_dim dc), the RoPE einsum 2 L 3 (d / 2), the output
modulation and projection. The RoPE table is computed once per forward whatever the batch, so a forward of batch B
costs B x the rest + one RoPE term (``estimate_flops(batch=B)``, which scales the whole per-sample count, is
:meth:`MochiConfig.rope_flops` x (B - 1) above it: 1e-7 of the total at the native size; the sweeps run batch 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from backbone.config import ModelFamily, Triple
from openmodels.base import OpenModelConfig, attn, breakdown, lin, linear_params, timestep_mlp


def swiglu(rows: int, d: int, inner: int) -> int:
    """FLOPs of FeedForward(activation_fn='swiglu'): d -> 2 inner (gate and value), inner -> d."""
    return lin(rows, d, 2 * inner) + lin(rows, inner, d)


@dataclass(frozen=True, kw_only=True)
class MochiConfig(OpenModelConfig):
    """``MochiTransformer3DModel``'s arguments (defaults: the class's, diffusers 0.42.1, = the released model) + the
    harness's members."""

    name: str = "mochi-1"
    mixer: Literal["mochi"] = "mochi"
    patch_size: int = 2
    num_attention_heads: int = 24
    attention_head_dim: int = 128
    num_layers: int = 48
    pooled_projection_dim: int = 1536
    in_channels: int = 12
    out_channels: int | None = None
    qk_norm: str = "rms_norm"
    text_embed_dim: int = 4096
    time_embed_dim: int = 256
    activation_fn: str = "swiglu"
    max_sequence_length: int = 256

    transformer_class: ClassVar[str] = "MochiTransformer3DModel"
    blocks_attr: ClassVar[str] = "transformer_blocks"

    @property
    def patch(self) -> Triple:
        return (1, self.patch_size, self.patch_size)

    @property
    def text_dim(self) -> int:
        return self.text_embed_dim

    def layer_kind(self, layer: int) -> None:
        return None   # the last block differs (no text output): the first k layers are not the full model's, count all

    def check(self) -> None:
        super().check()
        if self.activation_fn != "swiglu":
            raise ValueError(f"activation_fn: the cost terms are SwiGLU's, got {self.activation_fn!r}")
        if self.text_len > self.max_sequence_length:
            raise ValueError(f"text_len: {self.text_len} is more than max_sequence_length {self.max_sequence_length}"
                             " (the attention pooling's table)")

    def _widths(self) -> tuple[int, int, int, int]:
        d, dc = self.d_model, self.pooled_projection_dim
        return d, dc, (4 * d * 2) // 3, (4 * dc * 2) // 3

    def param_count(self) -> int:
        d, dc, ff, ffc = self._widths()
        hd, p, tx, n = self.attention_head_dim, self.patch_size, self.text_embed_dim, self.num_layers
        cout = self.out_channels or self.in_channels
        attention = 3 * d * d + 3 * dc * d + 4 * hd + linear_params(d, d)   # q/k/v, add_q/k/v (no bias), 4 RMSNorm
        block = linear_params(d, 4 * d) + attention + d * 2 * ff + ff * d  # norm1, attn1, ff (no bias)
        full = block + linear_params(d, 4 * dc) + linear_params(d, dc) + dc * 2 * ffc + ffc * dc   # + text stream
        last = block + linear_params(d, dc)                                # norm1_context (continuous), no text out
        embed = (linear_params(self.in_channels * p * p, d)                # patch_embed (Conv2d)
                 + linear_params(self.time_embed_dim, d) + linear_params(d, d)   # time_embed.timestep_embedder
                 + linear_params(tx, 2 * tx) + linear_params(tx, tx) + linear_params(tx, d)   # attention pooling
                 + linear_params(tx, dc)                                   # caption_proj
                 + 3 * self.num_attention_heads * (hd // 2))               # pos_frequencies
        return embed + (n - 1) * full + last + linear_params(d, 2 * d) + linear_params(d, p * p * cout)

    def flops_breakdown(self, grid: Triple) -> dict[str, float]:
        d, dc, ff, ffc = self._widths()
        tx, p, n, S = self.text_embed_dim, self.patch_size, self.num_layers, self.text_len
        L, Sv = math.prod(grid), self.text_len      # every prompt token valid (see the module docstring)
        cout = self.out_channels or self.in_channels
        joint = lin(L, d, 3 * d) + lin(S, dc, 3 * d) + attn(L + Sv, L + Sv, d) + lin(L, d, d)
        mixer = n * joint + (n - 1) * lin(S, d, dc)                        # to_add_out, all blocks but the last
        ffn = n * swiglu(L, d, ff) + (n - 1) * swiglu(S, dc, ffc)
        modulation = n * lin(1, d, 4 * d) + (n - 1) * lin(1, d, 4 * dc) + lin(1, d, dc)
        pool = lin(S + 1, tx, 2 * tx) + lin(1, tx, tx) + attn(1, S + 1, tx) + lin(1, tx, d)   # MochiAttentionPool
        other = (modulation + lin(L, self.in_channels * p * p, d)          # patch_embed
                 + timestep_mlp(1, self.time_embed_dim, d) + pool          # time_embed
                 + lin(S, tx, dc)                                          # caption_proj
                 + self.rope_flops(grid)                                   # pos_frequencies -> RoPE table
                 + lin(1, d, 2 * d) + lin(L, d, p * p * cout))             # norm_out, proj_out
        return breakdown(mixer, 0, ffn, other)


    def rope_flops(self, grid: Triple) -> int:
        """The RoPE einsum (L, 3) x (3, heads, head_dim / 2), once per forward (see the module docstring)."""
        return 2 * math.prod(grid) * 3 * (self.d_model // 2)


ENTRY = ModelFamily(name="mochi", config=MochiConfig, module="openmodels.mochi.model",
                    preset=Path(__file__).with_name("preset.yaml"), base_flavors=None)
