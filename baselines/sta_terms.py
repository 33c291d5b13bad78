"""Geometry, parameter and FLOP terms of sliding tile attention (STA, ``baselines/sta.py``), pure python.

STA (Zhang et al., arXiv 2502.04507) cuts the (t, h, w) token grid into non-overlapping tiles and lets every query
tile attend the key tiles of a window of kt x kh x kw tiles centred on it; near the border the window's centre is
clamped so it stays inside the grid (FastVideo ``csrc/sliding_tile_attention/test/flex_sta_ref.py``,
``generate_sta_mask``: "kernel center is clamped to a fixed distance (kernel half-length) from the canvas edge").
There is no shift. So every query tile does the same amount of work, tile x (window tiles x tile) scores, and the
cost is linear in the number of tokens.

FLOPs counted (registered under mixer ``"sta"``; 2 FLOPs per multiply-add, one layer, batch 1): the tile-level work
the design does, not a dense masked attention. With L tokens, the grid zero-padded to whole tiles (Lp tokens),
T tokens per tile and K tiles per window:
    q, k, v and output projections     2 L (3 d^2) + 2 L d^2
    tile attention (QK^T and PV)       4 d Lp K T
Assumptions (``experiments/models/sta.yaml``): a grid that is not a multiple of the tile is zero-padded at the end
with padded keys masked out (FastVideo requires divisibility); a window longer than the grid along an axis covers
that whole axis (K is then smaller there).
"""
from __future__ import annotations

import math

from lingen import analytic
from lingen.config import ModelConfig

Triple = tuple[int, int, int]


def tile_grid(grid: Triple, tile: Triple) -> Triple:
    """Tiles per axis: ceil(grid / tile)."""
    return tuple(-(-g // t) for g, t in zip(grid, tile))  # type: ignore[return-value]


def window_tiles(cfg: ModelConfig, grid: Triple) -> Triple:
    """Window in tiles per axis, capped at the number of tiles along that axis."""
    return tuple(min(w // t, n) for w, t, n in zip(cfg.sta.window, cfg.sta.tile,
                                                 tile_grid(grid, cfg.sta.tile)))  # type: ignore[return-value]


def window_start(tile_index: int, n_tiles: int, k: int) -> int:
    """First tile of the window of query tile ``tile_index``: centred, clamped inside [0, n_tiles)."""
    return min(max(tile_index - k // 2, 0), n_tiles - k)


def density(cfg: ModelConfig, grid: Triple) -> float:
    """Computed attention work / dense attention work: Lp K T / L^2 (padding included)."""
    L = math.prod(grid)
    lp = math.prod(tile_grid(grid, cfg.sta.tile)) * math.prod(cfg.sta.tile)
    return lp * math.prod(window_tiles(cfg, grid)) * math.prod(cfg.sta.tile) / (L * L)


def params(cfg: ModelConfig) -> int:
    return 4 * cfg.d_model * cfg.d_model  # qkv + out, as DiT


def flops(cfg: ModelConfig, grid: Triple, layer: int) -> float:
    d = cfg.d_model
    L = math.prod(grid)
    T = math.prod(cfg.sta.tile)
    lp = math.prod(tile_grid(grid, cfg.sta.tile)) * T
    return float(2 * L * 3 * d * d + 2 * L * d * d + 4 * d * lp * math.prod(window_tiles(cfg, grid)) * T)


def check(cfg: ModelConfig, grid: Triple) -> None:
    for axis, g, t in zip("thw", grid, cfg.sta.tile):
        if t > g:
            raise ValueError(f"sta.tile: tile {list(cfg.sta.tile)} is larger than the token grid {list(grid)} "
                             f"along {axis} ({t} > {g}); choose a smaller tile")


analytic.register_mixer("sta", analytic.MixerTerms(params=params, flops=flops, check=check))
