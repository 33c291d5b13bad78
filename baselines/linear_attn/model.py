"""Linear attention as SANA-Video uses it (arXiv 2509.24695, "Linear DiT"; the ReLU linear attention of SANA,
arXiv 2410.10629), as the token mixer of the shared backbone (``backbone/model.py``), in place of DiT's softmax
self-attention. Everything else of the block (cross-attention, SwiGLU FFN, adaLN-single) is the shared backbone's.

    q, k, v = W_qkv x;  q, k = RMSNorm(q), RMSNorm(k)                 qk_norm "rms_norm_across_heads"
    phi     = ReLU                                                     per head, no softmax, no 1/sqrt(e) scale
    O_i     = RoPE(phi(q_i)) [sum_j RoPE(phi(k_j))^T v_j] / (phi(q_i) [sum_j phi(k_j)]^T + eps)
    out     = W_out O

RoPE is applied after the ReLU and only in the numerator, the denominator keeps the un-rotated features so it
stays positive (SANA-Video's formula; diffusers ``SanaLinearAttnProcessor3_0``, which also fixes eps = 1e-15 and
computes in float32). The RoPE is Wan's 3D split of the head over (t, h, w). Cost: one e x e state per head, so
FLOPs and memory are linear in the number of tokens L (``baselines/linear_attn/spec.py``).

Differences from SANA-Video, stated in ``baselines/linear_attn/preset.yaml``: the FFN is the backbone's SwiGLU,
not SANA-Video's Mix-FFN with a temporal convolution (so only the mixer differs from DiT / LinGen), the output
projection has no bias, and the backbone's learned T/H/W positional tables stay (RoPE comes on top, inside the mixer).

Shape legend: B batch, L = t*h*w tokens (row-major), D width, H heads, e = D / H head size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from backbone.model import RMSNorm, build_backbone
from baselines.linear_attn import spec as terms
from baselines.linear_attn.spec import LinearAttnConfig


def rope_tables(grid: tuple[int, int, int], head_dim: int, theta: float, device) -> tuple[Tensor, Tensor]:
    """cos, sin (L, e / 2) of the 3D RoPE: channel pairs [t pairs | h pairs | w pairs], pair k of an axis with
    n pairs rotating by position * theta^(-k / n) (Wan's ``get_1d_rotary_pos_embed`` per axis)."""
    angles = []
    for axis, (g, n) in enumerate(zip(grid, terms.rope_pairs(head_dim))):
        inv = theta ** (-torch.arange(n, device=device, dtype=torch.float64) / n)  # (n,)
        ang = torch.arange(g, device=device, dtype=torch.float64)[:, None] * inv  # (g, n)
        shape = [1, 1, 1, n]
        shape[axis] = g
        angles.append(ang.view(shape).expand(*grid, n))  # (t, h, w, n)
    a = torch.cat(angles, dim=-1).reshape(-1, head_dim // 2)  # (L, e/2)
    return a.cos(), a.sin()  # float64; cast by the caller


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Interleaved-pair rotation of x (B, H, L, e) by the (L, e/2) tables (SANA-Video's ``apply_rotary_emb``)."""
    x1, x2 = x[..., 0::2], x[..., 1::2]  # (B, H, L, e/2) each
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)  # (B, H, L, e)


class LinearAttention(nn.Module):
    """ReLU linear attention over all L tokens; ``forward(x (B, L, D), grid) -> (B, L, D)``."""

    def __init__(self, cfg: LinearAttnConfig, layer: int) -> None:
        super().__init__()
        d = cfg.d_model
        self.heads, self.spec = cfg.heads, cfg.linear
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.out = nn.Linear(d, d, bias=False)
        if self.spec.qk_norm:
            self.q_norm = RMSNorm(d, cfg.norm_eps)
            self.k_norm = RMSNorm(d, cfg.norm_eps)

    def forward(self, x: Tensor, grid: tuple[int, int, int]) -> Tensor:
        sp = self.spec
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # (B, L, D) each
        if sp.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        # 1. feature map, heads: (B, L, D) -> (B, H, L, e), at least float32 as in SANA-Video
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        q, k, v = (rearrange(t, "b l (h e) -> b h l e", h=self.heads).to(acc) for t in (q, k, v))
        q, k = F.relu(q), F.relu(k)
        # 2. RoPE on the numerator's features only
        if sp.rope:
            cos, sin = (c.to(acc) for c in rope_tables(grid, q.shape[-1], sp.rope_theta, x.device))
            qr, kr = rotate(q, cos, sin), rotate(k, cos, sin)
        else:
            qr, kr = q, k
        # 3. numerator: one e x e state per head, then per query
        state = torch.matmul(kr.transpose(-1, -2), v)  # (B, H, e, e) = sum_j kr_j^T v_j
        num = torch.matmul(qr, state)  # (B, H, L, e)
        # 4. denominator from the un-rotated features (positive)
        ksum = k.sum(dim=2, keepdim=True)  # (B, H, 1, e)
        den = torch.matmul(q, ksum.transpose(-1, -2))  # (B, H, L, 1)
        y = (num / (den + sp.eps)).to(x.dtype)
        return self.out(rearrange(y, "b h l e -> b l (h e)"))


def build(cfg: LinearAttnConfig, device: str = "cpu", dtype: torch.dtype = torch.float32, kernels: str = "auto"):
    """The shared backbone with LinearAttention as token mixer; ``kernels`` is accepted for a uniform signature
    (plain matmuls)."""
    return build_backbone(cfg, LinearAttention, device, dtype)
