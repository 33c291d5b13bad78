"""Closed-form parameter and FLOP counts of the shared backbone around any token mixer (pure python, no torch).

Convention: 2 FLOPs per multiply-add, matmuls / convolutions / attention only (elementwise work, norms, softmax and
the scans' exp/cumsum are not counted), exactly what ``torch.utils.flop_counter.FlopCounterMode`` counts on the
meta device. Every term mirrors one module of ``backbone/model.py``; the mixer contributes its own terms through
its config class (``mixer_params`` / ``mixer_flops``, next to the mixer's code). Tests check equality with the
built model (parameters) and with the FLOPs counted on ``meta``.
"""
from __future__ import annotations

from backbone.config import BackboneConfig, Triple


def block_params(cfg: BackboneConfig) -> int:
    """adaLN table (6 d), the mixer, the cross-attention (q, kv, out + norm weight) and the SwiGLU FFN."""
    d = cfg.d_model
    return 6 * d + cfg.mixer_params() + d + 4 * d * d + 3 * d * cfg.ffn_dim


def param_count(cfg: BackboneConfig) -> int:
    d = cfg.d_model
    embed = cfg.patch_dim * d + sum(cfg.max_grid) * d          # patch projection + factorized positional tables
    cond = cfg.timestep_dim * d + d * d + 6 * d * d + cfg.text_dim * d + 2 * d   # timestep MLP, adaLN, text proj
    final = 2 * d + d * cfg.patch_dim                           # output table + unpatchify
    return embed + cond + final + cfg.depth * block_params(cfg)


def flops_breakdown(cfg: BackboneConfig, grid: Triple) -> dict[str, float]:
    """Forward FLOPs of one denoiser call, batch 1: {"mixer", "cross_attention", "ffn", "other"}."""
    d, S = cfg.d_model, cfg.text_len
    L = grid[0] * grid[1] * grid[2]
    mixer = sum(cfg.mixer_flops(grid, layer) for layer in range(cfg.depth))
    cross = cfg.depth * (2 * L * d * d + 2 * S * 2 * d * d + 4 * L * S * d + 2 * L * d * d)
    ffn = cfg.depth * 6 * L * d * cfg.ffn_dim
    other = (2 * L * cfg.patch_dim * d * 2  # patchify + unpatchify
             + 2 * (cfg.timestep_dim * d + d * d) + 2 * 6 * d * d  # timestep MLP + adaLN-single
             + 2 * S * cfg.text_dim * d)  # text projection
    return {"mixer": float(mixer), "cross_attention": float(cross), "ffn": float(ffn), "other": float(other)}
