"""HunyuanVideo (Kong et al., arXiv 2412.03603; github.com/Tencent/HunyuanVideo) as the harness sees it, pure
python: diffusers' ``HunyuanVideoTransformer3DModel`` (huggingface/diffusers
``src/diffusers/models/transformers/transformer_hunyuan_video.py``) as a config, its parameter and FLOP terms, its
entry.

S text and L video tokens, N = S + L, width d, MLP width m = mlp_ratio d (2 FLOPs per multiply-add):
    dual-stream block    q, k, v, out of both streams 2 N (4 d^2)  +  joint attention 4 N^2 d  +  MLPs 2 N (2 d m)
    single-stream block  q, k, v 2 N (3 d^2)  +  4 N^2 d  +  proj_mlp 2 N d m  +  proj_out 2 N (d + m) d
    token refiner        per block over the S text tokens: 2 S (4 d^2) + 4 S^2 d + 2 S (2 d 4d)
Modulation (d -> 6 d per dual block and stream, d -> 3 d per single block), the patch embedding, the timestep /
guidance / pooled-text embeddings and the output projection are ``other``; the single block's proj_out (attention
output and MLP output in one matmul) is counted as FFN. The two block lists differ, so the model is counted in full.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from backbone.config import ModelFamily, Triple
from openmodels.base import OpenModelConfig, attn, breakdown, lin, linear_params, refuse, timestep_mlp

REFINER_MLP_RATIO = 4.0   # HunyuanVideoTokenRefiner(mlp_ratio=4.0), as the transformer constructs it
TIME_FREQ = 256           # the sinusoidal timestep / guidance embeddings' width (Timesteps(256))


@dataclass(frozen=True, kw_only=True)
class HunyuanVideoConfig(OpenModelConfig):
    """``HunyuanVideoTransformer3DModel``'s arguments (defaults: the class's, diffusers 0.42.1) + the harness's
    members."""

    name: str = "hunyuanvideo"
    mixer: Literal["hunyuan"] = "hunyuan"
    in_channels: int = 16
    out_channels: int = 16
    num_attention_heads: int = 24
    attention_head_dim: int = 128
    num_layers: int = 20
    num_single_layers: int = 40
    num_refiner_layers: int = 2
    mlp_ratio: float = 4.0
    patch_size: int = 2
    patch_size_t: int = 1
    qk_norm: str = "rms_norm"
    guidance_embeds: bool = True
    text_embed_dim: int = 4096
    pooled_projection_dim: int = 768
    rope_theta: float = 256.0
    rope_axes_dim: tuple[int, ...] = (16, 56, 56)
    image_condition_type: str | None = None

    transformer_class: ClassVar[str] = "HunyuanVideoTransformer3DModel"
    blocks_attr: ClassVar[str] = "transformer_blocks"

    @property
    def patch(self) -> Triple:
        return (self.patch_size_t, self.patch_size, self.patch_size)

    @property
    def text_dim(self) -> int:
        return self.text_embed_dim

    @property
    def depth(self) -> int:
        return self.num_layers + self.num_single_layers

    def with_depth(self, depth: int) -> HunyuanVideoConfig:
        """The first ``depth`` blocks in call order (dual-stream first, then single-stream)."""
        return dataclasses.replace(self, num_layers=min(depth, self.num_layers),
                                   num_single_layers=max(0, depth - self.num_layers))

    def layer_kind(self, layer: int) -> None:
        return None   # two block lists of different blocks: counted in full

    def check(self) -> None:
        super().check()
        refuse("image_condition_type", self.image_condition_type, "HunyuanVideo image-to-video")
        if sum(self.rope_axes_dim) != self.attention_head_dim:
            raise ValueError(f"rope_axes_dim: {list(self.rope_axes_dim)} must sum to attention_head_dim "
                             f"{self.attention_head_dim}")

    def param_count(self) -> int:
        d, hd, tx = self.d_model, self.attention_head_dim, self.text_embed_dim
        m, mr = int(d * self.mlp_ratio), int(d * REFINER_MLP_RATIO)
        pp = self.patch_size_t * self.patch_size ** 2
        tmlp = linear_params(TIME_FREQ, d) + linear_params(d, d)
        refiner_block = (2 * d + 4 * linear_params(d, d) + 2 * d         # norm1, attn q/k/v/out, norm2
                         + linear_params(d, mr) + linear_params(mr, d)   # ff
                         + linear_params(d, 2 * d))                      # norm_out (HunyuanVideoAdaNorm)
        context = (tmlp + linear_params(tx, d) + linear_params(d, d)     # refiner time_text_embed
                   + linear_params(tx, d) + self.num_refiner_layers * refiner_block)   # proj_in, blocks
        cond = (tmlp + linear_params(self.pooled_projection_dim, d) + linear_params(d, d)
                + (tmlp if self.guidance_embeds else 0))                # timestep, pooled text, guidance
        dual = (2 * linear_params(d, 6 * d)                              # norm1, norm1_context
                + 8 * linear_params(d, d) + 4 * hd                       # q/k/v/out + add_q/k/v/out, RMSNorm x4
                + 2 * (linear_params(d, m) + linear_params(m, d)))       # ff, ff_context
        single = (linear_params(d, 3 * d) + 3 * linear_params(d, d) + 2 * hd   # norm, q/k/v, RMSNorm q/k
                  + linear_params(d, m) + linear_params(d + m, d))      # proj_mlp, proj_out
        out = linear_params(d, 2 * d) + linear_params(d, pp * self.out_channels)   # norm_out, proj_out
        return (linear_params(self.in_channels * pp, d) + context + cond + self.num_layers * dual
                + self.num_single_layers * single + out)

    def flops_breakdown(self, grid: Triple) -> dict[str, float]:
        d, tx, S = self.d_model, self.text_embed_dim, self.text_len
        m, mr = int(d * self.mlp_ratio), int(d * REFINER_MLP_RATIO)
        L = math.prod(grid)
        N = L + S
        pp = self.patch_size_t * self.patch_size ** 2
        nd, ns = self.num_layers, self.num_single_layers
        refiner = self.num_refiner_layers * (lin(S, d, 3 * d) + attn(S, S, d) + lin(S, d, d)   # self-attn (text)
                                             + lin(S, d, mr) + lin(S, mr, d) + lin(1, d, 2 * d))
        context = (timestep_mlp(1, TIME_FREQ, d) + lin(1, tx, d) + lin(1, d, d)   # refiner time_text_embed
                   + lin(S, tx, d) + refiner)                                     # proj_in, refiner blocks
        cond = (timestep_mlp(1, TIME_FREQ, d) + lin(1, self.pooled_projection_dim, d) + lin(1, d, d)
                + (timestep_mlp(1, TIME_FREQ, d) if self.guidance_embeds else 0))
        mixer = nd * (lin(N, d, 4 * d) + attn(N, N, d)) + ns * (lin(N, d, 3 * d) + attn(N, N, d))
        ffn = nd * (lin(N, d, m) + lin(N, m, d)) + ns * (lin(N, d, m) + lin(N, d + m, d))
        other = (nd * 2 * lin(1, d, 6 * d) + ns * lin(1, d, 3 * d)     # modulation
                 + lin(L, self.in_channels * pp, d) + context + cond   # x_embedder, context_embedder, time_text
                 + lin(1, d, 2 * d) + lin(L, d, pp * self.out_channels))   # norm_out, proj_out
        return breakdown(mixer, 0, ffn, other)


ENTRY = ModelFamily(name="hunyuan", config=HunyuanVideoConfig, module="openmodels.hunyuan.model",
                    preset=Path(__file__).with_name("preset.yaml"), base_flavors=None)
