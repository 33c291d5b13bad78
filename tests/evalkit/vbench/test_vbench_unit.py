"""Unit tests of the VBench adapter without the VBench environment (a fake worker stands in for _worker.py):
VBench-Long clip splitting, naming, completeness errors, the offline-weights error, resume, worker failures."""
from __future__ import annotations

import json
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from evalkit.core.errors import EvalkitError, FieldError
from evalkit.vbench import completeness as comp
from evalkit.vbench import long as longmod
from evalkit.vbench import weights
from evalkit.vbench.runner import RunConfig, run, worker_command
from repo_paths import FIXTURES

FIX = FIXTURES / "vbench"
sys.path.insert(0, str(FIX))
from videos import decode, flicker_frames, static_frames, write_mp4  # noqa: E402

FAKE = (sys.executable, str(FIX / "fake_worker.py"))


@pytest.fixture(autouse=True)
def _private_caches(tmp_path, monkeypatch):
    """evalkit's hash and weight-check memory in a per-test folder, not the user's cache."""
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "evalkit-cache"))


# --- clip splitting (VBench-Long) -------------------------------------------------------------------------------

def test_plan_clips_17s_at_16fps():
    n = 17 * 16  # 272 frames
    two = longmod.plan_clips(n, 16.0, 2.0)
    assert len(two) == 9 and all(b - a == 32 for a, b in two)  # every clip 2.0 s
    assert two[:8] == [(32 * i, 32 * (i + 1)) for i in range(8)]
    assert two[8] == (240, 272)  # remainder (16 frames) padded with the 16 before it
    ten = longmod.plan_clips(n, 16.0, 10.0)
    assert ten == [(0, 160), (112, 272)]  # 10 s clips (human_action, temporal_style, overall_consistency)
    assert longmod.plan_clips(20, 16.0, 2.0) == [(0, 20)]  # shorter than one clip: kept whole
    assert longmod.clip_names("v-0", 20, 16.0, 2.0) == ["v-0_full.mp4"]
    assert longmod.expected_clip_count(17.0, 16.0, 2.0) == 9


def test_clip_seconds_rules():
    assert longmod.clip_seconds("temporal_flickering", "custom") == 2.0
    assert longmod.clip_seconds("overall_consistency", "custom") == 2.0  # long_custom_input: always 2 s
    assert longmod.clip_seconds("human_action") == 10.0
    # standard suite: the prompt's longest clip over its full-info dimensions (get_duration_from_json)
    assert longmod.clip_seconds("aesthetic_quality", "standard", ("overall_consistency", "aesthetic_quality")) == 10.0


def test_split_video_17s_real_file(tmp_path):
    frames = flicker_frames(17 * 16, size=16)
    frames[:, 0, 0, 0] = np.arange(17 * 16) % 256  # make every frame distinct
    src = write_mp4(tmp_path / "a dog-0.mp4", frames)
    clips = longmod.split_video(src, tmp_path / "clips", 2.0)
    assert [c.name for c in clips] == [f"a dog-0_{i:03d}.mp4" for i in range(9)]
    source = decode(src)
    for clip, (a, b) in zip(clips, longmod.plan_clips(len(source), 16.0, 2.0)):
        info = longmod.probe(clip)
        assert info.frames == 32 and info.fps == 16.0 and info.duration_s == 2.0
        got = decode(clip)
        assert all(np.array_equal(g, s) for g, s in zip(got, source[a:b]))  # lossless: same decoded frames
    mtime = clips[0].stat().st_mtime_ns
    assert longmod.split_video(src, tmp_path / "clips", 2.0) == clips and clips[0].stat().st_mtime_ns == mtime


# --- naming and completeness ------------------------------------------------------------------------------------

FULL_INFO = [
    {"prompt_en": "a cat", "dimension": ["subject_consistency", "temporal_flickering"]},
    {"prompt_en": "The bund Shanghai, oil painting", "dimension": ["appearance_style"]},
    {"prompt_en": "The bund Shanghai, oil painting", "dimension": ["overall_consistency"]},
    {"prompt_en": "a dog", "dimension": ["color"]},
]


def test_standard_naming_and_shared_prompts():
    exp = comp.expected_standard(FULL_INFO, ["temporal_flickering", "appearance_style", "overall_consistency"])
    names = [e.filename for e in exp]
    assert names[:5] == [f"a cat-{i}.mp4" for i in range(5)]
    # one file set serves both entries of a prompt listed twice (a quirk of VBench_full_info.json)
    assert len(names) == 10 and "The bund Shanghai, oil painting-4.mp4" in names
    shared = [e for e in exp if e.prompt.startswith("The bund")][0]
    assert shared.dimensions == ("appearance_style", "overall_consistency")
    assert comp.video_name("a b", 3) == "a b-3.mp4"
    with pytest.raises(FieldError, match="prompt"):
        comp.video_name("a/b", 0)


def test_completeness_lists_missing_per_dimension(tmp_path):
    write_mp4(tmp_path / "a cat-0.mp4", static_frames(8))
    exp = comp.expected_standard(FULL_INFO, ["temporal_flickering", "color"])
    with pytest.raises(comp.IncompleteError) as err:
        comp.check(tmp_path, exp, ["temporal_flickering", "color"])
    msg = str(err.value)
    assert "temporal_flickering: 1/5 present, missing 4" in msg and "a cat-4.mp4" in msg
    assert "color: 0/5 present" in msg and "a dog-0.mp4" in msg
    ok = comp.check(tmp_path, exp, ["temporal_flickering", "color"], allow_missing=True)
    assert ok.counts("temporal_flickering") == (5, 1) and ok.counts("color") == (5, 0)


def test_truncated_and_unreadable_videos_are_errors_with_path(tmp_path):
    good = write_mp4(tmp_path / "p-0.mp4", static_frames(16))
    data = good.read_bytes()
    (tmp_path / "p-1.mp4").write_bytes(data[: len(data) // 3])  # truncated
    (tmp_path / "p-2.mp4").write_bytes(b"not a video at all")
    exp = comp.expected_custom(["p"], ["temporal_flickering"], tmp_path, samples=3)
    with pytest.raises(longmod.VideoError) as err:
        comp.check(tmp_path, exp, ["temporal_flickering"])
    assert str(tmp_path / "p-1.mp4") in str(err.value) and str(tmp_path / "p-2.mp4") in str(err.value)
    assert str(tmp_path / "p-0.mp4") not in str(err.value)


def test_custom_mode_rejects_unsupported_dimensions(tmp_path):
    cfg = RunConfig(videos=tmp_path, mode="custom", dimensions=("temporal_flickering", "color", "scene"),
                    name="m", out=tmp_path / "out", worker_cmd=FAKE)
    with pytest.raises(FieldError) as err:
        run(cfg)
    assert "color, scene" in str(err.value) and "custom mode" in str(err.value)
    with pytest.raises(EvalkitError, match="Did you mean 'temporal_flickering'"):
        run(RunConfig(videos=tmp_path, mode="custom", dimensions=("temporal_flickerin",), name="m",
                      out=tmp_path / "o", worker_cmd=FAKE))


# --- weights ----------------------------------------------------------------------------------------------------

def test_offline_weights_error_lists_files_and_destinations(tmp_path):
    weights.require(["temporal_flickering"], tmp_path)  # needs none
    with pytest.raises(weights.MissingWeightsError) as err:
        weights.require(["temporal_flickering", "subject_consistency", "aesthetic_quality"], tmp_path)
    msg = str(err.value)
    assert "temporal_flickering" not in msg.split("Fetch")[0]
    # the DINO weights are read from the torch hub dir's checkpoints/, not the name VBench tests
    assert str(tmp_path / "dino_model" / "checkpoints" / "dino_vitbase16_pretrain.pth") in msg
    assert str(tmp_path / "clip_model" / "ViT-L-14.pt") in msg and "sa_0_4_vit_l_14_linear.pth" in msg
    assert "python -m evalkit vbench prefetch --dimensions subject_consistency aesthetic_quality" in msg


def test_prefetch_offline_reports_each_missing_file(tmp_path):
    def offline(url, dest):
        raise urllib.error.URLError("Temporary failure in name resolution")

    with pytest.raises(weights.MissingWeightsError) as err:
        weights.prefetch(["imaging_quality", "dynamic_degree"], tmp_path, download=offline, clone=offline)
    msg = str(err.value)
    assert str(tmp_path / "pyiqa_model" / "musiq_spaq_ckpt-358bb6af.pth") in msg
    assert str(tmp_path / "raft_model" / "models" / "raft-things.pth") in msg
    assert msg.count("download failed: URLError") == 2
    assert not list(tmp_path.rglob("*.partial"))

    def fake_download(url, dest):
        dest.write_bytes(b"w")

    got = weights.prefetch(["imaging_quality"], tmp_path, download=fake_download)
    assert got == [tmp_path / "pyiqa_model" / "musiq_spaq_ckpt-358bb6af.pth"]
    assert weights.missing(["imaging_quality"], tmp_path) == {}


# --- runs: resume, records, worker failures ---------------------------------------------------------------------

def _videos(tmp_path: Path, n: int = 3) -> Path:
    d = tmp_path / "videos"
    for i in range(n):
        write_mp4(d / f"a red car-{i}.mp4", static_frames(8, seed=i))
    (tmp_path / "prompts.txt").write_text("a red car\n")
    return d


def _calls(log: Path) -> list[dict]:
    """The worker's scoring calls (the weight check, once per run, is left out)."""
    calls = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    return [c for c in calls if c["action"] != "check_weights"]


def test_resume_per_dimension_and_shard(tmp_path, monkeypatch):
    videos = _videos(tmp_path)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_WORKER_LOG", str(log))
    cfg = RunConfig(videos=videos, mode="custom", dimensions=("temporal_flickering", "imaging_quality"),
                    name="lingen", out=tmp_path / "run", prompt_file=tmp_path / "prompts.txt",
                    samples_per_prompt=3, shard_size=1, cache_dir=tmp_path / "cache", worker_cmd=FAKE,
                    allow_unofficial_weights=True)   # a placeholder MUSIQ file: not the released one
    (tmp_path / "cache" / "pyiqa_model").mkdir(parents=True)
    (tmp_path / "cache" / "pyiqa_model" / "musiq_spaq_ckpt-358bb6af.pth").write_bytes(b"w")
    monkeypatch.setenv("FAKE_WORKER_FAIL", "temporal_flickering/shard_0001-")
    with pytest.raises(EvalkitError) as err:  # "interrupted" in the middle of the first dimension
        run(cfg)
    assert "exit 3" in str(err.value) and "CUDA out of memory (simulated)" in str(err.value)
    assert len(_calls(log)) == 2 and not (cfg.out / "results.jsonl").exists()
    monkeypatch.delenv("FAKE_WORKER_FAIL")
    monkeypatch.setattr(sys, "argv", ["evalkit", "vbench", "run", "--name", "lingen"])
    recs = run(cfg)
    calls = _calls(log)[2:]
    # shard 0 was kept, shards 1-2 and the second dimension's 3 shards ran
    assert [(c["dimension"], c["videos"]) for c in calls][:2] == [
        ("temporal_flickering", ["a red car-1.mp4"]), ("temporal_flickering", ["a red car-2.mp4"])]
    assert len(calls) == 5
    assert [r["dimension"] for r in recs] == ["temporal_flickering", "imaging_quality"]
    r = recs[0]
    assert r["status"] == "ok" and r["n_expected"] == 3 and r["n_evaluated"] == 3 and r["mode"] == "custom"
    per_video = []
    for f in r["raw_json_shards"]:
        assert not Path(f).is_absolute()                         # inside the run folder, relative to it
        per_video += [x["video_results"] for x in json.loads((cfg.out / f).read_text())["temporal_flickering"][1]]
    assert r["score"] == pytest.approx(sum(per_video) / 3, abs=1e-15)
    assert recs[1]["score"] == pytest.approx(sum(per_video) / 3 / 100)  # imaging: per-video 0-100 scale
    assert (cfg.out / r["raw_json"]).exists() and r["vbench_version"] == "fake"
    # the second job's manifest says how to run it again, without the interpreter's path
    assert json.loads((cfg.out / "manifest.1.json").read_text())["command"] == "python -m evalkit vbench run --name lingen"
    assert run(cfg) == [] and len(_calls(log)) == 7  # everything done: no worker call, no new record
    lines = (cfg.out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2


def test_missing_videos_flag_partial_records(tmp_path, monkeypatch):
    videos = _videos(tmp_path, n=2)
    cfg = RunConfig(videos=videos, mode="custom", dimensions=("temporal_flickering",), name="m",
                    out=tmp_path / "run", prompt_file=tmp_path / "prompts.txt", samples_per_prompt=3,
                    worker_cmd=FAKE)
    with pytest.raises(comp.IncompleteError, match="a red car-2.mp4"):
        run(cfg)
    assert not (tmp_path / "run").exists()  # nothing started
    partial = RunConfig(**{**cfg.__dict__, "allow_missing": True})
    rec = run(partial)[0]
    assert rec["status"] == "flagged" and (rec["n_expected"], rec["n_evaluated"]) == (3, 2)
    write_mp4(videos / "a red car-2.mp4", static_frames(8, seed=2))  # the missing video arrives: re-scored
    rec = run(partial)[0]
    assert rec["status"] == "ok" and (rec["n_expected"], rec["n_evaluated"]) == (3, 3)


def test_long_mode_score_is_the_mean_over_clips(tmp_path):
    """VBench-Long's reorganize_clips_results groups each clip on its own (by the clip's path), so its final score
    is the mean over clips; the mean of per-video means is kept as video_mean_score."""
    d = tmp_path / "videos"
    write_mp4(d / "a boat-0.mp4", static_frames(5 * 16, size=16))   # 5 s -> 3 clips of 2 s
    write_mp4(d / "a boat-1.mp4", static_frames(2 * 16, size=16))   # 2 s -> 1 clip
    (tmp_path / "p.txt").write_text("a boat\n")
    cfg = RunConfig(videos=d, mode="long", dimensions=("temporal_flickering",), name="m", out=tmp_path / "run",
                    prompt_file=tmp_path / "p.txt", samples_per_prompt=2, worker_cmd=FAKE)
    rec = run(cfg)[0]
    assert rec["n_clips"] == 4 and rec["n_evaluated"] == 2
    clips = json.loads((cfg.out / rec["raw_json_shards"][0]).read_text())["temporal_flickering"][1]
    by_video: dict[str, list[float]] = {}
    for c in clips:
        by_video.setdefault(Path(c["video_path"]).name.rsplit("_", 1)[0], []).append(c["video_results"])
    assert sorted(len(v) for v in by_video.values()) == [1, 3]
    assert rec["score"] == pytest.approx(sum(c["video_results"] for c in clips) / 4, abs=1e-15)
    assert rec["video_mean_score"] == pytest.approx(sum(sum(v) / len(v) for v in by_video.values()) / 2, abs=1e-15)
    assert rec["score"] != pytest.approx(rec["video_mean_score"], abs=1e-9)     # 3 clips vs 1: they differ
    with pytest.raises(FieldError, match="slow_fast"):  # the clip-to-clip term is long mode only
        run(RunConfig(**{**cfg.__dict__, "slow_fast": True, "mode": "custom"}))


def test_default_worker_is_the_venv_python(tmp_path, monkeypatch):
    monkeypatch.delenv("EVALKIT_VBENCH_WORKER", raising=False)
    cfg = RunConfig(videos=tmp_path, mode="custom", dimensions=("temporal_flickering",), name="m",
                    out=tmp_path / "o", env=tmp_path / "env")
    with pytest.raises(EvalkitError, match="python -m evalkit vbench setup"):
        worker_command(cfg)
    (tmp_path / "env" / "bin").mkdir(parents=True)
    (tmp_path / "env" / "bin" / "python").write_text("")
    (tmp_path / "env" / "evalkit-vbench-env.json").write_text("{}")
    cmd = worker_command(cfg)
    assert cmd[0] == str(tmp_path / "env" / "bin" / "python") and cmd[1].endswith("evalkit/vbench/_worker.py")
    monkeypatch.setenv("EVALKIT_VBENCH_WORKER", "python3 fake.py")
    assert worker_command(cfg) == ["python3", "fake.py"]


# --- the VBench environment: user cache location, install progress ---------------------------------------------

def test_environment_lives_in_the_user_cache(tmp_path, monkeypatch):
    from evalkit.vbench import env as venv

    for var in ("EVALKIT_CACHE_DIR", "EVALKIT_VBENCH_ENV", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert venv.default_env_path() == tmp_path / "home" / ".cache" / "lingen-evalkit" / "vbench-env"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")             # XDG spec: only absolute paths count
    assert venv.user_cache_dir() == tmp_path / "home" / ".cache" / "lingen-evalkit"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert venv.default_env_path() == tmp_path / "xdg" / "lingen-evalkit" / "vbench-env"
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "c"))
    assert venv.default_env_path() == tmp_path / "c" / "vbench-env"
    monkeypatch.setenv("EVALKIT_VBENCH_ENV", str(tmp_path / "e"))
    assert venv.default_env_path() == tmp_path / "e"
    from evalkit.core.runs import REPO_ROOT

    assert REPO_ROOT not in venv.default_env_path().parents


def test_install_steps_print_progress_and_log_everything(tmp_path, capsys):
    from evalkit.vbench import env as venv

    script = ("import time; print('Collecting torch==2.5.1', flush=True); print('noise', flush=True); "
              "time.sleep(0.6); print('Downloading torch-2.5.1.whl (906 MB)', flush=True); time.sleep(0.6)")
    log = tmp_path / "env-install.log"
    venv._run([sys.executable, "-c", script], log, "pip install", heartbeat_s=0.2)
    out = capsys.readouterr().out.split("\n", 1)[1]                              # after the command line
    assert "Collecting torch==2.5.1" in out and "Downloading torch-2.5.1.whl" in out and "noise" not in out
    assert "still working (last: Downloading torch-2.5.1.whl" in out          # a long silent download
    assert "noise" in log.read_text() and "Collecting" in log.read_text()
    with pytest.raises(EvalkitError, match=r"(?s)pip install failed \(exit 3\).*boom.*full log"):
        venv._run([sys.executable, "-c", "print('boom'); raise SystemExit(3)"], log, "pip install")


def test_prefetch_puts_bert_in_the_hugging_face_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    gaps = weights.missing(["scene"], tmp_path / "cache")["scene"]
    assert [w.kind for w in gaps] == ["file", "hf"]
    msg = str(weights.MissingWeightsError({"scene": gaps}, tmp_path / "cache"))
    assert str(tmp_path / "hf" / "hub" / "models--bert-base-uncased") in msg and "vocab.txt" in msg
    asked = []

    def fake_hf(repo, patterns):  # what huggingface_hub.snapshot_download leaves in the cache
        asked.append((repo, patterns))
        snap = tmp_path / "hf" / "hub" / "models--bert-base-uncased" / "snapshots" / "r1"
        snap.mkdir(parents=True)
        (snap.parent.parent / "refs").mkdir()
        (snap.parent.parent / "refs" / "main").write_text("r1")
        for f in ("vocab.txt", "config.json", "model.safetensors"):
            (snap / f).write_text(f)

    weights.prefetch(["scene"], tmp_path / "cache", download=lambda url, dest: dest.write_bytes(b"w"),
                     hf_download=fake_hf)
    assert asked == [("bert-base-uncased", ("vocab.txt", "config.json", "pytorch_model.bin", "model.safetensors"))]
    assert weights.missing(["scene"], tmp_path / "cache") == {}


def test_weights_in_vbenchs_own_layout_are_linked_not_downloaded(tmp_path, monkeypatch):
    """VBench's default (non-local) layout keeps CLIP in ~/.cache/clip and DINO in the torch.hub cache: a run links
    them into the layout it reads instead of reporting them missing."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("TORCH_HOME", raising=False)
    (home / ".cache" / "clip").mkdir(parents=True)
    (home / ".cache" / "clip" / "ViT-B-32.pt").write_bytes(b"clip")
    hub = home / ".cache" / "torch" / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / "dino_vitbase16_pretrain.pth").write_bytes(b"dino")
    (hub / "facebookresearch_dino_main").mkdir()
    cache = tmp_path / "vbench"
    dims = ["background_consistency", "subject_consistency"]
    assert set(weights.missing(dims, cache)) == set(dims)
    made = weights.adopt_native(dims, cache)
    assert len(made) == 3 and weights.missing(dims, cache) == {}
    assert (cache / "clip_model" / "ViT-B-32.pt").read_bytes() == b"clip"
    assert (cache / weights.DINO_READ).is_symlink() and (cache / weights.DINO_READ).read_bytes() == b"dino"


def test_published_hashes_full_and_prefix():
    b32 = weights.WEIGHTS["background_consistency"][0]
    musiq = weights.WEIGHTS["imaging_quality"][0]
    raft = weights.WEIGHTS["dynamic_degree"][0]
    assert weights.matches(b32, b32.official_sha256) is True and weights.matches(b32, "0" * 64) is False
    assert weights.matches(musiq, "358bb6af" + "0" * 56) is True and weights.matches(musiq, "0" * 64) is False
    assert weights.matches(raft, "0" * 64) is None and weights.published(raft) == "unverified"
    files = {r["file"] for r in weights.table()}
    assert {w.rel for ws in weights.WEIGHTS.values() for w in ws} <= files
