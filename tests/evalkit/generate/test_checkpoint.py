"""Checkpoint folders: round trip, tensor/config mismatch names the tensors, missing weights, a pickle refused."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from evalkit.core.errors import FieldError
from evalkit.runtime.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, validate_folder
from evalkit.runtime.decoders import DecoderSpec
from evalkit.runtime.text import TextEncoderSpec, build_builtin

OVERRIDES = {"latent.channels": 48, "latent.compression": [1, 4, 4], "latent.patch": [1, 2, 2]}


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    from evalkit import models

    torch.manual_seed(0)
    cfg = models.resolve("lingen", "tiny", OVERRIDES)
    model = models.build(cfg)
    spec = TextEncoderSpec(dim=cfg.text_dim, max_len=cfg.text_len)
    out = tmp_path_factory.mktemp("ck") / "lingen"
    save_checkpoint(out, model, name="lingen", flavor="tiny", overrides=OVERRIDES, text_spec=spec,
                    decoder_spec=DecoderSpec(compression=(1, 4, 4)), text_encoder=build_builtin(spec),
                    extra={"point": {"height": 32, "width": 32, "duration_s": 1.0, "fps": 8}})
    return out


def _copy(src, tmp_path):
    dst = tmp_path / "ck"
    shutil.copytree(src, dst)
    return dst


def test_round_trip(ckpt_dir):
    ck = load_checkpoint(ckpt_dir)
    saved = load_file(str(ckpt_dir / "model.safetensors"))
    state = ck.model.state_dict()
    assert state.keys() == saved.keys()
    assert all(torch.equal(state[k], saved[k]) for k in saved)
    assert len(ck.sha256) == 64 and ck.config["model"] == {"name": "lingen", "flavor": "tiny",
                                                           "overrides": OVERRIDES}
    assert ck.config["resolved_model_config"]["latent"]["channels"] == 48


def test_config_mismatch_names_tensors(ckpt_dir, tmp_path):
    dst = _copy(ckpt_dir, tmp_path)
    cfg = json.loads((dst / "config.json").read_text())
    cfg["model"]["overrides"]["latent.channels"] = 12
    cfg["model"]["overrides"]["latent.compression"] = [1, 2, 2]
    (dst / "config.json").write_text(json.dumps(cfg))
    # the stored resolved config no longer matches what the edited overrides rebuild: refused, naming the field
    with pytest.raises(FieldError, match=r"checkpoint\.resolved_model_config\.latent\.channels: .*stored 48, "
                                         r"rebuilt 12"):
        load_checkpoint(dst)
    del cfg["resolved_model_config"]             # no stored config to compare: the tensors' shapes still catch it
    (dst / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"tensors do not match the config: .*expected shape \[.*\], got"):
        load_checkpoint(dst)


def test_missing_and_unexpected_tensors(ckpt_dir, tmp_path):
    dst = _copy(ckpt_dir, tmp_path)
    state = load_file(str(dst / "model.safetensors"))
    first = next(iter(state))
    state.pop(first)
    state["extra.weight"] = torch.zeros(2)
    save_file(state, str(dst / "model.safetensors"))
    with pytest.raises(CheckpointError, match=rf"missing {first} .*unexpected extra.weight"):
        load_checkpoint(dst)


def test_missing_weights_and_legacy_pt(ckpt_dir, tmp_path):
    dst = _copy(ckpt_dir, tmp_path)
    state = load_file(str(dst / "model.safetensors"))
    (dst / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing its weights: expected model.safetensors"):
        validate_folder(dst)
    torch.save({"state_dict": state, "evil": object()}, dst / "model.pt")
    with pytest.raises(CheckpointError, match="model.pt but no model.safetensors.*never unpickles"):
        load_checkpoint(dst)                                          # a pickle is never loaded


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="is not a folder"):
        validate_folder(tmp_path / "nope")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="not an evalkit-checkpoint"):
        validate_folder(tmp_path)
