"""The shared backbone's configuration, and the contract every model family of the harness fulfils (pure python).

``BackboneConfig`` holds the geometry every model on the shared backbone shares (width, depth, heads, FFN, text
context, latent layout, positional tables). A mixer subclasses it with its own options (``lingen.spec.LinGenConfig``
adds ``mate``, ``baselines.sta.spec.STAConfig`` adds ``sta``, ...) and implements the hooks the harness asks of it:

* ``mixer_params()``: parameters of one token mixer;
* ``mixer_flops(grid, layer)``: forward FLOPs of the mixer of ``layer`` on a (t, h, w) token grid, batch 1, two
  FLOPs per multiply-add, matmuls / convolutions / attention only (what ``torch.utils.flop_counter`` counts);
* ``check()`` (structural) and ``check_grid(grid)`` (can the mixer run on this grid): ``ValueError("field: why")``;
* ``layer_kind(layer)``: which layers compute the same ops on the same shapes (a FLOP counter counts one layer per
  kind and multiplies); ``None`` for a mixer whose layers cannot be grouped (counted in full).

The backbone answers the rest for every mixer: ``param_count()`` and ``flops_breakdown(grid)`` (closed forms of
every module of ``backbone/model.py`` around the mixer's own terms), the latent geometry (:class:`LatentSpec`), ``depth`` / ``with_depth(k)`` and the blocks a
FLOP counter counts one kind at a time (``blocks_attr``). A model family that is not on this backbone (a released
model built from its own code) provides the same members on its own config class.

:class:`ModelFamily` ties a config class to its torch module (``build(cfg, device, dtype, kernels)``, optionally
``inputs(...)``) and its preset file; every family package (``lingen``, each folder under ``baselines/``) exports
one as ``spec.ENTRY`` and ``evalkit.models`` finds them.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

Triple = tuple[int, int, int]
BACKBONE_FLAVORS = Path(__file__).with_name("flavors.yaml")   # the shared backbone's flavors (tiny, 1b ... 8b)


@dataclass(frozen=True, kw_only=True)
class LatentSpec:
    """Latent video layout: channels, (t, h, w) compression of the autoencoder, (t, h, w) patch, frame rate."""

    channels: int = 16
    compression: Triple = (8, 8, 8)
    patch: Triple = (1, 2, 2)
    fps: int = 16
    # False: frames = compression_t x latent frames (Movie Gen's TAE, the presets here); True: a causal video VAE
    # that encodes the first frame alone, frames = 1 + compression_t x (latent frames - 1) (Wan, CogVideoX, ...),
    # and a video of d seconds has 1 + d x fps frames (the first at 0 s, the last at d s: Wan's 81 frames at
    # 16 fps are its "5 s")
    first_frame_apart: bool = False


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

    blocks_attr: ClassVar[str] = "blocks"   # the model's nn.ModuleList of layers (a FLOP counter counts one per kind)

    def with_depth(self, depth: int) -> BackboneConfig:
        """The same model with only its first ``depth`` layers (a FLOP counter builds one layer per kind)."""
        return dataclasses.replace(self, depth=depth)

    # ---- closed-form cost of the backbone around the mixer ------------------------------------------------------
    # Convention: 2 FLOPs per multiply-add, matmuls / convolutions / attention only (elementwise work, norms, softmax
    # and the scans' exp/cumsum are not counted), exactly what torch.utils.flop_counter counts on the meta device.
    # Every term mirrors one module of backbone/model.py; tests check equality with the built model (parameters)
    # and with the FLOPs counted on meta.
    def block_params(self) -> int:
        """adaLN table (6 d), the mixer, the cross-attention (q, kv, out + norm weight) and the SwiGLU FFN."""
        d = self.d_model
        return 6 * d + self.mixer_params() + d + 4 * d * d + 3 * d * self.ffn_dim

    def param_count(self) -> int:
        d = self.d_model
        embed = self.patch_dim * d + sum(self.max_grid) * d         # patch projection + factorized positions
        cond = self.timestep_dim * d + d * d + 6 * d * d + self.text_dim * d + 2 * d   # timestep MLP, adaLN, text
        final = 2 * d + d * self.patch_dim                           # output table + unpatchify
        return embed + cond + final + self.depth * self.block_params()

    def flops_breakdown(self, grid: Triple) -> dict[str, float]:
        """Forward FLOPs of one call, batch 1: {"mixer", "cross_attention", "ffn", "other"}."""
        d, S = self.d_model, self.text_len
        L = grid[0] * grid[1] * grid[2]
        mixer = sum(self.mixer_flops(grid, layer) for layer in range(self.depth))
        cross = self.depth * (2 * L * d * d + 2 * S * 2 * d * d + 4 * L * S * d + 2 * L * d * d)
        ffn = self.depth * 6 * L * d * self.ffn_dim
        other = (2 * L * self.patch_dim * d * 2  # patchify + unpatchify
                 + 2 * (self.timestep_dim * d + d * d) + 2 * 6 * d * d  # timestep MLP + adaLN-single
                 + 2 * S * self.text_dim * d)  # text projection
        return {"mixer": float(mixer), "cross_attention": float(cross), "ffn": float(ffn), "other": float(other)}

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
class ModelFamily:
    """Everything the harness needs of one model family (a mixer on the shared backbone, or a released model), in
    the family's own folder.

    ``name``: the config's ``mixer`` value; ``config``: its config class (geometry, options, cost, checks, layer
    kinds); ``module``: the torch module with ``build(cfg, device, dtype, kernels) -> nn.Module`` and, when the
    forward does not take the backbone's ``(x, t, context)``, ``inputs(cfg, shape, batch, device, dtype)``
    (imported only when a model is built); ``preset``: the YAML file with the registry names, flavors and variants
    this family defines; ``options_key``: the config field holding the family's own options (``mate``, ``sta``);
    ``base_flavors``: the flavor table merged under the preset's flavors (the shared backbone's for a mixer on it;
    None for a released model, whose flavors are its published checkpoints' configs).
    """

    name: str
    config: type
    module: str
    preset: Path
    options_key: str | None = None
    base_flavors: Path | None = BACKBONE_FLAVORS
