"""Faults injected on purpose, as a user's crash, retry or typo would: each test names the finding it guards.

1. a torn last line (a writer killed mid-write) is repaired on resume, never glued, and refused by report/publish;
2. resume never reuses outputs whose inputs changed, nor a zero-byte or truncated video;
3. one writer per folder (a second command refuses; a killed holder leaves no stale lock);
4. bad input is refused before any work with the field named (no traceback), 5. one launch setting.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import yaml

from evalkit.cli import main as evalkit
from evalkit.core.records import TornLineWarning, append, iter_file, read_records
from repo_paths import REPO

EXP = {"kind": "sweep", "name": "t", "models": ["lingen", "dit"], "flavors": ["tiny"],
       "resolutions": {"64p": [64, 112]}, "durations_s": [8.5], "measurements": ["flops"],
       "flops": {"fvcore": False}}


def _exp(tmp_path: Path, **over) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text("# test experiment\n" + yaml.safe_dump({**EXP, **over}))
    return path


def _sweep(*argv: str) -> int:
    return evalkit(["sweep", *argv, "--no-progress", "--no-plots"])


@pytest.fixture
def run(tmp_path, capsys) -> Path:
    """A finished two-record sweep run folder."""
    assert _sweep(str(_exp(tmp_path)), "--run-dir", str(tmp_path / "run")) == 0
    capsys.readouterr()
    return tmp_path / "run"


def _tear_last_line(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-(len(data.rstrip(b"\n").split(b"\n")[-1]) // 2 + 1)])   # half of the last record


# ---- 1. torn lines -------------------------------------------------------------------------------------------
def test_append_after_a_torn_line_moves_it_aside_and_never_glues(tmp_path):
    path = tmp_path / "results.jsonl"
    append(path, {"key": "a", "kind": "selftest", "status": "ok"})
    append(path, {"key": "b", "kind": "selftest", "status": "ok"})
    _tear_last_line(path)
    with pytest.warns(TornLineWarning, match=r"results.jsonl:2: torn last line"):
        assert [r["key"] for r in iter_file(path)] == ["a"]
    with pytest.warns(TornLineWarning, match="moved to"):
        append(path, {"key": "c", "kind": "selftest", "status": "ok"})
    assert [r["key"] for r in iter_file(path, strict=True)] == ["a", "c"]
    assert (tmp_path / "results.jsonl.torn").read_bytes().startswith(b'{"key": "b"')   # kept, not lost


def test_a_complete_last_record_without_newline_is_kept(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"key": "a", "kind": "selftest", "status": "ok"}')
    append(path, {"key": "b", "kind": "selftest", "status": "ok"})
    assert [r["key"] for r in iter_file(path, strict=True)] == ["a", "b"]


APPENDER = """
import sys
from evalkit.core.records import append
for i in range(200):
    append(sys.argv[1], {"key": f"{sys.argv[2]}-{i}", "kind": "selftest", "status": "ok", "pad": "x" * 5000})
"""


def test_concurrent_writers_never_interleave(tmp_path):
    path = tmp_path / "results.jsonl"
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, str(path), str(w)]) for w in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    recs = list(iter_file(path, strict=True))
    assert len(recs) == 800 and len({r["key"] for r in recs}) == 800


def test_resume_after_a_torn_line_recomputes_it(run, capsys):
    """Finding: a resume appended onto the torn line and every later read failed with 'not a JSON record'."""
    results = run / "results.jsonl"
    _tear_last_line(results)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _sweep(str(run.parent / "t.yaml"), "--run-dir", str(run)) == 0
    assert any(issubclass(w.category, TornLineWarning) for w in caught)
    assert '"ran": 1' in capsys.readouterr().out                   # the torn record was run again
    recs = read_records([run], strict=True)
    assert len(recs) == 2 and all(r["status"] == "ok" for r in recs)
    assert (run / "results.jsonl.torn").exists()


def test_report_and_publish_refuse_a_torn_run(run, tmp_path, capsys):
    """Finding: report silently dropped the torn record (the cell went blank, exit 0); --publish accepted it."""
    _tear_last_line(run / "results.jsonl")
    assert evalkit(["report", str(run), "--out", str(tmp_path / "preview")]) == 2
    err = capsys.readouterr().err
    assert "results.jsonl:2: torn last line" in err and "python -m evalkit records repair" in err
    assert evalkit(["report", "--publish", str(run), "--reports-dir", str(tmp_path / "reports")]) == 2
    assert not (tmp_path / "reports" / "data").exists()
    assert evalkit(["records", "repair", str(run)]) == 0           # the command the error names
    assert evalkit(["records", "check", str(run)]) == 0


# ---- 2. resume by content -------------------------------------------------------------------------------------
def _generate(ckpt: Path, out: Path, *extra: str) -> int:
    prompts = out.parent / "prompts.txt"
    prompts.write_text("a red square moving left\n")
    return evalkit(["generate", "--checkpoint", str(ckpt), "--prompts", str(prompts), "--samples", "1",
                    "--steps", "2", "--cfg-scale", "2.0", "--out", str(out), "--no-progress", *extra])


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_generate_refuses_videos_made_with_other_settings(tiny_checkpoint, tmp_path, capsys):
    """Finding: a new --steps / --cfg-scale / --seed / --checkpoint gave 'written 0, skipped N'."""
    from evalkit.generate.core import read_videos

    out = tmp_path / "v"
    assert _generate(tiny_checkpoint, out) == 0 and _last_json(capsys)["written"] == 1
    assert _generate(tiny_checkpoint, out) == 0 and _last_json(capsys)["skipped"] == 1     # same inputs: done
    for change in (["--steps", "3"], ["--cfg-scale", "3.0"], ["--seed", "1"]):
        assert _generate(tiny_checkpoint, out, *change) == 2, change
        err = capsys.readouterr().err
        assert "made with other settings" in err and "--overwrite" in err
    assert _generate(tiny_checkpoint, out, "--steps", "3", "--overwrite") == 0
    assert _last_json(capsys)["written"] == 1
    (rec,) = read_videos(out)
    assert rec["steps"] == 3


def test_generate_refuses_videos_of_another_checkpoint(tiny_checkpoint, tmp_path, capsys):
    from conftest import make_checkpoint

    other = make_checkpoint(tmp_path / "other", seed=1)
    out = tmp_path / "v"
    assert _generate(tiny_checkpoint, out) == 0
    assert _generate(other, out) == 2
    assert "checkpoint_sha256" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["zero-byte", "truncated", "deleted"])
def test_generate_remakes_a_damaged_video(tiny_checkpoint, tmp_path, capsys, damage):
    """Finding: an existing zero-byte or truncated mp4 was skipped as done."""
    out = tmp_path / "v"
    assert _generate(tiny_checkpoint, out) == 0
    capsys.readouterr()
    video = out / "a red square moving left-0.mp4"
    if damage == "deleted":
        video.unlink()
    else:
        video.write_bytes(b"" if damage == "zero-byte" else video.read_bytes()[:100])
    assert _generate(tiny_checkpoint, out) == 0
    assert _last_json(capsys)["written"] == 1
    from evalkit.runtime.video_io import read_video

    assert read_video(video)[0].shape[0] == 8


# ---- 3. one writer per folder ---------------------------------------------------------------------------------
def test_a_second_sweep_on_the_same_run_folder_refuses(run, capsys):
    """Finding: two sweeps on one --run-dir both ran every point."""
    from evalkit.core.runs import WriterLock

    with WriterLock(run, what="python -m evalkit sweep (first)"):
        assert _sweep(str(run.parent / "t.yaml"), "--run-dir", str(run)) == 2
    err = capsys.readouterr().err
    assert "is being written by pid" in err and "python -m evalkit sweep (first)" in err
    assert _sweep(str(run.parent / "t.yaml"), "--run-dir", str(run)) == 0   # free again once the first ends


def test_a_killed_writer_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from evalkit.core.runs import WriterLock
        with WriterLock({str(tmp_path)!r}):
            open({str(tmp_path / 'held')!r}, 'w').close()
            time.sleep(600)
        """)])
    while not (tmp_path / "held").exists():
        assert holder.poll() is None
    from evalkit.core.runs import LockedError, WriterLock

    with pytest.raises(LockedError, match=f"pid {holder.pid}"):
        WriterLock(tmp_path).__enter__()
    holder.kill()
    holder.wait()
    with WriterLock(tmp_path):   # kill -9 released it
        pass


# ---- 4. bad input: refused up front, the field named, exit status 2 -----------------------------------------------
@pytest.mark.parametrize("sets, field", [
    (["name=../../x"], "name"),
    (["durations_s=[.nan]"], "durations_s[0]"),
    (["durations_s=[8.5, 8.5]"], "durations_s[1]"),
    (["models=[dit, lingen, dit]"], "models[2]"),
    (["latency.cpu_budget_gflop=1e9"], "latency.cpu_budget_gflop"),
    (["latency.min_seconds=.inf"], "latency.min_seconds"),
    (["cluster.isolate=true"], "cluster.isolate"),
    (["executor.isolate=true"], "executor.isolate"),
])
def test_sweep_bad_sets_are_refused_before_any_work(tmp_path, capsys, sets, field):
    runs = tmp_path / "runs"
    argv = [str(_exp(tmp_path)), "--runs-root", str(runs)]
    for s in sets:
        argv += ["--set", s]
    assert _sweep(*argv) == 2
    err = capsys.readouterr().err
    assert field in err and "Traceback" not in err
    assert not runs.exists() and not (tmp_path / "x").exists()


def test_generate_bad_input_is_refused_before_sampling(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "v"
    for extra, field in ((["--cfg-scale", "nan"], "--cfg-scale"), (["--batch-size", "0"], "--batch-size"),
                         (["--steps", "0"], "steps")):
        assert _generate(tiny_checkpoint, out, *extra) == 2, extra
        assert field in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("damage", ["truncated weights", "malformed config", "config without model"])
def test_a_damaged_checkpoint_is_a_clear_error(tiny_checkpoint, tmp_path, capsys, damage):
    import shutil

    ckpt = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint, ckpt)
    if damage == "truncated weights":
        data = (ckpt / "model.safetensors").read_bytes()
        (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "malformed config":
        (ckpt / "config.json").write_text((ckpt / "config.json").read_text()[:-40])
    else:
        cfg = json.loads((ckpt / "config.json").read_text())
        del cfg["model"]
        (ckpt / "config.json").write_text(json.dumps(cfg))
    assert _generate(ckpt, tmp_path / "v") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert {"truncated weights": "truncated or corrupt", "malformed config": "not valid JSON",
            "config without model": "checkpoint.model"}[damage] in err


def test_nan_weights_give_an_error_not_black_videos(tmp_path, capsys):
    """Finding: --cfg-scale nan gave all-black videos and exit 0; NaN weights must not either."""
    import torch
    from safetensors.torch import load_file, save_file

    from conftest import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "nan")
    state = load_file(str(ckpt / "model.safetensors"))
    state = {k: torch.full_like(v, float("nan")) if k.endswith("out.weight") or "proj_out" in k else v
             for k, v in state.items()}
    if not any(torch.isnan(v).any() for v in state.values()):
        state = {k: torch.full_like(v, float("nan")) for k, v in state.items()}
    save_file(state, str(ckpt / "model.safetensors"))
    assert _generate(ckpt, tmp_path / "v") == 2
    assert "non-finite" in capsys.readouterr().err
    assert not list((tmp_path / "v").glob("*.mp4"))


def test_names_that_become_paths_must_be_plain(tmp_path, capsys):
    assert _sweep(str(_exp(tmp_path)), "--runs-root", str(tmp_path / "runs"), "--job-tag", "../x") == 2
    assert "--job-tag" in capsys.readouterr().err
    bad_train = tmp_path / "tr.yaml"
    raw = yaml.safe_load((REPO / "experiments" / "train_tiny.yaml").read_text())
    raw["experiment"] = "../escape"
    bad_train.write_text(yaml.safe_dump(raw))
    assert evalkit(["train", str(bad_train), "--runs-root", str(tmp_path / "runs")]) == 2
    assert "not a plain file name" in capsys.readouterr().err
    assert not (tmp_path / "escape").exists()
