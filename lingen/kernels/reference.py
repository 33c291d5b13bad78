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


def ssd_chunked(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk: int) -> Tensor:
    """Chunked SSD scan. x (b,l,h,p), dt (b,l,h) (already positive), A (h) (negative), B/C (b,l,h,n) -> (b,l,h,p)."""
    b, l, h, p = x.shape
    n = B.shape[-1]
    q = max(1, min(chunk, l))
    nc = -(-l // q)
    lp = nc * q
    # 1. pad to whole chunks (dt = 0 on padding: no decay, no input) and split: (b, nc, q, ...)
    xs = _pad_len(x, lp).view(b, nc, q, h, p)
    dts = _pad_len(dt, lp).view(b, nc, q, h)
    Bs = _pad_len(B, lp).view(b, nc, q, h, n)
    Cs = _pad_len(C, lp).view(b, nc, q, h, n)
    cum = torch.cumsum(dts * A, dim=2)  # (b, nc, q, h) log-decay from chunk start
    causal = torch.ones(q, q, dtype=torch.bool, device=x.device).tril()
    state = x.new_zeros(b, h, n, p)
    ys = []
    for c in range(nc):
        xc = xs[:, c].permute(0, 2, 1, 3)  # (b, h, q, p)
        Bc = Bs[:, c].permute(0, 2, 1, 3)  # (b, h, q, n)
        Cc = Cs[:, c].permute(0, 2, 1, 3)  # (b, h, q, n)
        cc = cum[:, c].transpose(1, 2)  # (b, h, q)
        dtc = dts[:, c].transpose(1, 2)  # (b, h, q)
        # 2. intra-chunk: y_diag = (C B^T * decay(t, s) * dt_s, s <= t) @ x
        seg = (cc[..., :, None] - cc[..., None, :]).masked_fill(~causal, float("-inf"))  # (b, h, q, q)
        scores = (Cc @ Bc.transpose(-1, -2)) * torch.exp(seg) * dtc[..., None, :]  # (b, h, q, q)
        y = scores @ xc  # (b, h, q, p)
        # 3. contribution of the carried state: y_off = (C * decay from chunk start) @ state
        y = y + (Cc * torch.exp(cc)[..., None]) @ state  # (b, h, q, p)
        ys.append(y)
        # 4. carry the state to the end of the chunk
        to_end = torch.exp(cc[..., -1:] - cc) * dtc  # (b, h, q)
        state = torch.exp(cc[..., -1])[..., None, None] * state + (Bc * to_end[..., None]).transpose(-1, -2) @ xc
    out = torch.stack(ys, dim=1)  # (b, nc, h, q, p)
    return out.permute(0, 1, 3, 2, 4).reshape(b, lp, h, p)[:, :l]


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
