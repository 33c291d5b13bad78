"""The real VBench package through evalkit (marked ``vbench``: .ci/run runs it after ``python -m evalkit vbench
setup``; the quick run skips it). Builds the dedicated environment or reuses it, writes a static and a flickering
mp4 with PyAV, scores ``temporal_flickering`` in custom and long mode, and checks the scores against the package's
own ``vbench.temporal_flickering.cal_score`` called in the VBench environment on the same files."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.vbench import env as venv
from evalkit.vbench.runner import RunConfig, run

pytestmark = pytest.mark.vbench
FIX = Path(__file__).parent / "fixtures" / "vbench"
sys.path.insert(0, str(FIX))
from videos import flicker_frames, static_frames, write_mp4  # noqa: E402

PROMPT = "a quiet pond at dawn"


@pytest.fixture(scope="module")
def vbench_env() -> venv.VBenchEnv:
    venv.setup()  # reuses a valid env (seconds); builds it otherwise (minutes, several GB)
    return venv.require()


def _reference(env: venv.VBenchEnv, paths: list[Path], tmp: Path) -> dict[str, float]:
    """The package's own per-video flicker score, computed in the VBench env on the given files."""
    out = tmp / "ref"
    tmp.mkdir(parents=True, exist_ok=True)
    spec = tmp / "ref_spec.json"
    spec.write_text(json.dumps({"action": "flicker_reference", "output_dir": str(out),
                                "videos": [str(p) for p in paths]}))
    subprocess.run([str(env.python), str(venv.WORKER), str(spec)], check=True, capture_output=True)
    return json.loads((out / "worker.json").read_text())["scores"]


def test_temporal_flickering_custom_and_long_match_the_package(vbench_env, tmp_path):
    videos = tmp_path / "videos"
    static = write_mp4(videos / f"{PROMPT}-0.mp4", static_frames(5 * 16, size=64))    # 5 s at 16 fps
    flicker = write_mp4(videos / f"{PROMPT}-1.mp4", flicker_frames(5 * 16, size=64))
    (tmp_path / "prompts.txt").write_text(PROMPT + "\n")
    base = dict(videos=videos, dimensions=("temporal_flickering",), name="pyav-pair", prompt_file=tmp_path /
                "prompts.txt", samples_per_prompt=2, cache_dir=tmp_path / "cache", env=vbench_env.path)

    # custom mode: VBench's custom_input on the two files
    rec = run(RunConfig(mode="custom", out=tmp_path / "custom", **base))[0]
    raw = json.loads(Path(rec["raw_json"]).read_text())["temporal_flickering"]
    per_video = {Path(x["video_path"]).name: x["video_results"] for x in raw[1]}
    ref = _reference(vbench_env, [static, flicker], tmp_path)
    s_static, s_flicker = per_video[static.name], per_video[flicker.name]
    print(f"\ncustom: static {s_static!r} flicker {s_flicker!r} score {rec['score']!r}")
    assert s_flicker < s_static - 0.05
    assert s_static == ref[str(static)] and s_flicker == ref[str(flicker)]
    assert rec["score"] == pytest.approx((ref[str(static)] + ref[str(flicker)]) / 2, abs=1e-12)
    assert rec["vbench_version"] == venv.VBENCH_VERSION and (rec["n_expected"], rec["n_evaluated"]) == (2, 2)

    # long mode: 2 s clips (3 per 5 s video, last one padded), per-video mean, then mean over videos
    rec_l = run(RunConfig(mode="long", out=tmp_path / "long", **base))[0]
    assert rec_l["n_clips"] == 6 and rec_l["n_evaluated"] == 2
    clips = sorted((tmp_path / "long" / "clips" / "2s").rglob("*.mp4"))
    assert len(clips) == 6
    ref_c = _reference(vbench_env, clips, tmp_path / "clipref")
    per = {}
    for c in clips:
        per.setdefault(c.parent.name, []).append(ref_c[str(c)])
    want = {k: sum(v) / len(v) for k, v in per.items()}
    print(f"long: per-video {want!r} score {rec_l['score']!r}")
    assert want[flicker.stem] < want[static.stem] - 0.05
    assert rec_l["score"] == pytest.approx(sum(want.values()) / 2, abs=1e-12)
    # lossless clips: each clip of the static video scores like the whole video
    assert want[static.stem] == pytest.approx(ref[str(static)], abs=1e-9)

    # resume: a second run re-uses the records and calls no worker
    assert run(RunConfig(mode="long", out=tmp_path / "long", **base)) == []
