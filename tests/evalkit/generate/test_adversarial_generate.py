"""Adversarial probe of ``python -m evalkit generate`` (both ``--checkpoint`` and ``--pipeline``): hostile prompt
files, numbers, output folders, damaged checkpoints and signals. Each case asserts a clear named error
(FieldError / ChoiceError / CheckpointError, naming the flag or field) before any long work, nothing written
outside the chosen folders (the working directory and the folder around ``--out`` are compared before and after),
nothing lost, nothing stale reused, and nothing left running.

The signal cases (``slow``: five generation runs as subprocesses) interrupt a run after its first recorded video
with SIGTERM and SIGINT, check that the process group is gone and no temporary file is left, rerun, and compare
every video's frames and record with an uninterrupted run.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalkit.core.errors import FieldError
from evalkit.generate.cli import main as generate_main
from evalkit.generate.core import read_videos
from evalkit.generate.prompts import MAX_PROMPTS, load_prompts
from evalkit.runtime.checkpoint import CheckpointError
from repo_paths import REPO

PROMPTS = ("a red car moving left", "a blue dog on the beach")
FAST = ["--steps", "2", "--samples", "1", "--batch-size", "1", "--no-progress"]


def tree(root: Path) -> set[str]:
    """Every path under ``root`` (relative), to show nothing was written."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


@pytest.fixture
def prompts(tmp_path) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    return path


def refused(tmp_path: Path, argv: list[str], exc: type, match: str, monkeypatch) -> None:
    """``generate argv`` raises ``exc`` matching ``match`` and writes nothing into ``tmp_path`` or the cwd."""
    work = tmp_path / "cwd"
    work.mkdir(exist_ok=True)
    monkeypatch.chdir(work)
    before, cwd_before = tree(tmp_path), tree(work)
    with pytest.raises(exc, match=match):
        generate_main(argv)
    assert tree(tmp_path) == before and tree(work) == cwd_before


# -- prompt files --------------------------------------------------------------------------------------------------

def test_invalid_utf8_prompt_file_names_line_and_byte(tiny_checkpoint, tmp_path, monkeypatch):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("a red car\n".encode() + "un caf\u00e9 au lait\n".encode("latin-1"))   # 0xe9 at byte 16
    argv = ["--checkpoint", str(tiny_checkpoint), "--prompts", str(bad), "--out", str(tmp_path / "out"), *FAST]
    refused(tmp_path, argv, FieldError, r"--prompts: .*latin1.txt: line 2 is not UTF-8 \(byte 16 of the file, "
                                        r"byte 6 of the line: b'\\xe9 au', invalid continuation byte\)",
            monkeypatch)


def test_bom_is_stripped_and_never_in_file_names(tiny_checkpoint, tmp_path):
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf" + "\n".join(PROMPTS).encode() + b"\n")     # as Notepad saves "UTF-8 (BOM)"
    assert load_prompts(str(bom)) == list(PROMPTS)
    out = tmp_path / "out"
    assert generate_main(["--checkpoint", str(tiny_checkpoint), "--prompts", str(bom), "--out", str(out),
                          *FAST]) == 0
    names = sorted(p.name for p in out.glob("*.mp4"))
    assert names == sorted(f"{p}-0.mp4" for p in PROMPTS)
    assert not any("\ufeff" in r["file"] or "\ufeff" in r["prompt"] for r in read_videos(out))
    # a BOM inside the file (two files concatenated) would be an invisible character in a file name: refused
    bom.write_bytes(b"a red car\n\xef\xbb\xbfa blue dog\n")
    with pytest.raises(FieldError, match=r"--prompts line 2: prompt '\\ufeffa blue dog' contains U\+FEFF"):
        load_prompts(str(bom))


def test_20000_line_prompt_file_is_read_in_linear_time(tmp_path, tiny_checkpoint, capsys):
    """20,000 prompts: read, checked and planned (``--dry-run``) in one pass; a file over the documented limit
    (MAX_PROMPTS lines) is refused before it is parsed. Duplicates are found by a dict, not pairwise: the repeat
    at the last line names the first."""
    many = tmp_path / "many.txt"
    lines = [f"prompt number {i}" for i in range(20_000)]
    many.write_text("\n".join(lines) + "\n", encoding="utf-8")
    t0 = time.perf_counter()
    assert generate_main(["--checkpoint", str(tiny_checkpoint), "--prompts", str(many), "--out",
                          str(tmp_path / "out"), "--dry-run", *FAST]) == 0
    took = time.perf_counter() - t0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["prompts"] == summary["items"] == 20_000 and not (tmp_path / "out").exists()
    print(f"20,000-line prompt file: dry run in {took:.2f} s")                # printed, not asserted
    many.write_text("\n".join(lines + [lines[3]]) + "\n", encoding="utf-8")
    with pytest.raises(FieldError, match=r"line 20001 repeats line 4 \('prompt number 3'\)"):
        load_prompts(str(many))
    huge = tmp_path / "huge.txt"
    huge.write_text("\n".join(f"p{i}" for i in range(MAX_PROMPTS + 1)) + "\n", encoding="utf-8")
    with pytest.raises(FieldError, match=rf"{MAX_PROMPTS + 1} lines, over the {MAX_PROMPTS} prompts"):
        load_prompts(str(huge))


# -- numbers ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flag,value,match", [
    ("--duration-s", "nan", r"--duration-s: must be a finite number > 0, got nan"),
    ("--duration-s", "inf", r"--duration-s: must be a finite number > 0, got inf"),
    ("--duration-s", "-1", r"--duration-s: must be a finite number > 0, got -1.0"),
    ("--threads", "-5", r"--threads: must be a whole number >= 0, got -5"),
    ("--fps", "0", r"--fps: must be a whole number > 0, got 0"),
    ("--cfg-scale", "-inf", r"--cfg-scale: must be a finite number >= 0, got -inf"),
])
def test_bad_numbers_are_named_errors(tiny_checkpoint, prompts, tmp_path, monkeypatch, flag, value, match):
    argv = ["--checkpoint", str(tiny_checkpoint), "--prompts", str(prompts), "--out", str(tmp_path / "out"), *FAST,
            f"{flag}={value}"]
    refused(tmp_path, argv, FieldError, match, monkeypatch)


def test_bad_numbers_for_a_pipeline_too(prompts, tmp_path, monkeypatch):
    """The same flags are checked before the pipeline folder is even looked at."""
    for flag, value in (("--duration-s", "nan"), ("--threads", "-5")):
        refused(tmp_path, ["--pipeline", str(tmp_path / "no-such-folder"), "--prompts", str(prompts), "--out",
                           str(tmp_path / "out"), flag, value], FieldError, f"{flag}: must be", monkeypatch)


# -- output folders -----------------------------------------------------------------------------------------------

def test_bad_out_folders(tiny_checkpoint, prompts, tmp_path, monkeypatch):
    base = ["--checkpoint", str(tiny_checkpoint), "--prompts", str(prompts), *FAST]
    refused(tmp_path, [*base, "--out", ""], FieldError, r"--out: '' is empty: .*current directory", monkeypatch)
    refused(tmp_path, [*base, "--out", "  "], FieldError, r"--out: '  ' is empty", monkeypatch)
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me\n")
    refused(tmp_path, [*base, "--out", str(afile)], FieldError, "exists and is not a folder", monkeypatch)
    refused(tmp_path, [*base, "--out", str(afile / "sub")], FieldError,
            r"cannot be made: '.*notes.txt' is not a folder", monkeypatch)
    assert afile.read_text() == "keep me\n"
    refused(tmp_path, [*base, "--out", "/proc/x"], FieldError,
            r"--out: '/proc/x' cannot be created: No such file or directory \(errno 2\)", monkeypatch)
    assert not Path("/proc/x").exists()
    refused(tmp_path, [*base, "--out", "/sys/evalkit-x/y"], FieldError, r"--out: '/sys/evalkit-x/y' cannot be "
                                                                       r"created", monkeypatch)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="needs root to mount a read-only tmpfs")
def test_read_only_out_folder(tiny_checkpoint, prompts, tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)]).returncode:
        pytest.skip("mount refused (no CAP_SYS_ADMIN in this container)")
    try:
        refused(tmp_path, ["--checkpoint", str(tiny_checkpoint), "--prompts", str(prompts), *FAST, "--out",
                           str(ro / "videos")], FieldError, r"cannot be created: Read-only file system \(errno 30\)",
                monkeypatch)
    finally:
        subprocess.run(["umount", str(ro)], check=True)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="needs root to mount a small tmpfs")
def test_full_disk_mid_run_is_a_named_error_and_resumes(tiny_checkpoint, tmp_path, monkeypatch):
    """The filesystem fills after a few videos: a FieldError naming --out and ENOSPC, no temporary file left, the
    recorded videos intact; with room again the same command makes only the rest, equal to an uninterrupted run."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"prompt {i}" for i in range(3)) + "\n", encoding="utf-8")
    argv = ["--checkpoint", str(tiny_checkpoint), "--prompts", str(prompts), "--steps", "2", "--samples", "2",
            "--batch-size", "1", "--no-progress"]
    ref = tmp_path / "ref"
    assert generate_main([*argv, "--out", str(ref)]) == 0
    want = _records(ref)
    biggest = max(p.stat().st_size for p in ref.glob("*.mp4")) + (ref / "videos.jsonl").stat().st_size // 6
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)]).returncode:
        pytest.skip("mount refused (no CAP_SYS_ADMIN in this container)")
    try:
        out = disk / "videos"
        out.mkdir()
        free = shutil.disk_usage(disk).free
        filler = disk / "filler"
        filler.write_bytes(b"\0" * max(0, free - int(2.5 * biggest) - 8192))
        with pytest.raises(FieldError, match=r"--out: .*videos: No space left on device .*errno 28.*kept; make "
                                             r"room .*resume"):
            generate_main([*argv, "--out", str(out)])
        assert not list(out.glob(".*.tmp.mp4"))
        done = _records(out)
        assert 1 <= len(done) < 6 and all(want[f] == v for f, v in done.items())
        filler.unlink()
        assert generate_main([*argv, "--out", str(out)]) == 0
        assert _records(out) == want and sorted(p.name for p in out.glob("*.mp4")) == sorted(want)
    finally:
        subprocess.run(["umount", str(disk)], check=True)


# -- damaged checkpoints ------------------------------------------------------------------------------------------

def copy_checkpoint(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_weights_file_that_is_a_folder(tiny_checkpoint, prompts, tmp_path, monkeypatch):
    for name in ("model.safetensors", "text_encoder.safetensors", "config.json"):
        ck = copy_checkpoint(tiny_checkpoint, tmp_path / f"ck-{name}")
        (ck / name).unlink()
        (ck / name).mkdir()
        refused(tmp_path, ["--checkpoint", str(ck), "--prompts", str(prompts), "--out", str(tmp_path / "out"),
                           *FAST], CheckpointError, rf"checkpoint: .*{name} is a folder; expected the {name} file",
                monkeypatch)


def test_stored_config_that_disagrees_with_the_rebuilt_model(tiny_checkpoint, prompts, tmp_path, monkeypatch):
    """An edited ``d_model`` in the stored resolved config is refused, naming the field; so is a stored field the
    code no longer has. The untouched checkpoint passes (the fixture's own runs)."""
    ck = copy_checkpoint(tiny_checkpoint, tmp_path / "ck")
    cfile = ck / "config.json"
    config = json.loads(cfile.read_text())
    d = config["resolved_model_config"]["d_model"]
    argv = ["--checkpoint", str(ck), "--prompts", str(prompts), "--out", str(tmp_path / "out"), *FAST]
    config["resolved_model_config"]["d_model"] = d * 2
    cfile.write_text(json.dumps(config))
    refused(tmp_path, argv, FieldError, rf"checkpoint\.resolved_model_config\.d_model: config.json stores a model "
                                        rf"config that differs .*d_model: stored {d * 2}, rebuilt {d}", monkeypatch)
    config["resolved_model_config"]["d_model"] = d
    config["resolved_model_config"]["mate"]["window"] = [99, 99, 99]
    cfile.write_text(json.dumps(config))
    refused(tmp_path, argv, FieldError, r"resolved_model_config\.mate\.window: .*stored \[99, 99, 99\]", monkeypatch)
    del config["resolved_model_config"]["mate"]["window"]
    config["resolved_model_config"]["retired_field"] = 1
    cfile.write_text(json.dumps(config))
    refused(tmp_path, argv, FieldError, r"retired_field: stored 1, rebuilt '\(no such field\)'", monkeypatch)


# -- signals ------------------------------------------------------------------------------------------------------

def _run(argv: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "evalkit", "generate", *argv], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _records(out: Path) -> dict[str, tuple]:
    return {r["file"]: (r["inputs_sha256"], r["frames_sha256"], r["seed"]) for r in read_videos(out)}


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
def test_signals_during_generate_then_resume(tiny_checkpoint, tmp_path):
    """SIGTERM (exit 143) and SIGINT (the CLI's exit 130) after the first recorded video: the process (group)
    exits, no temporary file is left, no record is torn; the rerun makes only the rest, and every video equals an
    uninterrupted run's."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"prompt {i}" for i in range(3)) + "\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO),
                                                        os.environ.get("PYTHONPATH", "")])}
    argv = ["--checkpoint", str(tiny_checkpoint), "--prompts", str(prompts), "--steps", "6", "--samples", "2",
            "--batch-size", "1", "--no-progress"]
    ref = tmp_path / "uninterrupted"
    proc = _run([*argv, "--out", str(ref)], env)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()[-2000:]
    want = _records(ref)
    assert len(want) == 6
    for sig, rc in ((signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 130)):
        out = tmp_path / f"out-{sig.name}"
        proc = _run([*argv, "--out", str(out)], env)
        deadline = time.monotonic() + 300
        while not list(out.glob("videos*.jsonl")) or not read_videos(out):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-2000:]
            time.sleep(0.05)
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == rc, proc.stderr.read()[-2000:]
        assert _group_gone(proc.pid)                                   # nothing left running
        assert not list(out.glob(".*.tmp.mp4"))                        # nothing half-written left
        done = _records(out)
        assert 1 <= len(done) < 6 and all(want[f] == v for f, v in done.items())   # nothing torn or wrong
        proc = _run([*argv, "--out", str(out)], env)
        assert proc.wait(timeout=600) == 0, proc.stderr.read()[-2000:]
        summary = json.loads(proc.stdout.read().strip().splitlines()[-1])
        assert summary["skipped"] == len(done) and summary["written"] == 6 - len(done)
        assert _records(out) == want and not list(out.glob(".*.tmp.mp4"))
        assert sorted(p.name for p in out.glob("*.mp4")) == sorted(want)


def test_a_killed_writers_temp_file_is_removed_by_the_rerun(tiny_checkpoint, prompts, tmp_path):
    """``kill -9`` runs no cleanup: the temporary file it left for an item is removed when that item is made."""
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".{PROMPTS[0]}-0.99999999.tmp.mp4"
    stale.write_bytes(b"half an mp4")
    assert generate_main(["--checkpoint", str(tiny_checkpoint), "--prompts", str(prompts), "--out", str(out),
                          *FAST]) == 0
    assert not stale.exists() and sorted(p.name for p in out.iterdir() if p.suffix == ".mp4") == \
        sorted(f"{p}-0.mp4" for p in PROMPTS)
