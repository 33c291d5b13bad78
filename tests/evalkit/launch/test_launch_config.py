"""Launch options: typed ``launch:`` section, ``--set launch.*`` overrides, errors, and what submitit receives."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from evalkit.launch.config import (LaunchConfig, default_section, resolve_launch, sbatch_options, sbatch_preview,
                                   strip_launch_flags, submitit_parameters)
from evalkit.core.errors import ChoiceError, FieldError

SECTION = yaml.safe_load("""
launcher: submitit
partition: gpu
gpus_per_job: 1
cpus_per_job: 8
mem_gb: 64
time_limit_min: 120
array_parallelism: 16
account: proj123
""")


def test_section_sets_and_flag():
    cfg = resolve_launch(SECTION, ["launch.partition=h100", "launch.gpus_per_job=2", "latency.steps=100"])
    assert (cfg.launcher, cfg.partition, cfg.gpus_per_job, cfg.cpus_per_job) == ("submitit", "h100", 2, 8)
    assert cfg.time_limit_min == 120 and cfg.account == "proj123" and cfg.requeue is True
    assert resolve_launch(SECTION, launcher="inline").launcher == "inline"   # --launcher wins over the file
    assert resolve_launch(None) == LaunchConfig()
    assert set(default_section()) == {f for f in LaunchConfig.__dataclass_fields__}


def test_bad_options_name_the_field_and_closest_match():
    with pytest.raises(ChoiceError, match=r"launch\.partiton.*Did you mean 'partition'"):
        resolve_launch({"partiton": "gpu"})
    with pytest.raises(ChoiceError, match="Did you mean 'gpus_per_job'"):
        resolve_launch(None, ["launch.gpu_per_job=2"])
    with pytest.raises(ChoiceError, match="Did you mean 'submitit'"):
        resolve_launch(None, launcher="submitit2")
    with pytest.raises(ChoiceError, match="Did you mean 'process'"):
        resolve_launch({"launcher": "proces"})
    with pytest.raises(ChoiceError, match="slurm"):
        resolve_launch({"submitit_cluster": "slrum"})
    with pytest.raises(FieldError, match="time_limit_min"):
        resolve_launch({"time_limit_min": 0})
    with pytest.raises(FieldError, match="launch.timeout_s"):
        resolve_launch({"timeout_s": -1})
    with pytest.raises(FieldError, match="launch.timeout_s.*finite"):
        resolve_launch({"timeout_s": float("nan")})
    with pytest.raises(FieldError, match="gpus_per_job"):
        LaunchConfig(gpus_per_job=-1)


@pytest.mark.parametrize("cluster", ["auto", "slurm"])
def test_slurm_time_limit_leaves_room_for_the_requeue_signal(cluster):
    """A real one-node SLURM 22.05 sent submitit's USR2 (90 s before a 1-minute limit) 15 s into the job, requeued
    it, and killed the requeued run 1 s in (FAILED, exit 12:0) before Python had its handler: refused up front."""
    with pytest.raises(FieldError, match=r"launch\.time_limit_min.*>= 3.*USR2"):
        resolve_launch({"launcher": "submitit", "submitit_cluster": cluster, "time_limit_min": 2})
    assert resolve_launch({"launcher": "submitit", "submitit_cluster": cluster, "time_limit_min": 3})
    for ok in ({"launcher": "submitit", "submitit_cluster": "local"}, {"launcher": "inline"}):
        assert resolve_launch({**ok, "time_limit_min": 1}).time_limit_min == 1


def test_strip_launch_flags_keeps_the_plain_command():
    argv = ["generate", "--out", "v", "--launcher", "submitit", "--shards=4", "--set", "launch.partition=gpu",
            "--set", "other.key=1", "--dry-run", "--steps", "3"]
    assert strip_launch_flags(argv, "--shards") == ["generate", "--out", "v", "--set", "other.key=1", "--steps",
                                                    "3"]


def test_sbatch_options_and_submitit_parameters():
    cfg = resolve_launch(SECTION)
    opts = sbatch_options(cfg, n_jobs=40)
    assert opts["partition"] == "gpu" and opts["gpus-per-node"] == "1" and opts["time"] == "120"
    assert opts["array"] == "0-39%16" and opts["mem"] == "64GB" and opts["account"] == "proj123"
    params = submitit_parameters(cfg, "evalkit-sweep")
    assert params["slurm_partition"] == "gpu" and params["slurm_array_parallelism"] == 16
    assert params["timeout_min"] == 120 and params["gpus_per_node"] == 1 and params["mem_gb"] == 64


def test_preview_is_submitits_own_sbatch_header(tmp_path):
    text = sbatch_preview(resolve_launch(SECTION), str(tmp_path / "%j"), n_jobs=5)
    if text is None:
        pytest.skip("this submitit version does not expose its sbatch template")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --time=120",
                 "#SBATCH --array=0-4%5", "#SBATCH --cpus-per-task=8", "#SBATCH --account=proj123",
                 "#SBATCH --mem=64GB"):
        assert line in text.splitlines()


def test_parameters_accepted_by_submitit_slurm_executor(tmp_path):
    """submitit's SlurmExecutor validates parameter names; it needs ``srun`` on PATH only to be constructed."""
    import submitit

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake / "srun").chmod(0o755)
    old = os.environ["PATH"]
    os.environ["PATH"] = f"{fake}:{old}"
    try:
        ex = submitit.AutoExecutor(folder=tmp_path / "sub" / "%j", cluster="slurm")
        ex.update_parameters(**submitit_parameters(resolve_launch(SECTION), "evalkit-test"))
        text = ex._executor._make_submission_file_text("echo hi", "uid")
    finally:
        os.environ["PATH"] = old
    assert "#SBATCH --partition=gpu" in text and "#SBATCH --gpus-per-node=1" in text
    assert "#SBATCH --time=120" in text and "#SBATCH --signal=USR2@90" in text   # requeue signal


def test_dry_run_cli_prints_jobs_and_runs_nothing(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "evalkit.launch", "selftest", str(run_dir), "--items", "3",
                           "--launcher", "submitit", "--dry-run", "--set", "launch.partition=debug",
                           "--set", "launch.time_limit_min=5"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    jobs = [ln for ln in proc.stdout.splitlines() if ln.startswith("job ")]
    assert len(jobs) == 3 and all("--partition=debug" in ln and "--time=5" in ln for ln in jobs)
    assert json.loads(proc.stdout.splitlines()[-1])["dry_run"] is True
    assert not run_dir.exists()
