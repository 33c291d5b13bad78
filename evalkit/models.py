"""The bridge between the harness and the models: presets (experiments/models/*.yaml) -> ModelConfig, the model
registry, and cheap pure-python queries (tokens, latent shape, parameters, analytic FLOPs). Never imports torch at
module import; only ``build`` and ``dummy_inputs`` do.  Contract: /work/brief/MODEL_CONTRACT.md.
"""
from __future__ import annotations

import copy
import functools
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from evalkit.errors import ChoiceError, FieldError
from evalkit.registry import Registry
from evalkit.typed import flat, from_dict
from lingen import analytic
from lingen.config import ModelConfig

MODELS_DIR = Path(__file__).resolve().parent.parent / "experiments" / "models"

REGISTRY = Registry("model")
REGISTRY.add("lingen", "lingen.model:build_lingen", summary="LinGen: MATE (bidirectional Mamba2 + RMS + review "
             "tokens || TESA)", preset="lingen", variant=None)
REGISTRY.add("dit", "baselines.dit:build_dit", summary="matched DiT: full 3D self-attention", preset="dit",
             variant=None)
_VARIANTS = {
    "lingen-no-tesa": "Table 2: w/o TESA",
    "lingen-no-rms": "Table 2: w/o RMS (spatial row-major only)",
    "lingen-zigzag": "Table 2: w/ Zigzag (ZigMa snake paths)",
    "lingen-mamba1": "Table 2: w/ Mamba (Mamba-1 selective scan)",
    "lingen-no-ma": "Table 2: w/o MA-branch (TESA only)",
    "lingen-no-review": "Table 2: w/o review tokens",
}
for _name, _summary in _VARIANTS.items():
    REGISTRY.add(_name, "baselines.variants:build_variant", summary=_summary, preset="lingen", variant=_name)
# Efficient mixers of the field on the same backbone (issue 13); `terms` = the torch-free module that registers
# the mixer's parameter / FLOP terms with lingen.analytic (imported by resolve()).
REGISTRY.add("linear-attn", "baselines.linear_attn:build_linear_attn", summary="SANA-Video linear attention: "
             "ReLU features, RoPE in the numerator", preset="linear-attn", variant=None,
             terms="baselines.linear_attn_terms")
REGISTRY.add("sta", "baselines.sta:build_sta", summary="STA: sliding tile attention, 3D tile window",
             preset="sta", variant=None, terms="baselines.sta_terms")
REGISTRY.add("radial", "baselines.radial:build_radial", summary="Radial attention: static block-sparse mask, "
             "window halves per temporal octave", preset="radial", variant=None, terms="baselines.radial_terms")


@dataclass(frozen=True, kw_only=True)
class VideoPoint:
    """A video size: pixels and seconds. num_frames = round(duration_s * fps)."""

    height: int
    width: int
    duration_s: float
    fps: int = 16

    @property
    def num_frames(self) -> int:
        return round(self.duration_s * self.fps)


@dataclass(frozen=True, kw_only=True)
class FlopsEstimate:
    total: float
    breakdown: dict[str, float] = field(default_factory=dict)
    convention: str = "2*MAC"


def names() -> list[str]:
    return REGISTRY.names()


@functools.lru_cache(maxsize=None)
def _load(stem: str) -> dict[str, Any]:
    with open(MODELS_DIR / f"{stem}.yaml") as fh:
        return yaml.safe_load(fh)


def flavors(name: str) -> list[str]:
    entry = REGISTRY.entry(name, "model")
    return list(_load(entry.meta["preset"])["flavors"])


def _merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _set_override(data: dict, key: str, value: Any, where: str) -> None:
    parts = key.split(".")
    node = data
    for depth, part in enumerate(parts[:-1]):
        if not isinstance(node.get(part), dict):
            raise ChoiceError(f"{where}.{'.'.join(parts[:depth + 1])}", part,
                              [k for k, v in node.items() if isinstance(v, dict)], what="key")
        node = node[part]
    node[parts[-1]] = value  # unknown leaf keys are rejected by from_dict with a did-you-mean




def _defaults() -> dict[str, Any]:
    from evalkit.typed import to_dict
    return to_dict(ModelConfig())


def resolve(name: str, flavor: str, overrides: dict[str, Any] | None = None) -> ModelConfig:
    """Registry name + flavor (+ overrides, nested or dotted keys) -> frozen ModelConfig."""
    entry = REGISTRY.entry(name, "model")
    name = entry.name
    if entry.meta.get("terms"):
        importlib.import_module(entry.meta["terms"])  # registers the mixer's analytic terms (no torch)
    preset = _load(entry.meta["preset"])
    backbone = _load("backbone")["flavors"]
    if flavor not in preset["flavors"] or flavor not in backbone:
        raise ChoiceError("flavor", flavor, preset["flavors"], what=f"flavor of {name}")
    data = _merge(_defaults(), backbone[flavor])
    data = _merge(data, {"mixer": preset["mixer"]})
    data = _merge(data, preset["flavors"][flavor] or {})
    if entry.meta["variant"]:
        data = _merge(data, preset["variants"][entry.meta["variant"]])
    data.update(name=name, flavor=flavor)
    where = f"{name}[{flavor}]"
    for key, value in flat(overrides or {}).items():
        _set_override(data, key, value, where)
    cfg = from_dict(ModelConfig, data, where)
    try:
        cfg.check()
    except ValueError as exc:
        field_name, _, msg = str(exc).partition(": ")
        raise FieldError(f"{where}.{field_name}", msg) from None
    return cfg


def build(cfg: ModelConfig, device: str = "cpu", dtype: Any = None, kernels: str = "auto") -> Any:
    """Instantiate the registered model on ``device`` (``meta`` for counting)."""
    import torch
    builder = REGISTRY.get(cfg.name, "model")
    if kernels not in ("auto", "ref", "fused"):
        raise ChoiceError("kernels", kernels, ("auto", "ref", "fused"))
    return builder(cfg, device=device, dtype=dtype or torch.float32, kernels=kernels)


def latent_shape(cfg: ModelConfig, point: VideoPoint) -> tuple[int, int, int, int]:
    """(C, T, H, W) of the latent; raises FieldError if the point does not fit the compression x patch."""
    ct, ch, cw = cfg.latent.compression
    pt, ph, pw = cfg.latent.patch
    n = point.num_frames
    if abs(point.duration_s * point.fps - n) > 1e-6:
        lo = max(1, n // (ct * pt)) * ct * pt
        raise FieldError("duration_s", f"{point.duration_s} s x {point.fps} fps = {point.duration_s * point.fps:g} "
                         f"frames, not a whole number of frames (closest valid: {lo / point.fps:g} s or "
                         f"{(lo + ct * pt) / point.fps:g} s)")
    if n <= 0 or n % (ct * pt):
        raise FieldError("duration_s", f"{point.duration_s} s x {point.fps} fps = {n} frames, not a positive "
                         f"multiple of temporal compression x patch = {ct * pt}")
    for fname, px, c, p in (("height", point.height, ch, ph), ("width", point.width, cw, pw)):
        if px <= 0 or px % (c * p):
            lo = max(c * p, px // (c * p) * c * p)
            raise FieldError(fname, f"{px} px is not divisible by compression x patch = {c * p} "
                             f"(closest valid: {lo} or {lo + c * p})")
    return (cfg.latent.channels, n // ct, point.height // ch, point.width // cw)


def token_grid(cfg: ModelConfig, point: VideoPoint) -> tuple[int, int, int]:
    _, T, H, W = latent_shape(cfg, point)
    pt, ph, pw = cfg.latent.patch
    return (T // pt, H // ph, W // pw)


def num_tokens(cfg: ModelConfig, point: VideoPoint) -> int:
    t, h, w = token_grid(cfg, point)
    return t * h * w


def validate_point(cfg: ModelConfig, point: VideoPoint) -> None:
    """Cheap checks before any work: divisibility, positional-table range, TESA window vs grid."""
    grid = token_grid(cfg, point)
    for axis, g, m in zip(("latent frames", "height tokens", "width tokens"), grid, cfg.max_grid):
        if g > m:
            raise FieldError("max_grid", f"{point} gives {g} {axis}, more than the positional table ({m}); "
                             f"max_grid is {list(cfg.max_grid)}")
    if cfg.mixer == "mate" and cfg.mate.tesa:
        for axis, g, w in zip("thw", grid, cfg.mate.window):
            if w > g:
                raise FieldError("mate.window", f"window {list(cfg.mate.window)} is larger than the token grid "
                                 f"{list(grid)} along {axis} ({w} > {g}) for {point}")
    try:
        analytic.check_grid(cfg, grid)  # the checks of mixers registered from baselines/*_terms.py
    except ValueError as exc:
        field_name, _, msg = str(exc).partition(": ")
        raise FieldError(field_name, f"{msg} for {point}") from None


def param_count(cfg: ModelConfig) -> int:
    return analytic.param_count(cfg)


def estimate_flops(cfg: ModelConfig, point: VideoPoint, cfg_factor: int = 1, batch: int = 1) -> FlopsEstimate:
    """Analytic forward FLOPs of one denoiser call (x batch x cfg_factor), same terms FlopCounterMode counts."""
    validate_point(cfg, point)
    br = {k: v * batch * cfg_factor for k, v in analytic.flops_breakdown(cfg, token_grid(cfg, point)).items()}
    return FlopsEstimate(total=sum(br.values()), breakdown=br)


def dummy_inputs(cfg: ModelConfig, point: VideoPoint, batch: int = 1, device: str = "cpu", dtype: Any = None,
                 seed: int = 0) -> tuple[Any, Any, Any]:
    """(x (B, C, T, H, W), t (B,), context (B, text_len, text_dim)); random on real devices, empty on meta."""
    import torch
    validate_point(cfg, point)
    dtype = dtype or torch.float32
    shape = (batch, *latent_shape(cfg, point))
    ctx_shape = (batch, cfg.text_len, cfg.text_dim)
    if str(device) == "meta":
        return (torch.empty(shape, device="meta", dtype=dtype), torch.empty(batch, device="meta", dtype=dtype),
                torch.empty(ctx_shape, device="meta", dtype=dtype))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen).to(device=device, dtype=dtype)
    t = torch.rand(batch, generator=gen).to(device=device, dtype=dtype)
    ctx = torch.randn(ctx_shape, generator=gen).to(device=device, dtype=dtype)
    return x, t, ctx
