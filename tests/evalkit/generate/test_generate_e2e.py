"""End to end on CPU: train a tiny LinGen a few steps, save, load, generate 2 videos, decode, re-seed, resume."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from evalkit.cli import main as evalkit_main
from evalkit.generate.core import read_videos
from evalkit.core.records import read_records
from evalkit.runtime.video_io import read_video
from repo_paths import REPO

EXPERIMENT = REPO / "experiments" / "train_tiny.yaml"
SMALL = ["train.steps=3", "train.batch=2", "train.log_every=1", "eval.max_prompts=2", "eval.steps=3",
         "eval.batch_size=2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    threads = torch.get_num_threads()                    # the experiment sets 1 thread; restore it afterwards
    run = tmp_path_factory.mktemp("run") / "r1"
    rc = evalkit_main(["train", str(EXPERIMENT), "--only", "lingen", "--run-dir", str(run), *sum(
        (["--set", s] for s in SMALL), [])])
    assert rc == 0
    yield run
    torch.set_num_threads(threads)


def test_train_writes_records_checkpoint_and_alignment(trained):
    recs = read_records([trained])
    loss = [r for r in recs if r["kind"] == "train_loss"]
    assert [r["step"] for r in loss] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) and r["model"] == "lingen" and r["variant"] == "default" for r in loss)
    align = {r["metric"]: r for r in recs if r["kind"] == "alignment" and r["label"] == "lingen"}
    assert set(align) == {"color_accuracy", "direction_accuracy", "temporal_consistency"}
    assert all(r["n_videos"] == 2 and 0 <= r["value"] <= 1 for r in align.values())
    ref = {r["metric"]: r["value"] for r in recs if r["kind"] == "alignment" and r["label"] == "dataset"}
    assert ref == {"color_accuracy": 1.0, "direction_accuracy": 1.0, "temporal_consistency": 1.0}
    assert (trained / "manifest.json").exists() and (trained / "checkpoints/lingen/model.safetensors").exists()


def _generate(ckpt, prompts, out, *extra):
    return evalkit_main(["generate", "--checkpoint", str(ckpt), "--prompts", str(prompts), "--samples", "2",
                         "--out", str(out), "--steps", "4", "--cfg-scale", "2.0", "--no-progress", *extra])


def test_generate_decode_seed_resume(trained, tmp_path, capsys):
    ckpt = trained / "checkpoints" / "lingen"
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red square moving left\n")
    assert _generate(ckpt, prompts, tmp_path / "a") == 0
    recs = sorted(read_videos(tmp_path / "a"), key=lambda r: r["index"])
    assert [r["file"] for r in recs] == ["a red square moving left-0.mp4", "a red square moving left-1.mp4"]
    assert all(r["steps"] == 4 and r["schedule"] == "linear-quadratic" and r["cfg_scale"] == 2.0
               and len(r["checkpoint_sha256"]) == 64 for r in recs)
    videos = [read_video(tmp_path / "a" / r["file"]) for r in recs]
    for frames, fps in videos:
        assert frames.shape == (8, 16, 16, 3) and fps == 8
    assert not np.array_equal(videos[0][0], videos[1][0])            # different seeds -> different videos
    assert _generate(ckpt, prompts, tmp_path / "b") == 0             # same seeds -> same videos
    again = {r["file"]: r for r in read_videos(tmp_path / "b")}
    for r, (frames, _) in zip(recs, videos):
        # the sampled frames are bit-identical; the decoded mp4s may differ by encoder noise only (libx264 can
        # emit different bitstreams for identical input at tiny sizes)
        assert again[r["file"]]["frames_sha256"] == r["frames_sha256"] and len(r["frames_sha256"]) == 64
        decoded = read_video(tmp_path / "b" / r["file"])[0].astype(int)
        assert decoded.shape == frames.shape and np.abs(decoded - frames).mean() < 2.0
    capsys.readouterr()
    assert _generate(ckpt, prompts, tmp_path / "a") == 0             # resume: nothing regenerated
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["skipped"] == 2


def test_bad_inputs_fail_before_sampling(trained, tmp_path, capsys):
    ckpt = trained / "checkpoints" / "lingen"
    good = tmp_path / "p.txt"
    good.write_text("a red square moving left\n")
    bad = tmp_path / "bad.txt"
    bad.write_text("a red square moving left\n\n")
    assert _generate(ckpt, bad, tmp_path / "o") == 2
    assert "empty line" in capsys.readouterr().err
    assert _generate(ckpt, good, tmp_path / "o", "--duration-s", "0.3") == 2
    assert "not a whole positive number of frames" in capsys.readouterr().err
    assert _generate(ckpt, good, tmp_path / "o", "--duration-s", "200") == 2       # 1600 frames > max_grid
    assert "max_grid" in capsys.readouterr().err
    assert _generate(ckpt, good, tmp_path / "o", "--height", "18") == 2
    assert "height" in capsys.readouterr().err
    empty = tmp_path / "empty_ck"
    empty.mkdir()
    (empty / "config.json").write_text((ckpt / "config.json").read_text())
    assert _generate(empty, good, tmp_path / "o") == 2
    assert "missing its weights" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()                              # nothing started


def test_train_bad_experiment(tmp_path, capsys):
    assert evalkit_main(["train", str(EXPERIMENT), "--only", "lingn", "--run-dir", str(tmp_path / "x")]) == 2
    assert "Did you mean 'lingen'" in capsys.readouterr().err
    assert evalkit_main(["train", str(EXPERIMENT), "--set", "train.stepz=3", "--run-dir", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
