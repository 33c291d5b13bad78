"""Long mode (VBench-Long) for the three heavy 10 s dimensions and scene: ``python -m evalkit vbench run --mode long``
compared with ``VBenchLong.evaluate`` on the same videos and evalkit's clips, as test_vbench_heavy.py does for custom
and standard mode (split from it so each group stays under 25 minutes on 2 cores). Marked ``vbench``,
``vbench_heavy`` and ``vbench_heavy_long`` (its own .ci/run step, after the heavy one; .ci/run gives both the same
memo folder, so the frames the heavy step already passed through UMT, ViCLIP and Tag2Text are not run again).

- standard suite: 10 s clips for human_action, temporal_style and overall_consistency (``S``, ``M``, ``L``: 1, 1
  and 2 clips: the 12.5 s video is longer than one clip), 2 s clips for scene (``T``, ``U``, ``S``: 1, 1 and 2);
- custom suite: VBench-Long's ``long_custom_input`` always cuts 2 s clips and UMT and ViCLIP sample 8-16 frames
  of every clip, so this suite is the short videos ``T`` (1.0 s, 96 x 64), ``U`` (2.0 s, 64 x 96) and ``S``
  (3.0 s, 256 px square): 1, 1 and 2 clips, 4 passes per network instead of 13 on the longer custom suite; the text
  of temporal_style / overall_consistency is the clip folder's name ``{prompt}-{i}`` (``--long-text folder-name``),
  as VBench-Long's.
Clips are compared with VBench-Long's ``split_video_into_clips`` on the custom suite (check_clips); the 10 s clips of
the standard suite are compared in test_vbench_real.py (the same videos and prompts).
"""
from __future__ import annotations


import pytest

from vbench_fixtures.suite import (  # noqa: E402
    HEAVY_CUSTOM as CUSTOM, HEAVY_GROUPS as GROUPS, HEAVY_STANDARD as STANDARD, check_clips, link_split_clips,
    reference, same, session_suite, standard_videos, vbench_run)

pytestmark = [pytest.mark.vbench, pytest.mark.vbench_heavy, pytest.mark.vbench_heavy_long]

vb = session_suite(GROUPS)


def test_long_mode_heavy(vb, tmp_path):
    """Standard suite: 10 s clips for the three 10 s dimensions (1, 1 and 2 clips), 2 s for scene (1, 1 and 2)."""
    v = vb.data / "standard"
    recs = vbench_run(vb, tmp_path / "run", "--videos", str(v), "--mode", "long", "--full-info",
                      str(vb.data / "full_info.json"), "--samples-per-prompt", "1", "--name", "hl",
                      "--dimensions", *STANDARD)
    videos = standard_videos(vb, STANDARD)
    ref_dir = link_split_clips(tmp_path / "run", videos, tmp_path / "vbench-long")
    ref = reference(vb, "long_evaluate", tmp_path / "ref", videos_path=str(ref_dir), mode="long_vbench_standard",
                    full_info=str(vb.data / "full_info.json"), dimensions=list(STANDARD), samples=1)
    for d in STANDARD:
        same(recs[d], ref[d], d, tmp_path / "run")
    assert recs["human_action"]["n_clips"] == 1 + 1 + 2 and recs["scene"]["n_clips"] == 1 + 1 + 2
    assert recs["temporal_style"]["score"] != recs["temporal_style"]["video_mean_score"]


def test_long_mode_custom_heavy(vb, tmp_path):
    """Custom suite in long mode: VBench-Long's long_custom_input cuts 2 s clips (T, U, S: 1, 1 and 2 clips) and
    compares temporal_style / overall_consistency with the clip folder's name ``{prompt}-{i}``, which is evalkit's
    ``--long-text folder-name``."""
    v = vb.data / "custom_long"
    recs = vbench_run(vb, tmp_path / "run", "--videos", str(v), "--mode", "long", "--prompt-file",
                      str(vb.data / "prompts.json"), "--name", "hlc", "--long-text", "folder-name",
                      "--dimensions", *CUSTOM)
    videos = sorted(v.glob("*.mp4"))
    assert check_clips(vb, tmp_path / "run", videos, {str(p): 2.0 for p in videos}, tmp_path / "split") == {1, 2}
    ref_dir = link_split_clips(tmp_path / "run", videos, tmp_path / "vbench-long")
    ref = reference(vb, "long_evaluate", tmp_path / "ref", videos_path=str(ref_dir), mode="long_custom_input",
                    full_info=str(vb.data / "full_info.json"), dimensions=list(CUSTOM))
    for d in CUSTOM:
        assert recs[d]["n_clips"] == 1 + 1 + 2, d
        same(recs[d], ref[d], d, tmp_path / "run")
    assert recs["temporal_style"]["long_text"] == recs["overall_consistency"]["long_text"] == "folder-name"
