"""The torch side every ``openmodels/<family>/model.py`` shares: diffusers' class from a config on a device, and the
forward's input tensors (empty on ``meta``, seeded random elsewhere).

Weights are random (the cost sweep needs shapes, the latency measurement any values): nothing is downloaded. On
``meta`` a model takes no memory, so the released sizes (1.3B-14B) build in about a second on any machine.
"""
from __future__ import annotations

from typing import Any

import torch

EXTRA = "open"


def require_diffusers() -> Any:
    """diffusers, or an ImportError naming the extra that installs it."""
    try:
        import diffusers
    except ImportError as exc:   # the optional dependency: named, never a bare ModuleNotFoundError
        raise ImportError(f"the released models are diffusers' own classes: pip install -e '.[{EXTRA}]' "
                          f"(diffusers 0.42.1, transformers, accelerate); {exc}") from exc
    return diffusers


def build_transformer(cfg: Any, device: str, dtype: torch.dtype) -> torch.nn.Module:
    """diffusers' ``cfg.transformer_class`` built from ``cfg.transformer_kwargs()`` on ``device``, in ``dtype``
    except the modules the class keeps in float32 (``_keep_in_fp32_modules``, as ``from_pretrained`` does), in
    eval mode; ``model.cfg`` is the config."""
    diffusers = require_diffusers()
    cls = getattr(diffusers, cfg.transformer_class)
    with torch.device(device):
        model = cls(**cfg.transformer_kwargs())
    if dtype != torch.float32:
        model = model.to(dtype)
        keep = tuple(getattr(model, "_keep_in_fp32_modules", None) or ())
        for name, module in model.named_modules():
            if name and any(k in name.split(".") for k in keep):
                module.to(torch.float32)
    model.cfg = cfg
    return model.eval()


class Tensors:
    """Input tensors of one forward: ``torch.empty`` on ``meta`` (shapes only), seeded random elsewhere (the same
    seed gives the same inputs on any device: drawn on the CPU, then moved)."""

    def __init__(self, device: str, dtype: torch.dtype, seed: int) -> None:
        self.device, self.dtype = torch.device(device), dtype
        self.meta = self.device.type == "meta"
        self.gen = torch.Generator().manual_seed(seed)

    def randn(self, *shape: int) -> torch.Tensor:
        if self.meta:
            return torch.empty(shape, device="meta", dtype=self.dtype)
        return torch.randn(shape, generator=self.gen).to(self.device, self.dtype)

    def timestep(self, *shape: int) -> torch.Tensor:
        """Diffusion timesteps in [0, 1000), the scale diffusers' pipelines pass."""
        if self.meta:
            return torch.empty(shape, device="meta", dtype=self.dtype)
        return (torch.rand(shape, generator=self.gen) * 1000).to(self.device, self.dtype)

    def mask(self, batch: int, length: int) -> torch.Tensor:
        """A text attention mask with every token valid (bool, what the pipelines pass for a full prompt)."""
        return torch.ones(batch, length, dtype=torch.bool, device=self.device)
