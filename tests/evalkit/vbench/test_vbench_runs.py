"""VBench runs with a fake worker (no VBench environment): the bugs found in review, each with a test that fails on the
old code, and the run-level rules (checks before work, resume keyed by content, weight checks, complete-set
aggregates). The real package is exercised by tests/evalkit/vbench/test_vbench_real.py (marked ``vbench``)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.core.errors import EvalkitError, FieldError
from evalkit.vbench import long as longmod
from evalkit.vbench import weights
from evalkit.vbench.aggregate import aggregate_records
from evalkit.vbench.dimensions import DIMENSIONS
from evalkit.vbench.runner import RunConfig, run
from repo_paths import FIXTURES

FIX = FIXTURES / "vbench"
sys.path.insert(0, str(FIX))
from videos import static_frames, write_mp4  # noqa: E402

FAKE = (sys.executable, str(FIX / "fake_worker.py"))
BUND = "The bund Shanghai, oil painting"
FULL_INFO = [  # entries of VBench_full_info.json (0.1.5), verbatim
    {"prompt_en": BUND, "dimension": ["appearance_style"],
     "auxiliary_info": {"appearance_style": {"appearance_style": "oil painting"}}},
    {"prompt_en": BUND, "dimension": ["overall_consistency", "aesthetic_quality", "imaging_quality"]},
    {"prompt_en": "alley", "dimension": ["scene", "background_consistency"],
     "auxiliary_info": {"scene": {"scene": {"scene": "alley"}}}},
    {"prompt_en": "a red bicycle", "dimension": ["color"], "auxiliary_info": {"color": {"color": "red"}}},
    {"prompt_en": "a person", "dimension": ["object_class"], "auxiliary_info": {"object_class": {"object": "person"}}},
    {"prompt_en": "In a still frame, a stop sign", "dimension": ["temporal_flickering"]},
]


@pytest.fixture(autouse=True)
def _private_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "evalkit-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)


def _cache(tmp_path: Path, dims) -> Path:
    """A VBENCH_CACHE_DIR (and HF cache) holding a placeholder for every file ``dims`` need."""
    cache = tmp_path / "cache"
    for d in dims:
        for w in weights.WEIGHTS[d]:
            if w.kind == "hf":
                root = tmp_path / "hf" / "hub" / "models--bert-base-uncased"
                (root / "refs").mkdir(parents=True, exist_ok=True)
                (root / "refs" / "main").write_text("abc")
                (root / "snapshots" / "abc").mkdir(parents=True, exist_ok=True)
                for f in ("vocab.txt", "config.json", "pytorch_model.bin"):
                    (root / "snapshots" / "abc" / f).write_text(f)
                continue
            (cache / w.rel).parent.mkdir(parents=True, exist_ok=True)
            if w.kind == "git":
                (cache / w.rel).mkdir(exist_ok=True)
                (cache / w.rel / "hubconf.py").write_text("# hub")
            else:
                (cache / w.rel).write_bytes(b"w")
    return cache


def _standard(tmp_path: Path, prompts: dict[str, int], frames: int = 8, fps: int = 16) -> dict:
    """Videos of standard-suite prompts (``{prompt: samples}``) and a run config over FULL_INFO."""
    vids = tmp_path / "videos"
    for p, n in prompts.items():
        for i in range(n):
            write_mp4(vids / f"{p}-{i}.mp4", static_frames(frames, size=16, seed=i), fps=fps)
    info = tmp_path / "full_info.json"
    info.write_text(json.dumps(FULL_INFO))
    return dict(videos=vids, full_info=info, name="m", out=tmp_path / "run", worker_cmd=FAKE,
                allow_unofficial_weights=True)


def _calls(log: Path) -> list[dict]:
    calls = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    return [c for c in calls if c["action"] != "check_weights"]


def _spec(rec: dict, out: Path, k: int = 0) -> dict:
    """The worker spec of the record's shard ``k`` (records name their files relative to the run folder ``out``)."""
    return json.loads((out / rec["raw_json_shards"][k]).parent.joinpath("spec.json").read_text())


# --- bug 1: long mode on the standard suite scores the dimensions that need auxiliary labels ----------------------

def test_long_standard_suite_gives_vbench_long_entries_with_labels(tmp_path):
    dims = ("scene", "appearance_style", "object_class")
    base = _standard(tmp_path, {"alley": 2, BUND: 1, "a person": 1}, frames=3 * 16)
    recs = run(RunConfig(mode="long", dimensions=dims, samples_per_prompt=2, allow_missing=True,
                         cache_dir=_cache(tmp_path, dims), **base))
    by = {r["dimension"]: r for r in recs}
    spec = _spec(by["scene"], tmp_path / "run")
    assert spec["vbench_mode"] == "entries"       # not custom_input, which refuses these dimensions
    (entry,) = spec["entries"]
    assert entry["prompt_en"] == "alley" and entry["auxiliary_info"] == FULL_INFO[2]["auxiliary_info"]
    assert [Path(v).name for v in entry["video_list"]] == ["alley-0_000.mp4", "alley-0_001.mp4",
                                                         "alley-1_000.mp4", "alley-1_001.mp4"]
    assert _spec(by["object_class"], tmp_path / "run")["entries"][0]["auxiliary_info"] == {"object_class": {"object": "person"}}
    assert by["scene"]["n_clips"] == 4 and by["scene"]["n_evaluated"] == 2 and by["scene"]["suite"] == "standard"


def test_a_prompt_in_two_entries_is_scored_with_the_entry_that_lists_the_dimension(tmp_path):
    """The bund prompt is an appearance_style entry and an overall_consistency/aesthetic/imaging one: VBench must get
    the entry listing the dimension it scores (else it finds no video and divides by zero)."""
    base = _standard(tmp_path, {BUND: 1}, frames=3 * 16)
    for mode in ("standard", "long"):
        recs = run(RunConfig(mode=mode, dimensions=("appearance_style", "aesthetic_quality"), samples_per_prompt=1,
                             allow_missing=True, cache_dir=_cache(tmp_path, ["appearance_style", "aesthetic_quality"]),
                             **{**base, "out": tmp_path / mode}))
        for rec in recs:
            folder = (tmp_path / mode / rec["raw_json_shards"][0]).parent
            info = (_spec(rec, tmp_path / mode)["entries"] if mode == "long" else
                    json.loads((folder / "work" / "full_info.json").read_text()))
            assert [rec["dimension"] in e["dimension"] for e in info] == [True], (mode, rec["dimension"])


# --- bug 2: a prompt's clip length is the longest over every full-info entry with that prompt --------------------

def test_long_clip_length_is_the_max_over_all_entries_of_the_prompt(tmp_path):
    base = _standard(tmp_path, {BUND: 1}, frames=3 * 16)    # 3 s: 2 clips of 2 s, or one whole 10 s clip
    rec = run(RunConfig(mode="long", dimensions=("appearance_style",), samples_per_prompt=1, allow_missing=True,
                        cache_dir=_cache(tmp_path, ["appearance_style"]), **base))[0]
    clips = [Path(v).name for v in _spec(rec, tmp_path / "run")["entries"][0]["video_list"]]
    assert clips == [f"{BUND}-0_full.mp4"] and rec["n_clips"] == 1    # 10 s (overall_consistency's entry)
    assert (tmp_path / "run" / "clips" / "10s" / f"{BUND}-0").is_dir()
    assert longmod.clip_seconds("temporal_flickering", "standard", ("appearance_style",)) == 2.0


# --- bug 3: the DINO weights are where DINO's hub code reads them ------------------------------------------------

def test_dino_weights_listed_where_the_hub_code_reads_them(tmp_path):
    old = tmp_path / "dino_model"
    (old / "facebookresearch_dino_main").mkdir(parents=True)
    (old / "dino_vitbase16_pretrain.pth").write_bytes(b"w")   # only where VBench passes it (and ignores it)
    gaps = weights.missing(["subject_consistency"], tmp_path)["subject_consistency"]
    assert [w.rel for w in gaps] == ["dino_model/checkpoints/dino_vitbase16_pretrain.pth"]

    def fake_download(url, dest):
        dest.write_bytes(b"dino")

    (old / "dino_vitbase16_pretrain.pth").unlink()
    weights.prefetch(["subject_consistency"], tmp_path, download=fake_download)
    tested = old / "dino_vitbase16_pretrain.pth"     # what init_submodules tests (else it wgets): a link
    assert tested.is_symlink() and tested.read_bytes() == b"dino"
    assert weights.missing(["subject_consistency"], tmp_path) == {}


# --- bug 4: color leaves out videos without the object; that is not a partial set ---------------------------------

def test_color_videos_left_out_by_vbench_are_not_partial(tmp_path, monkeypatch):
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_WORKER_LOG", str(log))
    monkeypatch.setenv("FAKE_WORKER_DROP", "a red bicycle-3")
    base = _standard(tmp_path, {"a red bicycle": 5})
    cfg = RunConfig(mode="standard", dimensions=("color",), allow_missing=True, cache_dir=_cache(tmp_path, ["color"]),
                    **base)
    rec = run(cfg)[0]
    assert rec["status"] == "ok" and rec["message"] == ""
    assert (rec["n_expected"], rec["n_evaluated"], rec["n_scored"], rec["n_skipped_by_vbench"]) == (5, 5, 4, 1)
    assert "never detects the object" in rec["skipped_reason"]
    assert run(cfg) == [] and len(_calls(log)) == 1          # not re-merged or re-appended on the next run
    assert len((tmp_path / "run" / "results.jsonl").read_text().splitlines()) == 1


# --- bug 5: long custom mode's text for temporal_style / overall_consistency is an explicit, recorded option ------

@pytest.mark.parametrize("long_text, want", [("prompt", "a kite"), ("folder-name", "a kite-0")])
def test_long_custom_text_option(tmp_path, long_text, want):
    vids = tmp_path / "videos"
    write_mp4(vids / "a kite-0.mp4", static_frames(3 * 16, size=16))
    (tmp_path / "p.txt").write_text("a kite\n")
    rec = run(RunConfig(videos=vids, mode="long", dimensions=("temporal_style",), name="m", out=tmp_path / "run",
                        prompt_file=tmp_path / "p.txt", samples_per_prompt=1, long_text=long_text,
                        cache_dir=_cache(tmp_path, ["temporal_style"]), worker_cmd=FAKE,
                        allow_unofficial_weights=True))[0]
    (entry,) = _spec(rec, tmp_path / "run")["entries"]
    assert entry["prompt_en"] == want and len(entry["video_list"]) == 2
    assert rec["long_text"] == long_text and rec["inputs"]["settings"]["long_text"] == long_text
    with pytest.raises(EvalkitError, match="long_text.*Did you mean 'prompt'"):
        run(RunConfig(videos=vids, mode="long", dimensions=("temporal_style",), name="m", out=tmp_path / "o",
                      prompt_file=tmp_path / "p.txt", long_text="promt", worker_cmd=FAKE))


# --- bug 6: resume is keyed by the videos' and weights' content -------------------------------------------------

def test_changed_video_or_weights_are_scored_again(tmp_path, monkeypatch):
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_WORKER_LOG", str(log))
    vids = tmp_path / "videos"
    for i in range(2):
        write_mp4(vids / f"a cat-{i}.mp4", static_frames(8, seed=i))
    (tmp_path / "p.txt").write_text("a cat\n")
    cache = _cache(tmp_path, ["imaging_quality"])
    cfg = RunConfig(videos=vids, mode="custom", dimensions=("temporal_flickering", "imaging_quality"), name="m",
                    out=tmp_path / "run", prompt_file=tmp_path / "p.txt", samples_per_prompt=2, cache_dir=cache,
                    allow_unofficial_weights=True,
                    worker_cmd=FAKE)
    first = {r["dimension"]: r for r in run(cfg)}
    assert run(cfg) == [] and len(_calls(log)) == 2                    # same inputs: kept
    write_mp4(vids / "a cat-1.mp4", static_frames(8, seed=7))           # same name, new content
    again = {r["dimension"]: r for r in run(cfg)}
    assert set(again) == {"temporal_flickering", "imaging_quality"} and len(_calls(log)) == 4
    for d in again:
        assert again[d]["inputs_sha256"] != first[d]["inputs_sha256"] and again[d]["score"] != first[d]["score"]
        assert again[d]["inputs"]["weights"] == first[d]["inputs"]["weights"]
    (cache / "pyiqa_model" / "musiq_spaq_ckpt-358bb6af.pth").write_bytes(b"other weights")
    third = run(cfg)
    assert [r["dimension"] for r in third] == ["imaging_quality"] and len(_calls(log)) == 5
    assert third[0]["inputs"]["weights"] != again["imaging_quality"]["inputs"]["weights"]
    from evalkit.core.records import read_records

    newest = {r["dimension"]: r for r in read_records([cfg.out])}
    assert newest["imaging_quality"]["inputs_sha256"] == third[0]["inputs_sha256"]   # the stale one is superseded


def test_long_clips_are_cut_again_when_the_video_changes(tmp_path):
    from videos import decode

    src = write_mp4(tmp_path / "v-0.mp4", static_frames(3 * 16, size=16))
    first = longmod.split_video(src, tmp_path / "clips", 2.0, source_sha256="a")
    assert longmod.split_video(src, tmp_path / "clips", 2.0, source_sha256="a") == first
    write_mp4(src, static_frames(3 * 16, size=16, seed=3))          # same length and clip names, new content
    again = longmod.split_video(src, tmp_path / "clips", 2.0, source_sha256="b")
    assert again == first
    assert all((a == b).all() for a, b in zip(decode(again[0]), decode(src)[:32]))   # the new video's frames


# --- bug 7: records say the static filter of temporal_flickering was not applied ----------------------------------

def test_standard_flicker_records_say_no_static_filter(tmp_path):
    base = _standard(tmp_path, {"In a still frame, a stop sign": 1}, frames=3 * 16)
    for mode in ("standard", "long"):
        rec = run(RunConfig(mode=mode, dimensions=("temporal_flickering",), samples_per_prompt=1,
                            allow_missing=True, cache_dir=tmp_path / "cache", **{**base, "out": tmp_path / mode}))[0]
        assert rec["static_filter"] is False and "static filter" in rec["notes"][0]


# --- bug 8: checks before work; names that would become paths outside the output folder -------------------------

def _cli(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "evalkit", "vbench", "run", *argv], capture_output=True, text=True,
                          env={**os.environ, "EVALKIT_VBENCH_ENV": "/nonexistent/env", **(env or {})})


def test_arguments_and_videos_checked_before_the_environment(tmp_path):
    proc = _cli("--videos", str(tmp_path / "nope"), "--mode", "custom", "--dimensions", "temporal_flickering",
                "--name", "m", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "videos: no such folder" in proc.stderr and "environment" not in proc.stderr
    (tmp_path / "v").mkdir()
    proc = _cli("--videos", str(tmp_path / "v"), "--mode", "custom", "--dimensions", "temporal_flickering",
                "--name", "m", "--prompt-file", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "prompt_file: no such file" in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["../../x", "a/b", "", "..", " x"])
def test_name_must_be_a_plain_file_name(tmp_path, name):
    (tmp_path / "v").mkdir()
    proc = _cli("--videos", str(tmp_path / "v"), "--mode", "custom", "--dimensions", "temporal_flickering",
                "--name", name)
    assert proc.returncode == 2 and "error: name: " in proc.stderr
    assert "not a plain file name" in proc.stderr or "expected a non-empty name" in proc.stderr
    with pytest.raises(FieldError, match="name"):
        run(RunConfig(videos=tmp_path / "v", mode="custom", dimensions=("temporal_flickering",), name=name,
                      out=tmp_path / "o", worker_cmd=FAKE))


# --- weights checked before any scoring -------------------------------------------------------------------------

def test_weight_check_failure_and_unofficial_files_stop_the_run(tmp_path, monkeypatch):
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_WORKER_LOG", str(log))
    vids = tmp_path / "videos"
    write_mp4(vids / "a cat-0.mp4", static_frames(8))
    cache = _cache(tmp_path, ["human_action", "background_consistency"])
    base = dict(videos=vids, mode="custom", name="m", out=tmp_path / "run", cache_dir=cache, worker_cmd=FAKE)
    monkeypatch.setenv("FAKE_WORKER_CHECK_FAIL", "human_action")
    with pytest.raises(EvalkitError) as err:
        run(RunConfig(dimensions=("human_action",), **base))
    assert "human_action" in str(err.value) and "head.weight" in str(err.value) and "umt_model" in str(err.value)
    assert _calls(log) == []                                            # nothing was scored
    monkeypatch.delenv("FAKE_WORKER_CHECK_FAIL")
    with pytest.raises(EvalkitError, match="--allow-unofficial-weights") as err:
        run(RunConfig(dimensions=("background_consistency",), **base))   # a CLIP file with another sha256
    assert weights.WEIGHTS["background_consistency"][0].official_sha256 in str(err.value) and _calls(log) == []
    rec = run(RunConfig(dimensions=("background_consistency",), allow_unofficial_weights=True, **base))[0]
    assert rec["weights_official"] is False and rec["weights"][0]["file"] == "clip_model/ViT-B-32.pt"
    assert rec["weights"][0]["sha256"] == rec["inputs"]["weights"]["clip_model/ViT-B-32.pt"]
    n_checks = lambda: sum(json.loads(x)["action"] == "check_weights" for x in log.read_text().splitlines())  # noqa
    assert n_checks() == 2                   # a passed check is remembered per file hash: not run a third time
    run(RunConfig(dimensions=("background_consistency",), allow_unofficial_weights=True,
                  **{**base, "out": tmp_path / "run2"}))
    assert n_checks() == 2


# --- aggregates only from complete dimension sets ---------------------------------------------------------------

def test_aggregate_only_from_complete_sets():
    recs = [{"dimension": d, "score": 0.5, "status": "ok"} for d in DIMENSIONS]
    full = aggregate_records(recs)
    assert full["complete"] and full["total_score"] is not None
    recs[DIMENSIONS.index("color")]["status"] = "flagged"
    part = aggregate_records(recs)
    assert part["semantic_score"] is None and part["total_score"] is None and part["incomplete"] == ["color"]
    assert part["quality_score"] == full["quality_score"]            # the quality set is still complete
    short = aggregate_records([r for r in recs if r["dimension"] != "dynamic_degree"])
    assert short["quality_score"] is None and short["missing"] == ["dynamic_degree"]


def test_a_non_finite_score_is_an_error_row_scored_again(tmp_path, monkeypatch):
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_WORKER_LOG", str(log))
    monkeypatch.setenv("FAKE_WORKER_NAN", "1")
    vids = tmp_path / "videos"
    for i in range(2):
        write_mp4(vids / f"a cat-{i}.mp4", static_frames(8, seed=i))
    cfg = RunConfig(videos=vids, mode="custom", dimensions=("temporal_flickering",), name="m", out=tmp_path / "run",
                    worker_cmd=FAKE)
    rec = run(cfg)[0]
    assert rec["status"] == "error" and "non-finite score" in rec["message"]
    assert aggregate_records([rec])["missing"] == list(DIMENSIONS)         # never aggregated
    monkeypatch.delenv("FAKE_WORKER_NAN")
    (again,) = run(cfg)                       # not "done"; the finished shard (same inputs) gives the same nan
    assert again["status"] == "error" and len(_calls(log)) == 1
    write_mp4(vids / "a cat-1.mp4", static_frames(8, seed=5))             # new inputs: a new shard
    (third,) = run(cfg)
    assert third["status"] == "ok" and len(_calls(log)) == 2


def test_reports_say_the_static_filter_was_not_applied(tmp_path):
    """Bug 7, reports: standard- and long-mode VBench tables note that temporal_flickering was not static-filtered."""
    import pandas as pd

    from evalkit.report import quality

    rows = [{"kind": "vbench", "status": "ok", "mode": m, "model": "x", "dimension": d, "score": 0.9,
             "static_filter": False if d == "temporal_flickering" else None, "_run_id": "r"}
            for m in ("standard", "custom") for d in ("temporal_flickering", "aesthetic_quality")]
    quality.vbench_tables(pd.DataFrame(rows), [], tmp_path)
    assert "static filter" in (tmp_path / "vbench" / "standard_quality.md").read_text()
    assert "static filter" not in (tmp_path / "vbench" / "custom_quality.md").read_text()   # custom: no filter


def test_a_second_writer_on_the_run_folder_is_refused(tmp_path):
    from evalkit.core.runs import LockedError, WriterLock

    vids = tmp_path / "videos"
    write_mp4(vids / "a cat-0.mp4", static_frames(8))
    cfg = RunConfig(videos=vids, mode="custom", dimensions=("temporal_flickering",), name="m", out=tmp_path / "run",
                    worker_cmd=FAKE)
    with WriterLock(cfg.out, what="another vbench run"):
        with pytest.raises(LockedError, match="another vbench run"):
            run(cfg)
    assert run(cfg)[0]["status"] == "ok"
