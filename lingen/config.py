"""Configuration dataclasses of the LinGen denoiser and its matched DiT (pure python, importable without torch).

The values live in ``experiments/models/*.yaml`` (each line marked stated/assumed); ``evalkit.models`` reads them
into these frozen dataclasses.  Paper: LinGen (arXiv 2412.09856) Fig. 2 (MATE = MA-branch + TE-branch), Fig. 3
(bidirectional Mamba2), Fig. 4 (Rotary Major Scan), Fig. 5 (TESA), Table 2 (the ablation variants).  The other
efficient mixers of ``baselines/`` (issue 13) keep their options here too (``LinearAttnSpec``, ``STASpec``,
``RadialSpec``) because ``ModelConfig`` holds one spec per mixer; their code and cost terms live in ``baselines/``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Triple = tuple[int, int, int]


@dataclass(frozen=True, kw_only=True)
class LatentSpec:
    """Latent video layout: channels, (t, h, w) compression of the autoencoder, (t, h, w) patch, frame rate."""

    channels: int = 16
    compression: Triple = (8, 8, 8)
    patch: Triple = (1, 2, 2)
    fps: int = 16


@dataclass(frozen=True, kw_only=True)
class SSMSpec:
    """The state-space mixer of the MA-branch (Mamba2 SSD by default, Mamba-1 selective scan for the ablation).

    With the H2 parameter sharing (x <- v, B <- k, C <- q per head) the SSM inner width equals d_model and the
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


@dataclass(frozen=True, kw_only=True)
class LinearAttnSpec:
    """ReLU linear attention as SANA-Video uses it (``baselines/linear_attn.py``)."""

    qk_norm: bool = True  # RMSNorm over the full q / k width before the ReLU
    rope: bool = True  # 3D RoPE on relu(q), relu(k) in the numerator only
    rope_theta: float = 10000.0
    eps: float = 1e-15  # added to the denominator


@dataclass(frozen=True, kw_only=True)
class STASpec:
    """Sliding tile attention (STA, ``baselines/sta.py``): tiles and window in latent tokens per (t, h, w) axis."""

    tile: Triple = (2, 1, 1)
    window: Triple = (6, 3, 3)  # a multiple of the tile with an odd number of tiles per axis


@dataclass(frozen=True, kw_only=True)
class RadialSpec:
    """Radial attention (``baselines/radial.py``): a static block-sparse mask whose spatial band halves with each
    doubling of the temporal distance."""

    block: int = 4  # tokens per block; blocks never straddle two latent frames (must divide h*w)
    dense_frames: int = 1  # frame pairs at temporal distance <= this attend densely
    sink: bool = True  # every frame attends all of frame 0 densely (attention sink)
    decay_factor: float = 1.0  # scales the spatial window of every band


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """One resolved model: backbone geometry + mixer. ``name``/``flavor`` are the registry name and preset."""

    name: str = "lingen"
    flavor: str = "tiny"
    mixer: Literal["attention", "mate", "linear", "sta", "radial"] = "mate"
    d_model: int = 64
    depth: int = 4
    heads: int = 4
    ffn_dim: int = 128
    text_dim: int = 32
    text_len: int = 8
    timestep_dim: int = 256
    adaln: Literal["single"] = "single"
    max_grid: Triple = (136, 16, 16)  # learnable positional tables cover this (T, H, W) token grid
    norm_eps: float = 1e-6
    latent: LatentSpec = field(default_factory=LatentSpec)
    mate: MateSpec = field(default_factory=MateSpec)
    linear: LinearAttnSpec = field(default_factory=LinearAttnSpec)
    sta: STASpec = field(default_factory=STASpec)
    radial: RadialSpec = field(default_factory=RadialSpec)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads

    @property
    def patch_dim(self) -> int:
        pt, ph, pw = self.latent.patch
        return self.latent.channels * pt * ph * pw

    def check(self) -> None:
        """Structural consistency; raises ValueError naming the field."""
        if self.d_model % self.heads:
            raise ValueError(f"heads: d_model {self.d_model} is not divisible by heads {self.heads}")
        if self.mixer == "mate":
            s = self.mate.ssm
            if not (self.mate.ma or self.mate.tesa):
                raise ValueError("mate: at least one of ma / tesa must be on")
            if s.expand != 1:
                raise ValueError(f"mate.ssm.expand: must be 1 with shared q/k/v projections (H2), got {s.expand}")
            if self.d_model % s.headdim:
                raise ValueError(f"mate.ssm.headdim: d_model {self.d_model} not divisible by {s.headdim}")
            if s.d_state != s.headdim:
                raise ValueError(f"mate.ssm.d_state: must equal headdim ({s.headdim}) since B <- k, C <- q per "
                                 f"head, got {s.d_state}")
            if s.chunk < 1 or s.d_conv < 1 or self.mate.review_stride < 1:
                raise ValueError("mate.ssm.chunk / d_conv / review_stride must be >= 1")
        if self.mixer == "sta":
            for axis, t, w in zip("thw", self.sta.tile, self.sta.window):
                if t < 1 or w < t or w % t or (w // t) % 2 == 0:
                    raise ValueError(f"sta.window: along {axis} the window ({w}) must be an odd multiple of the tile "
                                     f"({t}) so the tile window can centre on the query tile; got window "
                                     f"{list(self.sta.window)}, tile {list(self.sta.tile)}")
        if self.mixer == "radial":
            r = self.radial
            if r.block < 1 or r.dense_frames < 0 or r.decay_factor <= 0:
                raise ValueError(f"radial.block: block >= 1, dense_frames >= 0 and decay_factor > 0 are required, "
                                 f"got block {r.block}, dense_frames {r.dense_frames}, decay_factor {r.decay_factor}")

    @property
    def dt_rank(self) -> int:
        r = self.mate.ssm.dt_rank
        return r if r > 0 else -(-self.d_model // 16)
