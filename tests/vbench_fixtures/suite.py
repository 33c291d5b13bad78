"""Shared set-up of the ``vbench`` test groups (test_vbench_real.py, test_vbench_heavy.py): the VBench environment,
the random-weight evaluator files (make_weights.py), the test videos and prompt suites, and the calls to evalkit and
to VBench's own entry points (reference.py), with the evaluator networks memoised by input (memo.py).

Videos, at 2 fps (VBench-Long cuts ``int(fps) x seconds`` frames per clip: 2 fps gives the clip counts of any higher
rate at a quarter of the frames of 8 fps), every one a random texture sliding by its own speed with its own
brightness flicker:

=====  =======  =======  ===========  ===============  ===============  ====================================
name   length   frames   H x W        2 s clips        10 s clips       used by
=====  =======  =======  ===========  ===============  ===============  ====================================
``S``  3.0 s    6        256 x 256    2 (last padded)  1 (``_full``)    every suite
``M``  6.5 s    13       128 x 192    4 (last padded)  1 (``_full``)    every suite but scene's
``L``  12.5 s   25       192 x 128    7 (last padded)  2 (last padded)  every suite but scene's
``T``  1.0 s    2        96 x 64      1 (``_full``)    1 (``_full``)    scene's suite, heavy long custom suite
``U``  2.0 s    4        64 x 96      1 (``_000``)     1 (``_full``)    scene's suite, heavy long custom suite
=====  =======  =======  ===========  ===============  ===============  ====================================

``S`` is 256 px square because VBench's dynamic_degree threshold is ``6 * min(H, W) / 256`` px of flow: the RAFT
fixture's flow is ~4.4 px on every frame pair (make_weights.py), so ``S`` (threshold 6.0) is static and ``M``, ``L``
(3.0) move. RAFT needs 128 px or more on each side (its 4-level correlation pyramid at 1/8 resolution has a level
one pixel wide below that, where its grid normalisation divides by zero: the flow is NaN and every video scores
"static"). The custom suite is three human-action prompts on ``S``, ``M``, ``L`` ("A person is ..."; human_action's
label comes from the file name). The standard suite takes three prompts of every prompt suite the tests exercise,
verbatim from the packaged VBench_full_info.json, one sample each, on ``S``, ``M``, ``L`` in the suite's order
(scene's prompts on ``T``, ``U``, ``S``: Tag2Text samples 16 frames of each clip, so scene's long run costs one
network pass per clip, and these give 1, 1 and 2 clips). The same content under several names is scored once per
network (memo.py); different content per length keeps every dimension's per-video results apart (checked).

The VBench processes run with ``OMP_NUM_THREADS=1``: on a 2-core machine shared with other work, RAFT took 19-32 s a
frame pair with two OpenMP threads and 1.1 s with one (load 5-7).
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "fixtures" / "vbench"))
from videos import write_mp4  # noqa: E402

GEN, REF, MEMO = HERE / "make_weights.py", HERE / "reference.py", HERE / "memo.py"
FPS = 2
# name: (frames, height, width, slide px a frame, flicker amplitude, seed)
VIDEOS = {"S": (6, 256, 256, 2, 0, 1), "M": (13, 128, 192, 3, 6, 2), "L": (25, 192, 128, 1, 2, 3),
          "T": (2, 96, 64, 2, 4, 4), "U": (4, 64, 96, 1, 8, 5)}
BIKE = "A person is riding a bike"                      # human_action label "riding a bike" (UMT fixture: correct)
CUSTOM_PROMPTS = (BIKE, "A person is marching", "A person is roller skating")
CUSTOM_VIDEOS = ("S", "M", "L")
CUSTOM_LONG_VIDEOS = ("T", "U", "S")    # long custom suite of the heavy dimensions: 1, 1 and 2 clips of 2 s
# three prompts of each exercised prompt suite of VBench_full_info.json (0.1.5), in the suite's order, and the
# dimensions their entries list
STANDARD_SUITES = {
    "subject_consistency": ("a person swimming in ocean",                     # + dynamic_degree, motion_smoothness
                            "a person giving a presentation to a room full of colleagues", "a person washing the dishes"),
    "scene": ("alley", "amusement park", "aquarium"),                         # + background_consistency
    "temporal_flickering": ("In a still frame, a stop sign", "a toilet, frozen in time", "a laptop, frozen in time"),
    "overall_consistency": ("Close up of grapes on a rotating table.", "Turtle swimming in ocean.",  # + aesthetic,
                            "A storm trooper vacuuming the beach."),                                # imaging
    "appearance_style": ("The bund Shanghai, oil painting",   # also an overall_consistency entry: 10 s clips
                         "A beautiful coastal beach in spring, waves lapping on sand, Van Gogh style",
                         "A beautiful coastal beach in spring, waves lapping on sand, oil painting"),
    "human_action": CUSTOM_PROMPTS,
    "temporal_style": ("A beautiful coastal beach in spring, waves lapping on sand, in super slow motion",
                       "A beautiful coastal beach in spring, waves lapping on sand, zoom in",
                       "A beautiful coastal beach in spring, waves lapping on sand, zoom out"),
}
SUITE_VIDEOS = {"scene": ("T", "U", "S")}               # every other suite: S, M, L
# vbench2_beta_long/configs/clip_length_mix.yaml (Vchitect/VBench@45e79ec), for VBench-Long's own duration rule
CLIP_LENGTH_MIX = {**{d: 2.0 for d in ("subject_consistency", "background_consistency", "motion_smoothness",
                                       "temporal_flickering", "dynamic_degree", "imaging_quality",
                                       "aesthetic_quality", "object_class", "multiple_objects", "color",
                                       "spatial_relationship", "scene", "appearance_style")},
                   "human_action": 10.0, "temporal_style": 10.0, "overall_consistency": 10.0}


def frames(name: str) -> np.ndarray:
    """Video ``name`` of the table above: (T, H, W, 3) uint8."""
    n, h, w, speed, amp, seed = VIDEOS[name]
    base = np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.int16)
    out = [np.roll(base, speed * t, axis=1) + (amp if t % 2 else -amp) for t in range(n)]
    return np.clip(np.stack(out), 0, 255).astype(np.uint8)


def build(tmp_path_factory, mp, groups: tuple[str, ...]) -> SimpleNamespace:
    """The session set-up: environment, the evaluator files of ``groups`` (make_weights.py), videos, suites, the
    memo and the worker command; ``mp`` a MonkeyPatch undone by the caller."""
    from evalkit.vbench import env as venv

    venv.setup(profile="long")            # reuses a valid env (seconds); builds it otherwise (minutes)
    env = venv.require()
    mp.setenv("OMP_NUM_THREADS", "1")
    root = Path(os.environ.get("EVALKIT_TEST_VBENCH_FIXTURES") or tmp_path_factory.mktemp("vbench-fixtures"))
    subprocess.run([str(env.python), str(GEN), str(root / "cache"), str(root / "hf"), *groups], check=True)
    memo = os.environ.get("EVALKIT_TEST_VBENCH_MEMO") or str(tmp_path_factory.mktemp("vbench-memo"))
    mp.setenv("EVALKIT_TEST_VBENCH_MEMO", memo)
    mp.setenv("EVALKIT_VBENCH_ENV", str(env.path))
    mp.setenv("EVALKIT_VBENCH_WORKER", shlex.join([str(env.python), str(MEMO), str(venv.WORKER)]))
    mp.setenv("EVALKIT_CACHE_DIR", str(tmp_path_factory.mktemp("evalkit-cache")))
    mp.setenv("HF_HOME", str(root / "hf"))
    full = json.loads(next(env.path.glob("lib/python*/site-packages/vbench/VBench_full_info.json")).read_text())
    wanted = {p for ps in STANDARD_SUITES.values() for p in ps}
    subset = [e for e in full if e["prompt_en"] in wanted]   # verbatim entries of the packaged suite
    data = tmp_path_factory.mktemp("vbench-data")
    (data / "full_info.json").write_text(json.dumps(subset))
    (data / "clip_length_mix.yaml").write_text("".join(f"{k}: {v}\n" for k, v in CLIP_LENGTH_MIX.items()))
    for p, v in zip(CUSTOM_PROMPTS, CUSTOM_VIDEOS):
        write_mp4(data / "custom" / f"{p}-0.mp4", frames(v), fps=FPS)
    for p, v in zip(CUSTOM_PROMPTS, CUSTOM_LONG_VIDEOS):      # the heavy group's long custom suite
        write_mp4(data / "custom_long" / f"{p}-0.mp4", frames(v), fps=FPS)
    (data / "prompts.json").write_text(json.dumps({f"{p}-0.mp4": p for p in CUSTOM_PROMPTS}))
    for suite, prompts in STANDARD_SUITES.items():
        for p, v in zip(prompts, SUITE_VIDEOS.get(suite, CUSTOM_VIDEOS)):
            if not (data / "standard" / f"{p}-0.mp4").exists():   # the bund prompt is in two suites: first wins
                write_mp4(data / "standard" / f"{p}-0.mp4", frames(v), fps=FPS)
    return SimpleNamespace(env=env, cache=root / "cache", hf=root / "hf", data=data, subset=subset, memo=Path(memo))


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


def same(rec: dict, ref: list, dim: str, out: Path) -> None:
    """The record equals VBench's result: aggregate, and each video's (clip's) result, exactly; the per-unit
    results differ across units (a fixture that gives every unit one score cannot tell right from wrong)."""
    mine = raw(rec, dim, out)
    assert rec["status"] == "ok" and rec["vbench_version"] == "0.1.5", dim
    if rec["score"] != ref[0]:
        # long mode only: VBench-Long's reorganize_clips_results sums the clip results in the order its full-info
        # list holds them (os.listdir order of split_clip/), evalkit in its own clip order; the same numbers summed
        # in another order differ in the last bits. Each side's score is exactly its own mean of its own clip
        # results, the clip results are equal (checked below), and the two scores differ by at most the rounding
        # bound of a sum of n terms, 2 (n - 1) eps sum|x| / n.
        scale = 100.0 if dim == "imaging_quality" else 1.0
        theirs = [float(x["video_results"]) for x in ref[1] if "video_path" in x]
        ours = [float(x["video_results"]) for x in mine[1] if "video_path" in x]
        n = len(theirs)
        assert rec["mode"] == "long" and n == len(ours) > 1, (dim, rec["score"], ref[0])
        assert ref[0] == sum(theirs) / n / scale and rec["score"] == sum(ours) / n / scale, dim
        bound = 2 * (n - 1) * 2.0 ** -52 * sum(abs(x) for x in theirs) / n / scale
        assert abs(rec["score"] - ref[0]) <= bound, (dim, rec["score"], ref[0], bound)
    # VBench-Long's subject/background lists name each clip's row after its long video: compare the values
    assert sorted(per_unit(mine[1]).values()) == sorted(float(x["video_results"]) for x in ref[1]), dim
    if len(per_unit(ref[1])) == len(ref[1]):
        assert per_unit(mine[1]) == per_unit(ref[1]), dim
    assert_varies(per_unit(mine[1]), f"{rec['mode']} {dim}")


def link_split_clips(run: Path, videos: list[Path], dest: Path) -> Path:
    """A VBench-Long input folder: the long videos and ``split_clip/{video}/`` holding links to evalkit's clips
    (only the clips: VBench-Long's subject/background code loads every file of the folder as a video)."""
    for src in videos:
        (dest / "split_clip" / src.stem).mkdir(parents=True, exist_ok=True)
        (dest / src.name).symlink_to(src)
        (folder,) = [p for p in run.glob(f"clips/*/{src.stem}") if p.is_dir()]  # one clip length per video
        for clip in sorted(folder.glob("*.mp4")):
            (dest / "split_clip" / src.stem / clip.name).symlink_to(clip)
    return dest


def decode(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]).astype(np.int32)


def source_frames(clip: Path, source: np.ndarray) -> list[int]:
    """Index of the source frame each frame of ``clip`` shows (nearest by mean squared error; VBench-Long's clips
    are lossy re-encodes, evalkit's are lossless)."""
    return [int(np.argmin(((source - f) ** 2).mean(axis=(1, 2, 3)))) for f in decode(clip)]


def check_clips(vb, run: Path, videos: list[Path], durations: dict[str, float], tmp: Path) -> set[int]:
    """evalkit's clips of each video = VBench-Long's ``split_video_into_clips``: count, names, frame ranges (the
    padded last clip included), and the clips hold the source's decoded frames exactly. Returns the clip counts."""
    by_len: dict[float, list[Path]] = {}
    for v in videos:
        by_len.setdefault(durations[str(v)], []).append(v)
    counts = set()
    for secs, vids in by_len.items():
        theirs = reference(vb, "split", tmp / f"split-{secs:g}", videos=[str(v) for v in vids], duration=int(secs))
        for v in vids:
            mine = sorted((run / "clips" / f"{secs:g}s" / v.stem).glob("*.mp4"))
            assert [c.name for c in mine] == [Path(c).name for c in theirs[str(v)]], v.name
            source = decode(v)
            for a, b in zip(mine, theirs[str(v)]):
                want = source_frames(Path(b), source)
                assert want == source_frames(a, source), (a.name, want)
                assert (decode(a) == source[want]).all(), a.name          # lossless: the source's frames
            counts.add(len(mine))
    return counts


def assert_varies(results: dict[str, float], what: str) -> None:
    """A fixture that gives every video the same score cannot tell a right score from a wrong one."""
    assert len(set(results.values())) > 1, f"{what}: every unit scores {set(results.values())}"
