"""Checkpoint folders (issue 6): ``config.json`` + ``model.safetensors`` (+ ``text_encoder.safetensors``).

``config.json`` holds everything needed to rebuild the model without the training code: the registry name,
flavor and overrides (rebuilt with ``evalkit.models.resolve``), the resolved model config and latent geometry (for
provenance), the text-encoder spec and the decoder spec. Weights are safetensors: loading never unpickles. A legacy
``model.pt`` is read only with ``allow_legacy_pt=True`` and then with ``torch.load(weights_only=True)``. Before any
weight is copied, every tensor name and shape is compared with the model built from the config; a mismatch is an
error naming the first mismatching tensors (missing, unexpected, or name: expected shape vs got shape).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from evalkit.decoders import DecoderSpec
from evalkit.errors import EvalkitError, FieldError
from evalkit.text import TextEncoderSpec
from evalkit.typed import from_dict, to_dict

FORMAT, FORMAT_VERSION = "evalkit-checkpoint", 1
CONFIG, WEIGHTS, TEXT_WEIGHTS, LEGACY = "config.json", "model.safetensors", "text_encoder.safetensors", "model.pt"


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

    @property
    def model_cfg(self):
        return self.model.cfg


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
    config = json.loads(cfile.read_text())
    if config.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint: {cfile} is not an {FORMAT} config (format={config.get('format')!r})")
    return config


def weights_file(path: str | Path, allow_legacy_pt: bool = False) -> Path:
    """The weights file of a checkpoint folder; a clear error when it is missing (checked before any work)."""
    path = Path(path)
    if (path / WEIGHTS).exists():
        return path / WEIGHTS
    if (path / LEGACY).exists():
        if not allow_legacy_pt:
            raise CheckpointError(f"checkpoint: {path} has only a legacy {LEGACY} (a pickle); pass --legacy-pt to "
                                  "load it with torch.load(weights_only=True), or convert it to safetensors")
        return path / LEGACY
    raise CheckpointError(f"checkpoint: {path} is missing its weights: expected {WEIGHTS}"
                          f"{' or ' + LEGACY if allow_legacy_pt else ''}")


def _read_tensors(file: Path):
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(file))
    import torch
    state = torch.load(str(file), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


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


def load_checkpoint(path: str | Path, *, device: str = "cpu", allow_legacy_pt: bool = False) -> Checkpoint:
    """Rebuild the model from ``config.json`` and load its weights (safetensors; no unpickling by default)."""
    import torch

    from evalkit import models
    from evalkit.text import T5TextEncoder, build_builtin

    path = Path(path)
    config = read_config(path)
    wfile = weights_file(path, allow_legacy_pt)
    m = config["model"]
    cfg = models.resolve(m["name"], m["flavor"], m.get("overrides") or None)
    text_spec = from_dict(TextEncoderSpec, config["text_encoder"], "checkpoint.text_encoder")
    decoder_spec = from_dict(DecoderSpec, config["decoder"], "checkpoint.decoder")
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
                      decoder_spec=decoder_spec, sha256=file_sha256(wfile))


def validate_folder(path: str | Path, allow_legacy_pt: bool = False) -> dict[str, Any]:
    """Cheap checks before long work: config readable, weights present, registry name/flavor valid."""
    from evalkit import models

    config = read_config(path)
    weights_file(path, allow_legacy_pt)
    m = config.get("model") or {}
    if "name" not in m or "flavor" not in m:
        raise FieldError("checkpoint.model", "config.json must name the registry model and flavor")
    models.resolve(m["name"], m["flavor"], m.get("overrides") or None)
    return config
