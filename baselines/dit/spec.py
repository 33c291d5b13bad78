"""The matched DiT's mixer as the harness sees it, pure python: full 3D self-attention's parameter and FLOP terms and
its entry (the torch code is ``baselines/dit/model.py``, the flavors ``baselines/dit/preset.yaml``).

Per layer, L = t*h*w tokens, width d (2 FLOPs per multiply-add): q, k, v projections 2 L (3 d^2), scores and
values 4 L^2 d (quadratic in L), output projection 2 L d^2.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from backbone.config import BackboneConfig, ModelFamily, Triple


@dataclass(frozen=True, kw_only=True)
class DiTConfig(BackboneConfig):
    """The backbone with full bidirectional self-attention over all t*h*w tokens (LinGen Figs. 1, 6, 8: DiT-4B)."""

    name: str = "dit"
    mixer: Literal["attention"] = "attention"
    # what biases a latency measured with this implementation (written into every latency record)
    latency_caveats: ClassVar[str] = (
        "attention through torch SDPA's own choice of kernel (FlashAttention-2 on an H100 in PyTorch); cuDNN "
        "attention and FlashAttention-3 are faster there (latency.sdpa_backend: cudnn times it with cuDNN)")

    def mixer_params(self) -> int:
        return 4 * self.d_model * self.d_model  # qkv + out

    def mixer_flops(self, grid: Triple, layer: int) -> float:
        d = self.d_model
        L = grid[0] * grid[1] * grid[2]
        return 2 * L * 3 * d * d + 4 * L * L * d + 2 * L * d * d

    def layer_kind(self, layer: int) -> tuple:
        return ()  # every layer computes the same ops on the same shapes


ENTRY = ModelFamily(name="attention", config=DiTConfig, module="baselines.dit.model",
                    preset=Path(__file__).with_name("preset.yaml"))
