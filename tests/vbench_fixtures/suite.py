"""Shared set-up of the ``vbench`` test groups (test_vbench_real.py, test_vbench_heavy.py): the VBench environment,
the random-weight evaluator files (make_weights.py), the test videos and prompt suites, and the calls to evalkit and
to VBench's own entry points (reference.py).

Videos: three lengths at 4 fps, one per shape, so clip counts differ in long mode and both orientations occur:

==========  =======  ==========  ===============  =================
length      frames   H x W       2 s clips        10 s clips
==========  =======  ==========  ===============  =================
3.0 s       12       64 x 64     2 (last padded)  1 (``_full``)
6.5 s       26       64 x 96     4 (last padded)  1 (``_full``)
12.5 s      50       96 x 64     7 (last padded)  2 (last padded)
==========  =======  ==========  ===============  =================

Each video is a random texture sliding by its own speed (1 or 3 px a frame, never back to an earlier frame) with its own brightness flicker, so
the pixel dimensions differ across videos. The custom suite is three human-action videos ("A person is ..."; the
label comes from the file name); the standard suite takes three prompts of every prompt suite the tests exercise,
verbatim from the packaged VBench_full_info.json, one sample each.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "fixtures" / "vbench"))
from videos import write_mp4  # noqa: E402

GEN, REF = HERE / "make_weights.py", HERE / "reference.py"
FPS = 4
SHAPES = ((12, 64, 64), (26, 64, 96), (50, 96, 64))   # (frames, height, width)
SPEEDS, FLICKER = (1, 3, 1), (0, 6, 2)
BIKE = "A person is riding a bike"                      # human_action label "riding a bike" (UMT fixture: correct)
CUSTOM_PROMPTS = (BIKE, "A person is marching", "A person is roller skating")
# three prompts of each exercised prompt suite of VBench_full_info.json (0.1.5), in the suite's order
STANDARD_SUITES = {
    "subject_consistency": ("a person swimming in ocean",
                            "a person giving a presentation to a room full of colleagues", "a person washing the dishes"),
    "scene": ("alley", "amusement park", "aquarium"),
    "temporal_flickering": ("In a still frame, a stop sign", "a toilet, frozen in time", "a laptop, frozen in time"),
    "overall_consistency": ("Close up of grapes on a rotating table.", "Turtle swimming in ocean.",
                            "A storm trooper vacuuming the beach."),
    "appearance_style": ("The bund Shanghai, oil painting",   # also an overall_consistency entry: 10 s clips
                         "A beautiful coastal beach in spring, waves lapping on sand, Van Gogh style",
                         "A beautiful coastal beach in spring, waves lapping on sand, oil painting"),
    "human_action": CUSTOM_PROMPTS,
    "temporal_style": ("A beautiful coastal beach in spring, waves lapping on sand, in super slow motion",
                       "A beautiful coastal beach in spring, waves lapping on sand, zoom in",
                       "A beautiful coastal beach in spring, waves lapping on sand, zoom out"),
}
# vbench2_beta_long/configs/clip_length_mix.yaml (Vchitect/VBench@45e79ec), for VBench-Long's own duration rule
CLIP_LENGTH_MIX = {**{d: 2.0 for d in ("subject_consistency", "background_consistency", "motion_smoothness",
                                       "temporal_flickering", "dynamic_degree", "imaging_quality",
                                       "aesthetic_quality", "object_class", "multiple_objects", "color",
                                       "spatial_relationship", "scene", "appearance_style")},
                   "human_action": 10.0, "temporal_style": 10.0, "overall_consistency": 10.0}


def frames(k: int, seed: int) -> np.ndarray:
    """Video ``k % 3`` of the table above: (T, H, W, 3) uint8."""
    n, h, w = SHAPES[k % 3]
    base = np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.int16)
    out = [np.roll(base, SPEEDS[k % 3] * t, axis=1) + (FLICKER[k % 3] if t % 2 else -FLICKER[k % 3])
           for t in range(n)]
    return np.clip(np.stack(out), 0, 255).astype(np.uint8)


def build(tmp_path_factory, mp) -> SimpleNamespace:
    """The session set-up: environment, evaluator files, videos, suites; ``mp`` a MonkeyPatch undone by the caller."""
    from evalkit.vbench import env as venv

    venv.setup(profile="long")            # reuses a valid env (seconds); builds it otherwise (minutes)
    root = Path(os.environ.get("EVALKIT_TEST_VBENCH_FIXTURES") or tmp_path_factory.mktemp("vbench-fixtures"))
    subprocess.run([str(venv.VBenchEnv(path=venv.default_env_path()).python), str(GEN), str(root / "cache"),
                    str(root / "hf")], check=True)
    mp.setenv("EVALKIT_VBENCH_ENV", str(venv.default_env_path()))
    mp.setenv("EVALKIT_CACHE_DIR", str(tmp_path_factory.mktemp("evalkit-cache")))
    mp.setenv("HF_HOME", str(root / "hf"))
    full = json.loads(next(venv.require().path.glob("lib/python*/site-packages/vbench/VBench_full_info.json"))
                      .read_text())
    wanted = {p for ps in STANDARD_SUITES.values() for p in ps}
    subset = [e for e in full if e["prompt_en"] in wanted]   # verbatim entries of the packaged suite
    data = tmp_path_factory.mktemp("vbench-data")
    (data / "full_info.json").write_text(json.dumps(subset))
    (data / "clip_length_mix.yaml").write_text("".join(f"{k}: {v}\n" for k, v in CLIP_LENGTH_MIX.items()))
    for k, p in enumerate(CUSTOM_PROMPTS):
        write_mp4(data / "custom" / f"{p}-0.mp4", frames(k, seed=k), fps=FPS)
    (data / "prompts.json").write_text(json.dumps({f"{p}-0.mp4": p for p in CUSTOM_PROMPTS}))
    seed = 10
    for suite, prompts in STANDARD_SUITES.items():
        for k, p in enumerate(prompts):
            if not (data / "standard" / f"{p}-0.mp4").exists():
                write_mp4(data / "standard" / f"{p}-0.mp4", frames(k, seed=seed), fps=FPS)
            seed += 1
    return SimpleNamespace(env=venv.require(), cache=root / "cache", hf=root / "hf", data=data, subset=subset)


def standard_videos(vb, dims) -> list[Path]:
    """The standard-suite videos whose full-info entries list any of ``dims``."""
    prompts = {e["prompt_en"] for e in vb.subset if set(e["dimension"]) & set(dims)}
    return sorted(vb.data / "standard" / f"{p}-0.mp4" for p in prompts)


def vbench_run(vb, out: Path, *args: str) -> dict[str, dict]:
    """``python -m evalkit vbench run ... --device cpu``; returns the run's newest record per dimension."""
    from evalkit.cli import main as evalkit_main
    from evalkit.core.records import read_records

    assert evalkit_main(["vbench", "run", "--cache-dir", str(vb.cache), "--out", str(out), "--device", "cpu",
                         "--allow-unofficial-weights", *args]) == 0
    return {r["dimension"]: r for r in read_records([out])}


def reference(vb, action: str, tmp: Path, **spec) -> dict | list:
    """VBench's own code in the VBench env, without evalkit's worker (reference.py)."""
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"{action}.json"
    path.write_text(json.dumps({"action": action, "cache_dir": str(vb.cache), "output_dir": str(tmp), **spec}))
    proc = subprocess.run([str(vb.env.python), str(REF), str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(Path(str(path) + ".out").read_text())


def raw(rec: dict, dim: str, out: Path) -> list:
    """The record's VBench-format results (``[score, per-unit results, ...]``); ``out`` the run folder (records
    name their files relative to it)."""
    return json.loads((out / rec["raw_json"]).read_text())[dim]


def per_unit(results: list) -> dict[str, float]:
    """{file name: result} of a VBench per-video (per-clip) result list."""
    return {Path(x["video_path"]).name: float(x["video_results"]) for x in results if "video_path" in x}


def link_split_clips(run: Path, videos: list[Path], dest: Path) -> Path:
    """A VBench-Long input folder: the long videos and ``split_clip/{video}/`` holding evalkit's clips."""
    (dest / "split_clip").mkdir(parents=True, exist_ok=True)
    for src in videos:
        (dest / src.name).symlink_to(src)
        (folder,) = [p for p in run.glob(f"clips/*/{src.stem}") if p.is_dir()]  # one clip length per video
        (dest / "split_clip" / src.stem).symlink_to(folder)
    return dest


def assert_varies(results: dict[str, float], what: str) -> None:
    """A fixture that gives every video the same score cannot tell a right score from a wrong one."""
    assert len(set(results.values())) > 1, f"{what}: every unit scores {set(results.values())}"
