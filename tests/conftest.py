"""Shared fixtures: ``tests/fixtures/`` on PYTHONPATH for child processes (faults.py), a random-weight tiny checkpoint, small
real human-preference studies (PyAV-written mp4s + a study file), and the rule that ``browser``, ``triton`` and
``slurm`` tests run only when the marker expression asks for them (``pytest -m browser``, ``-m triton``, ``-m slurm``;
the slurm group's cluster fixture is in slurm_fixtures.py).

``triton`` (test_triton_*.py: mamba-ssm's fused SSD under Triton's interpreter on CPU): when ``-m`` selects it,
``pytest_configure`` sets ``TRITON_INTERPRET=1`` before any test module is imported. Triton compiles its own
library (``tl.cumsum``, ...) for the interpreter only if that is set before ``import triton``, and
``torch.utils.flop_counter`` (imported by lingen) imports triton when it is installed, so this cannot wait for a
fixture. Runs that do not select the group are untouched; its fixtures are in triton_fixtures.py.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import yaml
from _pytest.mark.expression import Expression

# tests/ is laid out like the packages; the helpers they share live in one folder, importable from any of them
sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
from repo_paths import FIXTURES  # noqa: E402
from slurm_fixtures import slurm_cluster  # noqa: E402,F401 (slurm group)
from triton_fixtures import cpu_shims, fused_ssd, measured, pytest_terminal_summary  # noqa: E402,F401 (triton group)

# the pixel-space geometry of experiments/train_tiny.yaml at 32x32, 8 frames at 8 fps
TINY_OVERRIDES = {"latent.channels": 48, "latent.compression": [1, 4, 4], "latent.patch": [1, 2, 2]}
TINY_POINT = {"height": 32, "width": 32, "duration_s": 1.0, "fps": 8}


@pytest.fixture
def faults_on_path(monkeypatch):
    """Child processes (the process launcher, submitit's local executor) can import ``faults``."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(FIXTURES), os.environ.get("PYTHONPATH")])))


def make_checkpoint(out: Path, seed: int = 0) -> Path:
    """A seeded, untrained tiny LinGen checkpoint folder (sampler, text encoder and decoder run for real)."""
    import dataclasses

    import torch

    from evalkit import models
    from evalkit.runtime.checkpoint import save_checkpoint
    from evalkit.runtime.decoders import DecoderSpec
    from evalkit.runtime.text import TextEncoderSpec, build_builtin

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


# arm -> RGB of its moving bar, so a screenshot shows two different videos
COLOURS = {"lingen": (230, 60, 40), "dit": (40, 110, 230), "mamba": (60, 180, 80)}


def _selects(config, marker: str) -> bool:
    """The -m expression is given and selects a test marked only ``marker``."""
    markexpr = config.getoption("-m") or ""
    return bool(markexpr) and Expression.compile(markexpr).evaluate(lambda name, **_: name == marker)


def _names(config, marker: str) -> bool:
    """The -m expression names ``marker`` and selects a test marked only with it (``-m slurm``; not the quick
    run's ``-m "not slow and ..."``, which a test marked only ``marker`` would satisfy)."""
    return marker in (config.getoption("-m") or "") and _selects(config, marker)


def pytest_configure(config):
    if _selects(config, "triton"):
        os.environ["TRITON_INTERPRET"] = "1"
        os.environ["MAMBA_DETERMINISTIC"] = "1"  # one autotune config: no GPU driver to benchmark configs with


def pytest_collection_modifyitems(config, items):
    """The quick and slow runs (-m "not slow and not vbench", -m slow) never need chromium: browser tests are
    deselected unless the -m expression names them. Under -m browser they run, and fail when chromium or the
    extra is missing. Likewise triton tests run only when -m selects them (they need the interpreter switched on
    before triton is imported: their own process), and slurm tests only under -m slurm (they start a real SLURM
    cluster as root: tests/slurm/cluster.sh)."""
    off = [m for m, wanted in (("browser", "browser" in (config.getoption("-m") or "")),
                               ("triton", _selects(config, "triton")),
                               ("slurm", _names(config, "slurm"))) if not wanted]
    drop = [i for i in items if any(i.get_closest_marker(m) for m in off)]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [i for i in items if i not in drop]


def write_clip(path: Path, rgb: tuple[int, int, int], frames: int = 12, size: int = 64, fps: int = 8,
               pix_fmt: str = "yuv420p") -> Path:
    from evalkit.runtime.video_io import write_video

    clip = np.full((frames, size, size, 3), 24, dtype=np.uint8)   # (T, H, W, 3)
    for t in range(frames):
        x = (t * size // frames) % (size - 12)
        clip[t, :, x:x + 12] = rgb
    return write_video(path, clip, fps, pix_fmt=pix_fmt)


@pytest.fixture
def make_study(tmp_path) -> Callable[..., Path]:
    """``make_study(prompts, arms=("lingen", "dit"), samples=1, **keys)`` -> path of a study YAML whose arm folders
    hold real mp4s; extra keys go into the YAML (e.g. pairs, report)."""

    def make(prompts: Sequence[str] = ("a red fox", "a blue car", "a cat"), arms: Sequence[str] = ("lingen", "dit"),
             samples: int = 1, name: str = "test_study", videos: bool = True, **keys) -> Path:
        root = tmp_path / name
        root.mkdir(parents=True, exist_ok=True)
        (root / "prompts.txt").write_text("\n".join(prompts) + "\n", encoding="utf-8")
        for arm in arms:
            (root / arm).mkdir(exist_ok=True)
            if videos:
                for p in prompts:
                    for i in range(samples):
                        write_clip(root / arm / f"{p}-{i}.mp4", COLOURS.get(arm, (200, 200, 200)))
        study = {"name": name, "prompts": "prompts.txt", "samples": samples, "arms": {a: a for a in arms}, **keys}
        path = root / "study.yaml"
        path.write_text(yaml.safe_dump(study, sort_keys=False), encoding="utf-8")
        return path

    return make


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m evalkit humaneval serve`` in its own process (a real uvicorn on 127.0.0.1)."""

    def __init__(self, study: Path, db_path: Path, *extra: str, port: int | None = None) -> None:
        self.study, self.db_path, self.extra = study, db_path, extra
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log = db_path.parent / f"server-{self.port}.log"

    def start(self, timeout: float = 60.0) -> Server:
        import os
        import subprocess
        import sys
        import time
        import urllib.request

        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "evalkit", "humaneval", "serve", str(self.study),
                                      "--db", str(self.db_path), "--port", str(self.port), *self.extra],
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                urllib.request.urlopen(self.url + "/api/state", timeout=2).read()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not answer within {timeout} s: {self.log.read_text()}")

    def kill9(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except Exception:
                self.proc.kill()
                self.proc.wait(timeout=15)


@pytest.fixture
def servers():
    """Start servers with ``servers(study, db, *flags).start()``; all are stopped at the end of the test."""
    started: list[Server] = []

    def make(*args, **kw) -> Server:
        s = Server(*args, **kw)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()
