"""A local diffusers pipeline folder, checked before any weight is read (torch-free: JSON and file headers only).

``generate --pipeline PATH`` runs a released text-to-video model from the folder ``save_pretrained`` writes
(``model_index.json`` + one sub-folder per component). Everything a user can get wrong is refused here, by name,
before the text encoder or the transformer is loaded: a path that is not a folder, a model folder instead of the
pipeline folder, a folder without ``model_index.json``, a pipeline class that is not a supported text-to-video
class (with the closest match), a required component that is null or missing, weights that are missing, only
pickled, truncated, or whose shard index lists missing files, a tokenizer without its files, a transformer class
the pipeline does not run, and a video the VAE cannot make: the pipelines themselves silently reduce a frame count
that is not 1 + ct k (WanPipeline, CogVideoXPipeline, LTXPipeline, MochiPipeline), and CogVideoX and Mochi accept a
height that is a multiple of 8 but not of 16, then fail inside the transformer after the text is encoded.

Each supported class is a :class:`PipelineKind`: the ``openmodels`` family it runs, its components, how it names
the frame count, its defaults (diffusers 0.42.1's ``__call__`` defaults; the frame rate, which is not in the
folder, from the model's release) and how it reads the VAE's compression from the VAE config (the same rule as the
pipeline's ``__init__``).
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evalkit.core.errors import ChoiceError, FieldError

Triple = tuple[int, int, int]
MODEL_INDEX = "model_index.json"
WEIGHTS = ("diffusion_pytorch_model.safetensors", "model.safetensors")
SHARD_INDEXES = ("diffusion_pytorch_model.safetensors.index.json", "model.safetensors.index.json")
PICKLED = ("diffusion_pytorch_model.bin", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "tokenizer.model", "vocab.json")


def _wan_vae(v: dict[str, Any]) -> Triple:      # WanPipeline / SanaVideoPipeline (AutoencoderKLWan)
    s = v.get("scale_factor_spatial", 8)
    return (v.get("scale_factor_temporal", 4), s, s)


def _cogvideox_vae(v: dict[str, Any]) -> Triple:   # CogVideoXPipeline.__init__
    s = 2 ** (len(v.get("block_out_channels", (128, 256, 256, 512))) - 1)
    return (v.get("temporal_compression_ratio", 4), s, s)


def _hunyuan_vae(v: dict[str, Any]) -> Triple:     # AutoencoderKLHunyuanVideo defaults 4, 8
    s = v.get("spatial_compression_ratio", 8)
    return (v.get("temporal_compression_ratio", 4), s, s)


def _ltx_vae(v: dict[str, Any]) -> Triple:         # AutoencoderKLLTXVideo.__init__: patch x 2^(downsampling stages)
    stages = sum(bool(x) for x in v.get("spatio_temporal_scaling", (True, True, True, False)))
    s = v.get("spatial_compression_ratio") or v.get("patch_size", 4) * 2 ** stages
    return (v.get("temporal_compression_ratio") or v.get("patch_size_t", 1) * 2 ** stages, s, s)


def _mochi_vae(v: dict[str, Any]) -> Triple:       # MochiPipeline.__init__ hard-codes 6 and 8 (not the VAE's config)
    return (6, 8, 8)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PipelineKind:
    """One supported text-to-video pipeline class of diffusers 0.42.1."""

    family: str                          # the openmodels family of its transformer
    transformers: tuple[str, ...]        # transformer classes it runs
    components: tuple[str, ...]          # required components (model_index.json keys)
    vae: Callable[[dict[str, Any]], Triple]
    height: int                          # defaults: the pipeline's __call__ defaults (CogVideoX: from the config)
    width: int
    frames: int
    fps: int                             # the release's frame rate (the folder does not record one)
    steps: int
    guidance: float
    text_len: int                        # max_sequence_length default
    frames_arg: str = "num_frames"       # SanaVideoPipeline calls it `frames`
    min_steps: int = 1                   # MochiPipeline's linear-quadratic schedule divides by steps - 1
    extra: tuple[tuple[str, Any], ...] = ()   # fixed call arguments
    fps_arg: str | None = None           # LTXPipeline takes the frame rate (its RoPE scale depends on it)
    negative_prompt: bool = True
    size_multiple: int = 1               # the pipeline's own check on height / width (LTXPipeline: 32)
    # AutoencoderKLCogVideoX decodes latents two at a time, the first batch taking the odd one: an odd number T of
    # latent frames decodes to 1 + ct (T - 1) frames, an even T to ct T (:func:`frames_made`); CogVideoXPipeline
    # pads the latent frames to its temporal patch itself (CogVideoX 1.5) and removes the padding before decoding
    odd_latent_frames: bool = False
    pads_temporal_patch: bool = False


_T5 = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")
SUPPORTED: dict[str, PipelineKind] = {
    "WanPipeline": PipelineKind(family="wan", transformers=("WanTransformer3DModel",), components=_T5, vae=_wan_vae,
                                height=480, width=832, frames=81, fps=16, steps=50, guidance=5.0, text_len=512),
    "CogVideoXPipeline": PipelineKind(family="cogvideox", transformers=("CogVideoXTransformer3DModel",),
                                      components=_T5, vae=_cogvideox_vae, height=480, width=720, frames=49, fps=8,
                                      steps=50, guidance=6.0, text_len=226, odd_latent_frames=True,
                                      pads_temporal_patch=True),
    "HunyuanVideoPipeline": PipelineKind(family="hunyuan", transformers=("HunyuanVideoTransformer3DModel",),
                                         components=(*_T5, "text_encoder_2", "tokenizer_2"), vae=_hunyuan_vae,
                                         height=720, width=1280, frames=129, fps=24, steps=50, guidance=6.0,
                                         text_len=256),
    "LTXPipeline": PipelineKind(family="ltx", transformers=("LTXVideoTransformer3DModel",), components=_T5,
                                vae=_ltx_vae, height=512, width=704, frames=161, fps=24, steps=50, guidance=3.0,
                                text_len=128, fps_arg="frame_rate", size_multiple=32),
    "SanaVideoPipeline": PipelineKind(family="sana_video", transformers=("SanaVideoTransformer3DModel",),
                                      components=_T5, vae=_wan_vae, height=480, width=832, frames=81, fps=16,
                                      steps=50, guidance=6.0, text_len=300, frames_arg="frames",
                                      # generate at the asked size (binning resizes to the nearest trained bin)
                                      extra=(("use_resolution_binning", False),)),
    "MochiPipeline": PipelineKind(family="mochi", transformers=("MochiTransformer3DModel",), components=_T5,
                                  vae=_mochi_vae, height=480, width=848, frames=163, fps=30, steps=64, guidance=4.5,
                                  text_len=256, min_steps=2),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class PipelineFolder:
    """What ``inspect`` found: the class, its kind, every component and its files, the geometry."""

    path: Path
    pipeline: str
    kind: PipelineKind
    components: dict[str, tuple[str, str]]        # name -> (library, class)
    configs: dict[str, dict[str, Any]]            # name -> config.json / scheduler_config.json
    weights: dict[str, tuple[Path, ...]]          # model component -> its safetensors files
    settings: dict[str, Any]                      # model_index.json's own values (expand_timesteps, ...)
    diffusers_version: str
    compression: Triple                           # VAE (t, h, w)
    patch: Triple                                 # transformer (t, h, w)

    @property
    def files(self) -> list[Path]:
        """Every file the pipeline reads: model_index.json and the components' folders (sorted)."""
        out = [self.path / MODEL_INDEX]
        for name in self.components:
            out += sorted(p for p in (self.path / name).rglob("*") if p.is_file())
        return out

    def default_height_width_frames(self) -> tuple[int, int, int]:
        k, t = self.kind, self.configs["transformer"]
        if self.pipeline == "CogVideoXPipeline":   # the pipeline's own rule: the transformer's sample size
            return (t.get("sample_height", 60) * self.compression[1], t.get("sample_width", 90) * self.compression[2],
                    t.get("sample_frames", 49))
        return k.height, k.width, k.frames

    @property
    def default_fps(self) -> int:
        if self.pipeline == "WanPipeline" and self.settings.get("expand_timesteps"):
            return 24      # Wan2.2 TI2V-5B (github.com/Wan-Video/Wan2.2 wan/configs/wan_ti2v_5B.py: sample_fps 24)
        return self.kind.fps


def _json(path: Path, field: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FieldError(field, f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FieldError(field, f"{path} is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise FieldError(field, f"{path} must hold a JSON object")
    return data


def _weights(sub: Path, field: str) -> tuple[Path, ...]:
    """The component's safetensors files, each checked whole (header and offsets) before anything loads."""
    from evalkit.runtime.checkpoint import CheckpointError, check_safetensors

    files = [sub / w for w in WEIGHTS if (sub / w).is_file()]
    for index in (sub / i for i in SHARD_INDEXES if (sub / i).is_file()):
        shards = sorted(set(_json(index, field).get("weight_map", {}).values()))
        missing = [s for s in shards if not (sub / s).is_file()]
        if not shards or missing:
            raise FieldError(field, f"{index.name} lists shards that are missing: {missing[:3] or 'none listed'}")
        files += [sub / s for s in shards]
    if not files:
        pickled = [p for p in PICKLED if (sub / p).is_file()]
        why = (f"only pickled weights ({pickled[0]}), which this harness never unpickles: save the pipeline with "
               "save_pretrained(..., safe_serialization=True)") if pickled else \
            f"no weights (expected {' or '.join(WEIGHTS)}, or a shard index)"
        raise FieldError(field, f"{sub} has {why}")
    for f in files:
        try:
            check_safetensors(f)
        except CheckpointError as exc:
            raise FieldError(field, str(exc).replace("checkpoint: ", "")) from None
    return tuple(files)


def _check_class(cls: object) -> PipelineKind:
    if cls in SUPPORTED:
        return SUPPORTED[cls]
    if isinstance(cls, str) and ("ImageToVideo" in cls or "VideoToVideo" in cls or "Condition" in cls):
        raise FieldError("--pipeline (model_index.json _class_name)",
                         f"{cls} conditions on an image or video; generate --pipeline runs text-to-video pipelines: "
                         f"{', '.join(sorted(SUPPORTED))}")
    raise ChoiceError("--pipeline (model_index.json _class_name)", cls, SUPPORTED, what="pipeline class")


def inspect_folder(path: str | Path) -> PipelineFolder:
    """The folder's model_index.json and every component of its class, checked (see the module docstring)."""
    p = Path(path)
    if not p.is_dir():
        raise FieldError("--pipeline", f"{str(p)!r} is not a folder (a pipeline is read from a local folder; "
                                       "nothing is downloaded)")
    if not (p / MODEL_INDEX).is_file():
        if (p / "config.json").is_file():
            cls = _json(p / "config.json", "--pipeline").get("_class_name", "a single model")
            raise FieldError("--pipeline", f"{p} holds one {cls} (config.json), not a pipeline: pass the folder "
                                           f"that holds {MODEL_INDEX} (for a pipeline saved with save_pretrained, "
                                           "the parent of this folder)")
        raise FieldError("--pipeline", f"{p} is not a diffusers pipeline folder: no {MODEL_INDEX}")
    index = _json(p / MODEL_INDEX, "--pipeline")
    cls = index.get("_class_name")
    kind = _check_class(cls)
    listed = {k: v for k, v in index.items() if not k.startswith("_") and isinstance(v, list)}
    components: dict[str, tuple[str, str]] = {}
    configs: dict[str, dict[str, Any]] = {}
    weights: dict[str, tuple[Path, ...]] = {}
    for name in kind.components:
        if name not in listed or listed[name] in ([None, None], [None]):
            raise FieldError(f"--pipeline.{name}", f"{cls} needs a {name!r} component; {MODEL_INDEX} has "
                                                   f"{'none' if name not in listed else 'null'}")
    for name, entry in listed.items():
        if entry in ([None, None], [None]):
            continue                                       # an optional component left out (Wan's transformer_2)
        if len(entry) != 2 or not all(isinstance(e, str) for e in entry):
            raise FieldError(f"--pipeline.{name}", f"{MODEL_INDEX} entry {entry!r} is not [library, class]")
        lib, kls = entry
        sub, field = p / name, f"--pipeline.{name}"
        if not sub.is_dir():
            raise FieldError(field, f"{MODEL_INDEX} lists {kls} but {sub} is missing")
        if name.startswith("scheduler"):
            configs[name] = _json(sub / "scheduler_config.json", field)
        elif name.startswith("tokenizer"):
            if not any((sub / f).is_file() for f in TOKENIZER_FILES):
                raise FieldError(field, f"{sub} has no tokenizer file ({', '.join(TOKENIZER_FILES)})")
        else:
            configs[name] = _json(sub / "config.json", field)
            weights[name] = _weights(sub, field)
        components[name] = (lib, kls)
    tcls = components["transformer"][1]
    if tcls not in kind.transformers:
        raise ChoiceError("--pipeline.transformer", tcls, kind.transformers, what=f"transformer class for {cls}")
    t = configs["transformer"]
    ps = t.get("patch_size", 1)
    patch = tuple(ps) if isinstance(ps, list) else (t.get("patch_size_t") or 1, ps, ps)
    return PipelineFolder(path=p, pipeline=cls, kind=kind, components=components, configs=configs, weights=weights,
                          settings={k: v for k, v in index.items() if not k.startswith("_") and k not in listed},
                          diffusers_version=str(index.get("_diffusers_version", "unknown")),
                          compression=tuple(int(c) for c in kind.vae(configs["vae"])), patch=patch)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Request:
    """One video as the pipeline is asked for it (checked by :func:`check_request`)."""

    height: int
    width: int
    num_frames: int
    fps: int
    steps: int
    guidance_scale: float
    max_sequence_length: int

    @property
    def duration_s(self) -> float:
        return (self.num_frames - 1) / self.fps   # a causal VAE: the first frame at 0 s, the last at duration


def _closest(value: int, step: int, offset: int = 0, low: int | None = None) -> str:
    """The valid values next to ``value`` on the grid offset + k step (at least ``low``)."""
    low = step + offset if low is None else low
    below = (value - offset) // step * step + offset
    return f"{below} or {below + step}" if below >= low else f"{max(low, below + step)}"


def frames_made(kind: PipelineKind, ct: int, n: int) -> int:
    """The frames a pipeline returns when asked for ``n``: its latent frames are ``(n - 1) // ct + 1``; a causal
    VAE decodes t of them into ``1 + ct (t - 1)`` frames, CogVideoX's (``odd_latent_frames``) an even t into
    ``ct t`` (measured on CogVideoXPipeline of diffusers 0.42.1: 5-8 frames asked give 8, 13-16 give 16)."""
    t = (n - 1) // ct + 1
    return ct * t if kind.odd_latent_frames and t % 2 == 0 else 1 + ct * (t - 1)


def check_request(folder: PipelineFolder, req: Request) -> Triple:
    """The latent (T, H, W) of ``req``; FieldError naming the flag and the closest valid values otherwise."""
    ct, ch, cw = folder.compression
    pt, ph, pw = folder.patch
    f = req.num_frames
    kind = folder.kind
    latent_t = (f - 1) // ct + 1
    if f < 1 or frames_made(kind, ct, f) != f:
        ok = [n for n in range(max(1, f - 4 * ct), max(1, f) + 4 * ct + 1) if frames_made(kind, ct, n) == n]
        closest = " or ".join(str(n) for n in [n for n in ok if n < f][-1:] + [n for n in ok if n > f][:1])
        if f >= 1 and kind.odd_latent_frames and latent_t % 2 == 0:
            raise FieldError("--num-frames", f"{f} frames = {latent_t} latent frames, which {folder.pipeline}'s VAE "
                                             f"decodes into {frames_made(kind, ct, f)} frames (an odd number t of "
                                             f"latent frames into 1 + {ct} (t - 1), an even one into {ct} t); "
                                             f"closest: {closest}")
        raise FieldError("--num-frames", f"{f} frames cannot be made by this VAE (1 + {ct} k frames: temporal "
                                         f"compression {ct}); closest: {closest}")
    if latent_t % pt and not kind.pads_temporal_patch:
        raise FieldError("--num-frames", f"{f} frames = {latent_t} latent frames, not a multiple of the "
                                         f"transformer's temporal patch {pt}")
    for flag, px, c, p in (("--height", req.height, ch, ph), ("--width", req.width, cw, pw)):
        m = math.lcm(c * p, kind.size_multiple)
        if px < m or px % m:
            why = f"VAE compression x patch = {c} x {p}" + (f" and {folder.pipeline}'s own multiple of "
                                                           f"{kind.size_multiple}" if m != c * p else "")
            raise FieldError(flag, f"{px} px is not a multiple of {m} ({why}); closest: {_closest(px, m)}")
    if req.steps < folder.kind.min_steps:
        raise FieldError("--steps", f"{folder.pipeline} needs at least {folder.kind.min_steps} steps, got "
                                    f"{req.steps}")
    if req.fps < 1:
        raise FieldError("--fps", f"must be >= 1, got {req.fps}")
    if req.max_sequence_length < 1:
        raise FieldError("--max-sequence-length", f"must be >= 1, got {req.max_sequence_length}")
    t = folder.configs["transformer"]
    if folder.pipeline == "CogVideoXPipeline" and not t.get("use_rotary_positional_embeddings") and \
            req.max_sequence_length != t.get("max_text_seq_length", 226):
        raise FieldError("--max-sequence-length", f"{req.max_sequence_length}, but this CogVideoX transformer's "
                                                  f"positions hold exactly max_text_seq_length = "
                                                  f"{t.get('max_text_seq_length', 226)} text tokens")
    return latent_t, req.height // ch, req.width // cw
