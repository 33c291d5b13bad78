"""DiT-4B baseline (LinGen Figs. 1, 6, 8): the shared backbone with full 3D self-attention as the token mixer."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from backbone.model import build_backbone
from baselines.dit.spec import DiTConfig


class SelfAttention(nn.Module):
    """Full bidirectional self-attention over all L = t*h*w tokens (quadratic in L), via SDPA."""

    def __init__(self, cfg: DiTConfig, layer: int) -> None:
        super().__init__()
        self.cfg, self.heads = cfg, cfg.heads  # cfg: read by the subclasses' patterns (sta, radial)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: Tensor, grid: tuple[int, int, int]) -> Tensor:
        q, k, v = rearrange(self.qkv(x), "b l (three h e) -> three b h l e", three=3, h=self.heads)  # (B,h,L,hd)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(rearrange(y, "b h l e -> b l (h e)"))


def build(cfg: DiTConfig, device: str = "cpu", dtype: torch.dtype = torch.float32, kernels: str = "auto"):
    """The shared backbone with SelfAttention as token mixer; ``kernels`` is accepted for a uniform signature
    (attention always goes through SDPA)."""
    return build_backbone(cfg, SelfAttention, device, dtype)
