"""The device run script end to end on CPU with tiny models (everything but CUDA): benchmarks/gpu/gather_wheels.sh
builds mamba-ssm as a pure-Python wheel into a temporary folder (from PyPI, as CI installs it), then
``benchmarks/gpu/run.sh --smoke`` installs it with --no-index --no-deps into a temporary --target, runs the gpu
tests (skipped without CUDA), the parity checks, and the budgeted paper_latency sweep from the working tree via
PYTHONPATH, with the packages the GPU image lacks (av, submitit, fvcore, the web stack) made unimportable, and
leaves at most 8 flat files whose tarball is a publishable run folder. ~2-3 min on 2 cores: slow."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from evalkit.sweep.config import load_experiment
from evalkit.core.records import read_records
from evalkit.sweep.plan import plan_points

ROOT = Path(__file__).resolve().parents[1]
BLOCKER = '''import sys
BLOCK = {"av", "submitit", "fvcore", "starlette", "uvicorn", "httpx", "httpx2", "playwright"}
class _Block:  # what the GPU image does not have (its package list): importing one fails, as it would there
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCK:
            raise ModuleNotFoundError(f"No module named {name!r} (not on the GPU image)", name=name)
sys.meta_path.insert(0, _Block())
'''


@pytest.mark.slow
def test_gpu_run_script_end_to_end_on_cpu(tmp_path: Path) -> None:
    whl = tmp_path / "whl"
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run([str(ROOT / "benchmarks/gpu/gather_wheels.sh"), str(whl)], cwd=ROOT, env=env, check=True,
                   timeout=600, capture_output=True)
    assert [p.name for p in whl.glob("*.whl")] == ["mamba_ssm-2.3.2.post1-py3-none-any.whl"]
    (tmp_path / "blocker").mkdir()
    (tmp_path / "blocker" / "sitecustomize.py").write_text(BLOCKER)
    out, site = tmp_path / "out", tmp_path / "site"
    env.update(OUT=str(out), WHEELS=str(whl), SITE=str(site), RUNS_ROOT=str(tmp_path / "runs"), CALL_S="110",
               PYTHONPATH=str(tmp_path / "blocker"),
               # w/ Mamba predicted at hours: its point is a budget row however fast this machine is
               SWEEP_ARGS="--set budget.cpu.achieved_fraction.lingen-mamba1=0.000001")
    proc = subprocess.run([str(ROOT / "benchmarks/gpu/run.sh"), "--smoke"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    # results: flat, at most 8 files
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert files == ["gpu-tests.txt", "log.txt", "paper_latency-run.tar.gz", "parity.json", "sweep.txt", "table.txt"]
    # the wheel went into the --target folder, and the run imported it from there
    assert (site / "mamba_ssm" / "ops" / "triton" / "ssd_combined.py").is_file()
    assert "4 skipped" in (out / "gpu-tests.txt").read_text()
    checks = json.loads((out / "parity.json").read_text())["checks"]
    assert [c["status"] for c in checks if c["check"] == "tesa_split_vs_brute_force"] == ["ok", "ok"]
    assert {c["message"] for c in checks if c["check"].endswith("fused_vs_reference")} == {"no CUDA"}
    with tarfile.open(out / "paper_latency-run.tar.gz") as tar:
        tar.extractall(tmp_path / "unpacked", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    (run,) = (tmp_path / "unpacked").iterdir()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["versions"]["mamba-ssm"] == "2.3.2.post1" and manifest["smoke"] is True
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert manifest["git_sha"].startswith(head)
    recs = {r["key"]: r for r in read_records([run])}
    planned = {k for s in plan_points(load_experiment("paper_latency", smoke=True)) for k in s.record_keys.values()}
    assert set(recs) == planned                          # every planned (point, measurement): a record or a row
    lat = [r for r in recs.values() if r["measurement"] == "latency"]
    assert any(r["status"] == "ok" and r["budget_s"] > 0 for r in lat)
    mamba = [r for r in lat if r["model"] == "lingen-mamba1"]
    assert mamba and all(r["skip_reason"] == "budget" and r["predicted_s"] > 1e3 for r in mamba)
    # the short table is printed last
    assert proc.stdout.rstrip().splitlines()[-1].startswith("records: ")
    assert "DiT/LinGen latency" in (out / "table.txt").read_text() or any(r["status"] != "ok" for r in lat)
    assert "plan for cpu" in (out / "log.txt").read_text()
