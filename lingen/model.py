"""LinGen denoiser: the shared backbone (``lingen.backbone``) with MATE as the token mixer (LinGen Fig. 2)."""
from __future__ import annotations

import torch

from lingen.backbone import VideoDiT
from lingen.config import ModelConfig
from lingen.kernels.ops import select_backend
from lingen.mate import MATE


def build_lingen(cfg: ModelConfig, device: str = "cpu", dtype: torch.dtype = torch.float32,
                 kernels: str = "auto") -> VideoDiT:
    """LinGen (and its Table 2 variants, which are switches in ``cfg.mate``) on ``device``."""
    if cfg.mixer != "mate":
        raise ValueError(f"mixer: build_lingen needs mixer 'mate', got {cfg.mixer!r}")
    backend, reason = select_backend(kernels, device, cfg.mate.ssm.kind if cfg.mate.ma else None)
    with torch.device(device):
        model = VideoDiT(cfg, lambda c, layer: MATE(c, layer, backend, reason))
    return model.to(dtype=dtype)
