"""The four dimensions whose evaluators cost most on a CPU (human_action: UMT ViT-L/16 on 16 frames; temporal_style
and overall_consistency: ViCLIP ViT-L/14 on 8 frames; scene: Tag2Text Swin-B at 384 px on 16 frames plus BERT
decoding), through ``python -m evalkit vbench run`` and compared with VBench's and VBench-Long's own entry points on
the same files, in custom, standard and long mode (scene is refused by VBench's custom mode). Marked ``vbench`` and
``vbench_heavy`` (.ci/run runs this module as its own step); the set-up and the checks are those of
test_vbench_real.py (tests/vbench_fixtures/suite.py). The custom suite's three videos have three lengths and both
orientations; UMT's fixture classifies only "riding a bike" correctly and Tag2Text's captions name only the "alley"
scene, so their per-video results differ (checked).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_vbench_real import _same  # noqa: E402
from vbench_fixtures.suite import (  # noqa: E402
    build, link_split_clips, per_unit, raw, reference, standard_videos, vbench_run)

pytestmark = [pytest.mark.vbench, pytest.mark.vbench_heavy]
CUSTOM = ("human_action", "temporal_style", "overall_consistency")
STANDARD = CUSTOM + ("scene",)


@pytest.fixture(scope="session")
def vb(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    yield build(tmp_path_factory, mp)
    mp.undo()


def test_custom_mode_heavy(vb, tmp_path):
    """Also the check that custom mode sends each video's prompt (not its file name) to VBench: the text
    dimensions' scores would differ from VBench's."""
    v = vb.data / "custom"
    recs = vbench_run(vb, tmp_path / "run", "--videos", str(v), "--mode", "custom", "--prompt-file",
                      str(vb.data / "prompts.json"), "--name", "hc", "--dimensions", *CUSTOM)
    ref = reference(vb, "evaluate", tmp_path / "ref", videos_path=str(v), mode="custom_input",
                    full_info=str(vb.data / "full_info.json"), dimensions=list(CUSTOM),
                    prompts=json.loads((vb.data / "prompts.json").read_text()))
    for d in CUSTOM:
        assert recs[d]["n_scored"] == 3, d
        _same(recs[d], ref[d], d)
    assert per_unit(raw(recs["human_action"], "human_action")[1]) == {
        "A person is riding a bike-0.mp4": 1.0, "A person is marching-0.mp4": 0.0,
        "A person is roller skating-0.mp4": 0.0}


def test_standard_mode_heavy(vb, tmp_path):
    v = vb.data / "standard"
    recs = vbench_run(vb, tmp_path / "std", "--videos", str(v), "--mode", "standard", "--full-info",
                      str(vb.data / "full_info.json"), "--samples-per-prompt", "1", "--name", "hs",
                      "--dimensions", *STANDARD)
    ref = reference(vb, "evaluate", tmp_path / "ref", videos_path=str(v), mode="vbench_standard",
                    full_info=str(vb.data / "full_info.json"), dimensions=list(STANDARD))
    for d in STANDARD:
        assert recs[d]["n_scored"] == len(standard_videos(vb, [d])) >= 3, d
        _same(recs[d], ref[d], d)


def test_long_mode_heavy(vb, tmp_path):
    """Standard suite: 10 s clips for the three 10 s dimensions (1, 1 and 2 clips), 2 s for scene (2, 4, 7)."""
    v = vb.data / "standard"
    recs = vbench_run(vb, tmp_path / "run", "--videos", str(v), "--mode", "long", "--full-info",
                      str(vb.data / "full_info.json"), "--samples-per-prompt", "1", "--name", "hl",
                      "--dimensions", *STANDARD)
    videos = standard_videos(vb, STANDARD)
    ref_dir = link_split_clips(tmp_path / "run", videos, tmp_path / "vbench-long")
    ref = reference(vb, "long_evaluate", tmp_path / "ref", videos_path=str(ref_dir), mode="long_vbench_standard",
                    full_info=str(vb.data / "full_info.json"), dimensions=list(STANDARD), samples=1)
    for d in STANDARD:
        _same(recs[d], ref[d], d)
    assert recs["human_action"]["n_clips"] == 1 + 1 + 2 and recs["scene"]["n_clips"] == 2 + 4 + 7
