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


TINY = """kind: sweep
name: tinypub
models: [lingen, dit]
flavors: [tiny]
resolutions: {64p: [64, 112]}
durations_s: [1]
measurements: [flops]
flops: {fvcore: false}
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A real, publishable run (a two-point FLOPs sweep of the tiny models on the meta device): publishing
    verifies every record and the manifest, so the synthetic fixtures above can be rendered but not published."""
    from evalkit.sweep.cli import main as sweep_main

    root = tmp_path_factory.mktemp("tinypub")
    (root / "tinypub.yaml").write_text(TINY)
    assert sweep_main([str(root / "tinypub.yaml"), "--runs-root", str(root / "runs"), "--no-progress",
                       "--no-plots"]) == 0
    (run,) = (root / "runs" / "tinypub").iterdir()
    return run


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


def test_check_and_publish(tmp_path, capsys, tiny_run):
    reports = tmp_path / "reports"
    assert main(["--reports-dir", str(reports), "--publish", str(tiny_run)]) == 0
    assert [p.name for p in (reports / "data" / "tinypub").iterdir()] == [tiny_run.name]
    assert main(["--reports-dir", str(reports), "--publish", str(tiny_run)]) == 0   # same copy: no-op
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
    shutil.copytree(tiny_run, other)
    lines = (other / "results.jsonl").read_text().splitlines()
    (other / "results.jsonl").write_text("\n".join(lines[:1]) + "\n")   # one record fewer: still valid
    with pytest.raises(EvalkitError, match="different copy"):
        main(["--reports-dir", str(reports), "--publish", str(other)])


def test_report_never_imports_models(tmp_path):
    import subprocess
    code = ("import sys; from evalkit.report.cli import main; main(['--out', sys.argv[1]]); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('lingen', 'baselines', 'torch')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)


def test_publish_refuses_smoke_run(tmp_path, tiny_run):
    import json
    run = tmp_path / "runs" / "tinypub" / "smoke-run"
    shutil.copytree(tiny_run, run)
    m = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**m, "smoke": True, "run_id": "smoke-run"}))
    with pytest.raises(EvalkitError, match="smoke"):
        main(["--reports-dir", str(tmp_path / "reports"), "--publish", str(run)])
    assert main(["--reports-dir", str(tmp_path / "reports"), "--publish", str(run), "--allow-smoke"]) == 0
    assert (tmp_path / "reports" / "data" / "tinypub" / "smoke-run" / "results.jsonl").is_file()


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


def test_failed_render_leaves_the_committed_reports_untouched(tmp_path, monkeypatch, tiny_run):
    reports = tmp_path / "reports"
    assert main(["--reports-dir", str(reports), "--publish", str(tiny_run)]) == 0
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


# ---- publishing verifies what it publishes; the published data is digested and checked --------------------------
def _edit_record(run: Path, key_part: str, **changes) -> str:
    import json
    path = run / "results.jsonl"
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    (rec,) = [r for r in recs if key_part in r["key"]]
    rec.update(changes)
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in recs))
    return rec["key"]


def _edit_manifest(run: Path, **changes) -> None:
    import json
    m = json.loads((run / "manifest.json").read_text())
    for k, v in changes.items():
        if isinstance(v, dict) and isinstance(m.get(k), dict):
            m[k].update(v)
        else:
            m[k] = v
    (run / "manifest.json").write_text(json.dumps(m, indent=2))


@pytest.mark.parametrize("edit, fields", [
    # the case: one record's flops halved, flops_agree left true
    ("flops", ("flops_rel_diff", "flops_agree", "status")),
    # halved and made self-consistent: the model config still says otherwise
    ("flops_consistent", ("flops_analytic",)),
    ("params", ("params",)),
    ("key", ("key",)),
])
def test_publish_refuses_an_edited_record(tmp_path, tiny_run, edit, fields):
    import json
    run = tmp_path / "runs" / "tinypub" / tiny_run.name
    shutil.copytree(tiny_run, run)
    rec = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()
           if json.loads(line)["model"] == "lingen"][0]
    changes = {"flops": {"flops": rec["flops"] // 2},
               "flops_consistent": {"flops": rec["flops"] // 2, "flops_analytic": rec["flops"] // 2},
               "params": {"params": rec["params"] + 1},
               "key": {"key": rec["key"].replace("b1", "b2")}}[edit]
    key = _edit_record(run, "lingen/", **changes)
    reports = tmp_path / "reports"
    with pytest.raises(EvalkitError) as exc:
        main(["--reports-dir", str(reports), "--publish", str(run)])
    msg = str(exc.value)
    assert "fails verification" in msg and repr(key)[:60] in msg
    for f in fields:
        assert f"{f}:" in msg or f"{f} " in msg, (f, msg)
    assert not (reports / "data").exists() or not any((reports / "data").rglob("*.jsonl"))


@pytest.mark.parametrize("changes, field", [
    ({"git_sha": "0" * 40}, "git_sha"),
    ({"git_sha": "1234567"}, "git_sha"),
    ({"git_sha": "a" * 40}, "git_sha"),               # well-formed, not a commit of this repository
    ({"config": {"durations_s": [2.0]}}, "config_hash"),
    ({"config_hash": "0" * 12}, "config_hash"),
])
def test_publish_refuses_an_edited_manifest(tmp_path, tiny_run, changes, field):
    run = tmp_path / "runs" / "tinypub" / tiny_run.name
    shutil.copytree(tiny_run, run)
    _edit_manifest(run, **changes)
    with pytest.raises(EvalkitError, match=f"manifest.json: {field}"):
        main(["--reports-dir", str(tmp_path / "reports"), "--publish", str(run)])


def test_report_and_check_name_a_published_file_edited_afterwards(tmp_path, tiny_run, capsys):
    from evalkit.report.verify import SUMS, sums_problems
    reports = tmp_path / "reports"
    assert main(["--reports-dir", str(reports), "--publish", str(tiny_run)]) == 0
    data = reports / "data"
    listed = (data / SUMS).read_text()
    assert f"tinypub/{tiny_run.name}/results.jsonl" in listed and f"tinypub/{tiny_run.name}/manifest.json" in listed
    assert main(["--reports-dir", str(reports)]) == 0
    before = {p: p.read_bytes() for p in reports.rglob("*") if p.is_file() and data not in p.parents}
    published = data / "tinypub" / tiny_run.name
    _edit_record(published, "lingen/", flops=1)
    for argv in (["--check"], []):
        with pytest.raises(EvalkitError, match=f"edited: reports/data/tinypub/{tiny_run.name}/results.jsonl"):
            main(["--reports-dir", str(reports), *argv])
    assert {p: p.read_bytes() for p in reports.rglob("*") if p.is_file() and data not in p.parents} == before
    # a further run cannot be published over edited data either
    with pytest.raises(EvalkitError, match="edited: "):
        main(["--reports-dir", str(reports), "--publish", str(tiny_run)])
    # a file dropped in by hand, and one removed
    (published / "results.extra.jsonl").write_text("")
    (published / "manifest.json").unlink()
    probs = sums_problems(data)
    assert any(p.startswith("unlisted: ") and "results.extra.jsonl" in p for p in probs)
    assert any(p.startswith("missing: ") and "manifest.json" in p for p in probs)


def test_committed_data_matches_its_digests():
    """reports/data/SHA256SUMS lists every committed data file with its digest (what `report --check` checks)."""
    from evalkit.core.runs import REPO_ROOT
    from evalkit.report.verify import data_files, read_sums, sums_problems
    data = REPO_ROOT / "reports" / "data"
    assert sums_problems(data) == []
    assert sorted(read_sums(data)) == [p.as_posix() for p in data_files(data)]


def test_rehash_data_verifies_before_it_digests(tmp_path, tiny_run):
    from evalkit.report.verify import SUMS
    reports = tmp_path / "reports"
    assert main(["--reports-dir", str(reports), "--publish", str(tiny_run)]) == 0
    sums = (reports / "data" / SUMS).read_text()
    (reports / "data" / SUMS).unlink()                                  # data published before digests existed
    with pytest.raises(EvalkitError, match="unlisted: .*--rehash-data"):
        main(["--reports-dir", str(reports), "--check"])
    assert main(["--reports-dir", str(reports), "--rehash-data"]) == 0
    assert (reports / "data" / SUMS).read_text() == sums
    _edit_record(reports / "data" / "tinypub" / tiny_run.name, "lingen/", flops=1)
    with pytest.raises(EvalkitError, match="fails verification"):          # an edit is never blessed
        main(["--reports-dir", str(reports), "--rehash-data"])
    assert (reports / "data" / SUMS).read_text() == sums
