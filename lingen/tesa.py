"""TEmporal Swin Attention, the TE-branch of MATE (LinGen Fig. 5).

Self-attention inside fixed (t, h, w) windows of the token grid (size independent of resolution and length, so
the cost is linear in tokens); on odd layers the grid is cyclically shifted by ``shift`` (Swin, Liu et al. 2021)
and a mask keeps tokens that were not neighbours before the shift apart, so information crosses window borders.
Grids that are not a multiple of the window are zero-padded at the end (padding keys are masked out); a window
larger than the grid is an error. Windows are batched into SDPA as [B * nW, heads, W, hd].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

Triple = tuple[int, int, int]


def check_window(grid: Triple, window: Triple) -> None:
    for axis, g, w in zip("thw", grid, window):
        if w > g:
            raise ValueError(f"mate.window: window {tuple(window)} is larger than the token grid {tuple(grid)} "
                             f"along {axis} ({w} > {g}); choose a window <= the grid (e.g. a shorter t window)")


def effective_shift(grid: Triple, window: Triple, shift: Triple, layer: int) -> Triple:
    """Shift used on ``layer``: zero on even layers and along axes the window already covers."""
    if layer % 2 == 0:
        return (0, 0, 0)
    return tuple(s if w < g else 0 for g, w, s in zip(grid, window, shift))  # type: ignore[return-value]


def padded_grid(grid: Triple, window: Triple) -> Triple:
    return tuple(-(-g // w) * w for g, w in zip(grid, window))  # type: ignore[return-value]


def _window_mask(grid: Triple, window: Triple, shift: Triple, device) -> Tensor | None:
    """(nW, Wtok, Wtok) bool mask (True = attend) on the padded, rolled grid; None when nothing is masked."""
    pgrid = padded_grid(grid, window)
    if shift == (0, 0, 0) and pgrid == tuple(grid):
        return None
    labels, valids = [], []
    for g, pg, w, s in zip(grid, pgrid, window, shift):
        p = torch.arange(pg, device=device)  # position in the rolled grid
        orig = (p + s) % pg  # position before the roll
        region = torch.zeros(pg, dtype=torch.long, device=device)
        if s > 0:  # Swin regions: [0, pg-w), [pg-w, pg-s), [pg-s, pg)
            region = (p >= pg - w).long() + (p >= pg - s).long()
        labels.append(region)
        valids.append(orig < g)
    lab = (labels[0][:, None, None] * 3 + labels[1][None, :, None]) * 3 + labels[2][None, None, :]  # (T', H', W')
    val = valids[0][:, None, None] & valids[1][None, :, None] & valids[2][None, None, :]
    lab, val = _windows(lab[None, ..., None], window)[..., 0], _windows(val[None, ..., None], window)[..., 0]
    same = lab[:, :, None] == lab[:, None, :]  # (nW, Wtok, Wtok)
    return same & (val[:, None, :] | ~val[:, :, None])


def _windows(x: Tensor, window: Triple) -> Tensor:
    """(B, T', H', W', C) -> (B * nW, Wtok, C)."""
    b, t, h, w, c = x.shape
    wt, wh, ww = window
    x = x.view(b, t // wt, wt, h // wh, wh, w // ww, ww, c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, wt * wh * ww, c)


def _unwindows(x: Tensor, b: int, pgrid: Triple, window: Triple) -> Tensor:
    """(B * nW, Wtok, C) -> (B, T', H', W', C)."""
    t, h, w = pgrid
    wt, wh, ww = window
    x = x.view(b, t // wt, h // wh, w // ww, wt, wh, ww, -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, t, h, w, -1)


def window_attention(q: Tensor, k: Tensor, v: Tensor, grid: Triple, heads: int, window: Triple, shift: Triple,
                     layer: int) -> Tensor:
    """q, k, v (B, L, D) in row-major (t, h, w) order -> (B, L, D)."""
    check_window(grid, window)
    b, n, d = q.shape
    s = effective_shift(grid, window, shift, layer)
    pgrid = padded_grid(grid, window)
    x = torch.cat([q, k, v], dim=-1).view(b, *grid, 3 * d)  # (B, t, h, w, 3D)
    pad = [0, 0] + [item for g, pg in zip(reversed(grid), reversed(pgrid)) for item in (0, pg - g)]
    if any(pad):
        x = F.pad(x, pad)  # (B, T', H', W', 3D)
    if any(s):
        x = torch.roll(x, shifts=tuple(-i for i in s), dims=(1, 2, 3))
    win = _windows(x, window)  # (B*nW, Wtok, 3D)
    qw, kw, vw = win.view(win.shape[0], win.shape[1], 3, heads, d // heads).permute(2, 0, 3, 1, 4)  # (B*nW,h,W,hd)
    mask = _window_mask(grid, window, s, q.device)
    if mask is not None:
        mask = mask[:, None].unsqueeze(0).expand(b, -1, -1, -1, -1).reshape(-1, 1, *mask.shape[1:])
    y = F.scaled_dot_product_attention(qw, kw, vw, attn_mask=mask)  # (B*nW, heads, Wtok, hd)
    y = _unwindows(y.transpose(1, 2).reshape(y.shape[0], y.shape[2], d), b, pgrid, window)  # (B, T', H', W', D)
    if any(s):
        y = torch.roll(y, shifts=s, dims=(1, 2, 3))
    return y[:, :grid[0], :grid[1], :grid[2]].reshape(b, n, d)
