"""Plain-PyTorch scan references: chunked (linear in length) and step-by-step (for tests).

SSD (Mamba2, "Transformers are SSMs", Dao & Gu 2024, Sec. 6): per head h, scalar decay a_t = exp(dt_t * A_h),
    state_t = a_t * state_{t-1} + dt_t * B_t x_t^T      (state: n x p)
    y_t     = C_t . state_t
The chunked form splits the sequence into chunks of Q tokens; inside a chunk the output is a masked (C B^T)
matmul, across chunks a state is carried by a python loop over chunks (linear in L; not the segsum over all
chunks of ``ssd_minimal``, which is quadratic in the number of chunks).

Selective scan (Mamba-1, Gu & Dao 2023, Alg. 2): per channel c and state s, decay exp(dt_{t,c} * A_{c,s}),
B_t / C_t shared by the channels of a group.

Shapes: b batch, l length, h heads, p head dim, n state size, g groups, d channels (= g * p for Mamba-1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _pad_len(t: Tensor, lp: int) -> Tensor:
    """Zero-pad dim 1 (length) to ``lp``."""
    extra = lp - t.shape[1]
    if extra == 0:
        return t
    pad = [0, 0] * (t.dim() - 2) + [0, extra]
    return F.pad(t, pad)


def ssd_chunked(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk: int,
                max_block_elems: int = 1 << 24) -> Tensor:
    """Chunked SSD scan. x (b,l,h,p), dt (b,l,h) (already positive), A (h) (negative), B/C (b,l,h,n) -> (b,l,h,p).

    Chunks are processed in blocks of G chunks at once (G chosen so the (b, h, G, q, q) score tensor stays under
    ``max_block_elems``): the intra-chunk products are batched over the block, and only the carried state runs
    through a python loop of one multiply-add per chunk. Cost and memory are linear in l.
    """
    b, l, h, p = x.shape
    n = B.shape[-1]
    q = max(1, min(chunk, l))
    nc = -(-l // q)
    lp = nc * q
    # 1. pad to whole chunks (dt = 0 on padding: no decay, no input), split, heads first: (b, h, nc, q, ...)
    xs = _pad_len(x, lp).view(b, nc, q, h, p).permute(0, 3, 1, 2, 4)  # (b, h, nc, q, p)
    dts = _pad_len(dt, lp).view(b, nc, q, h).permute(0, 3, 1, 2)  # (b, h, nc, q)
    Bs = _pad_len(B, lp).view(b, nc, q, h, n).permute(0, 3, 1, 2, 4)  # (b, h, nc, q, n)
    Cs = _pad_len(C, lp).view(b, nc, q, h, n).permute(0, 3, 1, 2, 4)  # (b, h, nc, q, n)
    cum = torch.cumsum(dts * A[:, None, None], dim=-1)  # (b, h, nc, q) log-decay from each chunk's start
    causal = torch.ones(q, q, dtype=torch.bool, device=x.device).tril()
    group = max(1, min(nc, max_block_elems // max(1, b * h * q * q)))
    state = x.new_zeros(b, h, n, p)  # state entering the current chunk
    ys = []
    for g0 in range(0, nc, group):
        sl = slice(g0, min(nc, g0 + group))
        xg, dtg, Bg, Cg, cg = xs[:, :, sl], dts[:, :, sl], Bs[:, :, sl], Cs[:, :, sl], cum[:, :, sl]
        # 2. intra-chunk: y_diag = (C B^T * decay(t, s) * dt_s, s <= t) @ x, for every chunk of the block
        seg = (cg[..., :, None] - cg[..., None, :]).masked_fill(~causal, float("-inf"))  # (b, h, G, q, q)
        scores = (Cg @ Bg.transpose(-1, -2)) * torch.exp(seg) * dtg[..., None, :]  # (b, h, G, q, q)
        y = scores @ xg  # (b, h, G, q, p)
        # 3. each chunk's own end state (from a zero start): sum_s decay(end, s) dt_s B_s x_s^T
        to_end = torch.exp(cg[..., -1:] - cg) * dtg  # (b, h, G, q)
        local = (Bg * to_end[..., None]).transpose(-1, -2) @ xg  # (b, h, G, n, p)
        # 4. carry the state across the block's chunks: state_c+1 = decay_c * state_c + local_c
        decay = torch.exp(cg[..., -1])  # (b, h, G)
        entering = []
        for c in range(decay.shape[2]):
            entering.append(state)
            state = decay[:, :, c, None, None] * state + local[:, :, c]
        prev = torch.stack(entering, dim=2)  # (b, h, G, n, p)
        # 5. contribution of the entering state: y_off = (C * decay from chunk start) @ state
        ys.append(y + (Cg * torch.exp(cg)[..., None]) @ prev)
    out = torch.cat(ys, dim=2)  # (b, h, nc, q, p)
    return out.permute(0, 2, 3, 1, 4).reshape(b, lp, h, p)[:, :l]


def ssd_sequential(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor) -> Tensor:
    """Step-by-step SSD recurrence (the definition; O(l) python steps, for tests only)."""
    b, l, h, p = x.shape
    state = x.new_zeros(b, h, B.shape[-1], p)
    ys = []
    for t in range(l):
        a = torch.exp(dt[:, t] * A)  # (b, h)
        state = a[..., None, None] * state + (dt[:, t, :, None, None] * B[:, t, :, :, None] * x[:, t, :, None, :])
        ys.append((C[:, t, :, :, None] * state).sum(-2))  # (b, h, p)
    return torch.stack(ys, dim=1)


def selective_chunked(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk: int) -> Tensor:
    """Chunked Mamba-1 selective scan. x, dt (b,l,d); A (d,n); B/C (b,l,g,n), d = g*p -> (b,l,d)."""
    b, l, d = x.shape
    g, n = B.shape[-2:]
    p = d // g
    q = max(1, min(chunk, l))
    nc = -(-l // q)
    lp = nc * q
    # 1. expand groups to channels: (b, nc, q, d, n)
    xs = _pad_len(x, lp).view(b, nc, q, d)
    dts = _pad_len(dt, lp).view(b, nc, q, d)
    Bs = _pad_len(B, lp).view(b, nc, q, g, 1, n).expand(b, nc, q, g, p, n).reshape(b, nc, q, d, n)
    Cs = _pad_len(C, lp).view(b, nc, q, g, 1, n).expand(b, nc, q, g, p, n).reshape(b, nc, q, d, n)
    cum = torch.cumsum(dts[..., None] * A, dim=2)  # (b, nc, q, d, n)
    causal = torch.ones(q, q, dtype=torch.bool, device=x.device).tril()[:, :, None, None]
    state = x.new_zeros(b, d, n)
    ys = []
    for c in range(nc):
        cc, Bc, Cc = cum[:, c], Bs[:, c], Cs[:, c]
        u = dts[:, c, :, :, None] * Bc * xs[:, c, :, :, None]  # (b, q, d, n) input to the state
        # 2. intra-chunk: h_t = sum_{s<=t} exp(cum_t - cum_s) u_s
        seg = (cc[:, :, None] - cc[:, None, :]).masked_fill(~causal, float("-inf"))  # (b, q, q, d, n)
        hs = (torch.exp(seg) * u[:, None]).sum(2)  # (b, q, d, n)
        # 3. carried state decayed from the chunk start
        hs = hs + torch.exp(cc) * state[:, None]
        ys.append((hs * Cc).sum(-1))  # (b, q, d)
        state = hs[:, -1]
    return torch.stack(ys, dim=1).reshape(b, lp, d)[:, :l]


def selective_sequential(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor) -> Tensor:
    """Step-by-step Mamba-1 recurrence (for tests)."""
    b, l, d = x.shape
    g, n = B.shape[-2:]
    p = d // g
    Bx = B.repeat_interleave(p, dim=2)  # (b, l, d, n)
    Cx = C.repeat_interleave(p, dim=2)
    state = x.new_zeros(b, d, n)
    ys = []
    for t in range(l):
        state = torch.exp(dt[:, t, :, None] * A) * state + dt[:, t, :, None] * Bx[:, t] * x[:, t, :, None]
        ys.append((state * Cx[:, t]).sum(-1))
    return torch.stack(ys, dim=1)
