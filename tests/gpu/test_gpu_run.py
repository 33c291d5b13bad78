"""The device run script end to end on CPU with tiny models (everything but CUDA): benchmarks/gpu/gather_wheels.sh
builds mamba-ssm as a pure-Python wheel into a temporary folder (from PyPI, as CI installs it), then
``benchmarks/gpu/run.sh --smoke`` runs in a copy of the tree without .git (as the GPU machine receives it, the
commit passed as EVALKIT_GIT_SHA), installs the wheel with --no-index --no-deps into a temporary --target, runs
the headline part first, then the gpu tests (skipped without CUDA) and the parity checks, then the rest of the
budgeted paper_latency sweep from the copy via PYTHONPATH, with the packages the GPU image lacks (av, submitit,
fvcore, the web stack) made unimportable, and leaves at most 7 files in $OUT whose run folder is publishable.
~2-3 min on 2 cores: slow."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.sweep.config import load_experiment
from evalkit.core.records import read_records
from evalkit.sweep.plan import plan_points
from repo_paths import REPO

ROOT = REPO
BLOCKER = '''import sys
BLOCK = {"av", "submitit", "fvcore", "starlette", "uvicorn", "httpx", "httpx2", "playwright"}
class _Block:  # what the GPU image does not have (its package list): importing one fails, as it would there
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCK:
            raise ModuleNotFoundError(f"No module named {name!r} (not on the GPU image)", name=name)
sys.meta_path.insert(0, _Block())
'''


def _copy_without_git(dest: Path) -> Path:
    """The tracked files of the working tree (with their uncommitted changes), as the device machine gets them."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    return dest


@pytest.mark.slow
def test_gpu_run_script_end_to_end_on_cpu(tmp_path: Path) -> None:
    whl = tmp_path / "whl"
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run([str(ROOT / "benchmarks/gpu/gather_wheels.sh"), str(whl)], cwd=ROOT, env=env, check=True,
                   timeout=600, capture_output=True)
    assert [p.name for p in whl.glob("*.whl")] == ["mamba_ssm-2.3.2.post1-py3-none-any.whl"]
    tree = _copy_without_git(tmp_path / "tree")
    assert not (tree / ".git").exists() and (tree / "benchmarks/gpu/run.sh").is_file()
    (tmp_path / "blocker").mkdir()
    (tmp_path / "blocker" / "sitecustomize.py").write_text(BLOCKER)
    out, site = tmp_path / "out", tmp_path / "site"
    env.update(OUT=str(out), WHEELS=str(whl), SITE=str(site), RUNS_ROOT=str(tmp_path / "runs"),
               CALL_S="240", HEAD_S="90",   # room on a loaded 2-core box (the LinGen build's first forward)
               PYTHONPATH=str(tmp_path / "blocker"),
               # w/ Mamba predicted at hours: its point is a budget row however fast this machine is
               SWEEP_ARGS="--set budget.cpu.achieved_fraction.lingen-mamba1=0.000001")
    # without .git the commit must be given: refused before anything runs
    env.pop("EVALKIT_GIT_SHA", None)
    proc = subprocess.run([str(tree / "benchmarks/gpu/run.sh"), "--smoke"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "EVALKIT_GIT_SHA" in proc.stdout, proc.stdout[-2000:]
    sha = "0123456789abcdef0123456789abcdef01234567-dirty"
    proc = subprocess.run([str(tree / "benchmarks/gpu/run.sh"), "--smoke"], cwd=tmp_path,
                          env={**env, "EVALKIT_GIT_SHA": sha}, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    # results: at most 7 files, the run folder one level down (what the device tool brings back)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["gpu-tests.txt", "log.txt", "paper_latency-run/manifest.json",
                     "paper_latency-run/results.jsonl", "parity.json", "sweep.txt", "table.txt"]
    # the wheel went into the --target folder, and the run imported it from there
    assert (site / "mamba_ssm" / "ops" / "triton" / "ssd_combined.py").is_file()
    assert "4 skipped" in (out / "gpu-tests.txt").read_text()
    checks = json.loads((out / "parity.json").read_text())["checks"]
    assert [c["status"] for c in checks if c["check"] == "tesa_split_vs_brute_force"] == ["ok", "ok"]
    assert {c["message"] for c in checks if c["check"].endswith("fused_vs_reference")} == {"no CUDA"}
    run = out / "paper_latency-run"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["versions"]["mamba-ssm"] == "2.3.2.post1" and manifest["smoke"] is True
    assert manifest["git_sha"] == sha                      # the commit given, not one recorded earlier
    recs = {r["key"]: r for r in read_records([run])}
    planned = {k for s in plan_points(load_experiment("paper_latency", smoke=True)) for k in s.record_keys.values()}
    assert set(recs) == planned                          # every planned (point, measurement): a record or a row
    lat = [r for r in recs.values() if r["measurement"] == "latency"]
    assert any(r["status"] == "ok" and r["budget_s"] > 0 for r in lat)
    headline = [r for r in lat if r.get("part") == "fig6a_512p"]
    assert headline and all(r["status"] == "ok" and r["iterations"] >= 2 for r in headline)   # first, in full
    log = (out / "log.txt").read_text()
    assert log.index("2/5 headline") < log.index("3/5 gpu tests") < log.index("4/5 the rest")
    mamba = [r for r in lat if r["model"] == "lingen-mamba1"]
    assert mamba and all(r["skip_reason"] == "budget" and r["predicted_s"] > 1e3 for r in mamba)
    # the short table is printed last
    assert proc.stdout.rstrip().splitlines()[-1].startswith("records: ")
    assert "DiT/LinGen latency" in (out / "table.txt").read_text() or any(r["status"] != "ok" for r in lat)
    assert "plan for cpu" in log


@pytest.mark.slow
def test_run_script_keeps_what_was_measured_when_it_is_killed(tmp_path: Path) -> None:
    """Killed in the middle of its sweep (the call's time limit), the records written so far are in $OUT."""
    import signal
    import time

    tree = _copy_without_git(tmp_path / "tree")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out), "WHEELS": str(tmp_path / "none"),
           "RUNS_ROOT": str(tmp_path / "runs"), "EVALKIT_GIT_SHA": "f" * 40, "CALL_S": "200"}
    proc = subprocess.Popen([str(tree / "benchmarks/gpu/run.sh"), "--smoke"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 150
    mirrored = out / "paper_latency-run" / "results.jsonl"
    while time.time() < deadline and not (mirrored.is_file() and mirrored.read_text().count("\n") >= 2):
        time.sleep(1)
    os.killpg(proc.pid, signal.SIGKILL)            # no trap runs: what the mirror copied is all there is
    proc.wait(timeout=30)
    recs = read_records([out / "paper_latency-run"])
    assert len(recs) >= 2 and all(r["kind"] == "cost" for r in recs)
    assert json.loads((out / "paper_latency-run" / "manifest.json").read_text())["git_sha"] == "f" * 40
