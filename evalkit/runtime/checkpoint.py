"""Checkpoint folders: ``config.json`` + ``model.safetensors`` (+ ``text_encoder.safetensors``).

``config.json`` holds everything needed to rebuild the model without the training code: the registry name,
flavor and overrides (rebuilt with ``evalkit.models.resolve``), the resolved model config and latent geometry (for
provenance), the text-encoder spec and the decoder spec. Weights are safetensors: loading never unpickles (a folder
with only a pickled ``model.pt`` is refused, naming the conversion). Before any
weight is copied, every tensor name and shape is compared with the model built from the config; a mismatch is an
error naming the first mismatching tensors (missing, unexpected, or name: expected shape vs got shape), and the
stored resolved config is compared with the rebuilt one (an edited field is refused, naming it).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

from evalkit.runtime.decoders import DecoderSpec
from evalkit.core.errors import EvalkitError, FieldError
from evalkit.core.hashing import file_sha256
from evalkit.runtime.text import TextEncoderSpec
from evalkit.core.typed import from_dict, to_dict

FORMAT, FORMAT_VERSION = "evalkit-checkpoint", 1
CONFIG, WEIGHTS, TEXT_WEIGHTS = "config.json", "model.safetensors", "text_encoder.safetensors"


class CheckpointError(EvalkitError):
    """A checkpoint folder that cannot be loaded as asked."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Checkpoint:
    path: Path
    config: dict[str, Any]
    model: Any                 # torch.nn.Module, eval mode
    text_encoder: Any          # callable prompts -> (context, mask)
    text_spec: TextEncoderSpec
    decoder_spec: DecoderSpec
    sha256: str                # of model.safetensors (or model.pt)
    config_sha256: str         # of config.json
    text_sha256: str | None    # of text_encoder.safetensors (builtin encoder), None for a T5 from a folder


def save_checkpoint(path: str | Path, model, *, name: str, flavor: str, overrides: dict | None,
                    text_spec: TextEncoderSpec, decoder_spec: DecoderSpec, text_encoder=None,
                    extra: dict | None = None) -> Path:
    """Write the checkpoint folder atomically (a temporary folder renamed over ``path`` at the end)."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cfg = model.cfg
    config = {"format": FORMAT, "format_version": FORMAT_VERSION,
              "model": {"name": name, "flavor": flavor, "overrides": overrides or {}},
              "resolved_model_config": to_dict(cfg) if dataclasses.is_dataclass(cfg) else repr(cfg),
              "text_encoder": to_dict(text_spec), "decoder": to_dict(decoder_spec), **(extra or {})}
    (tmp / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp / WEIGHTS))
    if text_encoder is not None and text_spec.kind == "builtin":
        save_file({k: v.detach().contiguous().cpu() for k, v in text_encoder.state_dict().items()},
                  str(tmp / TEXT_WEIGHTS))
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
    return path


def read_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint: {str(path)!r} is not a folder")
    cfile = path / CONFIG
    if not cfile.exists():
        raise CheckpointError(f"checkpoint: {path} has no {CONFIG}")
    _require_file(cfile)
    try:
        config = json.loads(cfile.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint: {cfile} is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"checkpoint: {cfile} must hold a JSON object, got {type(config).__name__}")
    if config.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint: {cfile} is not an {FORMAT} config (format={config.get('format')!r})")
    return config


def weights_file(path: str | Path) -> Path:
    """The weights file of a checkpoint folder; a clear error when it is missing (checked before any work)."""
    path = Path(path)
    if (path / WEIGHTS).exists():
        return _require_file(path / WEIGHTS)
    pickles = sorted(p.name for p in path.glob("*.pt*")) + sorted(p.name for p in path.glob("*.bin"))
    if pickles:
        raise CheckpointError(f"checkpoint: {path} has {', '.join(pickles)} but no {WEIGHTS}: this tool reads "
                              "safetensors only and never unpickles; convert it once where you trust the file "
                              "(torch.load(..., weights_only=True), then safetensors.torch.save_file)")
    raise CheckpointError(f"checkpoint: {path} is missing its weights: expected {WEIGHTS}")


def _require_file(file: Path) -> Path:
    """``file`` if it is a regular file (a symlink to one counts); a folder, device or socket of that name is an
    error naming it (a copy that went wrong), before anything reads it."""
    if not file.is_file():
        kind = "a folder" if file.is_dir() else "not a regular file"
        raise CheckpointError(f"checkpoint: {file} is {kind}; expected the {file.name} file a checkpoint holds "
                              "(copy the checkpoint folder again)")
    return file


def check_resolved_config(config: dict[str, Any], cfg: Any) -> None:
    """The ``resolved_model_config`` stored at save time must equal the config the registry rebuilds now: a hand-
    edited value (or a registry default that changed since training) would build another model around the same
    weights. Fields the rebuilt config has and the stored one lacks (added later, with their defaults) pass; a
    stored field that differs or no longer exists is an error naming it."""
    from evalkit.core.typed import flat

    stored = config.get("resolved_model_config")
    if not isinstance(stored, dict) or not dataclasses.is_dataclass(cfg):
        return                        # a checkpoint of a non-dataclass config stores its repr: provenance only
    now = flat(json.loads(json.dumps(to_dict(cfg), default=str)))
    old = flat(stored)
    diff = [k for k in old if k not in ("name", "flavor") and (k not in now or now[k] != old[k])]
    if diff:
        shown = "; ".join(f"{k}: stored {old[k]!r}, rebuilt {now.get(k, '(no such field)')!r}" for k in diff[:4])
        more = f" (+{len(diff) - 4} more)" if len(diff) > 4 else ""
        raise FieldError(f"checkpoint.resolved_model_config.{diff[0]}",
                         f"{CONFIG} stores a model config that differs from the one its model name, flavor and "
                         f"overrides rebuild ({shown}{more}): the weights were trained for the stored one. Fix "
                         f"{CONFIG} (model.overrides) or use the code the checkpoint was made with")


def check_safetensors(file: Path) -> dict[str, Any]:
    """The header of a safetensors file, after checking the file is whole: an 8-byte little-endian header
    length, a JSON header, and every tensor's ``data_offsets`` inside the data that follows (safetensors format,
    huggingface/safetensors README). Cheap (reads the header only): a truncated or corrupt file is an error here,
    before any long work."""
    size = file.stat().st_size
    with open(file, "rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n <= 0 or 8 + n > size:
            raise CheckpointError(f"checkpoint: {file} is not a whole safetensors file ({size} bytes; header "
                                  f"length {n}): truncated or corrupt")
        try:
            header = json.loads(fh.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"checkpoint: {file} has a corrupt safetensors header ({exc})") from None
    end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end != size:
        raise CheckpointError(f"checkpoint: {file} is {size} bytes but its header describes {8 + n + end}: "
                              "truncated or corrupt (copy it again)")
    return header


def _read_tensors(file: Path):
    from safetensors.torch import load_file

    check_safetensors(file)
    return load_file(str(file))


def check_tensors(expected: dict[str, tuple], got: dict[str, tuple], where: str, limit: int = 5) -> None:
    """Raise naming the first mismatching tensors (missing, unexpected, shape) in state-dict order."""
    problems = []
    for k, shape in expected.items():
        if k not in got:
            problems.append(f"missing {k} (expected shape {list(shape)})")
        elif tuple(got[k]) != tuple(shape):
            problems.append(f"{k}: expected shape {list(shape)}, got {list(got[k])}")
    problems += [f"unexpected {k} (shape {list(got[k])})" for k in got if k not in expected]
    if problems:
        more = f" (+{len(problems) - limit} more)" if len(problems) > limit else ""
        raise CheckpointError(f"{where}: tensors do not match the config: " + "; ".join(problems[:limit]) + more)


def load_checkpoint(path: str | Path, *, device: str = "cpu") -> Checkpoint:
    """Rebuild the model from ``config.json`` and load its weights (safetensors; no unpickling by default)."""
    from evalkit import models
    from evalkit.runtime.text import T5TextEncoder, build_builtin

    path = Path(path)
    config = validate_folder(path)
    wfile = weights_file(path)
    cfg = model_config(config)
    text_spec = from_dict(TextEncoderSpec, config["text_encoder"], "checkpoint.text_encoder")
    decoder_spec = decoder_spec_of(config)
    model = models.build(cfg, device="cpu")
    state = _read_tensors(wfile)
    check_tensors({k: tuple(v.shape) for k, v in model.state_dict().items()},
                  {k: tuple(v.shape) for k, v in state.items()}, f"checkpoint {wfile}")
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    if text_spec.kind == "builtin":
        tfile = path / TEXT_WEIGHTS
        if not tfile.exists():
            raise CheckpointError(f"checkpoint: {path} is missing {TEXT_WEIGHTS} (its builtin text encoder)")
        text = build_builtin(text_spec)
        tstate = _read_tensors(tfile)
        check_tensors({k: tuple(v.shape) for k, v in text.state_dict().items()},
                      {k: tuple(v.shape) for k, v in tstate.items()}, f"checkpoint {tfile}")
        text.load_state_dict(tstate, strict=True)
        text.to(device).eval()
    else:
        text = T5TextEncoder(text_spec, device)
    for p in model.parameters():
        p.requires_grad_(False)
    return Checkpoint(path=path, config=config, model=model, text_encoder=text, text_spec=text_spec,
                      decoder_spec=decoder_spec, **file_hashes(path, text_spec.kind == "builtin"))


def file_hashes(path: str | Path, builtin_text: bool) -> dict[str, str | None]:
    """The sha256 of the files a checkpoint's videos depend on (:class:`Checkpoint`'s ``sha256``,
    ``config_sha256``, ``text_sha256``), without building anything."""
    path = Path(path)
    return {"sha256": file_sha256(weights_file(path)), "config_sha256": file_sha256(path / CONFIG),
            "text_sha256": file_sha256(path / TEXT_WEIGHTS) if builtin_text else None}


def model_config(config: dict[str, Any]):
    """The model config a checkpoint's ``config.json`` names (rebuilt through the registry)."""
    from evalkit import models

    m = config["model"]
    return models.resolve(m["name"], m["flavor"], m.get("overrides") or None)


def decoder_spec_of(config: dict[str, Any]) -> DecoderSpec:
    return from_dict(DecoderSpec, config["decoder"], "checkpoint.decoder")


def validate_folder(path: str | Path) -> dict[str, Any]:
    """Cheap checks before long work: config readable, weights present, registry name/flavor valid."""

    config = read_config(path)
    check_safetensors(weights_file(path))
    if (Path(path) / TEXT_WEIGHTS).exists():
        check_safetensors(_require_file(Path(path) / TEXT_WEIGHTS))
    m = config.get("model") or {}
    if not isinstance(m, dict) or "name" not in m or "flavor" not in m:
        raise FieldError("checkpoint.model", "config.json must name the registry model and flavor")
    for section in ("text_encoder", "decoder"):
        if not isinstance(config.get(section), dict):
            raise FieldError(f"checkpoint.{section}", f"config.json has no {section} section (a mapping)")
    check_resolved_config(config, model_config(config))
    decoder_spec_of(config)
    return config
