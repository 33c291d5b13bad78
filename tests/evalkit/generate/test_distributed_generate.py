"""``torchrun --nproc-per-node 2 -m evalkit generate`` (two CPU processes) writes the same videos as one process.

The checkpoint is a seeded, untrained tiny LinGen in the pixel-space geometry of experiments/train_tiny.yaml
(32x32, 8 frames at 8 fps): the sampler, text encoder and decoder run for real, only the weights are random.

The CLI runs through a two-line wrapper that also saves each video's uint8 frames as they go to the mp4 encoder:
the comparison is exact on those frames. The mp4 bytes themselves are not compared: libx264 was observed to encode
identical frames of these 32x32 videos into two different bitstreams from one call to the next (decoded pixels
differ by up to 13 levels), independently of the number of processes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evalkit.generate.core import read_videos
PROMPTS = ["a red square moving left", "a blue circle moving up", "a green triangle moving down"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from conftest import make_checkpoint

    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "lingen")


WRAPPER = """
import sys, numpy as np
import evalkit.runtime.video_io as vio
_write = vio.write_video
def write_video(path, frames, *a, **k):
    np.save(str(path) + ".frames.npy", np.asarray(frames))
    return _write(path, frames, *a, **k)
vio.write_video = write_video
from evalkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _generate(launcher: list[str], ckpt: Path, prompts: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}   # same thread count in both runs (bitwise-equal kernels)
    wrapper = out.parent / "generate_wrapper.py"
    wrapper.write_text(WRAPPER)
    cmd = launcher + [str(wrapper), "generate", "--checkpoint", str(ckpt), "--prompts", str(prompts),
                      "--samples", "2", "--steps", "3", "--cfg-scale", "2.0", "--batch-size", "1",
                      "--out", str(out), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _frames(path: Path) -> np.ndarray:
    """The uint8 frames the generator handed to the encoder for this video."""
    return np.load(str(path) + ".frames.npy")


def _decoded(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.mark.slow   # a few seconds of subprocesses: in the slow group, kept out of the quick run
def test_torchrun_two_ranks_generate_same_videos_as_one_process(tmp_path, checkpoint):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    _generate([sys.executable], checkpoint, prompts, tmp_path / "one")
    _generate([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"],
              checkpoint, prompts, tmp_path / "two")
    # each rank wrote its own manifest shard; together they hold every video exactly once
    assert sorted(p.name for p in (tmp_path / "two").glob("videos*.jsonl")) == ["videos.0.jsonl", "videos.1.jsonl"]
    ranks = {}
    for r in (0, 1):
        lines = (tmp_path / "two" / f"videos.{r}.jsonl").read_text().splitlines()
        ranks[r] = {json.loads(ln)["file"] for ln in lines}
        assert all(json.loads(ln)["world_size"] == 2 for ln in lines)
    assert not ranks[0] & ranks[1] and len(ranks[0]) == len(ranks[1]) == 3
    one = {v["file"]: v for v in read_videos(tmp_path / "one")}
    two = {v["file"]: v for v in read_videos(tmp_path / "two")}
    assert sorted(one) == sorted(two) == sorted(f"{p}-{i}.mp4" for p in PROMPTS for i in range(2))
    for name in one:
        assert one[name]["seed"] == two[name]["seed"]
        a, b = _frames(tmp_path / "one" / name), _frames(tmp_path / "two" / name)
        assert a.shape == (8, 32, 32, 3) and _decoded(tmp_path / "two" / name).shape == a.shape
        np.testing.assert_array_equal(a, b, err_msg=name)
    # different prompts/seeds give different videos (the comparison above is not vacuous)
    names = sorted(one)
    assert not np.array_equal(_frames(tmp_path / "one" / names[0]), _frames(tmp_path / "one" / names[1]))


@pytest.mark.slow
def test_generate_shards_as_submitit_jobs_equal_one_process(tmp_path, checkpoint):
    """The same verb fanned out as two submitit jobs (LocalExecutor: real subprocesses), one rank each."""
    from evalkit.launch import cli_shard_items, run_items
    from evalkit.launch.config import LaunchConfig

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    _generate([sys.executable], checkpoint, prompts, tmp_path / "one")
    argv = ["generate", "--checkpoint", str(checkpoint), "--prompts", str(prompts), "--samples", "2",
            "--steps", "3", "--cfg-scale", "2.0", "--batch-size", "1", "--out", str(tmp_path / "jobs"),
            "--no-progress"]
    cfg = LaunchConfig(launcher="submitit", submitit_cluster="local")
    out = run_items(cli_shard_items(argv, 2), "evalkit.launch:cli_shard_item", launch=cfg,
                    run_dir=tmp_path / "jobs.run")
    assert out["done"] == 2 and not out["errors"]
    one = {v["file"]: v for v in read_videos(tmp_path / "one")}
    two = {v["file"]: v for v in read_videos(tmp_path / "jobs")}
    assert sorted(one) == sorted(two) and {v["rank"] for v in two.values()} == {0, 1}
    for name in one:   # frames: see the module docstring (the torchrun test compares them exactly)
        assert one[name]["seed"] == two[name]["seed"]
        assert _decoded(tmp_path / "jobs" / name).shape == (8, 32, 32, 3)
    # re-submission: both shards are done, nothing runs
    again = run_items(cli_shard_items(argv, 2), "evalkit.launch:cli_shard_item", launch=cfg,
                      run_dir=tmp_path / "jobs.run")
    assert again["submitted"] == 0


@pytest.mark.slow
def test_generate_cli_launcher_shards(tmp_path, checkpoint):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    cmd = [sys.executable, "-m", "evalkit", "generate", "--checkpoint", str(checkpoint), "--prompts", str(prompts),
           "--samples", "2", "--steps", "3", "--cfg-scale", "2.0", "--batch-size", "1", "--out",
           str(tmp_path / "out"), "--no-progress", "--launcher", "submitit", "--shards", "2",
           "--set", "launch.submitit_cluster=local"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1])["done"] == 2
    videos = read_videos(tmp_path / "out")
    assert sorted(v["file"] for v in videos) == sorted(f"{p}-{i}.mp4" for p in PROMPTS for i in range(2))
    assert {v["rank"] for v in videos} == {0, 1} and (tmp_path / "out.jobs" / "jobs").is_dir()


def test_sharded_rerun_is_decided_by_the_videos_records_not_the_job_files(tmp_path, checkpoint, capsys):
    """`generate --shards 2` run again: nothing submitted while every video is as recorded; a deleted video is
    made again (its shard's job file still says done); weights changed under the same path are refused before
    anything is submitted (the job files would have called both shards done)."""
    import shutil

    from conftest import make_checkpoint
    from evalkit.cli import main

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    ckpt = tmp_path / "ckpt"
    shutil.copytree(checkpoint, ckpt)
    out = tmp_path / "out"
    argv = ["generate", "--checkpoint", str(ckpt), "--prompts", str(prompts), "--samples", "1", "--steps", "2",
            "--cfg-scale", "2.0", "--batch-size", "1", "--out", str(out), "--no-progress", "--shards", "2"]

    def run() -> dict:
        capsys.readouterr()
        assert main(argv) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    first = run()
    assert first["submitted"] == 2 and first["done"] == 2
    recorded = {v["file"]: v["mp4_sha256"] for v in read_videos(out)}
    assert len(recorded) == 3
    again = run()
    assert again["submitted"] == 0 and again["videos_done"] == 3
    gone = sorted(recorded)[1]
    (out / gone).unlink()
    after = run()
    assert after["submitted"] == 2 and after["done"] == 2 and not after["errors"]
    assert (out / gone).is_file() and {v["file"] for v in read_videos(out)} == set(recorded)
    assert {v["file"]: v["mp4_sha256"] for v in read_videos(out) if v["file"] != gone} == \
        {f: s for f, s in recorded.items() if f != gone}          # the others were not made again
    make_checkpoint(ckpt, seed=1)                                  # other weights, same folder
    jobs = sorted((tmp_path / "out.jobs" / "jobs").iterdir())
    capsys.readouterr()
    assert main(argv) == 2 and "made with other settings" in capsys.readouterr().err
    assert sorted((tmp_path / "out.jobs" / "jobs").iterdir()) == jobs  # refused before any job
