"""Radial attention as the harness sees it, pure python: its options, the static block mask, density, parameter
and FLOP terms and its entry (the torch code is ``baselines/radial/model.py``, the flavors
``baselines/radial/preset.yaml``).

Radial attention (Li et al., arXiv 2506.19852) lets each token attend spatially nearby tokens with a window that
shrinks with temporal distance, giving O(n log n) work in the number of frames. This module states the mask at the
block level the official implementation computes (mit-han-lab/radial-attention ``radial_attn/attn_mask.py``,
HunyuanVideo mode, ``decay_factor`` 1 as in ``radial_attn/models/hunyuan/inference.py``). Tokens of one latent
frame (s = h*w, row-major) form nb = s / b blocks of b tokens; for query frame i, key frame j, d = |i - j|:

1. d <= dense_frames (1), or j == 0 with the attention sink on: every block pair (dense frame pair);
2. else band r = bit_length(d) (d in [2^(r-1), 2^r)), window w = 2^bit_length(s) / 2^r * decay_factor tokens;
   - w >= b: block pair (a, c) kept iff |a - c| * b <= w   (the official token band |x - y| <= w, reduced to
     blocks as its ``shrinkMaskStrict`` does for bands that are whole blocks wide);
   - w < b:  the window is clamped to one block (|a - c| <= 1) and the frame pair is kept only if
     d % int(b / w) == 0 (the official ``get_diagonal_split_mask``: far frames are sampled, not all attended).

Each band r doubles the number of frames and halves the window, so every band costs about the same and a query
frame does O(log t) bands: n log n in the number of frames (quadratic in tokens per frame, like full attention).
Density = nnz blocks * b^2 / L^2. FLOPs (mixer ``"radial"``; 2 per multiply-add, one layer, batch
1): q, k, v and output projections 8 L d^2, plus 4 d b^2 nnz for the kept blocks (QK^T and PV), i.e. the work of a
block-sparse kernel, not of a dense masked attention. Assumed here (``baselines/radial/preset.yaml``): blocks are
frame-aligned (the official 128-token blocks run across frame borders), all layers and steps are sparse (the
official scripts can keep the first layers / steps dense).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from backbone.config import BackboneConfig, ModelFamily, Triple


@dataclass(frozen=True, kw_only=True)
class RadialSpec:
    """A static block-sparse mask whose spatial band halves with each doubling of the temporal distance."""

    block: int = 4  # tokens per block; blocks never straddle two latent frames (must divide h*w)
    dense_frames: int = 1  # frame pairs at temporal distance <= this attend densely
    sink: bool = True  # every frame attends all of frame 0 densely (attention sink)
    decay_factor: float = 1.0  # scales the spatial window of every band


DENSE = -1  # band value of a dense frame pair


def pair_band(spec: RadialSpec, s: int, d: int, j: int) -> int | None:
    """Block half-width m of the frame pair (|a - c| <= m kept), DENSE for a dense pair, None when skipped."""
    if d <= spec.dense_frames or (spec.sink and j == 0):
        return DENSE
    w = 2 ** s.bit_length() / 2 ** d.bit_length() * spec.decay_factor  # window in tokens of band r
    if w >= spec.block:
        return int(w // spec.block)
    return 1 if d % int(spec.block / w) == 0 else None


def band_pairs(nb: int, m: int) -> int:
    """Block pairs (a, c) in [0, nb)^2 with |a - c| <= m (m = DENSE: all)."""
    if m == DENSE or m >= nb - 1:
        return nb * nb
    return nb * (2 * m + 1) - m * (m + 1)


@functools.lru_cache(maxsize=256)
def frame_pairs(spec: RadialSpec, t: int, s: int) -> tuple[tuple[int, int, int], ...]:
    """Every kept frame pair (i, j, m) of a t-frame video with s tokens per frame."""
    out = []
    for i in range(t):
        for j in range(t):
            m = pair_band(spec, s, abs(i - j), j)
            if m is not None:
                out.append((i, j, m))
    return tuple(out)


def nnz_blocks(cfg: RadialConfig, grid: Triple) -> int:
    s = grid[1] * grid[2]
    nb = s // cfg.radial.block
    return sum(band_pairs(nb, m) for _, _, m in frame_pairs(cfg.radial, grid[0], s))


def density(cfg: RadialConfig, grid: Triple) -> float:
    """Fraction of the L x L dense attention scores computed."""
    return nnz_blocks(cfg, grid) * cfg.radial.block ** 2 / math.prod(grid) ** 2


@dataclass(frozen=True, kw_only=True)
class RadialConfig(BackboneConfig):
    """The backbone with Radial attention as token mixer."""

    name: str = "radial"
    mixer: Literal["radial"] = "radial"
    radial: RadialSpec = field(default_factory=RadialSpec)

    def check(self) -> None:
        super().check()
        r = self.radial
        if r.block < 1 or r.dense_frames < 0 or r.decay_factor <= 0:
            raise ValueError(f"radial.block: block >= 1, dense_frames >= 0 and decay_factor > 0 are required, "
                             f"got block {r.block}, dense_frames {r.dense_frames}, decay_factor {r.decay_factor}")

    def check_grid(self, grid: Triple) -> None:
        s = grid[1] * grid[2]
        if s % self.radial.block:
            raise ValueError(f"radial.block: {self.radial.block} tokens per block do not divide the {s} tokens of a "
                             f"latent frame ({grid[1]} x {grid[2]}); valid blocks for this grid: "
                             f"{[b for b in range(1, s + 1) if s % b == 0][-8:]}")

    def mixer_params(self) -> int:
        return 4 * self.d_model * self.d_model  # qkv + out, as DiT

    def mixer_flops(self, grid: Triple, layer: int) -> float:
        d = self.d_model
        L = math.prod(grid)
        return float(2 * L * 3 * d * d + 2 * L * d * d + 4 * d * self.radial.block ** 2 * nnz_blocks(self, grid))

    def layer_kind(self, layer: int) -> tuple:
        return ()  # every layer computes the same ops on the same shapes


ENTRY = ModelFamily(name="radial", config=RadialConfig, module="baselines.radial.model",
                    preset=Path(__file__).with_name("preset.yaml"), options_key="radial")
