"""``python -m evalkit generate --pipeline``: tiny random diffusers pipelines of the released classes (WanPipeline,
CogVideoXPipeline; LTX and Mochi for the frame rule), built from config in tests/fixtures/pipeline_fixtures.py, saved with
save_pretrained and loaded back offline (HF_HUB_OFFLINE=1) like a user's folder. Checked: the videos, their
manifest records and file names, resume by content (same inputs skipped, other inputs refused, a damaged file made
again, --overwrite), seeds (the same seed gives the same frames), shards, the torch-free pre-flight geometry
against the loaded pipelines' own, every bad folder and request as a named error before any work, and (marker
``vbench``) the real VBench on the folder it writes."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from evalkit.cli import main as evalkit
from evalkit.core.errors import ChoiceError, FieldError
from evalkit.generate.cli import main as generate_main
from evalkit.generate.core import read_videos, video_name
from evalkit.runtime.pipeline_folder import Request, check_request, inspect_folder
from evalkit.runtime.video_io import read_video

PROMPTS = ("a red car moving left", "a blue dog on the beach")
WAN = ["--height", "16", "--width", "16", "--num-frames", "5", "--steps", "2", "--samples", "1"]  # 2 latent frames
COG = ["--height", "16", "--width", "16", "--num-frames", "9", "--steps", "2", "--samples", "1"]  # 3 (odd)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """{family: saved pipeline folder}: Wan and CogVideoX, built once per session."""
    import pipeline_fixtures as F

    os.environ["HF_HUB_OFFLINE"] = "1"
    root = tmp_path_factory.mktemp("pipelines")
    return {name: F.save(F.BUILDERS[name](), root / name) for name in ("wan", "cogvideox")}


@pytest.fixture
def prompts(tmp_path) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    return path


def generate(folder: Path, prompts: Path, out: Path, *extra: str, capsys=None) -> dict:
    """``python -m evalkit generate --pipeline ...`` in this process (its errors raised, not printed)."""
    rc = generate_main(["--pipeline", str(folder), "--prompts", str(prompts), "--out", str(out), "--no-progress",
                        *extra])
    assert rc == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1]) if capsys else {}


def test_wan_pipeline_end_to_end_and_resume_by_content(tiny, prompts, tmp_path, capsys):
    folder = tmp_path / "wan"
    shutil.copytree(tiny["wan"], folder)              # this test changes a weight file
    out = tmp_path / "videos"
    summary = generate(folder, prompts, out, *WAN, "--samples", "2", capsys=capsys)
    assert summary["written"] == 4 and summary["skipped"] == 0
    recs = {r["file"]: r for r in read_videos(out)}
    assert set(recs) == {video_name(p, i) for p in PROMPTS for i in range(2)}          # VBench's names
    for name, rec in recs.items():
        frames, fps = read_video(out / name)
        assert frames.shape == (5, 16, 16, 3) and fps == 16                                # WanPipeline: 16 fps
        assert rec["pipeline_class"] == "WanPipeline" and rec["model"] == "wan" and rec["steps"] == 2
        assert rec["guidance_scale"] == 5.0 and rec["precision"] == "float32" and rec["num_frames"] == 5
        assert rec["duration_s"] == 0.25 and rec["max_sequence_length"] == 512 and rec["negative_prompt"] == ""
        assert rec["sampler"] == "diffusers:UniPCMultistepScheduler" and rec["kind"] == "video"
        assert set(rec["component_dtypes"]) == {"text_encoder", "transformer", "vae"}
    assert len({r["seed"] for r in recs.values()}) == 4 and len({r["frames_sha256"] for r in recs.values()}) == 4
    # the same command again: every video is done
    assert generate(folder, prompts, out, *WAN, "--samples", "2", capsys=capsys)["skipped"] == 4
    # other inputs are refused, naming what changed, before anything loads
    with pytest.raises(FieldError, match=r"--out: .* made with other settings: .*\(steps: 2 -> 3\)"):
        generate(folder, prompts, out, *WAN, "--samples", "2", "--steps", "3")
    # a damaged file is made again (and only it), with the same frames: the seed fixes the noise
    damaged = out / video_name(PROMPTS[0], 1)
    damaged.write_bytes(damaged.read_bytes()[:100])
    assert generate(folder, prompts, out, *WAN, "--samples", "2", capsys=capsys)["written"] == 1
    again = {r["file"]: r for r in read_videos(out)}
    assert again[damaged.name]["frames_sha256"] == recs[damaged.name]["frames_sha256"]
    # a changed weight file changes the inputs: refused, then made again with --overwrite
    from safetensors.numpy import load_file, save_file

    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(str(weights))
    first = sorted(tensors)[0]
    tensors[first] = tensors[first] + 0.5
    save_file(tensors, str(weights))
    with pytest.raises(FieldError, match="pipeline_weights_sha256"):
        generate(folder, prompts, out, *WAN)
    assert generate(folder, prompts, out, *WAN, "--overwrite", capsys=capsys)["written"] == 2


def test_cogvideox_pipeline_and_the_vae_geometry_of_both(tiny, prompts, tmp_path, capsys):
    """CogVideoX end to end (its 8 fps, its transformer's text length 16); the torch-free pre-flight compression
    equals what each loaded pipeline computes."""
    from evalkit.runtime.pipeline import load

    out = tmp_path / "cog"
    assert generate(tiny["cogvideox"], prompts, out, *COG, capsys=capsys)["written"] == 2
    for rec in read_videos(out):
        frames, fps = read_video(out / rec["file"])
        assert frames.shape == (9, 16, 16, 3) and fps == 8 and rec["max_sequence_length"] == 16
        assert rec["pipeline_class"] == "CogVideoXPipeline" and rec["guidance_scale"] == 6.0
    for name in ("wan", "cogvideox"):
        folder = inspect_folder(tiny[name])
        pipe = load(folder, precision="float32", device="cpu")
        assert folder.compression == (pipe.vae_scale_factor_temporal, pipe.vae_scale_factor_spatial,
                                      pipe.vae_scale_factor_spatial)


def test_same_seed_same_frames_in_any_batch_and_shards(tiny, prompts, tmp_path, capsys):
    """Two prompts in one batch, or one per shard (--shards 2, each its own rank and manifest): the same frames."""
    one = tmp_path / "batch"
    generate(tiny["wan"], prompts, one, *WAN, "--batch-size", "2", capsys=capsys)
    split = tmp_path / "shards"
    generate(tiny["wan"], prompts, split, *WAN, "--shards", "2", capsys=capsys)
    assert sorted(p.name for p in split.glob("videos*.jsonl")) == ["videos.0.jsonl", "videos.1.jsonl"]
    a = {r["file"]: r["frames_sha256"] for r in read_videos(one)}
    b = {r["file"]: r["frames_sha256"] for r in read_videos(split)}
    assert a == b and len(a) == 2


def _broken(tiny: dict[str, Path], tmp_path: Path, name: str = "wan") -> Path:
    folder = tmp_path / f"broken-{name}"
    shutil.copytree(tiny[name], folder)
    return folder


def _index(folder: Path, **changes) -> None:
    path = folder / "model_index.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_bad_folders_are_named_errors_before_any_work(tiny, prompts, tmp_path):
    from safetensors.numpy import save_file

    def refused(folder, exc, match, *extra):
        out = tmp_path / "never"
        with pytest.raises(exc, match=match):
            generate(folder, prompts, out, *extra)
        assert not out.exists()                      # nothing written, nothing loaded

    refused(tmp_path / "nope", FieldError, r"--pipeline: .*'.*nope' is not a folder .*nothing is downloaded")
    refused(tiny["wan"] / "transformer", FieldError, r"holds one WanTransformer3DModel \(config.json\), not a "
                                                     r"pipeline: pass the folder that holds model_index.json")
    (tmp_path / "empty").mkdir()
    refused(tmp_path / "empty", FieldError, "is not a diffusers pipeline folder: no model_index.json")
    f = _broken(tiny, tmp_path)
    _index(f, _class_name="WanPipelin")
    refused(f, ChoiceError, r"unknown pipeline class 'WanPipelin'\. Valid choices: CogVideoXPipeline, .*"
                            r"WanPipeline\. Did you mean 'WanPipeline'\?")
    _index(f, _class_name="WanImageToVideoPipeline")
    refused(f, FieldError, "WanImageToVideoPipeline conditions on an image or video; .* text-to-video")
    _index(f, _class_name="WanPipeline", vae=[None, None])
    refused(f, FieldError, r"--pipeline\.vae: WanPipeline needs a 'vae' component; model_index.json has null")
    _index(f, vae=["diffusers", "AutoencoderKLWan"], transformer=["diffusers", "CogVideoXTransformer3DModel"])
    refused(f, ChoiceError, r"--pipeline\.transformer: unknown transformer class for WanPipeline "
                            r"'CogVideoXTransformer3DModel'\. Valid choices: WanTransformer3DModel")
    _index(f, transformer=["diffusers", "WanTransformer3DModel"])
    shutil.rmtree(f / "tokenizer")
    refused(f, FieldError, r"--pipeline\.tokenizer: model_index.json lists T5Tokenizer but .*tokenizer is missing")
    shutil.copytree(tiny["wan"] / "tokenizer", f / "tokenizer")
    for p in (f / "tokenizer").iterdir():
        p.unlink()
    refused(f, FieldError, r"--pipeline\.tokenizer: .* has no tokenizer file")
    shutil.rmtree(f / "tokenizer")
    shutil.copytree(tiny["wan"] / "tokenizer", f / "tokenizer")
    weights = f / "vae" / "diffusion_pytorch_model.safetensors"
    blob = weights.read_bytes()
    weights.write_bytes(blob[: len(blob) // 2])
    refused(f, FieldError, r"--pipeline\.vae: .*diffusion_pytorch_model.safetensors is \d+ bytes but its header "
                           r"describes \d+: truncated or corrupt")
    weights.unlink()
    (f / "vae" / "diffusion_pytorch_model.bin").write_bytes(b"pickle")
    refused(f, FieldError, r"--pipeline\.vae: .* has only pickled weights .*never unpickles")
    (f / "vae" / "diffusion_pytorch_model.bin").unlink()
    save_file({"a": np.zeros(2, np.float32)}, str(f / "vae" / "part-1.safetensors"))
    (f / "vae" / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "part-1.safetensors", "b": "part-2.safetensors"}}))
    refused(f, FieldError, r"--pipeline\.vae: .*index.json lists shards that are missing: \['part-2.safetensors'\]")


def test_bad_requests_are_named_errors_with_the_closest_valid_values(tiny, prompts, tmp_path):
    wan, cog = inspect_folder(tiny["wan"]), inspect_folder(tiny["cogvideox"])
    ok = Request(height=16, width=16, num_frames=5, fps=16, steps=2, guidance_scale=5.0, max_sequence_length=16)
    assert check_request(wan, ok) == (2, 2, 2)
    even = Request(**{**ok.__dict__, "num_frames": 8})           # CogVideoX: 2 latent frames decode into 8
    assert check_request(cog, even) == (2, 2, 2)
    cases = [(wan, {"num_frames": 8}, "--num-frames", r"8 frames cannot be made by this VAE \(1 \+ 4 k frames: "
                                                      r"temporal compression 4\); closest: 5 or 9"),
             (wan, {"height": 24}, "--height", r"24 px is not a multiple of 16 \(VAE compression x patch = 8 x 2\); "
                                               r"closest: 16 or 32"),
             (wan, {"width": 8}, "--width", r"8 px .*; closest: 16$"),
             (cog, {"num_frames": 5}, "--num-frames", r"5 frames = 2 latent frames, which CogVideoXPipeline's VAE "
                                                      r"decodes into 8 frames .*; closest: 1 or 8"),
             (cog, {"num_frames": 13}, "--num-frames", r"13 frames = 4 latent frames, .* into 16 frames .*; closest: "
                                                       r"9 or 16"),
             (cog, {"num_frames": 9, "max_sequence_length": 226}, "--max-sequence-length",
              r"226, but this CogVideoX transformer's positions hold exactly max_text_seq_length = 16"),
             (wan, {"steps": 0}, "--steps", "WanPipeline needs at least 1 steps, got 0")]
    for folder, change, flag, match in cases:
        req = Request(**{**ok.__dict__, **change})
        with pytest.raises(FieldError, match=f"{flag}: {match}"):
            check_request(folder, req)
    # through the CLI: the same checks, before anything is written
    for extra, match in (([*WAN, "--num-frames", "6"], "--num-frames: 6 frames cannot be made"),
                         ([*WAN, "--duration-s", "0.3"], "--duration-s: give either --num-frames or --duration-s"),
                         (["--height", "16", "--width", "16", "--duration-s", "0.3", "--steps", "2"],
                          r"--duration-s: 0.3 s x 16 fps = 4.8 frame intervals"),
                         ([*WAN, "--schedule", "linear"], "--schedule: applies to --checkpoint only"),
                         ([*WAN, "--cfg-scale", "nan"], "--cfg-scale: must be a finite number")):
        with pytest.raises(FieldError, match=match):
            generate(tiny["wan"], prompts, tmp_path / "never", *extra)
    with pytest.raises(SystemExit):                      # argparse: invalid choice 'fp8'
        generate(tiny["wan"], prompts, tmp_path / "never", *WAN, "--precision", "fp8")
    assert not (tmp_path / "never").exists()
    with pytest.raises(FieldError, match="--num-frames: applies to --pipeline only"):
        generate_main(["--checkpoint", str(tmp_path), "--prompts", str(prompts), "--out", str(tmp_path / "x"),
                       "--num-frames", "9"])


def test_ltx_and_mochi_folders_pre_flight(tmp_path):
    """LTXPipeline's own multiple of 32 and MochiPipeline's hard-coded (6, 8, 8) and 2-step minimum, read from
    saved folders of the real classes (no weights loaded)."""
    import pipeline_fixtures as F

    ltx, mochi = (inspect_folder(F.save(F.BUILDERS[n](), tmp_path / n)) for n in ("ltx", "mochi"))
    assert ltx.compression == (4, 4, 4) and ltx.patch == (1, 1, 1) and mochi.compression == (6, 8, 8)
    with pytest.raises(FieldError, match=r"--height: 16 px is not a multiple of 32 \(VAE compression x patch = "
                                         r"4 x 1 and LTXPipeline's own multiple of 32\); closest: 32"):
        check_request(ltx, Request(height=16, width=32, num_frames=9, fps=24, steps=2, guidance_scale=3.0,
                                   max_sequence_length=16))
    with pytest.raises(FieldError, match="--steps: MochiPipeline needs at least 2 steps, got 1"):
        check_request(mochi, Request(height=16, width=16, num_frames=7, fps=30, steps=1, guidance_scale=4.5,
                                     max_sequence_length=16))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:In CPU autocast")
def test_the_frame_rule_is_the_pipelines_own(tmp_path):
    """For every tiny pipeline and frame count: the pre-flight check accepts it exactly when the pipeline itself
    returns that many frames (the pipelines silently make other counts)."""
    import pipeline_fixtures as F
    import torch

    from evalkit.runtime.pipeline import load

    sizes = {"wan": 16, "cogvideox": 16, "ltx": 32, "mochi": 16}
    for name, px in sizes.items():
        folder = inspect_folder(F.save(F.BUILDERS[name](), tmp_path / name))
        pipe = load(folder, precision="float32", device="cpu")
        for frames in range(1, 18):
            req = Request(height=px, width=px, num_frames=frames, fps=16, steps=2, guidance_scale=3.0,
                          max_sequence_length=16)
            try:
                check_request(folder, req)
                accepted = True
            except FieldError:
                accepted = False
            out = pipe(prompt=["a red car"], height=px, width=px, num_frames=frames, num_inference_steps=2,
                       guidance_scale=3.0, max_sequence_length=16, output_type="np",
                       generator=[torch.Generator().manual_seed(0)])
            made = np.asarray(out.frames).shape[1]
            assert accepted == (made == frames), (name, frames, made)


@pytest.mark.vbench
@pytest.mark.parametrize("family,args", [("wan", WAN), ("cogvideox", COG)])
def test_vbench_scores_the_folder_generate_writes(tiny, prompts, tmp_path, capsys, monkeypatch, family, args):
    """``python -m evalkit vbench run`` (the real vbench package in the environment ``vbench setup`` builds; CI:
    ``--profile long`` before the ``vbench`` group) on the videos of a tiny Wan and a tiny CogVideoX pipeline, with
    temporal_flickering (no evaluator weights): every video found by its VBench name and scored, and the score is
    VBench's mean of its per-video results."""
    from evalkit.core.records import read_records
    from evalkit.vbench import env as venv

    env = venv.require()                               # fails, never skips, without the environment
    monkeypatch.setenv("EVALKIT_VBENCH_ENV", str(env.path))
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    videos = tmp_path / "videos"
    generate(tiny[family], prompts, videos, *args, "--samples", "2", capsys=capsys)
    rc = evalkit(["vbench", "run", "--videos", str(videos), "--mode", "custom", "--prompt-file", str(prompts),
                  "--samples-per-prompt", "2", "--name", f"{family}-tiny", "--dimensions", "temporal_flickering",
                  "--device", "cpu", "--out", str(tmp_path / "vbench")])
    assert rc == 0
    rec = [r for r in read_records([tmp_path / "vbench"]) if r.get("dimension") == "temporal_flickering"][-1]
    assert rec["status"] == "ok" and rec["n_scored"] == 4
    raws = rec.get("raw_json_shards") or [rec["raw_json"]]
    per_video = {Path(v["video_path"]).name: v["video_results"]
                 for raw in raws   # record paths are relative to the run folder
                 for v in json.loads((tmp_path / "vbench" / raw).read_text())["temporal_flickering"][1]}
    assert set(per_video) == {video_name(p, i) for p in PROMPTS for i in range(2)}
    assert rec["score"] == pytest.approx(sum(per_video.values()) / 4, abs=1e-12)


@pytest.mark.slow
def test_torchrun_ranks_and_submitit_jobs_equal_one_process(tiny, prompts, tmp_path):
    """``torchrun --nproc-per-node 2 -m evalkit generate --pipeline`` (two CPU ranks, each its own manifest) and
    ``--launcher submitit --shards 2`` (submitit's LocalExecutor: real subprocesses) make the same frames as one
    process, each video exactly once."""
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    base = ["-m", "evalkit", "generate", "--pipeline", str(tiny["wan"]), "--prompts", str(prompts), *WAN,
            "--samples", "2", "--no-progress"]

    def run(prefix: list[str], out: Path, *extra: str) -> None:
        proc = subprocess.run([*prefix, *base, "--out", str(out), *extra], capture_output=True, text=True,
                              timeout=600, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]

    run([sys.executable], tmp_path / "one")
    run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"], tmp_path / "two")
    run([sys.executable], tmp_path / "jobs", "--launcher", "submitit", "--set", "launch.submitit_cluster=local",
        "--shards", "2")
    assert sorted(p.name for p in (tmp_path / "two").glob("videos*.jsonl")) == ["videos.0.jsonl", "videos.1.jsonl"]
    one = {r["file"]: r for r in read_videos(tmp_path / "one")}
    assert len(one) == 4
    for folder in ("two", "jobs"):
        other = {r["file"]: r for r in read_videos(tmp_path / folder)}
        assert sorted(other) == sorted(one) and {r["rank"] for r in other.values()} == {0, 1}
        assert {r["world_size"] for r in other.values()} == {2}
        for name, rec in one.items():
            assert (rec["seed"], rec["frames_sha256"], rec["inputs_sha256"]) == \
                (other[name]["seed"], other[name]["frames_sha256"], other[name]["inputs_sha256"]), (folder, name)
