"""Sliding tile attention (STA, Zhang et al., arXiv 2502.04507) as the token mixer of the shared backbone.

The (t, h, w) token grid is cut into tiles of ``sta.tile`` tokens; query tile (a, b, c) attends, with full softmax
attention, the keys of the kt x kh x kw tiles of its window (``sta.window`` / ``sta.tile`` per axis), centred on
it and clamped at the border (``baselines/sta/spec.py``). No shift, no text tokens in the window (text enters
through the backbone's cross-attention). One reference implementation for every device: tiles are gathered into
[B * tiles, heads, T, e] queries and [B * tiles, heads, K * T, e] keys / values and sent to SDPA, so SDPA computes
exactly the tile-level work of the design (what FlopCounterMode counts on meta equals ``STAConfig.mixer_flops``).
Grids that are not a multiple of the tile are zero-padded at the end; padded keys are masked, padded queries
dropped. Memory: the gathered keys hold K x the sequence, fine on CPU and meta, too much for the 4b flavor at
68 s on one GPU (FastVideo's fused kernel or FlexAttention would be the GPU path; not built here).

Shape legend: B batch, L = t*h*w tokens (row-major), D width, H heads, e = D / H, NT tiles, T tokens per tile,
K tiles per window.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from backbone.model import build_backbone
from baselines.dit.model import SelfAttention
from baselines.sta import spec as terms

Triple = tuple[int, int, int]


@functools.lru_cache(maxsize=64)
def _window_index(ntiles: Triple, ktiles: Triple) -> list[list[int]]:
    """For every query tile (row-major over the tile grid) the K key-tile ids of its window."""
    nt, nh, nw = ntiles
    out = []
    for a in range(nt):
        for b in range(nh):
            for c in range(nw):
                sa, sb, sc = (terms.window_start(i, n, k) for i, n, k in zip((a, b, c), ntiles, ktiles))
                out.append([((sa + i) * nh + sb + j) * nw + sc + m for i in range(ktiles[0])
                            for j in range(ktiles[1]) for m in range(ktiles[2])])
    return out


def _tiles(x: Tensor, ntiles: Triple, tile: Triple) -> Tensor:
    """(B, T', H', W', C) padded grid -> (B, NT, T, C), tiles row-major, tokens row-major inside a tile."""
    b, c = x.shape[0], x.shape[-1]
    (nt, nh, nw), (tt, th, tw) = ntiles, tile
    x = x.view(b, nt, tt, nh, th, nw, tw, c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(b, nt * nh * nw, tt * th * tw, c)


def _untiles(x: Tensor, ntiles: Triple, tile: Triple) -> Tensor:
    """(B, NT, T, C) -> (B, T', H', W', C)."""
    b, c = x.shape[0], x.shape[-1]
    (nt, nh, nw), (tt, th, tw) = ntiles, tile
    x = x.view(b, nt, nh, nw, tt, th, tw, c)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, nt * tt, nh * th, nw * tw, c)


def sliding_tile_attention(q: Tensor, k: Tensor, v: Tensor, grid: Triple, heads: int, tile: Triple,
                           ktiles: Triple) -> Tensor:
    """q, k, v (B, L, D) in row-major (t, h, w) order -> (B, L, D)."""
    b, n, d = q.shape
    ntiles = terms.tile_grid(grid, tile)
    pgrid = tuple(nt * t for nt, t in zip(ntiles, tile))
    T, K = math.prod(tile), math.prod(ktiles)
    # 1. grid, zero-padded to whole tiles: (B, L, 3D) -> (B, T', H', W', 3D) -> tiles (B, NT, T, 3D)
    x = torch.cat([q, k, v], dim=-1).view(b, *grid, 3 * d)
    pad = [0, 0] + [p for g, pg in zip(reversed(grid), reversed(pgrid)) for p in (0, pg - g)]
    x = _tiles(F.pad(x, pad) if any(pad) else x, ntiles, tile)
    qt, kt, vt = x.split(d, dim=-1)  # (B, NT, T, D) each
    # 2. gather the K window tiles of every query tile: (B, NT, K, T, D) -> (B*NT, H, K*T, e)
    idx = torch.tensor(_window_index(ntiles, ktiles), device=q.device)  # (NT, K)
    nt_all = idx.shape[0]
    heads_of = lambda t, m: t.reshape(b * nt_all, m, heads, d // heads).transpose(1, 2)  # noqa: E731
    qh = heads_of(qt, T)  # (B*NT, H, T, e)
    kh, vh = heads_of(kt[:, idx], K * T), heads_of(vt[:, idx], K * T)  # (B*NT, H, K*T, e)
    # 3. padded keys masked out (only when the grid is not a multiple of the tile)
    mask = None
    if pgrid != tuple(grid):
        valid = torch.zeros(pgrid, dtype=torch.bool, device=q.device)
        valid[:grid[0], :grid[1], :grid[2]] = True
        valid = _tiles(valid[None, ..., None], ntiles, tile)[0, :, :, 0]  # (NT, T)
        mask = valid[idx].reshape(1, nt_all, 1, 1, K * T).expand(b, -1, -1, -1, -1).reshape(b * nt_all, 1, 1, K * T)
    y = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask)  # (B*NT, H, T, e)
    # 4. back to the grid, padding dropped: (B*NT, H, T, e) -> (B, NT, T, D) -> (B, L, D)
    y = _untiles(y.transpose(1, 2).reshape(b, nt_all, T, d), ntiles, tile)
    return y[:, :grid[0], :grid[1], :grid[2]].reshape(b, n, d)


class SlidingTileAttention(SelfAttention):
    """``forward(x (B, L, D), grid) -> (B, L, D)``: DiT's q/k/v/out projections (parameter-matched), its own
    attention pattern."""

    def forward(self, x: Tensor, grid: Triple) -> Tensor:
        grid = tuple(int(g) for g in grid)  # plain ints (a jit trace hands over shape tensors)
        self.cfg.check_grid(grid)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        y = sliding_tile_attention(q, k, v, grid, self.heads, self.cfg.sta.tile, terms.window_tiles(self.cfg, grid))
        return self.out(y)


def build(cfg: terms.STAConfig, device: str = "cpu", dtype: torch.dtype = torch.float32, kernels: str = "auto"):
    """The shared backbone with SlidingTileAttention as token mixer; ``kernels`` is accepted for a uniform signature
    (SDPA on gathered tiles)."""
    return build_backbone(cfg, SlidingTileAttention, device, dtype)
