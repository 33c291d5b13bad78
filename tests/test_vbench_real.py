"""The real VBench package (0.1.5, in the environment ``vbench setup --profile long`` builds) through
``python -m evalkit vbench run``, on every dimension that runs offline: 12 of 16 (the four GRiT ones need
detectron2). Marked ``vbench`` (.ci/run runs this group after building the environment; the quick run skips it).

The evaluator files are random-weight networks of the right architecture made at test time
(tests/vbench_fixtures/make_weights.py; scores are meaningless, the plumbing is what is tested). Checks:
- custom, standard and long mode: each record equals VBench's own result JSON for the same files; for cheap
  dimensions also a separate VBench run on the user's folder (tests/vbench_fixtures/reference.py), not through
  evalkit's worker;
- long mode: the score equals VBench-Long's ``reorganize_clips_results`` on the clip results, the worker's
  full-info entries equal VBench-Long's ``build_full_info_json`` for the same clips (labels included: issue 11
  bug 1), and the clip lengths equal its ``get_duration_from_json`` (bug 2);
- sharded equals single-process: a real sharded run for the cheap dimensions (custom mode: the five cheap
  mean-of-videos ones; long mode: three with two clips per video); for temporal_style and overall_consistency
  (ViCLIP) VBench's own single-process aggregate is checked to be the mean of its per-video results, which is what
  evalkit's shard merge computes (human_action, UMT at ~3 TFLOP a video, is scored on one video);
- a UMT file with a missing key, which VBench would load silently (strict=False), is refused before scoring.

``EVALKIT_TEST_VBENCH_FIXTURES=DIR`` keeps the generated evaluator files between sessions (regenerated when the
generator changes).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from evalkit.cli import main as evalkit_main
from evalkit.core.records import read_records
from evalkit.vbench import env as venv

pytestmark = pytest.mark.vbench
HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "fixtures" / "vbench"))
from videos import flicker_frames, static_frames, write_mp4  # noqa: E402

GEN, REF = HERE / "vbench_fixtures" / "make_weights.py", HERE / "vbench_fixtures" / "reference.py"
HEAVY_MEAN = ("human_action", "temporal_style", "overall_consistency")
CHEAP_MEAN = ("temporal_flickering", "motion_smoothness", "dynamic_degree", "aesthetic_quality", "imaging_quality")
CUSTOM_DIMS = CHEAP_MEAN + ("subject_consistency", "background_consistency") + HEAVY_MEAN
ALL_DIMS = CUSTOM_DIMS + ("scene", "appearance_style")
BIKE = "A person is riding a bike"   # human_action's label comes from the file name ("riding a bike")
STANDARD_PROMPTS = ("The bund Shanghai, oil painting", "alley", "a person swimming in ocean",
                    "In a still frame, a stop sign", BIKE,
                    "A beautiful coastal beach in spring, waves lapping on sand, in super slow motion")
# vbench2_beta_long/configs/clip_length_mix.yaml (Vchitect/VBench@45e79ec), for VBench-Long's own duration rule
CLIP_LENGTH_MIX = {**{d: 2.0 for d in ("subject_consistency", "background_consistency", "motion_smoothness",
                                       "temporal_flickering", "dynamic_degree", "imaging_quality",
                                       "aesthetic_quality", "object_class", "multiple_objects", "color",
                                       "spatial_relationship", "scene", "appearance_style")},
                   "human_action": 10.0, "temporal_style": 10.0, "overall_consistency": 10.0}


def moving(seed: int, n: int = 12, size: int = 64) -> np.ndarray:
    """A random texture sliding 2 px a frame (12 frames at 4 fps: 3 s, two 2 s clips in long mode)."""
    base = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return np.stack([np.roll(base, 2 * t, axis=1) for t in range(n)])


@pytest.fixture(scope="session")
def vb(tmp_path_factory):
    env = venv.setup(profile="long")            # reuses a valid env (seconds); builds it otherwise (minutes)
    root = Path(os.environ.get("EVALKIT_TEST_VBENCH_FIXTURES") or tmp_path_factory.mktemp("vbench-fixtures"))
    subprocess.run([str(venv.VBenchEnv(path=venv.default_env_path()).python), str(GEN), str(root / "cache"),
                    str(root / "hf")], check=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("EVALKIT_VBENCH_ENV", str(venv.default_env_path()))
    mp.setenv("EVALKIT_CACHE_DIR", str(tmp_path_factory.mktemp("evalkit-cache")))
    mp.setenv("HF_HOME", str(root / "hf"))
    full = json.loads(next(venv.require().path.glob("lib/python*/site-packages/vbench/VBench_full_info.json"))
                      .read_text())
    subset = [e for e in full if e["prompt_en"] in STANDARD_PROMPTS]   # verbatim entries of the packaged suite
    data = tmp_path_factory.mktemp("vbench-data")
    (data / "full_info.json").write_text(json.dumps(subset))
    (data / "clip_length_mix.yaml").write_text("".join(f"{k}: {v}\n" for k, v in CLIP_LENGTH_MIX.items()))
    for i in range(2):
        write_mp4(data / "custom" / f"{BIKE}-{i}.mp4", moving(i), fps=4)
    (data / "prompts.txt").write_text(BIKE + "\n")
    for k, p in enumerate(STANDARD_PROMPTS):
        write_mp4(data / "standard" / f"{p}-0.mp4", moving(10 + k), fps=4)
    yield SimpleNamespace(env=venv.require(), cache=root / "cache", hf=root / "hf", data=data, subset=subset)
    mp.undo()


def vbench_run(vb, out: Path, *args: str) -> dict[str, dict]:
    """``python -m evalkit vbench run ... --device cpu``; returns the run's records by dimension."""
    assert evalkit_main(["vbench", "run", "--cache-dir", str(vb.cache), "--out", str(out), "--device", "cpu",
                         "--allow-unofficial-weights", *args]) == 0
    return {r["dimension"]: r for r in read_records([out])}


def reference(vb, action: str, tmp: Path, **spec) -> dict | list:
    """VBench's own code in the VBench env, without evalkit's worker (tests/vbench_fixtures/reference.py)."""
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"{action}.json"
    path.write_text(json.dumps({"action": action, "cache_dir": str(vb.cache), "output_dir": str(tmp), **spec}))
    proc = subprocess.run([str(vb.env.python), str(REF), str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(Path(str(path) + ".out").read_text())


def shard_json(rec: dict, dim: str, k: int = 0) -> list:
    return json.loads(Path(rec["raw_json_shards"][k]).read_text())[dim]


def per_video(raw: list) -> dict[str, float]:
    return {Path(x["video_path"]).name: float(x["video_results"]) for x in raw[1]}


def test_custom_mode_single_and_sharded(vb, tmp_path):
    v = vb.data / "custom"
    base = ("--videos", str(v), "--mode", "custom", "--prompt-file", str(vb.data / "prompts.txt"),
            "--samples-per-prompt", "2", "--name", "c")
    vbench_run(vb, tmp_path / "one", *base, "--dimensions", *(d for d in CUSTOM_DIMS if d != "human_action"))
    # UMT costs ~3 TFLOP a video: human_action gets one video (its accuracy is a mean of per-video booleans)
    one = vbench_run(vb, tmp_path / "one", *base[:-4], "--samples-per-prompt", "1", "--name", "c",
                     "--dimensions", "human_action")
    for d in CUSTOM_DIMS:
        rec, raw = one[d], shard_json(one[d], d)
        assert rec["status"] == "ok" and rec["n_scored"] == (1 if d == "human_action" else 2), d
        assert rec["vbench_version"] == "0.1.5", d
        assert rec["score"] == raw[0] and np.isfinite(rec["score"]), d        # VBench's own aggregate
        assert rec["weights_check"]["ok"] and all(len(f["sha256"]) == 64 for f in rec["weights"]), d
    for d in ("temporal_style", "overall_consistency"):  # VBench's aggregate is the mean of its per-video results
        raw = shard_json(one[d], d)
        assert raw[0] == pytest.approx(np.mean([float(x) for x in per_video(raw).values()]), abs=1e-12), d
    ref = reference(vb, "evaluate", tmp_path / "ref", videos_path=str(v), mode="custom_input",
                    full_info=str(vb.data / "full_info.json"), dimensions=list(CHEAP_MEAN),
                    prompts={f"{BIKE}-{i}.mp4": BIKE for i in range(2)})
    for d in CHEAP_MEAN:
        assert one[d]["score"] == pytest.approx(ref[d][0], abs=1e-12), d
        assert per_video(ref[d]) == pytest.approx(per_video(shard_json(one[d], d)), abs=1e-12), d
    sharded = vbench_run(vb, tmp_path / "sharded", *base, "--shard-size", "1", "--dimensions", *CHEAP_MEAN)
    for d in CHEAP_MEAN:
        assert sharded[d]["n_shards"] == 2 and sharded[d]["score"] == pytest.approx(one[d]["score"], abs=1e-12), d
    # a second run changes nothing: every record's inputs are unchanged
    again = vbench_run(vb, tmp_path / "one", *base, "--dimensions", *(d for d in CUSTOM_DIMS if d != "human_action"))
    assert {d: r["created"] for d, r in again.items()} == {d: r["created"] for d, r in one.items()}


def test_standard_mode_every_dimension(vb, tmp_path):
    v = vb.data / "standard"
    recs = vbench_run(vb, tmp_path / "std", "--videos", str(v), "--mode", "standard", "--full-info",
                      str(vb.data / "full_info.json"), "--samples-per-prompt", "1", "--name", "s",
                      "--dimensions", *ALL_DIMS)
    for d in ALL_DIMS:
        rec, raw = recs[d], shard_json(recs[d], d)
        assert rec["status"] == "ok" and rec["suite"] == "standard" and rec["n_scored"] >= 1, d
        assert rec["score"] == raw[0] and np.isfinite(rec["score"]), d
    info = json.loads(next(Path(recs["scene"]["raw_json_shards"][0]).parent.glob("*_full_info.json")).read_text())
    assert info[0]["auxiliary_info"] == {"scene": {"scene": {"scene": "alley"}}}     # VBench's own full-info
    assert recs["temporal_flickering"]["static_filter"] is False
    ref = reference(vb, "evaluate", tmp_path / "ref", videos_path=str(v), mode="vbench_standard",
                    full_info=str(vb.data / "full_info.json"),
                    dimensions=["temporal_flickering", "appearance_style", "background_consistency"])
    for d in ("temporal_flickering", "appearance_style", "background_consistency"):
        assert recs[d]["score"] == pytest.approx(ref[d][0], abs=1e-12), d


def _link_split_clips(run: Path, videos: Path, dest: Path) -> Path:
    """A VBench-Long input folder: the long videos and ``split_clip/{video}/`` holding evalkit's clips."""
    for src in sorted(videos.glob("*.mp4")):
        (dest / "split_clip").mkdir(parents=True, exist_ok=True)
        (dest / src.name).symlink_to(src)
        (folder,) = [p for p in run.glob(f"clips/*/{src.stem}") if p.is_dir()]  # one clip length per video
        (dest / "split_clip" / src.stem).symlink_to(folder)
    return dest


def _entries(rec: dict) -> list[tuple]:
    out = []
    for shard in rec["raw_json_shards"]:
        for e in json.loads((Path(shard).parent / "spec.json").read_text())["entries"]:
            out.append((e["prompt_en"], json.dumps(e.get("auxiliary_info"), sort_keys=True),
                        tuple(sorted(Path(c).name for c in e["video_list"]))))
    return sorted(out)


def _vbench_long_entries(info: list, dim: str) -> list[tuple]:
    return sorted((e["prompt_en"], json.dumps(e.get("auxiliary_info"), sort_keys=True),
                   tuple(sorted(Path(c).name for c in e["video_list"])))
                  for e in info if dim in e["dimension"] and e["video_list"])


def test_long_mode_standard_suite_matches_vbench_long(vb, tmp_path):
    v = vb.data / "standard"
    base = ("--videos", str(v), "--mode", "long", "--full-info", str(vb.data / "full_info.json"),
            "--samples-per-prompt", "1", "--name", "l")
    one = vbench_run(vb, tmp_path / "one", *base, "--dimensions", *ALL_DIMS)
    ref_dir = _link_split_clips(tmp_path / "one", v, tmp_path / "vbench-long")
    info = reference(vb, "long_full_info", tmp_path / "ref", videos_path=str(ref_dir), mode="long_vbench_standard",
                     full_info=str(vb.data / "full_info.json"), dimensions=list(ALL_DIMS), samples=1)
    durations = reference(vb, "duration", tmp_path / "ref", full_info=str(vb.data / "full_info.json"),
                          clip_length_config=str(vb.data / "clip_length_mix.yaml"),
                          videos=[str(p) for p in sorted(v.glob("*.mp4"))])
    for video, secs in durations.items():   # bug 2: the longest clip over all entries of the prompt
        assert (tmp_path / "one" / "clips" / f"{secs:g}s" / Path(video).stem).is_dir(), video
    assert durations[str(v / "The bund Shanghai, oil painting-0.mp4")] == 10.0
    clips = {d: json.loads(Path(one[d]["raw_json"]).read_text())[d][1] for d in ALL_DIMS}
    ref = reference(vb, "reorganize", tmp_path / "ref", results=clips)
    for d in ALL_DIMS:
        rec = one[d]
        assert rec["status"] == "ok" and np.isfinite(rec["score"]), d
        assert _entries(rec) == _vbench_long_entries(info, d), d       # bug 1: labels and clips as VBench-Long
        assert rec["score"] == pytest.approx(ref[d]["final"], abs=1e-12), d
    multi = [d for d in ALL_DIMS if one[d]["n_clips"] > 1]     # the 2 s clip prompts: 2 clips per video
    assert set(multi) == {"scene", "subject_consistency", "background_consistency", "temporal_flickering",
                          "motion_smoothness", "dynamic_degree"}
    cheap = ["temporal_flickering", "background_consistency", "dynamic_degree"]  # pixels, CLIP, RAFT booleans
    sharded = vbench_run(vb, tmp_path / "sharded", *base, "--shard-size", "1", "--dimensions", *cheap)
    for d in cheap:
        assert sharded[d]["n_shards"] == 2 and sharded[d]["score"] == pytest.approx(one[d]["score"], abs=1e-12), d


def test_long_mode_custom_suite_folder_name_text(vb, tmp_path):
    """Bug 5: --long-text folder-name gives temporal_style exactly VBench-Long's long_custom_input entries."""
    v = vb.data / "custom"
    dims = ("temporal_style", "temporal_flickering")
    recs = vbench_run(vb, tmp_path / "run", "--videos", str(v), "--mode", "long", "--prompt-file",
                      str(vb.data / "prompts.txt"), "--samples-per-prompt", "2", "--name", "lc", "--long-text",
                      "folder-name", "--dimensions", *dims)
    ref_dir = _link_split_clips(tmp_path / "run", v, tmp_path / "vbench-long")
    info = reference(vb, "long_full_info", tmp_path / "ref", videos_path=str(ref_dir), mode="long_custom_input",
                     full_info=str(vb.data / "full_info.json"), dimensions=list(dims))
    for d in dims:
        assert _entries(recs[d]) == _vbench_long_entries(info, d), d
        assert recs[d]["n_clips"] == 4 and np.isfinite(recs[d]["score"]), d
    assert recs["temporal_style"]["long_text"] == "folder-name"
    assert {e[0] for e in _entries(recs["temporal_style"])} == {f"{BIKE}-0", f"{BIKE}-1"}


def test_a_umt_file_missing_a_key_is_refused(vb, tmp_path, capsys):
    """VBench loads UMT with strict=False: a file without the classifier head would score with a random head."""
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(vb.cache / "umt_model", cache / "umt_model")
    umt = cache / "umt_model" / "l16_ptk710_ftk710_ftk400_f16_res224.pth"
    drop = ("import sys, torch; sd = torch.load(sys.argv[1], weights_only=True); sd.pop('head.weight'); "
            "torch.save(sd, sys.argv[1])")
    subprocess.run([str(vb.env.python), "-c", drop, str(umt)], check=True)
    assert evalkit_main(["vbench", "run", "--videos", str(vb.data / "custom"), "--mode", "custom", "--prompt-file",
                         str(vb.data / "prompts.txt"), "--samples-per-prompt", "2", "--name", "bad", "--cache-dir",
                         str(cache), "--out", str(tmp_path / "run"), "--dimensions", "human_action", "--device",
                         "cpu"]) == 2
    msg = capsys.readouterr().err
    assert "human_action" in msg and "head.weight" in msg and "strict=False" in msg
    assert not list((tmp_path / "run").glob("raw/human_action/shard_*"))        # nothing was scored


PROMPT = "a quiet pond at dawn"


def _flicker_reference(vb, paths: list[Path], tmp: Path) -> dict[str, float]:
    """The package's own per-video flicker score, computed in the VBench env on the given files."""
    out = tmp / "ref"
    tmp.mkdir(parents=True, exist_ok=True)
    spec = tmp / "ref_spec.json"
    spec.write_text(json.dumps({"action": "flicker_reference", "output_dir": str(out),
                                "videos": [str(p) for p in paths]}))
    subprocess.run([str(vb.env.python), str(venv.WORKER), str(spec)], check=True, capture_output=True)
    return json.loads((out / "worker.json").read_text())["scores"]


def test_temporal_flickering_custom_and_long_match_the_package(vb, tmp_path):
    """A static and a flickering 5 s video (PyAV-written): VBench's cal_score per file, and the long-mode clips."""
    from evalkit.vbench.runner import RunConfig, run

    videos = tmp_path / "videos"
    static = write_mp4(videos / f"{PROMPT}-0.mp4", static_frames(5 * 16, size=64))    # 5 s at 16 fps
    flicker = write_mp4(videos / f"{PROMPT}-1.mp4", flicker_frames(5 * 16, size=64))
    (tmp_path / "prompts.txt").write_text(PROMPT + "\n")
    base = dict(videos=videos, dimensions=("temporal_flickering",), name="pyav-pair", prompt_file=tmp_path /
                "prompts.txt", samples_per_prompt=2, cache_dir=tmp_path / "cache", env=vb.env.path)
    rec = run(RunConfig(mode="custom", out=tmp_path / "custom", **base))[0]
    raw = json.loads(Path(rec["raw_json"]).read_text())["temporal_flickering"]
    got = per_video(raw)
    ref = _flicker_reference(vb, [static, flicker], tmp_path)
    assert got[flicker.name] < got[static.name] - 0.05
    assert got[static.name] == ref[str(static)] and got[flicker.name] == ref[str(flicker)]
    assert rec["score"] == pytest.approx((ref[str(static)] + ref[str(flicker)]) / 2, abs=1e-12)
    rec_l = run(RunConfig(mode="long", out=tmp_path / "long", **base))[0]
    assert rec_l["n_clips"] == 6 and rec_l["n_evaluated"] == 2            # 3 clips of 2 s per 5 s video
    clips = sorted((tmp_path / "long" / "clips" / "2s").rglob("*.mp4"))
    ref_c = _flicker_reference(vb, clips, tmp_path / "clipref")
    assert rec_l["score"] == pytest.approx(sum(ref_c.values()) / 6, abs=1e-12)
    static_clips = [s for c, s in ref_c.items() if Path(c).parent.name == static.stem]
    assert static_clips == pytest.approx([ref[str(static)]] * 3, abs=1e-9)    # lossless clips
    assert run(RunConfig(mode="long", out=tmp_path / "long", **base)) == []   # resume: nothing re-run
