"""VBench-Long slow-fast (eval_long.py --dev_flag) in long mode, without the VBench environment (a fake worker
stands in for _worker.py): first-frames videos, table interpolation and fusion against hand-computed values on a
small synthetic mapping table (not VBench's), the single-clip rule, the missing-config error, records and resume."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from evalkit.core.errors import EvalkitError, FieldError
from evalkit.vbench import long as longmod
from evalkit.vbench import weights
from evalkit.vbench.runner import RunConfig, run
from repo_paths import FIXTURES

FIX = FIXTURES / "vbench"
sys.path.insert(0, str(FIX))
from videos import decode, static_frames, write_mp4  # noqa: E402

FAKE = (sys.executable, str(FIX / "fake_worker.py"))


@pytest.fixture(autouse=True)
def _private_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "evalkit-cache"))
TABLE = {0.0: 0.0, 0.5: 0.8, 1.0: 1.0}  # synthetic quantile table: clip-to-clip score -> in-clip scale


def _config(d: Path, w_in: float = 0.5, w_c2c: float = 0.5) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "slow_fast_params.yaml").write_text(f"w_inclip_sb: {w_in}\nw_clip2clip_sb: {w_c2c}\n"
                                             f"w_inclip_bg: {w_in}\nw_clip2clip_bg: {w_c2c}\n")
    for name in ("subject_mapping_table.yaml", "background_mapping_table.yaml"):
        (d / name).write_text("".join(f"{k}: {v}\n" for k, v in TABLE.items()))
    return d


def _distinct(n: int, size: int = 16) -> np.ndarray:
    frames = static_frames(n, size=size).copy()
    frames[:, :8, :8, :] = (np.arange(n) * 7 % 256)[:, None, None, None]  # every frame different
    return frames


def test_first_frames_video_holds_each_clips_first_frame(tmp_path):
    src = write_mp4(tmp_path / "a kite-0.mp4", _distinct(5 * 16))   # 5 s at 16 fps -> 3 clips of 2 s
    clips = longmod.split_video(src, tmp_path / "clips", 2.0)
    fast = longmod.first_frames_video(clips, tmp_path / "ff" / "a kite-0.mp4")
    got = decode(fast)
    assert len(got) == len(clips) == 3
    for frame, clip in zip(got, clips):
        assert np.array_equal(frame, decode(clip)[0])  # lossless: exactly the clip's first decoded frame
    assert longmod.probe(fast).fps == 16.0
    src_frames = decode(src)
    assert np.array_equal(got[2], src_frames[5 * 16 - 32])  # padded last clip starts 2 s before the end
    with pytest.raises(ValueError, match="at least 2 clips"):
        longmod.first_frames_video(clips[:1], tmp_path / "ff" / "one.mp4")


def test_interpolation_and_fusion_by_hand(tmp_path):
    sf = longmod.load_slow_fast("subject_consistency", config_dir=_config(tmp_path / "cfg", 0.3, 0.7))
    assert (sf.w_inclip, sf.w_clip2clip) == (0.3, 0.7) and sf.table == ((0.0, 0.0), (0.5, 0.8), (1.0, 1.0))
    t = sf.table
    assert longmod.interpolate(t, 0.25) == pytest.approx(0.4)
    assert longmod.interpolate(t, 0.75) == pytest.approx(0.9)
    assert longmod.interpolate(t, 0.5) == pytest.approx(0.8)
    assert longmod.interpolate(t, 1.3) == 1.0 and longmod.interpolate(t, -0.2) == 0.0  # clamped at the ends
    # per clip (VBench-Long's in-clip list has one entry per clip): two clips of a-0, one of a-1
    final, rows = longmod.fuse([("a-0.mp4", 0.9), ("a-0.mp4", 0.8), ("a-1.mp4", 0.95)], {"a-0.mp4": 0.25}, sf)
    a, a2, b = rows
    assert a["mapped_clip2clip_score"] == pytest.approx(0.4) and a2["mapped_clip2clip_score"] == pytest.approx(0.4)
    assert a["video_results"] == pytest.approx(0.3 * 0.9 + 0.7 * 0.4)  # 0.55
    assert a2["video_results"] == pytest.approx(0.3 * 0.8 + 0.7 * 0.4)  # 0.52
    # single-clip video: no first-frames video, looked up as 0 -> mapped 0 -> fused = in-clip score
    assert b["clip2clip_score"] is None and b["mapped_clip2clip_score"] == 0.0 and b["video_results"] == 0.95
    assert final == pytest.approx((0.55 + 0.52 + 0.95) / 3)


def test_missing_slow_fast_config_is_an_error_before_work(tmp_path):
    base = dict(videos=tmp_path / "v", mode="long", dimensions=("subject_consistency",), name="m",
                out=tmp_path / "out", prompt_file=tmp_path / "p.txt", slow_fast=True, worker_cmd=FAKE)
    with pytest.raises(FieldError) as err:
        run(RunConfig(**base))
    msg = str(err.value)
    assert "slow_fast_params.yaml" in msg and "vbench2_beta_long/configs" in msg and "--vbench-repo" in msg
    repo = tmp_path / "VBench"
    (repo / "vbench2_beta_long" / "configs").mkdir(parents=True)
    (repo / "vbench2_beta_long" / "configs" / "slow_fast_params.yaml").write_text("w_inclip_sb: 0.5\n"
                                                                                  "w_clip2clip_sb: 0.5\n")
    with pytest.raises(FieldError) as err:
        run(RunConfig(**base, vbench_repo=repo))
    assert str(repo / "vbench2_beta_long" / "configs" / "subject_mapping_table.yaml") in str(err.value)
    assert not (tmp_path / "out").exists()


def _long_setup(tmp_path: Path, with_weights: bool = True) -> dict:
    d = tmp_path / "videos"
    write_mp4(d / "a boat-0.mp4", _distinct(5 * 16))   # 3 clips -> first-frames video of 3 frames
    write_mp4(d / "a boat-1.mp4", _distinct(2 * 16))   # 1 clip -> no first-frames video (single-clip rule)
    (tmp_path / "p.txt").write_text("a boat\n")
    cache = tmp_path / "cache"
    if with_weights:
        for w in weights.WEIGHTS["subject_consistency"] + weights.SLOW_FAST_WEIGHTS["subject_consistency"]:
            (cache / w.rel).parent.mkdir(parents=True, exist_ok=True)
            (cache / w.rel).write_bytes(b"w")
    return dict(videos=d, mode="long", dimensions=("subject_consistency",), name="m", out=tmp_path / "run",
                prompt_file=tmp_path / "p.txt", samples_per_prompt=2, cache_dir=cache, worker_cmd=FAKE,
                slow_fast=True, slow_fast_config=_config(tmp_path / "cfg"))


def test_slow_fast_weights_missing_offline(tmp_path):
    with pytest.raises(weights.MissingWeightsError) as err:
        run(RunConfig(**_long_setup(tmp_path, with_weights=False)))
    msg = str(err.value)
    assert str(tmp_path / "cache" / "dinov2_model" / "checkpoints" / "dinov2_vitb14_pretrain.pth") in msg
    assert "git clone https://github.com/facebookresearch/dinov2" in msg and "--slow-fast" in msg
    assert str(tmp_path / "cache" / "dino_model" / "checkpoints" / "dino_vitbase16_pretrain.pth") in msg  # in-clip
    gaps = weights.missing(["background_consistency"], tmp_path, slow_fast=True)["background_consistency"]
    assert {w.rel for w in gaps} >= {"dreamsim_model/ensemble_lora", "dreamsim_model/clip_vitb16_pretrain.pth.tar"}


def test_slow_fast_record_fusion_and_resume(tmp_path, monkeypatch):
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_WORKER_LOG", str(log))
    monkeypatch.setenv("FAKE_WORKER_FAIL", "clip2clip-")
    cfg = RunConfig(**_long_setup(tmp_path))
    with pytest.raises(EvalkitError, match="clip-to-clip"):  # interrupted after the in-clip shard
        run(cfg)
    calls = lambda: [c for c in map(json.loads, log.read_text().splitlines())  # noqa: E731
                     if c["action"] != "check_weights"]
    assert [c["action"] for c in calls()] == ["evaluate", "clip2clip"]
    assert calls()[1]["videos"] == ["a boat-0.mp4"]  # only the multi-clip video gets a first-frames video
    monkeypatch.delenv("FAKE_WORKER_FAIL")
    rec = run(cfg)[0]
    assert [c["action"] for c in calls()] == ["evaluate", "clip2clip", "clip2clip"]  # in-clip shard kept
    c2c = json.loads((cfg.out / rec["clip2clip_json"]).read_text())
    assert list(c2c["frames"].values()) == [3] and c2c["extractor"] == "dinov2"
    clips = json.loads((cfg.out / rec["raw_json_inclip"]).read_text())["subject_consistency"][1]
    per = {}
    for c in clips:
        per.setdefault(Path(c["video_path"]).name.rsplit("_", 1)[0], []).append(c["video_results"])
    raw = next(iter(c2c["video_results"].values()))
    mapped = 0.8 * raw / 0.5 if raw <= 0.5 else 0.8 + 0.2 * (raw - 0.5) / 0.5  # TABLE by hand
    fused = [0.5 * s + 0.5 * mapped for s in per["a boat-0"]] + per["a boat-1"]   # per clip; single clip as is
    assert rec["slow_fast"] is True and (rec["w_inclip"], rec["w_clip2clip"]) == (0.5, 0.5)
    assert rec["inclip_score"] == pytest.approx(sum(c["video_results"] for c in clips) / 4, abs=1e-15)
    assert rec["score"] == pytest.approx(sum(fused) / 4, abs=1e-12)
    rows = json.loads((cfg.out / rec["raw_json"]).read_text())["subject_consistency"][2]
    assert [r["video_path"] for r in rows] == ["a boat-0.mp4"] * 3 + ["a boat-1.mp4"]
    assert rows[0]["clip2clip_score"] == raw and rows[0]["mapped_clip2clip_score"] == pytest.approx(mapped)
    assert rows[3]["video_results"] == rows[3]["inclip_score"]  # single clip
    assert run(cfg) == [] and len(calls()) == 3  # done: nothing re-run
    plain = run(RunConfig(**{**cfg.__dict__, "slow_fast": False}))[0]  # separate record, in-clip shard reused
    assert len(calls()) == 3 and plain["slow_fast"] is False and plain["score"] == rec["inclip_score"]
    assert plain["key"] != rec["key"]
