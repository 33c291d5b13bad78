"""Closed-form parameter and FLOP counts of the modules in ``lingen/`` and ``baselines/`` (pure python, no torch).

Convention: 2 FLOPs per multiply-add, matmuls / convolutions / attention only (elementwise, norms, softmax, scans'
exp/cumsum are not counted), exactly what ``torch.utils.flop_counter.FlopCounterMode`` counts on the meta device
with the custom-op formulas below. Every term mirrors one module; tests check equality with the built model.
FLOP formulas: LinGen reference note Sec. 6 (per-layer terms), Mamba2 SSD per-token cost 2*H*(Q*N + Q*P + 2*N*P)
(``mamba_ssm/ops/triton/ssd_combined.py`` dense chunk cost, per-head B/C), Mamba-1 selective scan 9*B*L*D*N
(the estimate from state-spaces/mamba issue #110, as used by VMamba's flop counters; elementwise work, not matmuls).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lingen.config import ModelConfig

Triple = tuple[int, int, int]


# ---- mixers defined outside lingen/ (baselines/*_terms.py register theirs: lingen never imports baselines) -------
@dataclass(frozen=True, kw_only=True)
class MixerTerms:
    """Closed-form cost of one token mixer: ``params(cfg)`` per layer, ``flops(cfg, grid, layer)`` per layer and
    batch element (same convention as below), ``check(cfg, grid)`` raising ValueError("field: why") when the mixer
    cannot run on the grid."""

    params: Callable[[ModelConfig], int]
    flops: Callable[[ModelConfig, Triple, int], float]
    check: Callable[[ModelConfig, Triple], None] | None = None


MIXER_TERMS: dict[str, MixerTerms] = {}


def register_mixer(mixer: str, terms: MixerTerms) -> None:
    """Make ``param_count`` / ``flops_breakdown`` / ``check_grid`` handle ``cfg.mixer == mixer``."""
    old = MIXER_TERMS.get(mixer)
    if mixer in ("attention", "mate") or (old is not None and old.params.__module__ != terms.params.__module__):
        where = old.params.__module__ if old else "lingen.analytic"
        raise ValueError(f"mixer {mixer!r} already has analytic terms (from {where})")
    MIXER_TERMS[mixer] = terms


def _terms(cfg: ModelConfig) -> MixerTerms:
    if cfg.mixer not in MIXER_TERMS:
        raise ValueError(f"mixer: no analytic terms registered for {cfg.mixer!r} (registered: "
                         f"{sorted(MIXER_TERMS) or 'none'}); import the module that registers them "
                         "(evalkit.models.resolve does so from the registry entry's `terms`)")
    return MIXER_TERMS[cfg.mixer]


def check_grid(cfg: ModelConfig, grid: Triple) -> None:
    """Mixer-specific grid checks of registered mixers (ValueError "field: why"); none for attention / mate."""
    if cfg.mixer not in ("attention", "mate"):
        check = _terms(cfg).check
        if check is not None:
            check(cfg, grid)


def ssd_scan_flops(b: int, l: int, h: int, p: int, n: int, chunk: int) -> int:
    """Chunked SSD scan: C B^T, masked scores @ x, chunk states, C @ state; dense chunks of Q = min(chunk, l)
    over the length padded to whole chunks (what the reference and mamba-ssm's kernel compute)."""
    q = max(1, min(chunk, l))
    lp = -(-l // q) * q
    return 2 * b * lp * h * (q * n + q * p + 2 * n * p)


def selective_scan_flops(b: int, l: int, d: int, n: int) -> int:
    return 9 * b * l * d * n


def num_review(n_tokens: int, stride: int) -> int:
    return -(-n_tokens // stride)


def padded_tokens(grid: Triple, window: Triple) -> int:
    t, h, w = (-(-g // s) * s for g, s in zip(grid, window))
    return t * h * w


# ---- parameters --------------------------------------------------------------------------------------------------
def mixer_params(cfg: ModelConfig) -> int:
    d = cfg.d_model
    if cfg.mixer == "attention":
        return 4 * d * d
    if cfg.mixer != "mate":
        return _terms(cfg).params(cfg)
    m, s = cfg.mate, cfg.mate.ssm
    n = 4 * d * d  # shared qkv + out
    if m.ma:
        hs = d // s.headdim
        n += d * d + 2 * (3 * d * s.d_conv + 3 * d) + d  # z, two depthwise convs (+bias), gated-norm weight
        n += d if m.review else 0  # review type embedding
        if s.kind == "mamba2":
            n += d * 2 * hs + 3 * 2 * hs  # dt proj, A_log, dt_bias, D
        else:
            r = cfg.dt_rank
            n += d * 2 * r + 2 * r * d + 2 * d * s.d_state + 2 * d + 2 * d  # dt down/up, A_log, dt_bias, D
    return n


def block_params(cfg: ModelConfig) -> int:
    d = cfg.d_model
    return 6 * d + mixer_params(cfg) + d + 4 * d * d + 3 * d * cfg.ffn_dim


def param_count(cfg: ModelConfig) -> int:
    d = cfg.d_model
    embed = cfg.patch_dim * d + sum(cfg.max_grid) * d
    cond = cfg.timestep_dim * d + d * d + 6 * d * d + cfg.text_dim * d + 2 * d
    final = 2 * d + d * cfg.patch_dim
    return embed + cond + final + cfg.depth * block_params(cfg)


# ---- FLOPs ---------------------------------------------------------------------------------------------------------
def mixer_flops(cfg: ModelConfig, grid: Triple, layer: int) -> float:
    """Forward FLOPs of one token mixer for batch 1 on a (t, h, w) token grid."""
    d = cfg.d_model
    L = grid[0] * grid[1] * grid[2]
    if cfg.mixer == "attention":
        return 2 * L * 3 * d * d + 4 * L * L * d + 2 * L * d * d
    if cfg.mixer != "mate":
        return _terms(cfg).flops(cfg, grid, layer)
    m, s = cfg.mate, cfg.mate.ssm
    f = 2 * L * d * d  # out projection
    if m.tesa:
        f += 4 * padded_tokens(grid, m.window) * (m.window[0] * m.window[1] * m.window[2]) * d
    if not m.ma:
        return f + 2 * L * 3 * d * d
    n = L + (num_review(L, m.review_stride) if m.review else 0)  # tokens seen by the scan
    hs = d // s.headdim
    f += 2 * n * 3 * d * d + 2 * L * d * d  # shared qkv on review+video tokens, z gate on video tokens
    f += 2 * (2 * n * 3 * d * s.d_conv)  # two depthwise causal convs
    if s.kind == "mamba2":
        f += 2 * n * d * 2 * hs + 2 * ssd_scan_flops(1, n, hs, s.headdim, s.d_state, s.chunk)
    else:
        r = cfg.dt_rank
        f += 2 * n * d * 2 * r + 2 * (2 * n * r * d) + 2 * selective_scan_flops(1, n, d, s.d_state)
    return f


def flops_breakdown(cfg: ModelConfig, grid: Triple) -> dict[str, float]:
    """Forward FLOPs of one denoiser call, batch 1: {"mixer", "cross_attention", "ffn", "other"}."""
    d, S = cfg.d_model, cfg.text_len
    L = grid[0] * grid[1] * grid[2]
    mixer = sum(mixer_flops(cfg, grid, layer) for layer in range(cfg.depth))
    cross = cfg.depth * (2 * L * d * d + 2 * S * 2 * d * d + 4 * L * S * d + 2 * L * d * d)
    ffn = cfg.depth * 6 * L * d * cfg.ffn_dim
    other = (2 * L * cfg.patch_dim * d * 2  # patchify + unpatchify
             + 2 * (cfg.timestep_dim * d + d * d) + 2 * 6 * d * d  # timestep MLP + adaLN-single
             + 2 * S * cfg.text_dim * d)  # text projection
    return {"mixer": float(mixer), "cross_attention": float(cross), "ffn": float(ffn), "other": float(other)}
