"""`python -m evalkit report`: deterministic rendering from fixture records, --check, --publish."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from evalkit.core.errors import EvalkitError
from evalkit.report.cli import main
from repo_paths import FIXTURES

FIX = FIXTURES / "report" / "scaling"
RUNS = [FIX / "fixture-cpu", FIX / "fixture-gpu"]


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("render1")
    assert main([*map(str, RUNS), "--out", str(out)]) == 0
    return out


def test_render_is_byte_identical(rendered, tmp_path):
    assert main([*map(str, RUNS), "--out", str(tmp_path)]) == 0
    a, b = _files(rendered), _files(tmp_path)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    for stem in ("cost/fig_flops_scaling_scaling-4b", "train/fig_loss"):
        assert {f"{stem}.png", f"{stem}.svg", f"{stem}.csv"} <= a.keys()


def test_report_contents(rendered):
    index = (rendered / "index.md").read_text()
    assert "fixture-cpu" in index and "f" * 40 in index and "e" * 40 in index  # git sha from the manifests
    pvm = (rendered / "paper_vs_measured.md").read_text()
    assert "SYNTHETIC-GPU" in pvm and "not measured" in pvm                   # latency only where recorded
    csv = (rendered / "cost" / "fig_flops_scaling_scaling-4b.csv").read_text().splitlines()
    assert csv[0].startswith("model,flavor,resolution,duration_s,num_tokens,video_flops")
    t2 = (rendered / "cost" / "table2_ablation.md").read_text()
    assert "| LinGen w/o TESA | lingen-no-tesa |" in t2 and "| -7.00 |" in t2
    assert (rendered / "cost" / "table2_ablation.tex").read_text().count(r"\toprule") == 1
    vb = (rendered / "vbench" / "standard_quality.md").read_text()
    assert "PARTIAL" in vb and "LinGen (paper table4)" in vb
    assert "DOES NOT REPRODUCE" in (rendered / "paper" / "integrity_check.md").read_text()
    assert b"Software" not in (rendered / "cost" / "fig_flops_scaling_scaling-4b.png").read_bytes()


def test_check_and_publish(tmp_path, capsys):
    reports = tmp_path / "reports"
    for run in RUNS:
        assert main(["--reports-dir", str(reports), "--publish", str(run)]) == 0
    assert sorted(p.name for p in (reports / "data" / "scaling").iterdir()) == ["fixture-cpu", "fixture-gpu"]
    assert main(["--reports-dir", str(reports), "--publish", str(RUNS[0])]) == 0   # same copy: no-op
    assert main(["--reports-dir", str(reports)]) == 0
    assert main(["--reports-dir", str(reports), "--check"]) == 0
    # stale: one committed file edited by hand
    md = reports / "paper_vs_measured.md"
    md.write_text(md.read_text() + "hand edit\n")
    (reports / "stray.md").write_text("x")
    (reports / "cost" / "table2_ablation.tex").unlink()
    capsys.readouterr()
    assert main(["--reports-dir", str(reports), "--check"]) == 1
    err = capsys.readouterr().err
    assert "stale: reports/paper_vs_measured.md" in err
    assert "extra: reports/stray.md" in err and "missing: reports/cost/table2_ablation.tex" in err
    # a different run under an existing run id is refused
    other = tmp_path / "other"
    shutil.copytree(RUNS[0], other)
    with open(other / "results.jsonl", "a") as fh:
        fh.write("{}\n")
    with pytest.raises(EvalkitError, match="different copy"):
        main(["--reports-dir", str(reports), "--publish", str(other)])


def test_report_never_imports_models(tmp_path):
    import subprocess
    code = ("import sys; from evalkit.report.cli import main; main(['--out', sys.argv[1]]); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('lingen', 'baselines', 'torch')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)


def test_publish_refuses_smoke_run(tmp_path):
    import json
    run = tmp_path / "runs" / "scaling" / "smoke-run"
    shutil.copytree(RUNS[0], run)
    m = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**m, "smoke": True, "run_id": "smoke-run"}))
    with pytest.raises(EvalkitError, match="smoke"):
        main(["--reports-dir", str(tmp_path / "reports"), "--publish", str(run)])
    assert main(["--reports-dir", str(tmp_path / "reports"), "--publish", str(run), "--allow-smoke"]) == 0
    assert (tmp_path / "reports" / "data" / "scaling" / "smoke-run" / "results.jsonl").is_file()


def test_two_runs_of_one_experiment_are_not_mixed(tmp_path):
    import json
    newer = tmp_path / "scaling" / "fixture-cpu2"
    shutil.copytree(RUNS[0], newer)
    m = json.loads((newer / "manifest.json").read_text())
    (newer / "manifest.json").write_text(json.dumps({**m, "run_id": "fixture-cpu2"}))
    from evalkit.report import cost
    from evalkit.report.runs import load_run, records_frame
    runs = [load_run(RUNS[0]), load_run(newer)]
    out = tmp_path / "out"
    arts = cost.scaling(records_frame(runs), runs, out)
    assert {a.runs for a in arts} == {(("scaling", "fixture-cpu2", "f" * 40),)}   # figure + ratio table
    rows = (out / "cost" / "fig_flops_scaling_scaling-4b.csv").read_text().splitlines()[1:]
    assert rows and all(r.split(",")[7] == "fixture-cpu2" for r in rows)


def test_failed_render_leaves_the_committed_reports_untouched(tmp_path, monkeypatch):
    reports = tmp_path / "reports"
    assert main(["--reports-dir", str(reports), "--publish", str(RUNS[0])]) == 0
    assert main(["--reports-dir", str(reports)]) == 0
    before = {p: p.read_bytes() for p in reports.rglob("*") if p.is_file()}
    import evalkit.report.build as report_build   # report.cli imports it where it renders (fast --help)

    def broken(out, run_dirs):
        (Path(out) / "partial.md").write_text("half")
        raise RuntimeError("render failed")
    monkeypatch.setattr(report_build, "build", broken)
    with pytest.raises(RuntimeError, match="render failed"):
        main(["--reports-dir", str(reports)])
    assert {p: p.read_bytes() for p in reports.rglob("*") if p.is_file()} == before


def test_per_video_cost_needs_steps_and_cfg_factor():
    """A record without steps/cfg_factor gets no per-video FLOPs (NaN, rendered empty), never a guessed factor 1."""
    import math

    import pandas as pd

    from evalkit.report.cost import measurement

    base = {"kind": "cost", "measurement": "flops", "status": "ok", "flops": 10.0}
    df = pd.DataFrame([{**base, "steps": 50, "cfg_factor": 2}, {**base, "steps": None, "cfg_factor": 2}])
    out = measurement(df, "flops")["video_flops"].tolist()
    assert out[0] == 1000.0 and math.isnan(out[1])
