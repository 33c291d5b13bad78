"""Shared fixtures: ``tests/`` on PYTHONPATH for child processes (faults.py), a random-weight tiny checkpoint."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# the pixel-space geometry of experiments/train_tiny.yaml at 32x32, 8 frames at 8 fps
TINY_OVERRIDES = {"latent.channels": 48, "latent.compression": [1, 4, 4], "latent.patch": [1, 2, 2]}
TINY_POINT = {"height": 32, "width": 32, "duration_s": 1.0, "fps": 8}


@pytest.fixture
def faults_on_path(monkeypatch):
    """Child processes (the process launcher, submitit's local executor) can import ``faults``."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))


def make_checkpoint(out: Path, seed: int = 0) -> Path:
    """A seeded, untrained tiny LinGen checkpoint folder (sampler, text encoder and decoder run for real)."""
    import dataclasses

    import torch

    from evalkit import models
    from evalkit.checkpoint import save_checkpoint
    from evalkit.decoders import DecoderSpec
    from evalkit.text import TextEncoderSpec, build_builtin

    cfg = models.resolve("lingen", "tiny", TINY_OVERRIDES)
    torch.manual_seed(seed)
    model = models.build(cfg, device="cpu")
    _, _, ctx = models.dummy_inputs(cfg, models.VideoPoint(**TINY_POINT), batch=1)
    text_spec = dataclasses.replace(TextEncoderSpec(), dim=int(ctx.shape[-1]), max_len=8, vocab_size=256)
    return save_checkpoint(out, model.eval(), name="lingen", flavor="tiny", overrides=TINY_OVERRIDES,
                           text_spec=text_spec, decoder_spec=DecoderSpec(kind="pixel", compression=(1, 4, 4)),
                           text_encoder=build_builtin(text_spec).eval(), extra={"point": TINY_POINT})


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "lingen")
