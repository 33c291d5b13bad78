"""Parameter and FLOP terms of the ReLU linear-attention mixer (``baselines/linear_attn.py``), pure python.

Registered with ``lingen.analytic`` under mixer ``"linear"`` so ``evalkit.models.estimate_flops`` covers it
without importing torch. Convention as in ``lingen/analytic.py``: 2 FLOPs per multiply-add, matmuls only (ReLU,
RoPE, norms and the key sum are elementwise / reductions and are not counted), one layer, batch 1.

Per layer, L tokens, width d, heads H of size e = d / H:
    q, k, v and output projections            2 L (3 d^2) + 2 L d^2
    numerator  (V K_rot^T) Q_rot per head      2 L e^2  (K^T V, an e x e state)  +  2 L e^2  (state @ Q)
    denominator (sum_j relu(k_j))^T relu(q_i)  2 L e per head
    total mixer = 8 L d^2 + 4 L d e + 2 L d    -> linear in L (SANA, arXiv 2410.10629, and SANA-Video,
                                                  arXiv 2509.24695: O(N) instead of softmax attention's O(N^2))
"""
from __future__ import annotations

from lingen import analytic
from lingen.config import ModelConfig

Triple = tuple[int, int, int]


def params(cfg: ModelConfig) -> int:
    d = cfg.d_model
    return 4 * d * d + (2 * d if cfg.linear.qk_norm else 0)  # qkv + out, q/k RMSNorm weights


def flops(cfg: ModelConfig, grid: Triple, layer: int) -> float:
    d, e = cfg.d_model, cfg.head_dim
    L = grid[0] * grid[1] * grid[2]
    return float(2 * L * 3 * d * d + 2 * L * d * d + 4 * L * d * e + 2 * L * d)


def rope_pairs(head_dim: int) -> Triple:
    """Rotary frequency pairs per (t, h, w) axis: Wan / SANA-Video split the head as h = w = 2 * (e // 6) channels
    and the rest to t (diffusers ``WanRotaryPosEmbed``), i.e. e // 6 pairs for h and w each."""
    hw = head_dim // 6
    return (head_dim // 2 - 2 * hw, hw, hw)


def check(cfg: ModelConfig, grid: Triple) -> None:
    if cfg.linear.rope and cfg.head_dim % 2:
        raise ValueError(f"linear.rope: RoPE rotates channel pairs, head dim {cfg.head_dim} is odd")


analytic.register_mixer("linear", analytic.MixerTerms(params=params, flops=flops, check=check))
