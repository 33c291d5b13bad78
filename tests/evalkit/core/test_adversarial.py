"""An adversarial probe over the verbs (sweep, train, validate, report, records, humaneval): hostile files and
values, a torn or edited record before publishing, run folders on a full and on a read-only file system.

Table-driven: each case runs ``python -m evalkit ...`` in a subprocess with a timeout and asserts what a user
is promised (README, "Errors"): exit status 2 and one line on stderr, ``error: <field>: ...``, naming the field
(no traceback), before any long work; nothing written outside the case's own folder (a snapshot of it before and
after, and ``git status`` of the checkout); nothing already there lost or changed; no process left running (every
process started carries a marker in its environment, and none with it may be alive afterwards).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from evalkit.core.runs import REPO_ROOT

DATA = REPO_ROOT / "reports" / "data"
TINY = """kind: sweep
name: probe
models: [lingen]
flavors: [tiny]
resolutions: {64p: [64, 112]}
durations_s: [1]
measurements: [flops]
flops: {fvcore: false}
"""
BOMB = "kind: sweep\nname: b\na0: &a0 [" + ",".join(["lol"] * 9) + "]\n" + "".join(
    f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9))


# ---------------------------------------------------------------------------------------------------------------
# the harness
# ---------------------------------------------------------------------------------------------------------------
def _snapshot(root: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink() or p.is_dir():
            out[p.relative_to(root).as_posix() + ("/" if p.is_dir() else "")] = None
        elif p.is_file():
            out[p.relative_to(root).as_posix()] = p.read_bytes() if p.stat().st_size < 1 << 20 else b"<large>"
    return out


def _git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO_ROOT,
                          capture_output=True, text=True).stdout


def _marked(marker: str) -> list[int]:
    """Live processes whose environment holds ``EVALKIT_PROBE=<marker>``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            env = (d / "environ").read_bytes()
            state = (d / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if f"EVALKIT_PROBE={marker}".encode() in env.split(b"\0") and state not in ("Z", "X"):
            out.append(int(d.name))
    return out


@dataclass(frozen=True)
class Case:
    name: str
    setup: Callable[[Path], list[str]]          # makes the case's files under the folder; returns argv
    error: str                                  # a substring of the one error line (the field and the why)
    may_write: tuple[str, ...] = ()             # paths (relative, prefixes) the command may create
    timeout_s: float = 60
    check: Callable[[Path], None] | None = None  # anything else that must hold afterwards
    rc: int = 2                                 # a check verb's finding is status 1 with its own lines


def run_case(case: Case, root: Path) -> None:
    argv = case.setup(root)
    before, git_before = _snapshot(root), _git_status()
    marker = uuid.uuid4().hex
    env = {**os.environ, "EVALKIT_PROBE": marker, "PYTHONDONTWRITEBYTECODE": "1"}
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "evalkit", *argv], cwd=root, env=env, capture_output=True,
                         text=True, timeout=case.timeout_s)
    took = time.monotonic() - t0
    err_lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == case.rc, (res.returncode, res.stdout[-800:], res.stderr[-1500:])
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    errors = [ln for ln in err_lines if ln.startswith("error: ")] if case.rc == 2 else err_lines[-1:]
    assert len(errors) == 1 and err_lines[-1] == errors[0], err_lines
    assert case.error in errors[0], (case.error, errors[0])
    assert len(errors[0]) < 1000, len(errors[0])
    # nothing lost or changed; nothing written but where the case allows it
    after = _snapshot(root)
    changed = [k for k in before if k not in after or after[k] != before[k]]
    assert not changed, f"changed or lost: {changed}"
    new = [k for k in after if k not in before and not k.startswith(case.may_write or ("\0",))]
    assert not new, f"written outside the allowed folders: {new}"
    assert _git_status() == git_before, "the command wrote into the checkout"
    deadline = time.monotonic() + 5
    while (left := _marked(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes left running: {left}"
    if case.check is not None:
        case.check(root)
    print(f"{case.name}: {took:.1f} s: {errors[0][:160]}")


def _write(root: Path, name: str, text: str | bytes) -> Path:
    p = root / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


def _file(text: str | bytes, *extra: str, verb: str = "validate") -> Callable[[Path], list[str]]:
    def setup(root: Path) -> list[str]:
        return [verb, str(_write(root, "exp.yaml", text)), *extra]
    return setup


def _sparse(root: Path) -> list[str]:
    p = root / "huge.yaml"
    with open(p, "wb") as fh:
        fh.write(b"kind: sweep\nname: [")
        fh.truncate(200 << 20)
    return ["validate", str(p)]


def _folder_yaml(root: Path) -> list[str]:
    (root / "dir.yaml").mkdir()
    return ["validate", str(root / "dir.yaml")]


def _no_pwned(root: Path) -> None:
    assert not (root / "pwned").exists()


# ---------------------------------------------------------------------------------------------------------------
# hostile experiment files and values (validate, sweep, train)
# ---------------------------------------------------------------------------------------------------------------
PY_TAG = "kind: sweep\nname: !!python/object/apply:os.system ['touch pwned']\n"
CASES = [
    Case("python tag (validate)", _file(PY_TAG), "tag '!!python/object/apply:os.system' is not allowed",
         check=_no_pwned),
    Case("python tag (sweep)", _file(PY_TAG, verb="sweep"), "is not allowed", check=_no_pwned),
    Case("python tag (train)", _file(PY_TAG.replace("sweep", "train"), verb="train"), "is not allowed",
         check=_no_pwned),
    Case("python name tag", _file("kind: sweep\nname: !!python/name:os.system ''\n"), "is not allowed"),
    Case("local tag", _file("kind: !sweep sweep\n"), "tag '!sweep' is not allowed"),
    Case("alias bomb (validate)", _file(BOMB), "expands to more than 200000 values"),
    Case("alias bomb (sweep)", _file(BOMB, verb="sweep"), "expands to more than"),
    Case("deeply nested", _file("kind: sweep\nname: " + "[" * 100_000 + "]" * 100_000 + "\n"),
         "nested deeper than 32 levels"),
    Case("huge file (200 MB, sparse)", _sparse, "larger than 1048576 bytes"),
    Case("long list", _file("kind: sweep\nname: t\nmodels: [" + ",".join(["lingen"] * 20_000) + "]\n"),
         "a list of 20000 items"),
    Case("invalid UTF-8", _file(b"kind: sweep\nname: \xff\xfe\n"), "not UTF-8"),
    Case("a folder named .yaml", _folder_yaml, "is a folder"),
    Case("missing file", lambda root: ["validate", str(root / "nope.yaml")], "file not found"),
    Case("300-character name via --set", _file(TINY, "--set", "name=" + "n" * 300),
         "a name of 300 characters is too long"),
    Case("name escaping the runs folder (sweep)", _file(TINY, "--set", "name=../../escape", verb="sweep"),
         "is not a plain file name"),
    Case("python tag in a --set value", _file(TINY, "--set", "name=!!python/object/apply:os.system [touch pwned]"),
         "is not allowed", check=_no_pwned),
    Case("alias in a --set value", _file(TINY, "--set", "model_overrides={x: &x [1], y: *x}"), "aliases"),
    Case("NaN duration via --set", _file(TINY, "--set", "durations_s=[.nan]"),
         "exp.durations_s[0]: expected a finite number"),
    Case("inf fps via --set", _file(TINY, "--set", "fps=.inf"), "exp.fps: expected an integer"),
    Case("NaN model override via --set", _file(TINY, "--set", "model_overrides={d_model: .nan}"),
         "d_model: expected an integer"),
    Case("NaN resolution via --set", _file(TINY, "--set", "resolutions={x: [.nan, 64]}"),
         "resolutions.x: height and width must be positive integers"),
    Case("--run-dir under /proc (sweep)", _file(TINY, "--run-dir", "/proc/probe-run", "--no-progress",
                                                 verb="sweep"), "/proc/probe-run: No such file or directory (ENOENT)"),
    Case("--run-dir naming a file (sweep)", lambda root: ["sweep", str(_write(root, "exp.yaml", TINY)), "--run-dir",
                                                          str(_write(root, "afile", "keep me")), "--no-progress"],
         "Not a directory (ENOTDIR)"),
    Case("--run-dir of 300 characters (sweep)", _file(TINY, "--run-dir", "r" * 300, "--no-progress", verb="sweep"),
         "File name too long (ENAMETOOLONG)"),
    Case("NaN --budget-s (sweep)", _file(TINY, "--budget-s", "nan", "--dry-run", verb="sweep"),
         "--budget-s: expected a finite number"),
    Case("NaN learning rate (train)", lambda root: ["train", "train_tiny", "--set", "train.lr=.nan"],
         "train.lr: expected a finite number"),
    Case("unknown key via --set (train)", lambda root: ["train", "train_tiny", "--set", "train.stepz=3"],
         "Did you mean 'steps'?"),
]


# ---------------------------------------------------------------------------------------------------------------
# records, report, humaneval
# ---------------------------------------------------------------------------------------------------------------
def _small_cost_run() -> Path:
    runs = [m.parent for m in DATA.glob("*/*/manifest.json")
            if json.loads(m.read_text()).get("kind") == "sweep"]
    return min(runs, key=lambda r: (r / "results.jsonl").stat().st_size)


def _copy_run(root: Path) -> Path:
    src = _small_cost_run()
    dest = root / "runs" / src.parent.name / src.name
    shutil.copytree(src, dest)
    return dest


def _halved_flops(root: Path) -> list[str]:
    run = _copy_run(root)
    recs = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    rec = next(r for r in recs if r.get("measurement") == "flops" and r["status"] == "ok")
    rec["flops"] //= 2
    (run / "results.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in recs))
    return ["report", "--publish", str(run), "--reports-dir", str(root / "reports")]


def _zeroed_sha(root: Path) -> list[str]:
    run = _copy_run(root)
    m = json.loads((run / "manifest.json").read_text())
    m["git_sha"] = "0" * 40
    (run / "manifest.json").write_text(json.dumps(m, indent=2))
    return ["report", "--publish", str(run), "--reports-dir", str(root / "reports")]


def _torn(root: Path) -> list[str]:
    run = _copy_run(root)
    with open(run / "results.jsonl", "ab") as fh:
        fh.write(b'{"key": "half a rec')
    return ["report", "--publish", str(run), "--reports-dir", str(root / "reports")]


def _edited_published(root: Path, argv: tuple[str, ...]) -> list[str]:
    from evalkit.report.verify import SUMS, read_sums
    src = _small_cost_run()
    data = root / "reports" / "data"
    shutil.copytree(src, data / src.parent.name / src.name)
    prefix = f"{src.parent.name}/{src.name}/"
    (data / SUMS).write_text("".join(f"{h}  {p}\n" for p, h in read_sums(DATA).items() if p.startswith(prefix)))
    with open(data / src.parent.name / src.name / "results.jsonl", "r+b") as fh:
        fh.seek(40)
        fh.write(b"9")
    return ["report", "--reports-dir", str(root / "reports"), *argv]


def _records_check(root: Path) -> list[str]:
    run = _copy_run(root)
    with open(run / "results.jsonl", "ab") as fh:
        fh.write(b"[1, 2]\n")
    return ["records", "check", str(run)]


STUDY = """name: probe
prompts: prompts.txt
samples: 1
arms: {a: a, b: b}
reference: a
questions: paper
"""


def _study(root: Path, text: str = STUDY) -> Path:
    _write(root, "prompts.txt", "a cat\n")
    for arm in ("a", "b"):
        (root / arm).mkdir(exist_ok=True)
        (root / arm / "a cat-0.mp4").write_bytes(b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2")   # --no-probe
    return _write(root, "study.yaml", text)


CASES += [
    Case("publish a record whose flops was halved", _halved_flops, "flops_agree: True, but flops"),
    Case("publish a manifest with a zeroed git_sha", _zeroed_sha, "manifest.json: git_sha: " + "0" * 40),
    Case("publish a run with a torn line", _torn, "torn"),
    Case("report --check over edited published data", lambda root: _edited_published(root, ("--check",)),
         "edited: reports/data/"),
    Case("report over edited published data", lambda root: _edited_published(root, ()), "edited: reports/data/"),
    Case("records check: a line that is not an object", _records_check, "results.jsonl:22", rc=1),
    Case("humaneval: python tag in the study", lambda root: ["humaneval", "validate", str(_study(
        root, STUDY.replace("name: probe", "name: !!python/object/apply:os.system ['touch pwned']")))],
        "is not allowed", check=_no_pwned),
    Case("humaneval: alias bomb study", lambda root: ["humaneval", "validate", str(_study(
        root, BOMB.replace("kind: sweep\nname: b\n", STUDY)))], "expands to more than"),
    Case("humaneval: terminal escape in a rater name", lambda root: [
        "humaneval", "token", str(_study(root)), "eve\x1b]0;owned\x07", "--db", str(root / "db.sqlite"),
        "--no-probe"], "a rater name is 1-64 printable characters", may_write=("db.sqlite",)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_probe(case: Case, tmp_path: Path) -> None:
    run_case(case, tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# run folders on a full and on a read-only file system
# ---------------------------------------------------------------------------------------------------------------
def _mount(args: list[str]) -> None:
    res = subprocess.run(["mount", *args], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount here (mount {' '.join(args)}: {res.stderr.strip() or res.returncode}); "
                    "the disk cases need root")


@pytest.fixture
def full_fs(tmp_path: Path):
    """A 1 MiB tmpfs, filled to the last byte (a file ``filler`` takes the space)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small file system needs root (the disk cases)")
    mnt = tmp_path / "full"
    mnt.mkdir()
    _mount(["-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)])
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path) -> None:
    fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    try:
        while True:
            os.write(fd, b"\0")
    except OSError:
        pass
    finally:
        os.close(fd)


@pytest.fixture
def ro_fs(tmp_path: Path):
    """A read-only bind mount of ``tmp_path/src`` at ``tmp_path/ro``."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a read-only bind mount needs root (the disk cases)")
    src, mnt = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    mnt.mkdir()
    _mount(["--bind", str(src), str(mnt)])
    _mount(["-o", "remount,bind,ro", str(mnt)])
    yield src, mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_new_run_on_a_full_disk(full_fs: Path, tmp_path: Path) -> None:
    _write(tmp_path, "exp.yaml", TINY)
    _fill(full_fs)
    case = Case("sweep on a full disk", lambda root: ["sweep", str(tmp_path / "exp.yaml"), "--runs-root",
                                                      str(full_fs), "--no-progress", "--no-plots"],
                "(ENOSPC)", timeout_s=120, may_write=("full/probe/",))
    run_case(case, tmp_path)
    assert sorted(p.name for p in full_fs.iterdir()) == ["filler", "probe"]       # no run folder, no temp file
    assert list((full_fs / "probe").iterdir()) == []


def test_new_run_on_a_read_only_disk(ro_fs, tmp_path: Path) -> None:
    _, mnt = ro_fs
    _write(tmp_path, "exp.yaml", TINY)
    case = Case("sweep on a read-only disk", lambda root: ["sweep", str(tmp_path / "exp.yaml"), "--runs-root",
                                                           str(mnt), "--no-progress", "--no-plots"],
                "(EROFS)", timeout_s=120, may_write=("src/",))
    run_case(case, tmp_path)


@pytest.mark.slow
def test_resume_on_a_full_then_a_read_only_disk_keeps_the_records_and_recovers(full_fs: Path, tmp_path: Path):
    """A finished run, one record removed (to be recomputed), its folder on a disk that is full: the re-run names
    the file it could not write, keeps the records, leaves no temporary file (a stale one of a killed writer is
    removed, never read); once there is space the re-run finishes only the missing point."""
    from evalkit.core.records import read_records
    exp = _write(tmp_path, "exp.yaml", TINY.replace("models: [lingen]", "models: [lingen, dit]"))
    argv = [sys.executable, "-m", "evalkit", "sweep", str(exp), "--runs-root", str(full_fs), "--no-progress",
            "--no-plots"]
    subprocess.run(argv, check=True, capture_output=True, timeout=300)
    (run,) = (full_fs / "probe").iterdir()
    full = read_records([run])
    lines = (run / "results.jsonl").read_text().splitlines(keepends=True)
    (run / "results.jsonl").write_text(lines[0])
    stale = run / "jobs" / "x.json.999999999.abcdef.tmp"      # a writer killed between write and rename
    stale.write_bytes(b"")
    _fill(full_fs)
    kept = (run / "results.jsonl").read_bytes()
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert "(ENOSPC)" in res.stderr.splitlines()[-1] and str(run) in res.stderr.splitlines()[-1]
    assert (run / "results.jsonl").read_bytes() == kept
    assert not list(full_fs.rglob("*.tmp")), list(full_fs.rglob("*.tmp"))
    (full_fs / "filler").unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(full_fs)], check=True)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "(EROFS)" in res.stderr.splitlines()[-1], res.stderr[-2000:]
    assert (run / "results.jsonl").read_bytes() == kept
    subprocess.run(["mount", "-o", "remount,rw", str(full_fs)], check=True)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout.strip().splitlines()[-1])["ran"] == 1
    again = read_records([run])
    strip = lambda recs: sorted((r["key"], r.get("flops"), r["status"]) for r in recs)   # noqa: E731
    assert strip(again) == strip(full)


def test_disk_errors_name_what_was_being_written():
    import errno as E

    from evalkit.cli import disk_message
    cases = {"/r/results.jsonl": "cannot write records /r/results.jsonl",
             "/r/jobs/s1-0000.json": "cannot write a job's provenance file",
             "/r/manifest.json": "cannot write the run's manifest",
             "/r/.writer.lock": "cannot write the writer lock",
             "/o/.a cat-0.123.tmp.mp4": "cannot write a video"}
    for path, want in cases.items():
        msg = disk_message(OSError(E.ENOSPC, os.strerror(E.ENOSPC), path))
        assert msg.startswith(want) and "(ENOSPC)" in msg and "free some space" in msg, msg
    assert "(EROFS)" in disk_message(OSError(E.EROFS, os.strerror(E.EROFS), "/r/x"))
    assert disk_message(OSError(E.ENOTDIR, os.strerror(E.ENOTDIR), "/r/f/x")).startswith("cannot create or open")
