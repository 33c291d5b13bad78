"""The real VBench package (0.1.5, in the environment ``vbench setup --profile long`` builds) through
``python -m evalkit vbench run``, compared with VBench's and VBench-Long's own entry points run on the same files.
Marked ``vbench``; this module holds the eight dimensions whose evaluators are cheap on a CPU (the pixel ones, AMT,
RAFT, DINO, CLIP, MUSIQ); test_vbench_heavy.py (also ``vbench_heavy``) holds human_action, temporal_style,
overall_consistency and scene. The four GRiT dimensions are not exercised (README, VBench section).

The evaluator files are random-weight networks of the released architectures made at test time
(tests/fixtures/vbench_fixtures/make_weights.py); the videos are three to five lengths in both orientations
(tests/fixtures/vbench_fixtures/suite.py), so every dimension's per-video (per-clip) results differ, which every comparison
checks, and long-mode clip counts differ (2, 4 and 7 clips of 2 s; 1, 1 and 2 of 10 s: the 12.5 s video is longer
than VBench-Long's 10 s clip). Checks, per mode:
- custom: each record's score and per-video results equal ``VBench.evaluate(..., mode="custom_input")`` with the
  same prompts on the user's folder; sharded runs equal single-process ones; a second run scores nothing again;
- standard: the same with ``mode="vbench_standard"`` and the same full-info entries;
- long (standard and custom suites): evalkit's clips hold the frames of VBench-Long's own
  ``split_video_into_clips`` (same count, names and frame ranges, the padded last clip included), the clip length
  is VBench-Long's ``get_duration_from_json``, and each record's score and per-clip results equal
  ``VBenchLong.evaluate`` (``long_vbench_standard`` / ``long_custom_input``, eval_long.py's defaults without
  ``--dev_flag``) run on a folder holding the same videos and those clips.
Scores and per-video (per-clip) results are compared exactly (``==``), with one stated exception: a long-mode
aggregate may differ from VBenchLong.evaluate's in the last bits, because VBench-Long sums the clip results in the
os.listdir order of its split_clip/ folder and evalkit in its own order (seen: 0.7653358977304863 vs
...864 on the custom suite); then each side must equal its own mean of the (equal) clip results exactly and the
two differ by at most the rounding bound of the sum (suite.same). The networks' forward passes are memoised by their exact inputs across the
session (suite.py, memo.py), so the same frames pass through each network once; test_custom_mode also scores
background_consistency in a reference run without the memo and finds the same numbers.

Mutation checks (each bug put into the code by hand, the tests run, the bug removed):
- long mode does not pad the last clip back (long.plan_clips: the remainder clip starts where the last full clip
  ends): test_long_mode_custom_suite fails (run on this suite: ``M``'s last 2 s clip holds its one remaining frame,
  and VBench's motion_smoothness stops on it, AMT's "The number of input should be more than one", so the evalkit
  run exits 1; for the other dimensions check_clips compares that clip's frames with VBench-Long's, frames 9-12);
- long mode averages per-video means instead of the mean over clips (modes.LongMode.merge):
  test_long_mode_custom_suite fails in suite.same (run: temporal_flickering 0.763522264069202 vs
  VBenchLong.evaluate's 0.7653358977304864, dynamic_degree 0.6667 vs 0.8462; every dimension differs);
- custom mode sends each video's file stem instead of its prompt (modes.Mode.worker_spec): no test here reads the
  text; test_vbench_heavy.py::test_custom_mode_heavy fails (temporal_style -0.039684 vs -0.033395).
The figures of the last check are in the module docstring of test_vbench_heavy.py.

``EVALKIT_TEST_VBENCH_FIXTURES=DIR`` keeps the generated evaluator files between sessions (regenerated when the
generator changes); ``EVALKIT_TEST_VBENCH_MEMO=DIR`` keeps the memo (then a second session runs no network).
"""
from __future__ import annotations

import json

import pytest

from vbench_fixtures.suite import (  # noqa: E402
    CLIP_LENGTH_MIX, check_clips, link_split_clips, per_unit, raw, reference, same, standard_videos,
    session_suite, vbench_run)

pytestmark = pytest.mark.vbench
MEAN = ("temporal_flickering", "motion_smoothness", "dynamic_degree", "aesthetic_quality", "imaging_quality")
CUSTOM = MEAN + ("subject_consistency", "background_consistency")
SHARDED = ("temporal_flickering", "imaging_quality")    # shard merge: the plain mean (imaging: of 0-100 results)
STANDARD = CUSTOM + ("appearance_style",)
GROUPS = ("amt", "raft", "dino", "clip_b32", "clip_l14", "aesthetic", "musiq")

vb = session_suite(GROUPS)


def test_custom_mode(vb, tmp_path):
    v = vb.data / "custom"
    base = ("--videos", str(v), "--mode", "custom", "--prompt-file", str(vb.data / "prompts.json"), "--name", "c")
    one = vbench_run(vb, tmp_path / "one", *base, "--dimensions", *CUSTOM)
    prompts = json.loads((vb.data / "prompts.json").read_text())
    ref = reference(vb, "evaluate", tmp_path / "ref", videos_path=str(v), mode="custom_input",
                    full_info=str(vb.data / "full_info.json"), dimensions=list(CUSTOM), prompts=prompts)
    for d in CUSTOM:
        assert one[d]["n_scored"] == 3, d
        same(one[d], ref[d], d, tmp_path / "one")
    # CLIP ViT-L/14 is a 1-layer fixture: the weight check says so in the record (the table: UNOFFICIAL by sha256)
    (why,) = one["aesthetic_quality"]["weights_differs_from_release"]
    assert "differs from release" in why and "layers 1 (release 24)" in why, why
    assert one["aesthetic_quality"]["weights_official"] is False
    assert one["aesthetic_quality"]["weights_label"] == "UNOFFICIAL WEIGHTS"
    assert one["background_consistency"]["weights_differs_from_release"] == []      # ViT-B/32 at its released size
    # the RAFT fixture: the 256 px video is static, the 128 px ones move (suite.py)
    assert per_unit(raw(one["dynamic_degree"], "dynamic_degree", tmp_path / "one")[1]) == {
        "A person is riding a bike-0.mp4": 0.0, "A person is marching-0.mp4": 1.0,
        "A person is roller skating-0.mp4": 1.0}
    plain = reference(vb, "evaluate", tmp_path / "ref-plain", videos_path=str(v), mode="custom_input", memo=False,
                      full_info=str(vb.data / "full_info.json"), dimensions=["background_consistency"],
                      prompts=prompts)   # the memo changes no number
    assert plain["background_consistency"] == ref["background_consistency"]
    sharded = vbench_run(vb, tmp_path / "sharded", *base, "--shard-size", "1", "--dimensions", *SHARDED)
    for d in SHARDED:
        assert sharded[d]["n_shards"] == 3 and sharded[d]["score"] == pytest.approx(one[d]["score"], abs=1e-12), d
    again = vbench_run(vb, tmp_path / "one", *base, "--dimensions", *CUSTOM)   # same inputs: nothing re-scored
    assert {d: r["created"] for d, r in again.items()} == {d: r["created"] for d, r in one.items()}


def test_standard_mode(vb, tmp_path):
    v = vb.data / "standard"
    recs = vbench_run(vb, tmp_path / "std", "--videos", str(v), "--mode", "standard", "--full-info",
                      str(vb.data / "full_info.json"), "--samples-per-prompt", "1", "--name", "s",
                      "--dimensions", *STANDARD)
    ref = reference(vb, "evaluate", tmp_path / "ref", videos_path=str(v), mode="vbench_standard",
                    full_info=str(vb.data / "full_info.json"), dimensions=list(STANDARD))
    for d in STANDARD:
        assert recs[d]["n_scored"] == len(standard_videos(vb, [d])) >= 3, d
        same(recs[d], ref[d], d, tmp_path / "std")
    assert recs["temporal_flickering"]["static_filter"] is False


def test_long_mode_standard_suite(vb, tmp_path):
    v = vb.data / "standard"
    one = vbench_run(vb, tmp_path / "one", "--videos", str(v), "--mode", "long", "--full-info",
                     str(vb.data / "full_info.json"), "--samples-per-prompt", "1", "--name", "l",
                     "--dimensions", *STANDARD)
    videos = standard_videos(vb, STANDARD)
    durations = reference(vb, "duration", tmp_path / "ref", full_info=str(vb.data / "full_info.json"),
                          clip_length_config=str(vb.data / "clip_length_mix.yaml"), videos=[str(p) for p in videos])
    assert durations[str(v / "The bund Shanghai, oil painting-0.mp4")] == CLIP_LENGTH_MIX["overall_consistency"]
    assert sorted(set(durations.values())) == [2.0, 10.0]
    counts = check_clips(vb, tmp_path / "one", videos, durations, tmp_path / "split")
    assert counts == {1, 2, 4, 7}, counts          # 2 s: T 1, U 1, S 2, M 4, L 7; 10 s: S 1, M 1, L 2
    ref_dir = link_split_clips(tmp_path / "one", videos, tmp_path / "vbench-long")
    ref = reference(vb, "long_evaluate", tmp_path / "ref", videos_path=str(ref_dir), mode="long_vbench_standard",
                    full_info=str(vb.data / "full_info.json"), dimensions=list(STANDARD), samples=1)
    for d in STANDARD:
        assert one[d]["n_evaluated"] == len(standard_videos(vb, [d])), d
        same(one[d], ref[d], d, tmp_path / "one")
    assert one["subject_consistency"]["n_clips"] == 2 + 4 + 7
    assert one["background_consistency"]["n_clips"] == 1 + 1 + 2
    assert one["aesthetic_quality"]["n_clips"] == 1 + 1 + 2 + 1         # 10 s clips: overall_consistency prompts


def test_long_mode_custom_suite(vb, tmp_path):
    v = vb.data / "custom"
    recs = vbench_run(vb, tmp_path / "run", "--videos", str(v), "--mode", "long", "--prompt-file",
                      str(vb.data / "prompts.json"), "--name", "lc", "--dimensions", *CUSTOM)
    videos = sorted(v.glob("*.mp4"))
    counts = check_clips(vb, tmp_path / "run", videos, {str(p): 2.0 for p in videos}, tmp_path / "split")
    assert counts == {2, 4, 7}, counts
    ref_dir = link_split_clips(tmp_path / "run", videos, tmp_path / "vbench-long")
    ref = reference(vb, "long_evaluate", tmp_path / "ref", videos_path=str(ref_dir), mode="long_custom_input",
                    full_info=str(vb.data / "full_info.json"), dimensions=list(CUSTOM))
    for d in CUSTOM:
        assert recs[d]["n_clips"] == 2 + 4 + 7, d
        same(recs[d], ref[d], d, tmp_path / "run")
        assert recs[d]["score"] != recs[d]["video_mean_score"], d    # unequal clip counts: the two means differ
