"""LTX-Video (HaCohen et al., arXiv 2501.00103; github.com/Lightricks/LTX-Video) as the harness sees it, pure python:
diffusers' ``LTXVideoTransformer3DModel`` (huggingface/diffusers ``src/diffusers/models/transformers/transformer_ltx.py``)
as a config, its parameter and FLOP terms, its entry.

LTX-Video's VAE compresses 32 x 32 pixels x 8 frames into one 128-channel latent and the transformer takes it with a
1 x 1 x 1 patch (the "patchifying" happens in the VAE), so a token is 32 x 32 px: 1/4 of the tokens of a 16-px
model at the same size. Per block, L video tokens, S text tokens, width d (2 FLOPs per multiply-add):
    self-attention   q, k, v, out 2 L (4 d^2)  +  4 L^2 d                         (3D RoPE: free)
    cross-attention  q, out 2 L (2 d^2)  +  k, v of the text 2 S (2 cross_attention_dim d)  +  4 L S d
    FFN              2 L (2 d 4d)                                                 (GELU-tanh)
Outside the blocks: proj_in 2 L C d, the AdaLayerNormSingle timestep MLP (256 -> d -> d) and its 6 d projection,
the caption projection 2 S (caption_channels d + d^2), proj_out 2 L d C.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from backbone.config import ModelFamily, Triple
from openmodels.base import OpenModelConfig, attn, breakdown, lin, linear_params, timestep_mlp

TIME_FREQ = 256   # AdaLayerNormSingle's sinusoidal timestep width


@dataclass(frozen=True, kw_only=True)
class LTXVideoConfig(OpenModelConfig):
    """``LTXVideoTransformer3DModel``'s arguments (defaults: the class's, diffusers 0.42.1) + the harness's
    members."""

    name: str = "ltx-video"
    mixer: Literal["ltx"] = "ltx"
    in_channels: int = 128
    out_channels: int = 128
    patch_size: int = 1
    patch_size_t: int = 1
    num_attention_heads: int = 32
    attention_head_dim: int = 64
    cross_attention_dim: int = 2048
    num_layers: int = 28
    activation_fn: str = "gelu-approximate"
    qk_norm: str = "rms_norm_across_heads"
    norm_elementwise_affine: bool = False
    norm_eps: float = 1e-6
    caption_channels: int = 4096
    attention_bias: bool = True
    attention_out_bias: bool = True

    transformer_class: ClassVar[str] = "LTXVideoTransformer3DModel"
    blocks_attr: ClassVar[str] = "transformer_blocks"

    @property
    def patch(self) -> Triple:
        return (self.patch_size_t, self.patch_size, self.patch_size)

    @property
    def text_dim(self) -> int:
        return self.caption_channels

    def check(self) -> None:
        super().check()
        if self.cross_attention_dim != self.d_model:
            # the caption projection maps the text to the model width, which attn2's k / v then take
            raise ValueError(f"cross_attention_dim: {self.cross_attention_dim} but the caption projection gives "
                             f"d = {self.d_model}")

    def param_count(self) -> int:
        d, cd = self.d_model, self.cross_attention_dim
        ab, ob = self.attention_bias, self.attention_out_bias
        pp = self.patch_size_t * self.patch_size ** 2
        attn1 = 3 * linear_params(d, d, ab) + linear_params(d, d, ob) + 2 * d      # q, k, v, out, RMSNorm q / k
        attn2 = linear_params(d, d, ab) + 2 * linear_params(cd, d, ab) + linear_params(d, d, ob) + 2 * d
        block = attn1 + attn2 + linear_params(d, 4 * d) + linear_params(4 * d, d) + 6 * d   # ff, scale_shift_table
        embed = (linear_params(self.in_channels * pp, d) + 2 * d                   # proj_in, scale_shift_table
                 + linear_params(TIME_FREQ, d) + linear_params(d, d) + linear_params(d, 6 * d))   # time_embed
        caption = linear_params(self.caption_channels, d) + linear_params(d, d)    # caption_projection
        return embed + caption + self.num_layers * block + linear_params(d, self.out_channels * pp)

    def flops_breakdown(self, grid: Triple) -> dict[str, float]:
        d, cd, S, n = self.d_model, self.cross_attention_dim, self.text_len, self.num_layers
        L, pp = math.prod(grid), self.patch_size_t * self.patch_size ** 2
        mixer = lin(L, d, 3 * d) + attn(L, L, d) + lin(L, d, d)
        cross = lin(L, d, d) + lin(S, cd, 2 * d) + attn(L, S, d) + lin(L, d, d)
        ffn = lin(L, d, 4 * d) + lin(L, 4 * d, d)
        other = (lin(L, self.in_channels * pp, d)                                   # proj_in
                 + timestep_mlp(1, TIME_FREQ, d) + lin(1, d, 6 * d)                 # time_embed
                 + lin(S, self.caption_channels, d) + lin(S, d, d)                  # caption_projection
                 + lin(L, d, self.out_channels * pp))                               # proj_out
        return breakdown(n * mixer, n * cross, n * ffn, other)


ENTRY = ModelFamily(name="ltx", config=LTXVideoConfig, module="openmodels.ltx.model",
                    preset=Path(__file__).with_name("preset.yaml"), base_flavors=None)
