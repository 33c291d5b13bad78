"""What the released models of ``openmodels/`` share as the harness sees them (pure python, no torch).

A released model's config (:class:`OpenModelConfig` subclass, one per family) is two things side by side:

* the keyword arguments of diffusers' transformer class, under diffusers' own names and with diffusers 0.42.1's
  class defaults as the dataclass defaults (so a flavor in ``preset.yaml`` reads like the checkpoint's
  ``transformer/config.json``, and ``transformer_kwargs()`` is exactly what ``model.py`` passes to the class);
* the harness's members (:data:`HARNESS_FIELDS`): ``name`` / ``flavor`` / ``mixer``, ``latent`` (the VAE's
  compression and channels, the transformer's patch, the native frame rate; every VAE here is causal:
  ``first_frame_apart``), ``text_len`` (the prompt length the pipeline pads to) and ``published_params`` (the size
  the authors state, for comparison only).

Cost convention, as ``backbone/analytic.py`` and the FLOP counter: 2 FLOPs per multiply-add, matmuls /
convolutions / attention only (norms, softmax, RoPE, activations are free), one forward, batch 1. For a released
model ``flops_breakdown``'s ``mixer`` is its self-attention (for joint-attention models, over text and video
tokens together, projections included), ``cross_attention`` the attention to the text where it is separate, ``ffn``
the feed-forward blocks and ``other`` the rest (patch embedding, timestep / text embeddings, modulation, output).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from backbone.config import LatentSpec, Triple

# the members of a config that are the harness's, not arguments of diffusers' class
HARNESS_FIELDS = ("name", "flavor", "mixer", "latent", "text_len", "published_params")
# a model whose positions are computed for every call (RoPE from the grid, sincos tables rebuilt) has no table that
# bounds its grid: validate_point compares against this
UNBOUNDED: Triple = (1 << 30, 1 << 30, 1 << 30)


def lin(rows: int, i: int, o: int) -> int:
    """FLOPs of ``nn.Linear(i, o)`` (or a 1x1 convolution, a patch convolution as a matmul) on ``rows`` rows."""
    return 2 * rows * i * o


def attn(lq: int, lk: int, d: int) -> int:
    """FLOPs of softmax(Q K^T) V for ``lq`` queries over ``lk`` keys, all heads of total width ``d``."""
    return 4 * lq * lk * d


def linear_params(i: int, o: int, bias: bool = True) -> int:
    return i * o + (o if bias else 0)


def timestep_mlp(rows: int, i: int, d: int) -> int:
    """FLOPs of diffusers' ``TimestepEmbedding(i -> d -> d)``."""
    return lin(rows, i, d) + lin(rows, d, d)


@dataclass(frozen=True, kw_only=True)
class OpenModelConfig:
    """The harness's members of a released model (subclasses add diffusers' keyword arguments)."""

    name: str = ""
    flavor: str = "t2v"
    mixer: str = ""
    latent: LatentSpec = field(default_factory=lambda: LatentSpec(first_frame_apart=True))
    text_len: int = 256                 # the padded prompt length the pipeline feeds (max_sequence_length)
    published_params: float = 0.0       # the parameter count its authors state (README / paper / model card)

    transformer_class: ClassVar[str] = ""        # the diffusers class model.py builds
    blocks_attr: ClassVar[str] = "blocks"        # the nn.ModuleList of identical layers (per-layer-kind counting)
    harness_fields: ClassVar[tuple[str, ...]] = HARNESS_FIELDS

    # ---- what diffusers' class receives -------------------------------------------------------------------------
    def transformer_kwargs(self) -> dict[str, Any]:
        """Every field that is an argument of diffusers' class (the subclass's fields but the harness's)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in self.harness_fields}

    # ---- the members every model config answers (subclasses define the family's ones) ---------------------------
    @property
    def d_model(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @property
    def depth(self) -> int:
        return self.num_layers

    @property
    def patch(self) -> Triple:
        """(t, h, w) patch of the transformer, from its own arguments."""
        raise NotImplementedError

    @property
    def max_grid(self) -> Triple:
        return UNBOUNDED

    def with_depth(self, depth: int) -> OpenModelConfig:
        """The same model with only its first ``depth`` layers (a FLOP counter builds one layer per kind)."""
        return dataclasses.replace(self, num_layers=depth)

    def layer_kind(self, layer: int) -> Hashable | None:
        return ()   # every block computes the same ops on the same shapes (families with others override)

    def check(self) -> None:
        """The harness's members against diffusers' arguments; ValueError("field: why")."""
        if not self.latent.first_frame_apart:
            raise ValueError("latent.first_frame_apart: the released models' VAEs are causal (1 + ct k frames)")
        if self.latent.channels != self.in_channels:
            raise ValueError(f"latent.channels: {self.latent.channels} but the transformer takes in_channels "
                             f"{self.in_channels}")
        if tuple(self.latent.patch) != tuple(self.patch):
            raise ValueError(f"latent.patch: {list(self.latent.patch)} but the transformer's patch is "
                             f"{list(self.patch)}")
        if self.text_len < 1:
            raise ValueError(f"text_len: must be >= 1, got {self.text_len}")
        if self.depth < 1:
            raise ValueError(f"num_layers: must be >= 1, got {self.depth}")

    def check_grid(self, grid: Triple) -> None:
        """Can the transformer run on this token grid? (default: any grid within ``max_grid``)"""

    def param_count(self) -> int:
        raise NotImplementedError

    def flops_breakdown(self, grid: Triple) -> dict[str, float]:
        raise NotImplementedError


def refuse(field_name: str, value: Any, why: str) -> None:
    """A diffusers argument the analytic cost does not model (an image-to-video or other variant)."""
    if value not in (None, False, 0):
        raise ValueError(f"{field_name}: {value!r} is not supported here ({why})")


def breakdown(mixer: int, cross: int, ffn: int, other: int) -> dict[str, float]:
    return {"mixer": float(mixer), "cross_attention": float(cross), "ffn": float(ffn), "other": float(other)}
