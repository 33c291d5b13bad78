"""CogVideoX 1.0 (Yang et al., arXiv 2408.06072; github.com/THUDM/CogVideo) as the harness sees it, pure python:
diffusers' ``CogVideoXTransformer3DModel`` (huggingface/diffusers
``src/diffusers/models/transformers/cogvideox_transformer_3d.py``) as a config, its parameter and FLOP terms, its
entry.

One sequence of S text and L video tokens, N = S + L, width d, every block an expert-adaptive LayerNorm pair and
full attention over all N tokens (2 FLOPs per multiply-add):
    attention   q, k, v, out 2 N (4 d^2)  +  4 N^2 d            (CogVideoX-5B's 3D RoPE, computed by the
                                                                pipeline and passed in: free)
    FFN         2 N (2 d 4d)                                     (GELU-tanh, 4x width)
    modulation  2 x 2 te (6 d) per block (timestep embedding of width te -> 6 d, for norm1 and norm2)
Outside the blocks: the per-frame Conv2d patch embedding 2 L (C p^2) d, the text projection 2 S text_dim d, the
timestep MLP (d -> te -> te), the output AdaLayerNorm 2 te (2 d) and projection 2 L d (p^2 C). CogVideoX-2B adds
fixed 3D sincos positions (rebuilt for a size other than the training one: free).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from backbone.config import ModelFamily, Triple
from openmodels.base import OpenModelConfig, attn, breakdown, lin, linear_params, refuse, timestep_mlp


@dataclass(frozen=True, kw_only=True)
class CogVideoXConfig(OpenModelConfig):
    """``CogVideoXTransformer3DModel``'s arguments (defaults: the class's, diffusers 0.42.1) + the harness's
    members."""

    name: str = "cogvideox-2b"
    mixer: Literal["cogvideox"] = "cogvideox"
    num_attention_heads: int = 30
    attention_head_dim: int = 64
    in_channels: int = 16
    out_channels: int | None = 16
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    time_embed_dim: int = 512
    ofs_embed_dim: int | None = None
    text_embed_dim: int = 4096
    num_layers: int = 30
    dropout: float = 0.0
    attention_bias: bool = True
    sample_width: int = 90
    sample_height: int = 60
    sample_frames: int = 49
    patch_size: int = 2
    patch_size_t: int | None = None
    temporal_compression_ratio: int = 4
    max_text_seq_length: int = 226
    activation_fn: str = "gelu-approximate"
    timestep_activation_fn: str = "silu"
    norm_elementwise_affine: bool = True
    norm_eps: float = 1e-5
    spatial_interpolation_scale: float = 1.875
    temporal_interpolation_scale: float = 1.0
    use_rotary_positional_embeddings: bool = False
    use_learned_positional_embeddings: bool = False
    patch_bias: bool = True

    transformer_class: ClassVar[str] = "CogVideoXTransformer3DModel"
    blocks_attr: ClassVar[str] = "transformer_blocks"

    @property
    def patch(self) -> Triple:
        return (1, self.patch_size, self.patch_size)

    @property
    def text_dim(self) -> int:
        return self.text_embed_dim

    def check(self) -> None:
        super().check()
        refuse("patch_size_t", self.patch_size_t, "CogVideoX 1.5's temporal patch")
        refuse("ofs_embed_dim", self.ofs_embed_dim, "CogVideoX 1.5 image-to-video")
        refuse("use_learned_positional_embeddings", self.use_learned_positional_embeddings,
               "CogVideoX-5B image-to-video: fixed resolution")
        if self.temporal_compression_ratio != self.latent.compression[0]:
            raise ValueError(f"temporal_compression_ratio: {self.temporal_compression_ratio} but the VAE's temporal "
                             f"compression (latent.compression) is {self.latent.compression[0]}")
        if not self.use_rotary_positional_embeddings and self.text_len != self.max_text_seq_length:
            # the sincos table holds max_text_seq_length text positions before the video's (CogVideoXPatchEmbed)
            raise ValueError(f"text_len: {self.text_len} but the sincos positions take exactly "
                             f"max_text_seq_length = {self.max_text_seq_length} text tokens")

    def check_grid(self, grid: Triple) -> None:
        # AutoencoderKLCogVideoX decodes latents two at a time, the first batch taking the odd one: only an odd
        # number T of latent frames decodes to the 1 + 4 (T - 1) frames of the video (the pipelines' frame rule)
        if grid[0] % 2 == 0:
            raise ValueError(f"latent.compression: {grid[0]} latent frames; CogVideoX's VAE makes 1 + 4 (T - 1) "
                             "frames only from an odd number T (1 + 8 k frames)")

    def param_count(self) -> int:
        d, te, p, hd = self.d_model, self.time_embed_dim, self.patch_size, self.attention_head_dim
        cout = self.out_channels or self.in_channels
        norm = 2 * d if self.norm_elementwise_affine else 0
        block = (2 * (linear_params(te, 6 * d) + norm)                    # norm1, norm2 (CogVideoXLayerNormZero)
                 + 4 * linear_params(d, d, self.attention_bias) + 2 * 2 * hd   # attn1 q, k, v, out; LayerNorm q, k
                 + linear_params(d, 4 * d) + linear_params(4 * d, d))     # ff
        embed = (linear_params(self.in_channels * p * p, d, self.patch_bias)  # patch_embed.proj (Conv2d)
                 + linear_params(self.text_embed_dim, d)                  # patch_embed.text_proj
                 + linear_params(d, te) + linear_params(te, te))          # time_embedding
        out = (norm                                                       # norm_final
               + linear_params(te, 2 * d) + norm                          # norm_out (AdaLayerNorm)
               + linear_params(d, p * p * cout))                          # proj_out
        return embed + self.num_layers * block + out

    def flops_breakdown(self, grid: Triple) -> dict[str, float]:
        d, te, p, S, n = self.d_model, self.time_embed_dim, self.patch_size, self.text_len, self.num_layers
        L = math.prod(grid)
        N = L + S                                             # text and video tokens in one sequence
        cout = self.out_channels or self.in_channels
        mixer = lin(N, d, 3 * d) + attn(N, N, d) + lin(N, d, d)
        ffn = lin(N, d, 4 * d) + lin(N, 4 * d, d)
        other = (n * 2 * lin(1, te, 6 * d)                     # norm1, norm2 of every block
                 + lin(L, self.in_channels * p * p, d)         # patch_embed.proj
                 + lin(S, self.text_embed_dim, d)              # patch_embed.text_proj
                 + timestep_mlp(1, d, te)                      # time_embedding (sinusoid of width d -> te -> te)
                 + lin(1, te, 2 * d)                           # norm_out
                 + lin(L, d, p * p * cout))                    # proj_out
        return breakdown(n * mixer, 0, n * ffn, other)


ENTRY = ModelFamily(name="cogvideox", config=CogVideoXConfig, module="openmodels.cogvideox.model",
                    preset=Path(__file__).with_name("preset.yaml"), base_flavors=None)
