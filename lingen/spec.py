"""MATE's options, cost and entry (pure python, no torch): the LinGen mixer as the harness sees it.

Paper: LinGen (arXiv 2412.09856) Fig. 2 (MATE = MA-branch + TE-branch), Fig. 3 (bidirectional Mamba2), Fig. 4
(Rotary Major Scan), Fig. 5 (TESA), Table 2 (the ablation variants: switches of :class:`MateSpec`, registered by
``preset.yaml``). The torch code is ``lingen/mate.py``; the values of every flavor live in ``lingen/preset.yaml``.

Cost convention (``backbone.analytic``): 2 FLOPs per multiply-add, matmuls / convolutions / attention only. Per
MATE layer with L video tokens, width d, R review tokens (n = L + R scanned), Hs SSD heads of size P = N:
    shared q/k/v on review + video tokens     2 n (3 d^2);  z gate 2 L d^2;  output projection 2 L d^2
    two depthwise causal convs                2 (2 n 3 d K)
    dt projection + two SSD scans             2 n d (2 Hs) + 2 ssd_scan_flops(n)   (Mamba-1: low-rank dt + 9 L d N)
    TESA                                      4 Lp (wt wh ww) d, Lp = tokens of the grid padded to whole windows
SSD scan, per chunk of Q tokens (``mamba_ssm/ops/triton/ssd_combined.py``, per-head B/C): 2 H (Q N + Q P + 2 N P)
per token over the length padded to whole chunks. Mamba-1 selective scan 9 B L D N (the estimate of
https://github.com/state-spaces/mamba/issues/110, as VMamba's FLOP counters use it; elementwise work).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from backbone.config import BackboneConfig, ModelFamily, Triple

N_ORDERS = 4    # Rotary Major Scan: layer l scans in order l mod 4 (lingen.scan.ORDERS)
N_ZIGZAG = 8    # ZigMa: 4 axis orders x 2 start corners, layer l takes path l mod 8


@dataclass(frozen=True, kw_only=True)
class SSMSpec:
    """The state-space mixer of the MA-branch (Mamba2 SSD by default, Mamba-1 selective scan for the ablation).

    With q/k/v shared by both branches (x <- v, B <- k, C <- q per head) the SSM inner width equals d_model and the
    state size equals the SSM head size, so ``expand`` must be 1 and ``d_state == headdim``.
    """

    kind: Literal["mamba2", "mamba1"] = "mamba2"
    expand: int = 1
    headdim: int = 64
    d_state: int = 64
    chunk: int = 256
    d_conv: int = 4
    dt_rank: int = 0  # mamba1 only: low-rank dt projection; 0 -> ceil(d_model / 16) as in Mamba-1


@dataclass(frozen=True, kw_only=True)
class MateSpec:
    """MATE block switches (the Table 2 variants are combinations of these)."""

    ma: bool = True  # MA-branch on (False: "w/o MA-branch")
    tesa: bool = True  # TE-branch on (False: "w/o TESA")
    scan: Literal["rms", "fixed", "zigzag"] = "rms"  # rms: 4 orders cycling; fixed: spatial row-major; zigzag: ZigMa
    review: bool = True  # review tokens prepended to each scan direction
    review_stride: int = 16  # one review token per this many video tokens (average pooled in scan order)
    window: Triple = (17, 4, 4)  # TESA (t, h, w) window in latent tokens
    shift: Triple = (8, 2, 2)  # Swin cyclic shift on odd layers
    ssm: SSMSpec = field(default_factory=SSMSpec)


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


@dataclass(frozen=True, kw_only=True)
class LinGenConfig(BackboneConfig):
    """The backbone with MATE as token mixer (LinGen and its Table 2 variants)."""

    name: str = "lingen"
    mixer: Literal["mate"] = "mate"
    mate: MateSpec = field(default_factory=MateSpec)
    # what biases a latency measured with this implementation (written into every latency record)
    latency_caveats: ClassVar[str] = (
        "MATE's glue runs unfused: the per-direction flip / cat / pad, the scan-order permutations, the float32 "
        "D skip (y + x * D) and the gated RMSNorm are separate kernels around mamba-ssm's fused SSD")

    @property
    def dt_rank(self) -> int:
        r = self.mate.ssm.dt_rank
        return r if r > 0 else -(-self.d_model // 16)

    def check(self) -> None:
        super().check()
        s = self.mate.ssm
        if not (self.mate.ma or self.mate.tesa):
            raise ValueError("mate: at least one of ma / tesa must be on")
        if s.expand != 1:
            raise ValueError(f"mate.ssm.expand: must be 1 with q/k/v shared by both branches (x <- v), got "
                             f"{s.expand}")
        if self.d_model % s.headdim:
            raise ValueError(f"mate.ssm.headdim: d_model {self.d_model} not divisible by {s.headdim}")
        if s.d_state != s.headdim:
            raise ValueError(f"mate.ssm.d_state: must equal headdim ({s.headdim}) since B <- k, C <- q per "
                             f"head, got {s.d_state}")
        if s.chunk < 1 or s.d_conv < 1 or self.mate.review_stride < 1:
            raise ValueError("mate.ssm.chunk / d_conv / review_stride must be >= 1")

    def check_grid(self, grid: Triple) -> None:
        if self.mate.tesa:
            for axis, g, w in zip("thw", grid, self.mate.window):
                if w > g:
                    raise ValueError(f"mate.window: window {list(self.mate.window)} is larger than the token grid "
                                     f"{list(grid)} along {axis} ({w} > {g})")

    def mixer_params(self) -> int:
        d, m, s = self.d_model, self.mate, self.mate.ssm
        n = 4 * d * d  # shared qkv + out
        if m.ma:
            hs = d // s.headdim
            n += d * d + 2 * (3 * d * s.d_conv + 3 * d) + d  # z, two depthwise convs (+bias), gated-norm weight
            n += d if m.review else 0  # review type embedding
            if s.kind == "mamba2":
                n += d * 2 * hs + 3 * 2 * hs  # dt proj, A_log, dt_bias, D
            else:
                r = self.dt_rank
                n += d * 2 * r + 2 * r * d + 2 * d * s.d_state + 2 * d + 2 * d  # dt down/up, A_log, dt_bias, D
        return n

    def mixer_flops(self, grid: Triple, layer: int) -> float:
        d, m, s = self.d_model, self.mate, self.mate.ssm
        L = grid[0] * grid[1] * grid[2]
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
            r = self.dt_rank
            f += 2 * n * d * 2 * r + 2 * (2 * n * r * d) + 2 * selective_scan_flops(1, n, d, s.d_state)
        return f

    def layer_kind(self, layer: int) -> tuple:
        """What of layer ``layer``'s MATE depends on its index: the token order (``lingen.scan.Scan``: l mod 4 for
        RMS, one order for fixed, l mod 8 for zigzag) and the TESA shift parity (``tesa.effective_shift``: odd
        layers shift). Two layers with equal kinds compute the same ops on the same shapes (a test checks this
        against counting every layer)."""
        m = self.mate
        phase = {"rms": layer % N_ORDERS, "fixed": 0, "zigzag": layer % N_ZIGZAG}[m.scan]
        return (m.scan, phase, layer % 2 if m.tesa else 0)


ENTRY = ModelFamily(name="mate", config=LinGenConfig, module="lingen.mate",
                    preset=Path(__file__).with_name("preset.yaml"), options_key="mate")
