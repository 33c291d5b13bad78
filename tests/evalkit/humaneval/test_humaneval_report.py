"""Votes -> export run folder -> ``python -m evalkit report``: exact win rates, deterministic files, publish +
``--check``, and the paper's published numbers labelled as the paper's."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from evalkit.humaneval import db
from evalkit.humaneval.db import export
from evalkit.humaneval.guard import host_names
from evalkit.humaneval.server import make_app
from evalkit.humaneval.study import load_study, scan_videos
from evalkit.report.cli import main as report_main


def cast_known_votes(study_path: Path, plan: dict[str, dict[str, list[str]]]) -> tuple[object, Path]:
    """``plan[rater][question]`` = the winner arm of each prompt in prompt order; votes are cast through the
    server as A/B/tie by looking up which side the winner was shown on."""
    study, path = load_study(study_path)
    inputs = scan_videos(study, path)
    db_path = path.parent / "study.sqlite"
    db.create(db_path, inputs)
    app = make_app(inputs, db_path, hosts=host_names("127.0.0.1", 8765))
    con = sqlite3.connect(db_path)
    for rater, by_q in plan.items():
        c = TestClient(app, base_url="http://127.0.0.1:8765")
        assert c.post("/api/login", json={"name": rater}).status_code == 200
        while not (item := c.get("/api/next").json())["done"]:
            left, right = con.execute("SELECT left_arm, right_arm FROM assignments a JOIN raters r USING (rater_id) "
                                      "WHERE r.name = ? AND item_id = ?", (rater, item["item"])).fetchone()
            k = list(inputs.prompts).index(item["prompt"])
            for q in study.question_ids():
                w = by_q.get(q, ["tie"] * len(inputs.prompts))[k]
                ans = "tie" if w == "tie" else "A" if w == left else "B"
                assert ans == "tie" or w == right or ans == "A"
                assert c.post("/api/vote", json={"item": item["item"], "question": q, "answer": ans}).status_code == 200
    return inputs, db_path


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """One exported study, rendered once into a temporary reports folder."""
    from conftest import write_clip

    root = tmp_path_factory.mktemp("study")
    prompts = ["p0", "p1", "p2", "p3"]
    (root / "prompts.txt").write_text("\n".join(prompts) + "\n")
    for arm, rgb in (("lingen", (230, 60, 40)), ("dit", (40, 110, 230))):
        (root / arm).mkdir()
        for p in prompts:
            write_clip(root / arm / f"{p}-0.mp4", rgb)
    (root / "study.yaml").write_text(json.dumps({"name": "fig8", "prompts": "prompts.txt", "paper_figure": "Fig. 8",
                                                 "arms": {"lingen": "lingen", "dit": "dit"}}))
    plan = {"ann": {"quality": ["lingen"] * 4, "motion_match": ["dit", "dit", "tie", "lingen"]},
            "ben": {"quality": ["lingen", "lingen", "lingen", "dit"], "motion_match": ["dit", "tie", "tie", "lingen"]}}
    inputs, db_path = cast_known_votes(root / "study.yaml", plan)
    run = export(inputs, db_path, root / "exports")
    reports = tmp_path_factory.mktemp("reports")
    assert report_main(["--reports-dir", str(reports), "--publish", str(run)]) == 0
    assert report_main(["--reports-dir", str(reports)]) == 0
    return run, reports


def test_export_records(published):
    run, _ = published
    man = json.loads((run / "manifest.json").read_text())
    assert man["experiment"] == "humaneval" and man["run_id"] == run.name and man["n_votes"] == 48
    assert man["study"]["report"]["ties"] == "half" and len(man["study_hash"]) == 64
    recs = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert len(recs) == 48 and {r["rater"] for r in recs} == {"r1", "r2"}           # pseudonyms, not names
    assert all(r["kind"] == "humaneval_vote" and r["x"] == "lingen" and r["y"] == "dit" for r in recs)
    assert all((r["winner"] == r["left"]) == (r["answer"] == "A") for r in recs)


def test_win_rates_are_exact(published):
    run, reports = published
    md = (reports / "humaneval" / run.name / "winrates.md").read_text()
    # quality: 7 lingen wins, 1 loss -> win 87.5 %, half-rule rate 87.5 %, net 75 %
    assert "| lingen vs dit | Quality | 8 | 4 | 2 | 87.5 | 0.0 | 12.5 | 87.5 |" in md and "| 75.0 |" in md
    # motion match: lingen 2, tie 3, dit 3 -> 25 / 37.5 / 37.5, rate (2 + 1.5) / 8 = 43.75
    assert "| lingen vs dit | Motion match | 8 | 4 | 2 | 25.0 | 37.5 | 37.5 | 43.8 |" in md
    # every other question: all ties -> 50 %
    assert md.count("| 0.0 | 100.0 | 0.0 | 50.0 |") == 4
    assert "Tie rule `half`" in md and "bootstrap over prompts" in md
    assert "the paper's Fig. 8 number: LinGen-4B vs DiT-4B, video quality: 75.6%" in md
    csv = (reports / "humaneval" / run.name / "fig_winrates.csv").read_text().splitlines()
    assert csv[0].startswith("comparison,x,y,question,label,group,n_votes")
    agree = (reports / "humaneval" / run.name / "agreement.md").read_text()
    # quality: raters agree on 3 of 4 items -> P-bar 0.75; categories x 7, y 1 -> Pe = (7/8)^2 + (1/8)^2
    pe = (7 / 8) ** 2 + (1 / 8) ** 2
    assert f"| Quality | 4 | 75.00 | {(0.75 - pe) / (1 - pe):.2f} |" in agree
    # the all-tie questions have no kappa (one category): a blank cell with the reason, never "nan"
    assert "| Frame consistency | 4 | 100.00 |  |" in agree and "nan" not in agree
    assert "Blank kappa is undefined (n/a): Frame consistency: every rating is in one category" in agree
    # 4 prompts are too few clusters for a trustworthy interval: the table says so
    assert "Warning: lingen vs dit: the interval resamples only 4 prompts (fewer than 20)" in md
    raters = (reports / "humaneval" / run.name / "raters.md").read_text()
    assert "| r1 | 24 | 24 |" in raters and "| r2 | 24 | 24 |" in raters


def test_render_is_deterministic_and_checked(published):
    """``report --check`` re-renders everything into a temporary folder and compares bytes with the published
    tree: passing means the humaneval tables and figures are byte-identical on a second render."""
    run, reports = published
    assert report_main(["--reports-dir", str(reports), "--check"]) == 0
    files = {p.name for p in (reports / "humaneval" / run.name).iterdir()}
    assert files == {f"{s}{e}" for s in ("winrates", "agreement", "raters") for e in (".md", ".tex")} | {
        f"fig_winrates{e}" for e in (".png", ".svg", ".csv")}
    index = (reports / "index.md").read_text()
    assert f"| humaneval | {run.name} |" in index and "Human preference win rates (fig8)" in index
    assert "no humaneval records" not in index


def test_paper_numbers_are_labelled_as_the_paper(tmp_path):
    from evalkit.report import humaneval

    arts = humaneval.paper_table(tmp_path)
    assert [a.stem for a in arts] == ["paper/human_eval"] and arts[0].sources == ("Abstract", "Fig. 8", "Fig. 9")
    md = (tmp_path / "paper" / "human_eval.md").read_text()
    for row in ("| Fig. 8 | LinGen-4B vs DiT-4B | video quality | 75.6 |", "| Fig. 9 | LinGen-4B vs Gen-3 | video "
                "quality | 50.5 |", "| Fig. 9 | LinGen-4B vs LumaLabs | video quality | 52.1 |",
                "| Fig. 9 | LinGen-4B vs Kling | video quality | 49.1 |"):
        assert row in md
    assert "Transcribed, not measured" in md and "variance of human evaluation is 3%" in md
    assert "not transcribed" in md and "Fig. 12" in md and "Fig. 19" in md
