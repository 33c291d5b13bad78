"""Sliding tile attention (STA) as the harness sees it, pure python: its options, geometry, parameter and FLOP
terms and its entry (the torch code is ``baselines/sta/model.py``, the flavors ``baselines/sta/preset.yaml``).

STA (Zhang et al., arXiv 2502.04507) cuts the (t, h, w) token grid into non-overlapping tiles and lets every query
tile attend the key tiles of a window of kt x kh x kw tiles centred on it; near the border the window's centre is
clamped so it stays inside the grid (FastVideo ``csrc/sliding_tile_attention/test/flex_sta_ref.py``,
``generate_sta_mask``: "kernel center is clamped to a fixed distance (kernel half-length) from the canvas edge").
There is no shift. So every query tile does the same amount of work, tile x (window tiles x tile) scores, and the
cost is linear in the number of tokens.

FLOPs counted (mixer ``"sta"``; 2 FLOPs per multiply-add, one layer, batch 1): the tile-level work
the design does, not a dense masked attention. With L tokens, the grid zero-padded to whole tiles (Lp tokens),
T tokens per tile and K tiles per window:
    q, k, v and output projections     2 L (3 d^2) + 2 L d^2
    tile attention (QK^T and PV)       4 d Lp K T
Assumptions (``baselines/sta/preset.yaml``): a grid that is not a multiple of the tile is zero-padded at the end
with padded keys masked out (FastVideo requires divisibility); a window longer than the grid along an axis covers
that whole axis (K is then smaller there).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from backbone.config import BackboneConfig, ModelFamily, Triple


@dataclass(frozen=True, kw_only=True)
class STASpec:
    """Tiles and window in latent tokens per (t, h, w) axis."""

    tile: Triple = (2, 1, 1)
    window: Triple = (6, 3, 3)  # a multiple of the tile with an odd number of tiles per axis


def tile_grid(grid: Triple, tile: Triple) -> Triple:
    """Tiles per axis: ceil(grid / tile)."""
    return tuple(-(-g // t) for g, t in zip(grid, tile))  # type: ignore[return-value]


def window_tiles(cfg: STAConfig, grid: Triple) -> Triple:
    """Window in tiles per axis, capped at the number of tiles along that axis."""
    return tuple(min(w // t, n) for w, t, n in zip(cfg.sta.window, cfg.sta.tile,
                                                 tile_grid(grid, cfg.sta.tile)))  # type: ignore[return-value]


def window_start(tile_index: int, n_tiles: int, k: int) -> int:
    """First tile of the window of query tile ``tile_index``: centred, clamped inside [0, n_tiles)."""
    return min(max(tile_index - k // 2, 0), n_tiles - k)


def density(cfg: STAConfig, grid: Triple) -> float:
    """Computed attention work / dense attention work: Lp K T / L^2 (padding included)."""
    L = math.prod(grid)
    lp = math.prod(tile_grid(grid, cfg.sta.tile)) * math.prod(cfg.sta.tile)
    return lp * math.prod(window_tiles(cfg, grid)) * math.prod(cfg.sta.tile) / (L * L)


@dataclass(frozen=True, kw_only=True)
class STAConfig(BackboneConfig):
    """The backbone with sliding tile attention as token mixer."""

    name: str = "sta"
    mixer: Literal["sta"] = "sta"
    sta: STASpec = field(default_factory=STASpec)

    def check(self) -> None:
        super().check()
        for axis, t, w in zip("thw", self.sta.tile, self.sta.window):
            if t < 1 or w < t or w % t or (w // t) % 2 == 0:
                raise ValueError(f"sta.window: along {axis} the window ({w}) must be an odd multiple of the tile "
                                 f"({t}) so the tile window can centre on the query tile; got window "
                                 f"{list(self.sta.window)}, tile {list(self.sta.tile)}")

    def check_grid(self, grid: Triple) -> None:
        for axis, g, t in zip("thw", grid, self.sta.tile):
            if t > g:
                raise ValueError(f"sta.tile: tile {list(self.sta.tile)} is larger than the token grid {list(grid)} "
                                 f"along {axis} ({t} > {g}); choose a smaller tile")

    def mixer_params(self) -> int:
        return 4 * self.d_model * self.d_model  # qkv + out, as DiT

    def mixer_flops(self, grid: Triple, layer: int) -> float:
        d = self.d_model
        L = math.prod(grid)
        T = math.prod(self.sta.tile)
        lp = math.prod(tile_grid(grid, self.sta.tile)) * T
        return float(2 * L * 3 * d * d + 2 * L * d * d + 4 * d * lp * math.prod(window_tiles(self, grid)) * T)

    def layer_kind(self, layer: int) -> tuple:
        return ()  # every layer computes the same ops on the same shapes


ENTRY = ModelFamily(name="sta", config=STAConfig, module="baselines.sta.model",
                    preset=Path(__file__).with_name("preset.yaml"), options_key="sta")
