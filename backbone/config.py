"""The shared backbone's configuration and the one entry every token mixer provides (pure python, no torch).

``BackboneConfig`` holds the geometry every model shares (width, depth, heads, FFN, text context, latent layout,
positional tables). A mixer subclasses it with its own options (``lingen.spec.LinGenConfig`` adds ``mate``,
``baselines.sta.spec.STAConfig`` adds ``sta``, ...) and implements the four hooks the harness asks of it:

* ``mixer_params()``: parameters of one token mixer;
* ``mixer_flops(grid, layer)``: forward FLOPs of the mixer of ``layer`` on a (t, h, w) token grid, batch 1, two
  FLOPs per multiply-add, matmuls / convolutions / attention only (what ``torch.utils.flop_counter`` counts);
* ``check()`` (structural) and ``check_grid(grid)`` (can the mixer run on this grid): ``ValueError("field: why")``;
* ``layer_kind(layer)``: which layers compute the same ops on the same shapes (a FLOP counter counts one layer per
  kind and multiplies); ``None`` for a mixer whose layers cannot be grouped (counted in full).

:class:`MixerEntry` ties that config class to its torch builder and its preset file; every mixer package
(``lingen``, each folder under ``baselines/``) exports one as ``spec.ENTRY`` and ``evalkit.models`` finds them.
"""
from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Triple = tuple[int, int, int]


@dataclass(frozen=True, kw_only=True)
class LatentSpec:
    """Latent video layout: channels, (t, h, w) compression of the autoencoder, (t, h, w) patch, frame rate."""

    channels: int = 16
    compression: Triple = (8, 8, 8)
    patch: Triple = (1, 2, 2)
    fps: int = 16


@dataclass(frozen=True, kw_only=True)
class BackboneConfig:
    """One resolved model: the backbone geometry (+ the mixer's options in a subclass). ``name`` / ``flavor`` are
    the registry name and preset; ``mixer`` names the token mixer the subclass implements."""

    name: str = ""
    flavor: str = "tiny"
    mixer: str = ""
    d_model: int = 64
    depth: int = 4
    heads: int = 4
    ffn_dim: int = 128
    text_dim: int = 32
    text_len: int = 8
    timestep_dim: int = 256
    adaln: Literal["single"] = "single"
    max_grid: Triple = (136, 16, 16)  # learnable positional tables cover this (T, H, W) token grid
    norm_eps: float = 1e-6
    latent: LatentSpec = field(default_factory=LatentSpec)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads

    @property
    def patch_dim(self) -> int:
        pt, ph, pw = self.latent.patch
        return self.latent.channels * pt * ph * pw

    # ---- the mixer's hooks (overridden by each mixer's config class) -------------------------------------------
    def check(self) -> None:
        """Structural consistency; raises ValueError("field: why")."""
        if self.d_model % self.heads:
            raise ValueError(f"heads: d_model {self.d_model} is not divisible by heads {self.heads}")

    def check_grid(self, grid: Triple) -> None:
        """Can the mixer run on this token grid? ValueError("field: why") when not (default: any grid)."""

    def mixer_params(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} does not define mixer_params()")

    def mixer_flops(self, grid: Triple, layer: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} does not define mixer_flops()")

    def layer_kind(self, layer: int) -> Hashable | None:
        """Equal kinds = same ops on the same shapes; None = no grouping (a FLOP counter counts every layer)."""
        return None


@dataclass(frozen=True, kw_only=True)
class MixerEntry:
    """Everything the harness needs of one token mixer, in the mixer's own folder.

    ``config``: the mixer's config class (``BackboneConfig`` + its options under the key ``mixer`` names, plus the
    cost / check / layer-kind hooks); ``builder``: ``"module:function"`` of the torch code,
    ``function(cfg, device, kernels) -> (cfg, layer) -> nn.Module`` (imported only when a model is built);
    ``preset``: the YAML file with the registry names, flavors and variants this mixer defines."""

    mixer: str
    config: type[BackboneConfig]
    builder: str
    preset: Path
    options_key: str | None = None    # the config field holding the mixer's options (``mate``, ``sta``, ...)
