"""VBench (dimension, shard) units spread over torchrun ranks and launcher jobs give the records of one process.

The VBench worker is the fake of tests/fixtures/vbench (deterministic per-video scores, a call log), so this runs
without the VBench environment; the real package is exercised by the ``vbench``-marked tests.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.core.records import read_records
from evalkit.vbench.runner import RunConfig, run
from repo_paths import FIXTURES
FIX = FIXTURES / "vbench"
sys.path.insert(0, str(FIX))
from videos import static_frames, write_mp4  # noqa: E402

FAKE = f"{sys.executable} {FIX / 'fake_worker.py'}"
DIMS = ("temporal_flickering", "imaging_quality")
SAME = ("key", "dimension", "score", "n_expected", "n_evaluated", "status", "n_shards")


@pytest.fixture()
def suite(tmp_path, monkeypatch):
    videos = tmp_path / "videos"
    for i in range(3):
        write_mp4(videos / f"a red car-{i}.mp4", static_frames(8, seed=i))
    (tmp_path / "prompts.txt").write_text("a red car\n")
    cache = tmp_path / "cache"
    (cache / "pyiqa_model").mkdir(parents=True)
    (cache / "pyiqa_model" / "musiq_spaq_ckpt-358bb6af.pth").write_bytes(b"w")
    monkeypatch.setenv("EVALKIT_VBENCH_WORKER", FAKE)
    monkeypatch.setenv("VBENCH_CACHE_DIR", str(cache))
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "evalkit-cache"))
    return tmp_path


def _argv(suite: Path, out: str) -> list[str]:
    return ["vbench", "run", "--videos", str(suite / "videos"), "--mode", "custom", "--dimensions", *DIMS,
            "--name", "m", "--prompt-file", str(suite / "prompts.txt"), "--samples-per-prompt", "3",
            "--shard-size", "1", "--cache-dir", str(suite / "cache"), "--out", str(suite / out),
            "--allow-unofficial-weights"]   # a placeholder MUSIQ file


def _calls(log: Path) -> list[tuple]:
    return sorted((c["dimension"], tuple(c["videos"])) for c in map(json.loads, log.read_text().splitlines())
                  if c["action"] != "check_weights")


def _records(run_dir: Path) -> list[dict]:
    return sorted(({k: r.get(k) for k in SAME} for r in read_records([run_dir])), key=lambda r: r["key"])


def _single(suite: Path) -> list[dict]:
    cfg = RunConfig(videos=suite / "videos", mode="custom", dimensions=DIMS, name="m", out=suite / "one",
                    prompt_file=suite / "prompts.txt", samples_per_prompt=3, shard_size=1,
                    cache_dir=suite / "cache", worker_cmd=tuple(FAKE.split()), allow_unofficial_weights=True)
    run(cfg)
    return _records(suite / "one")


@pytest.mark.slow   # a few seconds of subprocesses: in the slow group, kept out of the quick run
def test_torchrun_ranks_split_units_and_rank0_merges(suite, monkeypatch):
    one = _single(suite)
    log = suite / "calls.jsonl"
    env = {**os.environ, "FAKE_WORKER_LOG": str(log), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "evalkit", *_argv(suite, "two")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(one) == 2 and _records(suite / "two") == one
    calls = _calls(log)        # 2 dimensions x 3 one-video shards, each run exactly once over both ranks
    assert len(calls) == len(set(calls)) == 6


@pytest.mark.slow   # a few seconds of subprocesses: in the slow group, kept out of the quick run
def test_launcher_jobs_split_units_then_merge(suite, monkeypatch):
    one = _single(suite)
    log = suite / "calls.jsonl"
    monkeypatch.setenv("FAKE_WORKER_LOG", str(log))
    from evalkit.cli import main

    argv = _argv(suite, "jobs") + ["--launcher", "submitit", "--jobs", "2", "--set",
                                   "launch.submitit_cluster=local"]
    assert main(argv) == 0
    assert _records(suite / "jobs") == one
    assert len(_calls(log)) == len(set(_calls(log))) == 6
    assert main(argv) == 0 and len(_calls(log)) == 6      # re-submission: nothing runs again
