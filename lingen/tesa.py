"""TEmporal Swin Attention, the TE-branch of MATE (LinGen Fig. 5).

Self-attention inside fixed (t, h, w) windows of the token grid (size independent of resolution and length, so
the cost is linear in tokens); on odd layers the windows are shifted by ``shift`` (Swin, Liu et al. 2021, Sec.
3.2) so information crosses window borders. Grids that are not a multiple of the window end in a partial window;
a window larger than the grid, or a shift outside [0, window), is an error.

Two exact implementations of the same attention pattern:

- ``split`` (real devices): the Swin cyclic shift plus mask is the same as attention inside the *non-cyclic*
  shifted partition, whose windows along an axis are [0, s), then whole windows [s + k w, s + (k+1) w), then
  one partial window up to the grid's end (padding positions are never keys). Per axis these are at most three
  runs of equal-length intervals, so the grid splits into at most 3 x 3 x 3 blocks of equal-size windows, each
  one mask-free SDPA call: the flash kernel can run every window (unshifted, unpadded layers are one call).
- ``masked`` (the ``meta`` device, i.e. FLOP counting): the grid zero-padded to whole windows, cyclically rolled,
  and one SDPA call with a boolean mask. It computes full windows on the padded grid, which is what the analytic
  TESA term counts (``lingen.spec``: 4 x padded tokens x window tokens x D); ``split`` skips the masked-out
  blocks, so on shifted or padded layers it executes fewer attention FLOPs than are counted: for the 4b preset
  at 512p a shifted layer's windows execute 0.68x (17 s) / 0.85x (68 s) of the counted attention FLOPs, 0.26 % /
  0.12 % of the whole forward (benchmarks/tesa_paths.py prints both counts).

Both are checked against a brute-force masked full attention in tests/lingen/test_tesa.py.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor

Triple = tuple[int, int, int]
IMPLS = ("auto", "split", "masked")


def check_window(grid: Triple, window: Triple) -> None:
    for axis, g, w in zip("thw", grid, window):
        if w > g:
            raise ValueError(f"mate.window: window {tuple(window)} is larger than the token grid {tuple(grid)} "
                             f"along {axis} ({w} > {g}); choose a window <= the grid (e.g. a shorter t window)")


def check_shift(window: Triple, shift: Triple) -> None:
    for axis, w, s in zip("thw", window, shift):
        if not 0 <= s < w:
            raise ValueError(f"mate.shift: shift {tuple(shift)} must be in [0, window) along every axis "
                             f"(window {tuple(window)}; along {axis}: {s} vs {w}); Swin uses about half the window")


def effective_shift(grid: Triple, window: Triple, shift: Triple, layer: int) -> Triple:
    """Shift used on ``layer``: zero on even layers and along axes the window already covers."""
    if layer % 2 == 0:
        return (0, 0, 0)
    return tuple(s if w < g else 0 for g, w, s in zip(grid, window, shift))  # type: ignore[return-value]


def padded_grid(grid: Triple, window: Triple) -> Triple:
    return tuple(-(-g // w) * w for g, w in zip(grid, window))  # type: ignore[return-value]


def segments(g: int, w: int, s: int) -> list[tuple[int, int, int]]:
    """Windows along one axis of length ``g`` (window ``w``, shift ``s``) as runs (start, count, length)."""
    runs = [(0, 1, s)] if s else []
    full = (g - s) // w
    if full:
        runs.append((s, full, w))
    if (rest := g - s - full * w) > 0:
        runs.append((s + full * w, 1, rest))
    return runs


def sdpa_kernel_name(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> str:
    """The SDPA kernel PyTorch dispatches these inputs to (its own selection function, cheap, no profiler)."""
    if q.device.type == "meta":
        return "meta"
    try:
        from torch.nn.attention import SDPBackend

        return SDPBackend(torch._fused_sdp_choice(q, k, v, mask, 0.0, False)).name.lower()
    except Exception:  # noqa: BLE001 - a private helper of torch: report, never fail the forward
        return "unknown"


def _windows(x: Tensor, window: Triple) -> Tensor:
    """(B, T', H', W', C) -> (B * nW, Wtok, C) (x may be a strided slice: splitting dims is always a view)."""
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


def _attend(win: Tensor, heads: int, mask: Tensor | None, used: set[str] | None, tag: str) -> Tensor:
    """win (nW, Wtok, 3D) [q | k | v] -> (nW, Wtok, D)."""
    nw, wtok, d3 = win.shape
    d = d3 // 3
    qw, kw, vw = win.view(nw, wtok, 3, heads, d // heads).permute(2, 0, 3, 1, 4)  # each (nW, heads, Wtok, hd)
    if used is not None:
        used.add(f"{tag}:{sdpa_kernel_name(qw, kw, vw, mask)}")
    y = F.scaled_dot_product_attention(qw, kw, vw, attn_mask=mask)  # (nW, heads, Wtok, hd)
    return y.transpose(1, 2).reshape(nw, wtok, d)  # (nW, Wtok, D)


def _split(x: Tensor, grid: Triple, heads: int, window: Triple, s: Triple, used: set[str] | None) -> Tensor:
    """x (B, t, h, w, 3D) -> (B, t, h, w, D): one mask-free SDPA call per block of equal-size windows."""
    b = x.shape[0]
    blocks = list(itertools.product(*(segments(g, w, sh) for g, w, sh in zip(grid, window, s))))
    out = x.new_empty(*x.shape[:4], x.shape[4] // 3) if len(blocks) > 1 else None  # (B, t, h, w, D)
    for (t0, ct, lt), (h0, ch, lh), (w0, cw, lw) in blocks:
        sl = (slice(None), slice(t0, t0 + ct * lt), slice(h0, h0 + ch * lh), slice(w0, w0 + cw * lw))
        win = _windows(x[sl], (lt, lh, lw))  # (B * ct*ch*cw, lt*lh*lw, 3D)
        y = _attend(win, heads, None, used, "split")  # (B * nW, Wtok, D)
        y = _unwindows(y, b, (ct * lt, ch * lh, cw * lw), (lt, lh, lw))  # (B, ct*lt, ch*lh, cw*lw, D)
        if out is None:  # one block = the whole grid (unshifted, unpadded): no second copy
            return y
        out[sl] = y
    return out


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


def _masked(x: Tensor, grid: Triple, heads: int, window: Triple, s: Triple, used: set[str] | None) -> Tensor:
    """x (B, t, h, w, 3D) -> (B, t, h, w, D): padded, rolled grid, one SDPA call with the Swin mask."""
    b = x.shape[0]
    pgrid = padded_grid(grid, window)
    pad = [0, 0] + [item for g, pg in zip(reversed(grid), reversed(pgrid)) for item in (0, pg - g)]
    if any(pad):
        x = F.pad(x, pad)  # (B, T', H', W', 3D)
    if any(s):
        x = torch.roll(x, shifts=tuple(-i for i in s), dims=(1, 2, 3))
    mask = _window_mask(grid, window, s, x.device)
    if mask is not None:  # (nW, Wtok, Wtok) -> (B * nW, 1, Wtok, Wtok)
        mask = mask[:, None].unsqueeze(0).expand(b, -1, -1, -1, -1).reshape(-1, 1, *mask.shape[1:])
    y = _unwindows(_attend(_windows(x, window), heads, mask, used, "masked"), b, pgrid, window)  # (B,T',H',W',D)
    if any(s):
        y = torch.roll(y, shifts=s, dims=(1, 2, 3))
    return y[:, :grid[0], :grid[1], :grid[2]]


def window_attention(q: Tensor, k: Tensor, v: Tensor, grid: Triple, heads: int, window: Triple, shift: Triple,
                     layer: int, impl: str = "auto", used: set[str] | None = None) -> Tensor:
    """q, k, v (B, L, D) in row-major (t, h, w) order -> (B, L, D).

    ``impl``: 'split' | 'masked' | 'auto' ('masked' on the meta device, where FLOPs are counted; 'split'
    elsewhere). ``used``, when given, receives '<impl>:<sdpa kernel>' for every SDPA call.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl: unknown TESA implementation {impl!r}. Valid choices: {', '.join(IMPLS)}")
    check_window(grid, window)
    check_shift(window, shift)
    b, n, d = q.shape
    s = effective_shift(grid, window, shift, layer)
    x = torch.cat([q, k, v], dim=-1).view(b, *grid, 3 * d)  # (B, t, h, w, 3D)
    if impl == "auto":
        impl = "masked" if q.device.type == "meta" else "split"
    y = (_masked if impl == "masked" else _split)(x, grid, heads, window, s, used)  # (B, t, h, w, D)
    return y.reshape(b, n, d)
