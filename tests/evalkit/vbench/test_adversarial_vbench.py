"""Adversarial inputs and interruptions of ``python -m evalkit vbench run`` (a stand-in worker instead of the VBench
environment: tests/fixtures/vbench/fake_worker.py scores each file from its name and content).

Each case asserts a named error (``FieldError`` / ``ChoiceError``: the field and what is wrong, from
evalkit.core.errors) before any video is decoded or scored, nothing written outside the chosen folders (a refused
run leaves no run folder), nothing lost or reused stale, and no process left running:
prompt files with invalid UTF-8, a byte-order mark, duplicate prompts (as ``generate`` refuses them), names that
collide under VBench's file-name rules (map keys naming one file, Unicode normal forms, VBench-Long's clip names,
the 255-byte limit), 20,000 prompt lines; a second writer refused before any decode; a 1-frame video; SIGTERM and
SIGINT during a run (the rerun resumes and its records equal an uninterrupted run's; the worker is gone).

Mutation checks (each bug put into the code by hand, these tests run, the bug removed):
- videos decoded before the writer lock is taken (runner.run, the old order): the second-writer test fails (a
  VideoError for the garbage videos instead of LockedError);
- workers started without their own stop (worker_proc.run_worker: no group kill on interrupt, no parent-death
  signal): both signal tests fail ("worker ... still running after the run was interrupted"); either one alone
  is enough to pass;
- the duplicate check removed (prompts._unique): the three duplicate cases, the JSON list case and the
  20,000-line case fail;
- the 1-frame rule removed (completeness.decode_all): the 1-frame test fails;
- the byte-order mark kept (prompts._text): the BOM test fails.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest

from evalkit.core.errors import FieldError
from evalkit.core.records import read_records
from evalkit.core.runs import LockedError, WriterLock
from evalkit.vbench import completeness as comp
from evalkit.vbench import prompts as vprompts
from evalkit.vbench.runner import RunConfig, run
from repo_paths import FIXTURES, REPO

FIX = FIXTURES / "vbench"
sys.path.insert(0, str(FIX))
from videos import flicker_frames, write_mp4  # noqa: E402

FAKE = (sys.executable, str(FIX / "fake_worker.py"))
TF = "temporal_flickering"     # needs no weight file: the runs below need no evaluator cache


@pytest.fixture(autouse=True)
def _private_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "evalkit-cache"))
    monkeypatch.setenv("FAKE_WORKER_LOG", str(tmp_path / "worker.log"))


def _videos(folder: Path, prompts, frames: int = 4, samples: int = 1) -> Path:
    for k, p in enumerate(prompts):
        for i in range(samples):
            write_mp4(folder / f"{p}-{i}.mp4", flicker_frames(frames, size=16, seed=k, amp=10 + 5 * k), fps=8)
    return folder


def _cfg(tmp_path: Path, prompt_file: Path | None, **kw) -> RunConfig:
    kw = {"mode": "custom", "out": tmp_path / "run", "samples_per_prompt": 1, **kw}
    return RunConfig(videos=tmp_path / "videos", dimensions=(TF,), name="m", prompt_file=prompt_file,
                     worker_cmd=FAKE, cache_dir=tmp_path / "cache", **kw)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _worker_calls(tmp_path: Path) -> list[dict]:
    log = tmp_path / "worker.log"
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def _refused(tmp_path: Path, cfg: RunConfig, exc: type[Exception], match: str) -> Exception:
    """``run(cfg)`` raises ``exc`` matching ``match``; no run folder, no worker call, nothing else written."""
    before, calls = _tree(tmp_path), len(_worker_calls(tmp_path))
    with pytest.raises(exc, match=match) as info:
        run(cfg)
    assert not cfg.out.exists(), "a refused run left a run folder"
    assert len(_worker_calls(tmp_path)) == calls, "a refused run called the worker"
    new = _tree(tmp_path) - before
    assert all(n.startswith("evalkit-cache") for n in new), new     # at most evalkit's own (chosen) cache
    return info.value


# --- prompt files -------------------------------------------------------------------------------------------------

def test_invalid_utf8_is_a_named_error_with_line_and_offset(tmp_path):
    _videos(tmp_path / "videos", ["a cat"])
    pf = tmp_path / "prompts.txt"
    pf.write_bytes(b"a cat\nna\xefve dog\n")           # a Latin-1 byte in line 2
    err = _refused(tmp_path, _cfg(tmp_path, pf), FieldError, "not UTF-8")
    assert err.field == "prompt_file"
    assert "offset 8" in str(err) and "line 2" in str(err) and "0xef" in str(err), str(err)
    pj = tmp_path / "prompts.json"
    pj.write_bytes(b'["a cat", "\xff"]')
    assert "line 1" in str(_refused(tmp_path, _cfg(tmp_path, pj), FieldError, "not UTF-8"))


def test_cli_prints_the_named_error_not_a_traceback(tmp_path):
    _videos(tmp_path / "videos", ["a cat"])
    pf = tmp_path / "prompts.txt"
    pf.write_bytes(b"\xc3\x28 broken\n")
    proc = subprocess.run([sys.executable, "-m", "evalkit", "vbench", "run", "--videos", str(tmp_path / "videos"),
                           "--mode", "custom", "--prompt-file", str(pf), "--name", "m", "--dimensions", TF,
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: prompt_file:") and "offset 0" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_byte_order_mark_never_reaches_a_file_name(tmp_path):
    _videos(tmp_path / "videos", ["a cat", "a dog"])
    pf = tmp_path / "prompts.txt"
    pf.write_bytes("\ufeffa cat\na dog\n".encode())
    assert vprompts.load(pf) == ["a cat", "a dog"]
    pj = tmp_path / "prompts.json"
    pj.write_bytes("\ufeff".encode() + json.dumps({"a cat-0.mp4": "a cat", "a dog-0.mp4": "a dog"}).encode())
    assert vprompts.load(pj) == {"a cat-0.mp4": "a cat", "a dog-0.mp4": "a dog"}
    recs = run(_cfg(tmp_path, pf))
    assert [r["n_scored"] for r in recs] == [2]
    written = [p.name for p in (tmp_path / "run").rglob("*")] + [json.dumps(r, ensure_ascii=False) for r in recs]
    assert written and not [w for w in written if "\ufeff" in w]
    (call,) = [c for c in _worker_calls(tmp_path) if c["action"] == "evaluate"]
    assert call["videos"] == ["a cat-0.mp4", "a dog-0.mp4"]
    bom_inside = tmp_path / "inside.txt"
    bom_inside.write_text("a cat\n\ufeffa dog\n", encoding="utf-8")     # two files concatenated
    err = _refused(tmp_path, _cfg(tmp_path, bom_inside, out=tmp_path / "run2"), FieldError,
                   "line 2 holds U\\+FEFF")
    assert err.field == "prompt_file"


@pytest.mark.parametrize("content,match", [
    ("a cat\na dog\na cat\na dog\n", r"2 duplicate prompt\(s\): line 3 repeats line 1 \('a cat'\); line 4 repeats "
                                     r"line 2 \('a dog'\)"),
    ("a cat\n  a cat \n", r"line 2 repeats line 1"),                       # the same after surrounding spaces
    (f"{unicodedata.normalize('NFC', 'café')}\n{unicodedata.normalize('NFD', 'café')}\n",
     r"line 2 is line 1 in another Unicode normal form"),
    ("a cat\n\na dog\n", r"line 2 is empty"),
])
def test_duplicate_prompts_are_refused_naming_the_lines(tmp_path, content, match):
    """generate refuses the same files (evalkit/generate/prompts.py); VBench would score the same video twice
    under one prompt, or (standard naming) the repeated line asks for files that already belong to another."""
    _videos(tmp_path / "videos", ["a cat", "a dog"])
    pf = tmp_path / "prompts.txt"
    pf.write_text(content, encoding="utf-8")
    assert _refused(tmp_path, _cfg(tmp_path, pf), FieldError, match).field == "prompt_file"


def test_duplicates_in_json_lists_and_maps(tmp_path):
    _videos(tmp_path / "videos", ["a cat"])
    pj = tmp_path / "p.json"
    pj.write_text('["a cat", "a dog", "a cat"]')
    _refused(tmp_path, _cfg(tmp_path, pj), FieldError, r"entry 3 repeats entry 1")
    pj.write_text('{"a cat-0.mp4": "a cat", "a cat-0.mp4": "a dog"}')      # json.loads keeps the last silently
    _refused(tmp_path, _cfg(tmp_path, pj), FieldError, r"key 'a cat-0.mp4' appears twice \(entries 1 and 2\)")


def test_names_colliding_under_vbench_file_name_rules(tmp_path):
    v = _videos(tmp_path / "videos", ["x", "x-0_001"])       # x-0.mp4 and x-0_001-0.mp4: distinct files
    pj = tmp_path / "p.json"
    # VBench joins each key with the videos folder and compares os.path.abspath: one file under two keys
    pj.write_text(json.dumps({"x-0.mp4": "x", "./x-0.mp4": "x again"}))
    _refused(tmp_path, _cfg(tmp_path, pj), FieldError, r"keys naming the same video file.*x-0.mp4 = ./x-0.mp4")
    pj.write_text(json.dumps({"../x-0.mp4": "x"}))
    _refused(tmp_path, _cfg(tmp_path, pj), FieldError, r"not a file name in --videos")
    # long mode: VBench-Long names clip 1 of x-0.mp4 'x-0_001.mp4' -- the same name as this other video
    (v / "x-0_001.mp4").write_bytes((v / "x-0.mp4").read_bytes())
    pj.write_text(json.dumps({"x-0.mp4": "x", "x-0_001.mp4": "x later"}))
    err = _refused(tmp_path, _cfg(tmp_path, pj, mode="long"), FieldError,
                   r"collide with VBench-Long's clip names.*'x-0_001.mp4' is clip 001 of 'x-0.mp4'")
    assert err.field == "videos"
    pj.write_text(json.dumps({"x-0.mp4": "x", "x.mp4 later-0.mp4": "x.mp4 later"}))
    (v / "x.mp4 later-0.mp4").write_bytes((v / "x-0.mp4").read_bytes())
    _refused(tmp_path, _cfg(tmp_path, pj, mode="long"), FieldError, r"up to the first '.mp4'.*'x.mp4 later-0.mp4'")
    # the 255-byte file-name limit: '{prompt}-{i}_000.mp4' must fit
    pf = tmp_path / "long.txt"
    pf.write_text("x\n" + "é" * 123 + "\n", encoding="utf-8")              # 246 bytes
    _refused(tmp_path, _cfg(tmp_path, pf), FieldError, r"line 2 is 246 bytes.*at most 245 bytes")
    pf.write_text("x\na/b\n")
    _refused(tmp_path, _cfg(tmp_path, pf), FieldError, r"line 2 holds '/'")


def test_twenty_thousand_prompt_lines_are_handled_quickly(tmp_path):
    """20,000 prompts x 5 samples = 100,000 expected names: read, checked for duplicates and matched against the
    folder in one pass (a quadratic duplicate check would take minutes); the missing videos are listed, nothing is
    decoded. The same file with a duplicate at its last line names that line."""
    _videos(tmp_path / "videos", ["prompt 0", "prompt 1"])
    pf = tmp_path / "big.txt"
    lines = [f"prompt {i}" for i in range(20_000)]
    pf.write_text("\n".join(lines) + "\n")
    t0 = time.perf_counter()
    with pytest.raises(comp.IncompleteError, match=r"99998 of 100000 expected videos are missing") as info:
        run(_cfg(tmp_path, pf, samples_per_prompt=5))
    took = time.perf_counter() - t0
    print(f"20,000-line prompt file refused in {took:.2f} s")
    assert "... and" in str(info.value) and len(str(info.value)) < 5000     # listed, not dumped
    assert not (tmp_path / "run").exists() and _worker_calls(tmp_path) == []
    pf.write_text("\n".join(lines + ["prompt 7"]) + "\n")
    with pytest.raises(FieldError, match=r"line 20001 repeats line 8"):
        vprompts.load(pf)
    assert took < 60, took      # a hang guard, not a speed claim
    pf.write_text("\n".join(lines) + "\n")
    (rec,) = run(_cfg(tmp_path, pf, samples_per_prompt=5, allow_missing=True))    # processed: the 2 present
    assert rec["n_scored"] == 2 and rec["n_expected"] == 100_000 and rec["status"] == "flagged"


# --- videos and writers -------------------------------------------------------------------------------------------

def test_a_one_frame_video_is_refused_not_scored(tmp_path):
    _videos(tmp_path / "videos", ["a cat"])
    _videos(tmp_path / "videos", ["a still"], frames=1)
    pf = tmp_path / "p.txt"
    pf.write_text("a cat\na still\n")
    err = _refused(tmp_path, _cfg(tmp_path, pf), FieldError, r"1 video\(s\) with fewer than 2 frames")
    assert err.field == "videos" and "a still-0.mp4: 1 frame" in str(err) and "a cat" not in str(err)


def test_a_second_writer_is_refused_before_any_video_is_decoded(tmp_path, monkeypatch):
    """The folder's writer lock is taken before decoding: a second ``vbench run`` on a busy folder stops at once
    (here every video is unreadable garbage, so decoding first would raise a VideoError instead) and the first
    writer's files are untouched."""
    v = tmp_path / "videos"
    v.mkdir()
    for i in range(3):
        (v / f"a cat-{i}.mp4").write_bytes(os.urandom(4096))
    decoded = []
    monkeypatch.setattr(comp, "probe", lambda *a, **k: decoded.append(a) or (_ for _ in ()).throw(AssertionError))
    cfg = RunConfig(videos=v, mode="custom", dimensions=(TF,), name="m", out=tmp_path / "run", worker_cmd=FAKE,
                    prompt_file=None, cache_dir=tmp_path / "cache")
    with WriterLock(tmp_path / "run", what="the first writer"):
        (tmp_path / "run" / "results.jsonl").write_text("")
        with pytest.raises(LockedError, match="is being written by .*the first writer"):
            run(cfg)
        assert decoded == [] and _worker_calls(tmp_path) == []
        assert _tree(tmp_path / "run") == {".writer.lock", "results.jsonl"}


# --- signals ------------------------------------------------------------------------------------------------------

SLOW = '''import os, runpy, sys, time
spec = __import__("json").load(open(sys.argv[1]))
if spec.get("action") == "evaluate":
    later = bool(os.listdir(os.environ["SLOW_PIDS"]))      # not the run's first shard
    open(os.path.join(os.environ["SLOW_PIDS"], str(os.getpid())), "w").close()
    time.sleep(float(os.environ.get("SLOW_LATER_S" if later else "SLOW_S", "0.5")))
sys.argv = [sys.argv[0]] + sys.argv[1:]
runpy.run_path(os.environ["FAKE_WORKER"], run_name="__main__")
'''


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def _cli(tmp_path: Path, out: Path, pids: Path, later_s: float = 0.5) -> subprocess.Popen:
    slow = tmp_path / "slow_worker.py"
    slow.write_text(SLOW)
    pids.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "EVALKIT_VBENCH_WORKER": f"{sys.executable} {slow}", "SLOW_PIDS": str(pids),
           "FAKE_WORKER": str(FIX / "fake_worker.py"), "PYTHONPATH": str(REPO), "SLOW_LATER_S": str(later_s)}
    return subprocess.Popen([sys.executable, "-m", "evalkit", "vbench", "run", "--videos", str(tmp_path / "videos"),
                             "--mode", "custom", "--prompt-file", str(tmp_path / "p.txt"), "--name", "m",
                             "--dimensions", TF, "--samples-per-prompt", "2", "--shard-size", "1",
                             "--out", str(out), "--cache-dir", str(tmp_path / "cache")],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stable(recs: list[dict]) -> list[dict]:
    drop = {"created", "elapsed_s", "wall_s", "host", "pid"}
    return [{k: v for k, v in r.items() if k not in drop} for r in recs]


@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_a_signal_mid_run_resumes_to_the_uninterrupted_records(tmp_path, sig):
    _videos(tmp_path / "videos", ["a cat", "a dog"], samples=2)        # 4 videos: 4 shards of one
    (tmp_path / "p.txt").write_text("a cat\na dog\n")
    ref = _cli(tmp_path, tmp_path / "a" / "run", tmp_path / "pids-ref")
    assert ref.wait(timeout=300) == 0, ref.stderr.read()
    first = _cli(tmp_path, tmp_path / "b" / "run", tmp_path / "pids", later_s=120)    # shard 2 hangs
    shards = tmp_path / "b" / "run" / "raw" / TF
    deadline = time.time() + 120
    while not list(shards.glob("shard_*/eval_results.json")) and time.time() < deadline:
        time.sleep(0.1)
    while len(list((tmp_path / "pids").iterdir())) < 2 and time.time() < deadline:   # the second shard runs
        time.sleep(0.1)
    first.send_signal(sig)
    rc = first.wait(timeout=60)
    err = first.stderr.read()
    assert rc == 130 and "interrupted" in err and "Traceback" not in err, (rc, err)
    for pid in (int(p.name) for p in (tmp_path / "pids").iterdir()):
        deadline = time.time() + 8     # the worker gets 5 s after SIGTERM, then SIGKILL
        while _alive(pid) and time.time() < deadline:
            time.sleep(0.1)
        assert not _alive(pid), f"worker {pid} still running after the run was interrupted"
    done = list(shards.glob("shard_*/eval_results.json"))
    assert 1 <= len(done) < 4 and not (tmp_path / "b" / "run" / "results.jsonl").exists()
    again = _cli(tmp_path, tmp_path / "b" / "run", tmp_path / "pids-again")
    assert again.wait(timeout=300) == 0, again.stderr.read()
    assert len(list((tmp_path / "pids-again").iterdir())) == 4 - len(done)   # finished shards kept, not rerun
    a, b = (read_records([tmp_path / x / "run"]) for x in ("a", "b"))
    assert _stable(a) == _stable(b) and len(a) == 1 and a[0]["n_scored"] == 4

