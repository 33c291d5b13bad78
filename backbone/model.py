"""The shared video diffusion-transformer backbone of LinGen, the matched DiT and every mixer of ``baselines/``
(LinGen Fig. 2, Movie Gen lineage): everything but the token mixer.

latent (B, C, T, H, W) -> 1x2x2 patchify (linear on patches) -> + factorized learnable T/H/W positional embeddings
(added before every block, as in Movie Gen) -> N blocks -> adaLN final norm -> unpatchify -> velocity (B, C, T, H, W).

Block (Llama-3 / Movie Gen style, no linear biases, RMSNorm):
    x = x + gate1 * mixer(modulate(norm(x), shift1, scale1))        # mixer: full 3D attention (DiT) or MATE (LinGen)
    x = x + cross_attention(norm(x), text)                          # text context projected once (Linear + LayerNorm)
    x = x + gate2 * SwiGLU(modulate(norm(x), shift2, scale2))
Timestep: sinusoidal -> MLP -> adaLN-single (PixArt-alpha): one shared Linear(d, 6d) plus a learned per-block (6, d)
table; gates (and the output projection) are zero-initialised.

Shape legend: B batch, C latent channels, T/H/W latent grid, t/h/w token grid after patchify, L = t*h*w tokens,
D model width, S text tokens, E text width.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from backbone.config import BackboneConfig


class RMSNorm(nn.Module):
    """RMSNorm (Zhang & Sennrich 2019); ``affine=False`` for the adaLN-modulated norms."""

    def __init__(self, dim: int, eps: float = 1e-6, affine: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if affine else None

    def forward(self, x: Tensor) -> Tensor:
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return y * self.weight if self.weight is not None else y


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of t in [0, 1] (scaled by 1000 as in DiT). t (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class SwiGLU(nn.Module):
    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.w12 = nn.Linear(d, 2 * hidden, bias=False)
        self.w3 = nn.Linear(hidden, d, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


class CrossAttention(nn.Module):
    """Video tokens attend to the (already projected) text context."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(d, d, bias=False)
        self.kv = nn.Linear(d, 2 * d, bias=False)
        self.o = nn.Linear(d, d, bias=False)

    def forward(self, x: Tensor, ctx: Tensor, mask: Tensor | None) -> Tensor:
        q = rearrange(self.q(x), "b l (h e) -> b h l e", h=self.heads)  # (B, heads, L, hd)
        k, v = rearrange(self.kv(ctx), "b s (two h e) -> two b h s e", two=2, h=self.heads)  # (B, heads, S, hd)
        attn_mask = mask[:, None, None, :] if mask is not None else None  # (B, 1, 1, S)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.o(rearrange(y, "b h l e -> b l (h e)"))


def normal_param(*shape: int, std: float | None = None, over: float | None = None) -> nn.Parameter:
    """``torch.randn(*shape) * std`` (or ``/ over``) as a parameter. On the meta device (FLOP counting) only the
    shape exists: drawing there would run torch's Python meta kernels (randn, mul) and import torch._dynamo, about
    1.5 s of counting a 4B model; on real devices the values and the RNG stream are exactly as before."""
    t = torch.empty(*shape)
    if t.is_meta:
        return nn.Parameter(t)
    t = torch.randn(*shape)
    return nn.Parameter(t * std if over is None else t / over)


MixerFactory = Callable[[BackboneConfig, int], nn.Module]  # (cfg, layer index) -> module(x (B,L,D), grid) -> (B,L,D)


class Block(nn.Module):
    def __init__(self, cfg: BackboneConfig, layer: int, mixer_factory: MixerFactory) -> None:
        super().__init__()
        d = cfg.d_model
        self.table = normal_param(6, d, over=math.sqrt(d))  # adaLN-single per-block offsets
        with torch.no_grad():
            self.table[2].zero_()  # gate of the mixer: zero-init
            self.table[5].zero_()  # gate of the FFN: zero-init
        self.norm1 = RMSNorm(d, cfg.norm_eps, affine=False)
        self.mixer = mixer_factory(cfg, layer)
        self.norm_x = RMSNorm(d, cfg.norm_eps)
        self.cross = CrossAttention(d, cfg.heads)
        self.norm2 = RMSNorm(d, cfg.norm_eps, affine=False)
        self.ffn = SwiGLU(d, cfg.ffn_dim)

    def forward(self, x: Tensor, grid: tuple[int, int, int], mod: Tensor, ctx: Tensor, mask: Tensor | None) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = (self.table[None] + mod).unbind(1)  # each (B, D)
        x = x + gate1[:, None] * self.mixer(modulate(self.norm1(x), shift1, scale1), grid)
        x = x + self.cross(self.norm_x(x), ctx, mask)
        return x + gate2[:, None] * self.ffn(modulate(self.norm2(x), shift2, scale2))


class VideoDiT(nn.Module):
    """The backbone with a pluggable token mixer.

    forward(x (B, C, T, H, W), t (B,), context (B, S, E), context_mask (B, S) bool | None) -> (B, C, T, H, W).
    """

    def __init__(self, cfg: BackboneConfig, mixer_factory: MixerFactory) -> None:
        super().__init__()
        cfg.check()
        self.cfg = cfg
        d = cfg.d_model
        self.patch = nn.Linear(cfg.patch_dim, d, bias=False)
        mt, mh, mw = cfg.max_grid
        self.pos_t = normal_param(mt, d, std=0.02)
        self.pos_h = normal_param(mh, d, std=0.02)
        self.pos_w = normal_param(mw, d, std=0.02)
        self.t_mlp = nn.Sequential(nn.Linear(cfg.timestep_dim, d, bias=False), nn.SiLU(), nn.Linear(d, d, bias=False))
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d, bias=False))  # adaLN-single
        with torch.no_grad():
            self.t_block[1].weight[2 * d:3 * d].zero_()  # mixer gate starts at zero
            self.t_block[1].weight[5 * d:6 * d].zero_()  # FFN gate starts at zero
        self.text_proj = nn.Sequential(nn.Linear(cfg.text_dim, d, bias=False), nn.LayerNorm(d))
        self.blocks = nn.ModuleList(Block(cfg, i, mixer_factory) for i in range(cfg.depth))
        self.norm_out = RMSNorm(d, cfg.norm_eps, affine=False)
        self.out_table = normal_param(2, d, over=math.sqrt(d))
        self.unpatch = nn.Linear(d, cfg.patch_dim, bias=False)
        nn.init.zeros_(self.unpatch.weight)

    def forward(self, x: Tensor, t: Tensor, context: Tensor, context_mask: Tensor | None = None) -> Tensor:
        cfg = self.cfg
        pt, ph, pw = cfg.latent.patch
        T, H, W = x.shape[2:]
        grid = (T // pt, H // ph, W // pw)
        gt, gh, gw = grid
        if gt > cfg.max_grid[0] or gh > cfg.max_grid[1] or gw > cfg.max_grid[2]:
            raise ValueError(f"max_grid: token grid {grid} exceeds the positional tables {cfg.max_grid}")
        # 1. patchify: (B, C, T, H, W) -> (B, L, C*pt*ph*pw) -> (B, L, D)
        h = self.patch(rearrange(x, "b c (t pt) (h ph) (w pw) -> b (t h w) (c pt ph pw)", pt=pt, ph=ph, pw=pw))
        pos = (self.pos_t[:gt, None, None] + self.pos_h[None, :gh, None] + self.pos_w[None, None, :gw])  # (t,h,w,D)
        pos = pos.reshape(1, gt * gh * gw, -1).to(h.dtype)  # (1, L, D)
        # 2. timestep -> adaLN-single modulation (B, 6, D); text -> (B, S, D)
        temb = self.t_mlp(timestep_embedding(t, cfg.timestep_dim).to(h.dtype))  # (B, D)
        mod = self.t_block(temb).view(-1, 6, cfg.d_model)  # (B, 6, D)
        ctx = self.text_proj(context.to(h.dtype))
        # 3. blocks, positional embedding added before each (Movie Gen)
        for block in self.blocks:
            h = block(h + pos, grid, mod, ctx, context_mask)
        # 4. final adaLN norm and unpatchify: (B, L, C*pt*ph*pw) -> (B, C, T, H, W)
        shift, scale = (self.out_table[None] + temb[:, None]).unbind(1)
        out = self.unpatch(modulate(self.norm_out(h), shift, scale))
        return rearrange(out, "b (t h w) (c pt ph pw) -> b c (t pt) (h ph) (w pw)", t=gt, h=gh, w=gw, pt=pt, ph=ph,
                         pw=pw)


def build_backbone(cfg: BackboneConfig, mixer_factory: MixerFactory, device: str = "cpu",
                   dtype: torch.dtype = torch.float32) -> VideoDiT:
    """The backbone with ``mixer_factory`` as token mixer, built on ``device`` (``"meta"`` allocates nothing) and
    cast to ``dtype``."""
    with torch.device(device):
        model = VideoDiT(cfg, mixer_factory)
    return model.to(dtype=dtype)
