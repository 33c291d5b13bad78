"""MATE token mixer (LinGen Fig. 2): MA-branch (bidirectional Mamba2 + Rotary Major Scan + review tokens) and
TE-branch (TEmporal Swin Attention), with q/k/v projections shared by both branches (an assumption, stated in
``lingen/preset.yaml``; consistent with LinGen-Uni's "90% of MATE weights initialised from self-attention").

    u        = [review tokens ; scan(x)]                 review tokens: avg-pooled scan-ordered x + type embedding
    q, k, v  = W_qkv u                                   shared by both branches
    MA(x)    = scan^-1( RMSNorm( (SSD_fwd + flip(SSD_bwd)) * silu(W_z x) ) )   SSD: x <- v, B <- k, C <- q per head
    TE(x)    = window_attention(q, k, v)                 video tokens only, row-major grid order
    MATE(x)  = W_out (MA(x) + TE(x))                     one output projection over the sum of the branches

Bidirectional (Vim-v2 style, Zhu et al. 2024): shared projections, per-direction depthwise causal conv, dt, A, D;
the backward direction scans the reversed sequence with the (reversed) review tokens in front, its output is
flipped back and summed with the forward one (Fig. 3's full mixing matrix). Review-token outputs are dropped.

Shape legend: B batch, L video tokens, R review tokens, D width, Hs SSD heads, P SSD head dim (= state size N).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from backbone.model import build_backbone
from lingen.kernels.ops import select_backend, selective_scan, ssd_scan
from lingen.scan import Scan, review_tokens
from lingen.spec import LinGenConfig
from lingen.tesa import window_attention

MAMBA1_REF_CHUNK = 16  # blocking of the Mamba-1 reference scan (changes memory, not the result)


FP32_PARAMS = ("A_log", "dt_bias", "D")  # stay float32 under .to(bf16/fp16), as in Mamba2
HALF = (torch.float16, torch.bfloat16)


def _hi(t: Tensor) -> Tensor:
    """float32 for half-precision tensors, unchanged otherwise (float64 tests stay float64)."""
    return t.float() if t.dtype in HALF else t


class MATE(nn.Module):
    """``backend`` ('ref' | 'fused' | 'none') runs the SSD scan; ``backend_reason`` says why it is not 'fused'
    (from ``lingen.kernels.ops.select_backend``); ``te_backend`` is set by each forward to the TESA path and SDPA
    kernel it used (``lingen.tesa``), for the latency records."""

    def __init__(self, cfg: LinGenConfig, layer: int, backend: str = "ref", backend_reason: str = "") -> None:
        super().__init__()
        d, m, s = cfg.d_model, cfg.mate, cfg.mate.ssm
        self.cfg, self.layer, self.backend, self.backend_reason = cfg, layer, backend, backend_reason
        self.te_backend = "none"
        self.heads, self.d = cfg.heads, d
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.out = nn.Linear(d, d, bias=False)
        self.scan = Scan(m.scan, layer)
        if m.ma:
            self.hs = d // s.headdim
            self.z = nn.Linear(d, d, bias=False)
            # per direction: depthwise causal conv over (x, B, C) channels, dt, A, D (Mamba2 inits)
            self.conv = nn.ModuleList(nn.Conv1d(3 * d, 3 * d, s.d_conv, groups=3 * d) for _ in range(2))
            if s.kind == "mamba2":
                self.dt = nn.Linear(d, 2 * self.hs, bias=False)
                nst = (2, self.hs)
                self.A_log = nn.Parameter(torch.log(torch.empty(nst).uniform_(1, 16)))  # A in -[1, 16]
            else:  # Mamba-1: low-rank per-channel dt, A (channels, state) = -(1..N) (S4D-real init)
                r = cfg.dt_rank
                self.dt = nn.Linear(d, 2 * r, bias=False)
                self.dt_up = nn.ModuleList(nn.Linear(r, d, bias=False) for _ in range(2))
                nst = (2, d)
                a = torch.arange(1, s.d_state + 1, dtype=torch.float32).repeat(2, d, 1)
                self.A_log = nn.Parameter(torch.log(a))
            dt0 = torch.exp(torch.empty(nst).uniform_(math.log(1e-3), math.log(1e-1))).clamp(min=1e-4)
            self.dt_bias = nn.Parameter(dt0 + torch.log(-torch.expm1(-dt0)))  # inverse softplus
            self.D = nn.Parameter(torch.ones(nst))
            self.norm_w = nn.Parameter(torch.ones(d))  # gated RMSNorm weight
            if m.review:
                self.review_type = nn.Parameter(torch.zeros(d))

    def _apply(self, fn, recurse=True):
        """Casts and moves as nn.Module does, except that a cast to half precision leaves A_log, dt_bias and D in
        float32 (Mamba2 keeps its SSM parameters in fp32 and computes ``A = -exp(A_log.float())``): they only
        follow the device."""
        keep = {name: (p.detach(), p.grad) for name in FP32_PARAMS
                if isinstance(p := getattr(self, name, None), nn.Parameter) and p.dtype == torch.float32}
        super()._apply(fn, recurse)
        for name, (old, grad) in keep.items():
            new = getattr(self, name)  # the same Parameter, or a new one (swap_module_params_on_conversion)
            if new.dtype in HALF:
                with torch.no_grad():
                    new.data = old.to(device=new.device)
                if grad is not None:
                    new.grad = grad.to(device=new.device)
        return self

    def _direction(self, u: Tensor, dt_in: Tensor, i: int, n_review: int) -> Tensor:
        """One scan direction over u (B, R+L, 3D) [v | k | q]; returns (B, L, D) video outputs, scan order."""
        s = self.cfg.mate.ssm
        b, n, _ = u.shape
        xbc = F.pad(u.transpose(1, 2), (s.d_conv - 1, 0))  # (B, 3D, K-1+n): causal padding
        xbc = F.silu(self.conv[i](xbc)).transpose(1, 2)  # (B, n, 3D)
        x, B, C = xbc.split(self.d, dim=-1)  # x <- v, B <- k, C <- q
        B = B.reshape(b, n, self.hs, s.d_state)  # (B, n, Hs, N)
        C = C.reshape(b, n, self.hs, s.d_state)
        if s.kind == "mamba2":
            # dt, A and the D skip in float32 (the fp32 parameters), as Mamba2; y back in the activation dtype
            dt = F.softplus(_hi(dt_in[..., i * self.hs:(i + 1) * self.hs]) + _hi(self.dt_bias[i]))  # (B, n, Hs)
            xh = x.reshape(b, n, self.hs, s.headdim)  # (B, n, Hs, P)
            y = ssd_scan(xh, dt, -torch.exp(_hi(self.A_log[i])), B, C, s.chunk, self.backend)
            y = (y + xh * _hi(self.D[i])[:, None]).to(x.dtype).reshape(b, n, self.d)  # (B, n, D)
        else:
            r = self.cfg.dt_rank
            dt = F.softplus(_hi(self.dt_up[i](dt_in[..., i * r:(i + 1) * r])) + _hi(self.dt_bias[i]))  # (B, n, D)
            y = selective_scan(x, dt, -torch.exp(_hi(self.A_log[i])), B, C, MAMBA1_REF_CHUNK)
            y = (y + x * _hi(self.D[i])).to(x.dtype)
        return y[:, n_review:]

    def forward(self, x: Tensor, grid: tuple[int, int, int]) -> Tensor:
        m = self.cfg.mate
        b, n, d = x.shape
        if not m.ma:
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            return self.out(self._tesa(q, k, v, grid))
        # 1. scan order (+ review tokens in front)
        seq = self.scan.fwd(x, grid)  # (B, L, D) scan order
        if m.review:
            rev = review_tokens(seq, m.review_stride) + self.review_type  # (B, R, D)
            u_in = torch.cat([rev, seq], dim=1)  # (B, R+L, D)
        else:
            u_in = seq
        nr = u_in.shape[1] - n
        # 2. shared projections; z gate on video tokens only
        qkv = self.qkv(u_in)  # (B, R+L, 3D) = [q | k | v]
        q, k, v = qkv.chunk(3, dim=-1)
        u = torch.cat([v, k, q], dim=-1)  # (B, R+L, 3D): SSD x <- v, B <- k, C <- q
        dt_in = self.dt(u_in)  # (B, R+L, 2Hs) or (B, R+L, 2r)
        # 3. forward direction; backward = reversed video tokens with reversed review tokens in front
        y = self._direction(u, dt_in, 0, nr)  # (B, L, D)
        flip = lambda t: torch.cat([t[:, :nr].flip(1), t[:, nr:].flip(1)], dim=1)  # noqa: E731
        y = y + self._direction(flip(u), flip(dt_in), 1, nr).flip(1)
        # 4. gated RMSNorm (Mamba2 norm_before_gate=False), back to grid order
        y = y * F.silu(self.z(seq))
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.cfg.norm_eps) * self.norm_w
        ma = self.scan.inv(y, grid)  # (B, L, D) grid order
        if not m.tesa:
            return self.out(ma)
        # 5. TE-branch on the video tokens' q, k, v in grid order
        qg, kg, vg = self.scan.inv(qkv[:, nr:], grid).chunk(3, dim=-1)  # each (B, L, D)
        return self.out(ma + self._tesa(qg, kg, vg, grid))

    def _tesa(self, q: Tensor, k: Tensor, v: Tensor, grid: tuple[int, int, int]) -> Tensor:
        """TE-branch (B, L, D) -> (B, L, D); records which path and SDPA kernel ran in ``te_backend``."""
        m, used = self.cfg.mate, set()
        y = window_attention(q, k, v, grid, self.heads, m.window, m.shift, self.layer, used=used)
        self.te_backend = "+".join(sorted(used))
        return y


def build(cfg: LinGenConfig, device: str = "cpu", dtype: torch.dtype = torch.float32, kernels: str = "auto"):
    """LinGen (and its Table 2 variants, switches of ``cfg.mate``) on the shared backbone: the SSD backend is chosen
    once for the model (``lingen.kernels.ops.select_backend``, with the reason when it is not the fused kernel)."""
    backend, reason = select_backend(kernels, device, cfg.mate.ssm.kind if cfg.mate.ma else None)
    return build_backbone(cfg, lambda c, layer: MATE(c, layer, backend, reason), device, dtype)
