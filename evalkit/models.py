"""The bridge between the harness and the models: registry names -> resolved configs, builds and cheap queries.

Every model family lives in its own folder (``lingen/``, each folder of ``baselines/`` and of ``openmodels/``) and
exports one ``spec.ENTRY`` (:class:`backbone.config.ModelFamily`): its config class (geometry, options, cost, checks,
layer kinds), its torch module and its preset file. This module finds those entries (:data:`FAMILY_PACKAGES`), reads
each preset's ``models:`` (the registry names, e.g. ``lingen`` and its Table 2 variants) and ``flavors:`` over the
family's base flavors (the shared backbone's ``backbone/flavors.yaml``; none for a released model, whose registry
names carry their own ``flavors:``: the published checkpoints' configs), and answers for any registry name: the
resolved config
(:func:`resolve`), the built model (:func:`build`), the token geometry of a video (:func:`latent_shape`,
:func:`token_grid`, :func:`num_tokens`, :func:`validate_point`), parameters and analytic FLOPs. Adding a mixer is
one new folder under ``baselines/`` with ``spec.py`` (``ENTRY``), ``model.py`` and ``preset.yaml``; nothing here
changes.

Never imports torch at module import; only ``build`` and ``dummy_inputs`` do.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from backbone.config import BackboneConfig, ModelFamily
from evalkit.core.errors import ChoiceError, FieldError
from evalkit.core.typed import deep_merge, flat, from_dict, to_dict

# packages whose model families the registry holds: a package with a ``spec.py`` is one family (lingen); a package
# without one holds one family per sub-package (baselines/dit, baselines/sta, ...)
FAMILY_PACKAGES = ("lingen", "baselines", "openmodels")


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


@dataclass(frozen=True, kw_only=True)
class RegisteredModel:
    """One registry name: its family, its preset's summary, and (for a variant) the overrides that make it."""

    name: str
    summary: str
    family: ModelFamily
    variant: str = "default"        # the records' ``variant`` field: "default", or e.g. "no-tesa"
    overrides: dict[str, Any] = field(default_factory=dict)
    # this name's own flavors (a released model: one per published checkpoint); None: the preset's ``flavors:``
    own_flavors: dict[str, Any] | None = None

    @property
    def flavor_table(self) -> dict[str, Any]:
        return self.own_flavors if self.own_flavors is not None else _preset(self.family.preset).get("flavors", {})


def _read_yaml(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@functools.cache
def _preset(path: Path) -> dict[str, Any]:
    return _read_yaml(path)


def _families() -> list[ModelFamily]:
    out = []
    for pkg_name in FAMILY_PACKAGES:
        pkg = importlib.import_module(pkg_name)
        if (Path(pkg.__file__).parent / "spec.py").exists():
            out.append(importlib.import_module(f"{pkg_name}.spec").ENTRY)
            continue
        for sub in sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.ispkg):
            out.append(importlib.import_module(f"{pkg_name}.{sub}.spec").ENTRY)
    return out


class ModelRegistry:
    """Registry names -> :class:`RegisteredModel`, from every family's preset, with did-you-mean errors."""

    def __init__(self) -> None:
        self._entries: dict[str, RegisteredModel] = {}
        self.families: dict[str, ModelFamily] = {}
        for family in _families():
            if family.name in self.families:
                raise ValueError(f"model family {family.name!r} is defined twice ({family.config.__module__})")
            self.families[family.name] = family
            preset = _preset(family.preset)
            if preset.get("mixer") != family.name:
                raise ValueError(f"{family.preset}: mixer {preset.get('mixer')!r} but its ENTRY is {family.name!r}")
            for name, meta in preset["models"].items():
                if name in self._entries:
                    raise ValueError(f"model {name!r} is registered twice ({family.preset})")
                self._entries[name] = RegisteredModel(name=name, summary=meta.get("summary", ""), family=family,
                                                      variant=meta.get("variant", "default"),
                                                      overrides=meta.get("overrides") or {},
                                                      own_flavors=meta.get("flavors"))

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[RegisteredModel]:
        return iter(self._entries.values())

    def entry(self, name: str, field_name: str = "model") -> RegisteredModel:
        if name not in self._entries:
            raise ChoiceError(field_name, name, self._entries, what="model")
        return self._entries[name]


REGISTRY = ModelRegistry()


def names(flavor: str | None = None) -> list[str]:
    """Every registry name, or those that have ``flavor`` (``names("tiny")``: the models on the shared backbone;
    ``names("t2v")``: the released models)."""
    return [n for n in REGISTRY.names() if flavor is None or flavor in flavors(n)]


def flavors(name: str) -> list[str]:
    return list(REGISTRY.entry(name).flavor_table)


def variant(name: str) -> str:
    """The records' ``variant`` field of a registry name: ``default``, or the Table 2 variant (``no-tesa``, ...)."""
    return REGISTRY.entry(name).variant


def _set_override(data: dict, key: str, value: Any, where: str) -> None:
    parts = key.split(".")
    node = data
    for depth, part in enumerate(parts[:-1]):
        if not isinstance(node.get(part), dict):
            raise ChoiceError(f"{where}.{'.'.join(parts[:depth + 1])}", part,
                              [k for k, v in node.items() if isinstance(v, dict)], what="key")
        node = node[part]
    node[parts[-1]] = value  # unknown leaf keys are rejected by from_dict with a did-you-mean


def resolve(name: str, flavor: str, overrides: dict[str, Any] | None = None) -> BackboneConfig:
    """Registry name + flavor (+ overrides, nested or dotted keys) -> the mixer's frozen config. Overrides of
    another mixer's options (``mate.*`` for DiT, ``sta.*`` for LinGen) do not apply to this model and are left out,
    so one sweep can vary the options of one mixer across every model it compares."""
    entry = REGISTRY.entry(name)
    table = entry.flavor_table
    base = _preset(entry.family.base_flavors)["flavors"] if entry.family.base_flavors else None
    if flavor not in table or (base is not None and flavor not in base):
        raise ChoiceError("flavor", flavor, table, what=f"flavor of {name}")
    data = to_dict(entry.family.config())
    if base is not None:
        data = deep_merge(data, base[flavor])
    data = deep_merge(data, table[flavor] or {})
    data = deep_merge(data, entry.overrides)
    data.update(name=name, flavor=flavor)
    where = f"{name}[{flavor}]"
    others = {f.options_key for f in REGISTRY.families.values() if f is not entry.family and f.options_key}
    for key, value in flat(overrides or {}).items():
        if key.split(".", 1)[0] in others:
            continue   # another mixer's options (e.g. mate.window in a sweep of LinGen and DiT): not this model's
        _set_override(data, key, value, where)
    cfg = from_dict(entry.family.config, data, where)
    try:
        cfg.check()
    except ValueError as exc:
        field_name, _, msg = str(exc).partition(": ")
        raise FieldError(f"{where}.{field_name}", msg) from None
    return cfg


def config_from_dict(data: dict[str, Any], where: str = "config") -> BackboneConfig:
    """A resolved config written out with ``typed.to_dict`` (a sweep point at a process boundary, a checkpoint's
    provenance) back into its mixer's config class, without resolving the preset again."""
    family = REGISTRY.families.get(data.get("mixer"))
    if family is None:
        raise ChoiceError(f"{where}.mixer", data.get("mixer"), REGISTRY.families, what="mixer")
    return from_dict(family.config, data, where)


def _module(cfg: Any) -> Any:
    return importlib.import_module(REGISTRY.families[cfg.mixer].module)


def build(cfg: BackboneConfig, device: str = "cpu", dtype: Any = None, kernels: str = "auto") -> Any:
    """Instantiate the model of ``cfg`` on ``device`` (``meta`` for counting): its family module's ``build``."""
    import torch

    if kernels not in ("auto", "ref", "fused"):
        raise ChoiceError("kernels", kernels, ("auto", "ref", "fused"))
    return _module(cfg).build(cfg, device=device, dtype=dtype or torch.float32, kernels=kernels)


def latent_shape(cfg: BackboneConfig, point: VideoPoint) -> tuple[int, int, int, int]:
    """(C, T, H, W) of the latent; raises FieldError if the point does not fit the compression x patch.

    ``n = duration_s x fps`` is the number of frames, or, for a causal VAE that encodes the first frame on its own
    (``latent.first_frame_apart``), the number of frames after the first: such a VAE turns 1 + ct m frames into
    1 + m latent frames (m = n / ct; Wan's 81 frames at 16 fps are 5 s and 21 latent frames)."""
    ct, ch, cw = cfg.latent.compression
    pt, ph, pw = cfg.latent.patch
    n = point.num_frames
    apart = 1 if cfg.latent.first_frame_apart else 0
    step = ct if apart else ct * pt          # frames per latent frame (times the temporal patch)
    what = f"frames after the first (a causal VAE makes 1 + {ct} k frames)" if apart else "frames"
    if abs(point.duration_s * point.fps - n) > 1e-6:
        lo = max(1, n // step) * step
        raise FieldError("duration_s", f"{point.duration_s} s x {point.fps} fps = {point.duration_s * point.fps:g} "
                         f"frames, not a whole number of frames (closest valid: {lo / point.fps:g} s or "
                         f"{(lo + step) / point.fps:g} s)")
    if n <= 0 or n % step:
        lo = max(1, n // step) * step
        rule = "temporal compression" if apart else "temporal compression x patch"
        raise FieldError("duration_s", f"{point.duration_s} s x {point.fps} fps = {n} {what}, not a positive "
                         f"multiple of {rule} = {step} (closest valid: {lo / point.fps:g} s or "
                         f"{(lo + step) / point.fps:g} s)")
    latent_t = n // ct + apart
    if latent_t % pt:
        raise FieldError("duration_s", f"{point.duration_s} s gives {latent_t} latent frames, not a multiple of the "
                         f"temporal patch {pt}")
    for fname, px, c, p in (("height", point.height, ch, ph), ("width", point.width, cw, pw)):
        if px <= 0 or px % (c * p):
            lo = max(c * p, px // (c * p) * c * p)
            raise FieldError(fname, f"{px} px is not divisible by compression x patch = {c * p} "
                             f"(closest valid: {lo} or {lo + c * p})")
    return (cfg.latent.channels, latent_t, point.height // ch, point.width // cw)


def num_frames(cfg: BackboneConfig, point: VideoPoint) -> int:
    """Raw frames of a video of ``point``'s duration: duration x fps, plus the first frame for a causal VAE."""
    return point.num_frames + (1 if cfg.latent.first_frame_apart else 0)


def token_grid(cfg: BackboneConfig, point: VideoPoint) -> tuple[int, int, int]:
    _, T, H, W = latent_shape(cfg, point)
    pt, ph, pw = cfg.latent.patch
    return (T // pt, H // ph, W // pw)


def num_tokens(cfg: BackboneConfig, point: VideoPoint) -> int:
    t, h, w = token_grid(cfg, point)
    return t * h * w


def validate_point(cfg: BackboneConfig, point: VideoPoint) -> tuple[int, int, int]:
    """Cheap checks before any work: divisibility, positional-table range, the mixer's own grid checks (e.g. the
    TESA window vs the grid). Returns the token grid."""
    grid = token_grid(cfg, point)
    for axis, g, m in zip(("latent frames", "height tokens", "width tokens"), grid, cfg.max_grid):
        if g > m:
            raise FieldError("max_grid", f"{point} gives {g} {axis}, more than the positional table ({m}); "
                             f"max_grid is {list(cfg.max_grid)}")
    try:
        cfg.check_grid(grid)
    except ValueError as exc:
        field_name, _, msg = str(exc).partition(": ")
        raise FieldError(field_name, f"{msg} for {point}") from None
    return grid


def param_count(cfg: BackboneConfig) -> int:
    return cfg.param_count()


def estimate_flops(cfg: BackboneConfig, point: VideoPoint, cfg_factor: int = 1, batch: int = 1) -> FlopsEstimate:
    """Analytic forward FLOPs of one denoiser call (x batch x cfg_factor), same terms FlopCounterMode counts."""
    grid = validate_point(cfg, point)
    br = {k: v * batch * cfg_factor for k, v in cfg.flops_breakdown(grid).items()}
    return FlopsEstimate(total=sum(br.values()), breakdown=br)


def dummy_inputs(cfg: BackboneConfig, point: VideoPoint, batch: int = 1, device: str = "cpu", dtype: Any = None,
                 seed: int = 0) -> tuple[Any, ...]:
    """The forward's arguments at ``point``: the backbone's (x (B, C, T, H, W), t (B,), context (B, text_len,
    text_dim)), or what the family module's ``inputs`` makes; random on real devices, empty on meta."""
    import torch
    validate_point(cfg, point)
    dtype = dtype or torch.float32
    module = _module(cfg)
    if hasattr(module, "inputs"):
        return module.inputs(cfg, latent_shape(cfg, point), batch=batch, device=device, dtype=dtype, seed=seed)
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
