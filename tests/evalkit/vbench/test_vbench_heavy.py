"""The four dimensions whose evaluators cost most on a CPU (human_action: UMT ViT-L/16 on 16 frames; temporal_style
and overall_consistency: ViCLIP ViT-L/14 on 8 frames; scene: Tag2Text Swin-B at 384 px on 16 frames plus BERT
decoding), through ``python -m evalkit vbench run`` and compared exactly with VBench's and VBench-Long's own entry
points on the same files, in custom and standard mode (scene is refused by VBench's custom mode); long mode is in
test_vbench_heavy_long.py. Marked ``vbench`` and ``vbench_heavy`` (.ci/run runs ``-m "vbench_heavy and not
vbench_heavy_long"`` as its own step); the set-up and the checks are those of test_vbench_real.py
(tests/fixtures/vbench_fixtures/suite.py). Videos: custom and standard suites on the 3.0 s (256 px square), 6.5 s
(128 x 192) and 12.5 s (192 x 128) videos, scene's prompts on 1.0 s (96 x 64), 2.0 s (64 x 96) and 3.0 s ones.
UMT's fixture classifies only "riding a bike" correctly and Tag2Text's captions name only the "alley" scene, so
their per-video results differ (checked).

Mutation check (run: the bug put into the code, the test run, the bug removed): custom mode sending each video's
file stem instead of its prompt (modes.Mode.worker_spec) fails test_custom_mode_heavy: temporal_style
-0.03968389332294464 vs VBench's custom_input score -0.033394538486997284 given the prompts (overall_consistency
the same pair); human_action, which reads its label from the file name, is unchanged (0.3333...).
"""
from __future__ import annotations

import json
import subprocess

import pytest

from vbench_fixtures.suite import (  # noqa: E402
    HEAVY_CUSTOM as CUSTOM, HEAVY_GROUPS as GROUPS, HEAVY_STANDARD as STANDARD, per_unit, raw, reference, same,
    session_suite, standard_videos, vbench_run)

pytestmark = [pytest.mark.vbench, pytest.mark.vbench_heavy]

vb = session_suite(GROUPS)


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
        same(recs[d], ref[d], d, tmp_path / "run")
    assert per_unit(raw(recs["human_action"], "human_action", tmp_path / "run")[1]) == {
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
        same(recs[d], ref[d], d, tmp_path / "std")
    assert per_unit(raw(recs["scene"], "scene", tmp_path / "std")[1]) == {
        "alley-0.mp4": 1.0, "amusement park-0.mp4": 0.0, "aquarium-0.mp4": 0.0}


def test_a_umt_file_missing_a_key_is_refused(vb, tmp_path, capsys):
    """VBench loads UMT with strict=False: a file without the classifier head would score with a random head."""
    import shutil

    from evalkit.cli import main as evalkit_main

    cache = tmp_path / "cache"
    shutil.copytree(vb.cache / "umt_model", cache / "umt_model")
    umt = cache / "umt_model" / "l16_ptk710_ftk710_ftk400_f16_res224.pth"
    drop = ("import sys, torch; sd = torch.load(sys.argv[1], weights_only=True); sd.pop('head.weight'); "
            "torch.save(sd, sys.argv[1])")
    subprocess.run([str(vb.env.python), "-c", drop, str(umt)], check=True)
    assert evalkit_main(["vbench", "run", "--videos", str(vb.data / "custom"), "--mode", "custom", "--prompt-file",
                         str(vb.data / "prompts.json"), "--name", "bad", "--cache-dir", str(cache), "--out",
                         str(tmp_path / "run"), "--dimensions", "human_action", "--device", "cpu"]) == 2
    msg = capsys.readouterr().err
    assert "human_action" in msg and "head.weight" in msg and "strict=False" in msg
    assert not list((tmp_path / "run").glob("raw/human_action/shard_*"))        # nothing was scored
