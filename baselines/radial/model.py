"""Radial attention (Li et al., arXiv 2506.19852) as the token mixer of the shared backbone: softmax attention
restricted to a static block mask whose spatial band halves each time the temporal distance doubles
(``baselines/radial/spec.py`` defines the mask, its density and its cost).

One reference implementation for every device, block-sparse in the way a block-sparse kernel is (the official code
runs flashinfer's ``BlockSparseAttentionWrapper``): for the P kept (query block, key block) pairs, scores
[P, b, b] = Q_blk K_blk^T and outputs P_blk V_blk are batched matmuls over the pairs only, and the softmax is
normalised per query block across all its kept key blocks (max, exp-sum and output summed back with
``index_add``). So the FLOPs FlopCounterMode sees on meta are 4 d b^2 nnz, the work of the kept blocks, equal to
``RadialConfig.mixer_flops``; a dense masked attention would count L^2. Memory holds P b^2 scores per head: fine on CPU
and meta, too much for the 4b flavor at long durations on one GPU (a fused block-sparse kernel would be the GPU
path; not built here).

Shape legend: B batch, L = t*h*w tokens (row-major), D width, H heads, e = D / H, NB = L / b blocks, b tokens per
block, P kept block pairs.
"""
from __future__ import annotations

import functools

import torch
from torch import Tensor

from backbone.model import build_backbone
from baselines.dit.model import SelfAttention
from baselines.radial import spec as terms
from baselines.radial.spec import RadialConfig, RadialSpec

Triple = tuple[int, int, int]


@functools.lru_cache(maxsize=32)
def block_pairs(spec: RadialSpec, t: int, s: int) -> tuple[Tensor, Tensor]:
    """(query block ids, key block ids), each (P,) int64 on CPU, sorted by query block; block id = frame * nb + a."""
    nb = s // spec.block
    qs, ks = [], []
    by_band: dict[int, list[tuple[int, int]]] = {}
    for i, j, m in terms.frame_pairs(spec, t, s):
        by_band.setdefault(nb if m == terms.DENSE else min(m, nb), []).append((i, j))
    for m, pairs in by_band.items():
        ij = torch.tensor(pairs, device="cpu")  # (R, 2) frame pairs with this half-width
        a = torch.arange(nb, device="cpu")
        off = torch.arange(-m, m + 1, device="cpu")
        c = a[:, None] + off[None, :]  # (nb, 2m+1) key block inside the key frame
        keep = (c >= 0) & (c < nb)
        a_k, c_k = a[:, None].expand_as(c)[keep], c[keep]  # (n_pairs_per_frame_pair,)
        qs.append((ij[:, 0:1] * nb + a_k[None]).reshape(-1))
        ks.append((ij[:, 1:2] * nb + c_k[None]).reshape(-1))
    q, k = torch.cat(qs), torch.cat(ks)
    order = torch.argsort(q * (t * nb) + k)
    return q[order], k[order]


def block_sparse_attention(q: Tensor, k: Tensor, v: Tensor, heads: int, block: int, qi: Tensor,
                           ki: Tensor) -> Tensor:
    """q, k, v (B, L, D) row-major -> (B, L, D); softmax attention over the kept (qi[p], ki[p]) block pairs."""
    b, n, d = q.shape
    nb, e = n // block, d // heads
    blocks = lambda x: x.view(b, nb, block, heads, e).permute(0, 3, 1, 2, 4)  # noqa: E731  (B, H, NB, b, e)
    qb, kb, vb = blocks(q), blocks(k), blocks(v)
    # 1. scores of the kept block pairs only: (B, H, P, b, e) @ (B, H, P, e, b) -> (B, H, P, b, b)
    s = torch.matmul(qb[:, :, qi], kb[:, :, ki].transpose(-1, -2)) * e ** -0.5
    # 2. softmax over all kept keys of each query row: per-row max (a constant, no gradient needed) and exp-sum
    with torch.no_grad():
        m = s.amax(-1)  # (B, H, P, b)
        index = qi.view(1, 1, -1, 1).expand_as(m)
        row_max = m.new_full((b, heads, nb, block), float("-inf")).scatter_reduce_(2, index, m, "amax")
    p = torch.exp(s - row_max[:, :, qi, :, None])  # (B, H, P, b, b)
    den = s.new_zeros(b, heads, nb, block).index_add(2, qi, p.sum(-1))  # (B, H, NB, b)
    # 3. outputs: (B, H, P, b, b) @ (B, H, P, b, e), summed back per query block
    o = s.new_zeros(b, heads, nb, block, e).index_add(2, qi, torch.matmul(p, vb[:, :, ki]))
    y = o / den[..., None]  # (B, H, NB, b, e)
    return y.permute(0, 2, 3, 1, 4).reshape(b, n, d)


class RadialAttention(SelfAttention):
    """``forward(x (B, L, D), grid) -> (B, L, D)``: DiT's q/k/v/out projections (parameter-matched), its own
    attention pattern."""

    def forward(self, x: Tensor, grid: Triple) -> Tensor:
        grid = tuple(int(g) for g in grid)  # plain ints (a jit trace hands over shape tensors)
        self.cfg.check_grid(grid)
        qi, ki = block_pairs(self.cfg.radial, grid[0], grid[1] * grid[2])
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        y = block_sparse_attention(q, k, v, self.heads, self.cfg.radial.block, qi.to(x.device), ki.to(x.device))
        return self.out(y)


def build(cfg: RadialConfig, device: str = "cpu", dtype: torch.dtype = torch.float32, kernels: str = "auto"):
    """The shared backbone with RadialAttention as token mixer; ``kernels`` is accepted for a uniform signature
    (batched matmuls)."""
    return build_backbone(cfg, RadialAttention, device, dtype)
