"""The ``slurm`` test group's cluster and helpers: a real one-node SLURM (tests/slurm/cluster.sh: munged, MariaDB,
slurmdbd, slurmctld, slurmd from Debian's packages) started once per session, ``python -m evalkit`` commands run
against it, and what squeue / sacct say about their jobs.

The fixture fails (never skips) when the cluster cannot start: ``pytest -m slurm`` asks for a real cluster. It
leaves a cluster it found running alone (CI starts one before the group and stops it after).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
SCRIPT = TESTS / "slurm" / "cluster.sh"
# every record field that legitimately differs between two runs of the same points: when and how long
VOLATILE = ("created", "traceback", "run_id")


def _script(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)


@dataclass(frozen=True)
class Cluster:
    conf: str
    node: str

    def cmd(self, *args: str) -> str:
        """A SLURM client command (squeue, sacct, scontrol, scancel); its stdout."""
        proc = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, f"{' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def sacct(self, job_ids: list[str]) -> list[dict[str, str]]:
        """sacct's rows (every run of every job: --duplicates) of these jobs or arrays, straight from sacct."""
        out = self.cmd("sacct", "-D", "-X", "-P", "-n", "-o", "JobID,State,Start,End,ExitCode",
                       "-j", ",".join(sorted({j.split("_")[0] for j in job_ids})))
        return [dict(zip(("job_id", "state", "start", "end", "exit_code"), ln.split("|")))
                for ln in out.splitlines() if ln]

    def node_state(self) -> str:
        return self.cmd("sinfo", "-h", "-N", "-n", self.node, "-o", "%T").strip()


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Cluster]:
    was_up = _script("status", timeout=60).returncode == 0
    proc = _script("start")
    if proc.returncode != 0:
        pytest.fail(f"the SLURM test cluster did not start ({SCRIPT} start, status {proc.returncode}):\n"
                    f"{proc.stdout[-2000:]}\n{proc.stderr[-6000:]}", pytrace=False)
    conf = _script("env", timeout=60).stdout.strip().split("=", 1)[1]
    saved = {k: os.environ.get(k) for k in ("SLURM_CONF", "PYTHONPATH")}
    os.environ["SLURM_CONF"] = conf
    # SLURM jobs get the submitting environment (sbatch --export=ALL): they can import tests/faults.py
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), saved["PYTHONPATH"]]))
    node = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True,
                          timeout=60).stdout.split()[0]
    try:
        yield Cluster(conf=conf, node=node)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if not was_up:
            _script("stop", timeout=300)


def evalkit_cmd(*args: str, faults: Path | None = None) -> tuple[list[str], dict[str, str]]:
    """``python -m evalkit ARGS`` (or, with a faults file, ``python tests/faults.py ARGS``: the same CLI with the
    file's faults injected into its launcher items) and its environment."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    if faults is None:
        return [sys.executable, "-m", "evalkit", *args], env
    env["EVALKIT_TEST_FAULTS"] = str(faults)
    return [sys.executable, str(TESTS / "faults.py"), *args], env


def run_evalkit(cwd: Path, *args: str, faults: Path | None = None, rc: int = 0,
                timeout: float = 900) -> subprocess.CompletedProcess:
    cmd, env = evalkit_cmd(*args, faults=faults)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == rc, f"exit {proc.returncode} (wanted {rc}): {proc.stderr[-4000:]}"
    return proc


def start_evalkit(cwd: Path, log: Path, *args: str, faults: Path | None = None) -> subprocess.Popen:
    cmd, env = evalkit_cmd(*args, faults=faults)
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def write_faults(path: Path, faults: dict[str, dict[str, Any]]) -> Path:
    path.write_text(json.dumps(faults))
    return path


def last_json(proc: subprocess.CompletedProcess | str) -> dict[str, Any]:
    text = proc if isinstance(proc, str) else proc.stdout
    return json.loads(text.strip().splitlines()[-1])


def wait_until(pred: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = pred()
        if out:
            return out
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def max_overlap(rows: list[dict[str, str]]) -> int:
    """The most sacct rows whose [start, end) intervals overlap (sacct's times are whole seconds: a task that
    starts in the second another ends does not overlap it)."""
    events = sorted([(r["start"], 1) for r in rows] + [(r["end"], -1) for r in rows], key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


@dataclass
class Sampler:
    """What squeue showed every half second: the most tasks RUNNING at once and every pending reason seen."""

    running_max: int = 0
    reasons: set[str] = field(default_factory=set)
    samples: int = 0


@contextmanager
def squeue_sampler(cluster: Cluster, every: float = 0.5) -> Iterator[Sampler]:
    seen, stop = Sampler(), threading.Event()

    def loop() -> None:
        while not stop.is_set():
            proc = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T|%r"], capture_output=True, text=True)
            rows = [ln.split("|") for ln in proc.stdout.splitlines() if ln.count("|") == 2]
            seen.running_max = max(seen.running_max, sum(1 for r in rows if r[1] == "RUNNING"))
            seen.reasons |= {r[2] for r in rows if r[1] == "PENDING"}
            seen.samples += 1
            stop.wait(every)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=30)


def stable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records without the fields that differ between two runs of the same work (timestamps, timings)."""
    return sorted(({k: v for k, v in r.items() if k not in VOLATILE and not k.endswith("seconds")}
                   for r in records), key=lambda r: r["key"])


def raw_lines(run_dir: Path) -> list[dict[str, Any]]:
    """Every record line of every results file of the run (before the readers' merge)."""
    return [json.loads(ln) for p in sorted(run_dir.glob("results*.jsonl")) for ln in p.read_text().splitlines()
            if ln.strip()]


def job_files(run_dir: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((run_dir / "jobs").glob("*.json"))}


def submitted_ids(run_dir: Path) -> list[str]:
    return [json.loads(p.read_text())["job_id"] for p in sorted((run_dir / "jobs" / "submitted").glob("*.json"))]
