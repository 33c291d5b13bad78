"""The ReLU linear-attention mixer as the harness sees it, pure python: its options, parameter and FLOP terms and
its entry (the torch code is ``baselines/linear_attn/model.py``, the flavors ``baselines/linear_attn/preset.yaml``).
Convention as in ``backbone/config.py``: 2 FLOPs per multiply-add, matmuls only (ReLU, RoPE, norms and the key sum
are elementwise / reductions and are not counted), one layer, batch 1.

Per layer, L tokens, width d, heads H of size e = d / H:
    q, k, v and output projections            2 L (3 d^2) + 2 L d^2
    numerator  (V K_rot^T) Q_rot per head      2 L e^2  (K^T V, an e x e state)  +  2 L e^2  (state @ Q)
    denominator (sum_j relu(k_j))^T relu(q_i)  2 L e per head
    total mixer = 8 L d^2 + 4 L d e + 2 L d    -> linear in L (SANA, arXiv 2410.10629, and SANA-Video,
                                                  arXiv 2509.24695: O(N) instead of softmax attention's O(N^2))
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from backbone.config import BackboneConfig, ModelFamily, Triple


@dataclass(frozen=True, kw_only=True)
class LinearAttnSpec:
    """ReLU linear attention as SANA-Video uses it."""

    qk_norm: bool = True  # RMSNorm over the full q / k width before the ReLU
    rope: bool = True  # 3D RoPE on relu(q), relu(k) in the numerator only
    rope_theta: float = 10000.0
    eps: float = 1e-15  # added to the denominator


def rope_pairs(head_dim: int) -> Triple:
    """Rotary frequency pairs per (t, h, w) axis: Wan / SANA-Video split the head as h = w = 2 * (e // 6) channels
    and the rest to t (diffusers ``WanRotaryPosEmbed``), i.e. e // 6 pairs for h and w each."""
    hw = head_dim // 6
    return (head_dim // 2 - 2 * hw, hw, hw)


@dataclass(frozen=True, kw_only=True)
class LinearAttnConfig(BackboneConfig):
    """The backbone with ReLU linear attention as token mixer."""

    name: str = "linear-attn"
    mixer: Literal["linear"] = "linear"
    linear: LinearAttnSpec = field(default_factory=LinearAttnSpec)

    def check_grid(self, grid: Triple) -> None:
        if self.linear.rope and self.head_dim % 2:
            raise ValueError(f"linear.rope: RoPE rotates channel pairs, head dim {self.head_dim} is odd")

    def mixer_params(self) -> int:
        d = self.d_model
        return 4 * d * d + (2 * d if self.linear.qk_norm else 0)  # qkv + out, q/k RMSNorm weights

    def mixer_flops(self, grid: Triple, layer: int) -> float:
        d, e = self.d_model, self.head_dim
        L = grid[0] * grid[1] * grid[2]
        return float(2 * L * 3 * d * d + 2 * L * d * d + 4 * L * d * e + 2 * L * d)

    def layer_kind(self, layer: int) -> tuple:
        return ()  # every layer computes the same ops on the same shapes


ENTRY = ModelFamily(name="linear", config=LinearAttnConfig, module="baselines.linear_attn.model",
                    preset=Path(__file__).with_name("preset.yaml"), options_key="linear")
