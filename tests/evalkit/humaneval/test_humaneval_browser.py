"""End to end in a real browser: Debian's chromium, headless, driven by Playwright, against a real uvicorn.

Sign in, check both videos play in sync and loop, vote with clicks and with keys, reload and resume, kill the
server with SIGKILL mid-study and restart it, finish; then assert the rows in SQLite and the win rates the
report computes. A screenshot is kept in runs/test-artifacts/. Run with ``pytest -m browser`` (CI installs
chromium and the ``browser`` extra); without them this test fails, it never skips.
"""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from evalkit.core.runs import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = REPO_ROOT / "runs" / "test-artifacts"
QUESTIONS = ["quality", "frame_consistency", "motion_naturalness", "motion_match", "subject_match",
             "overall_alignment"]
# the winner every rater should pick, per question (everything else: tie)
PLAN = {"quality": "lingen", "motion_match": "dit"}


def _sides(db_path: Path, item: str) -> tuple[str, str]:
    con = sqlite3.connect(db_path)
    try:
        return con.execute("SELECT left_arm, right_arm FROM assignments WHERE item_id = ?", (item,)).fetchone()
    finally:
        con.close()


def _answer(db_path: Path, item: str, question: str) -> str:
    left, _ = _sides(db_path, item)
    w = PLAN.get(question, "tie")
    return "tie" if w == "tie" else "A" if w == left else "B"


KEY = {"A": "a", "B": "ArrowRight", "tie": "t"}


def wait_js(page, expression: str, timeout_s: float = 20.0):
    """Poll a JavaScript expression until it is truthy. Playwright's ``wait_for_function`` evaluates its string
    with ``eval`` inside the page, which the page's Content-Security-Policy (no 'unsafe-eval') refuses, as it
    should; ``page.evaluate`` runs through the DevTools protocol and is not subject to it."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        value = page.evaluate(f"() => ({expression})")
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {expression}")
        page.wait_for_timeout(50)


def signed_in_page(pw, profile: Path, url: str, viewport: dict[str, int], name: str = "alice"):
    """Headless Chromium with its own profile at VIEWPORT, signed in to the study at URL as NAME: (context, page)."""
    ctx = pw.chromium.launch_persistent_context(str(profile), executable_path=str(CHROMIUM), headless=True,
                                                args=FLAGS, viewport=viewport)
    page = ctx.pages[0] if ctx.pages else ctx.new_page()
    page.set_default_timeout(20_000)
    page.goto(url + "/")
    page.fill("#name", name)
    page.click("#login-form button")
    page.wait_for_selector("#study:not([hidden])")
    return ctx, page


@pytest.mark.browser
def test_rate_a_study_in_chromium(make_study, servers, tmp_path):
    assert CHROMIUM.exists(), f"{CHROMIUM} missing: apt-get install -y chromium chromium-driver"
    from playwright.sync_api import sync_playwright   # the browser extra: pip install -e ".[browser]"

    study = make_study(prompts=("a red fox running", "a blue car", "a cat"))
    db_path = study.parent / "study.sqlite"
    server = servers(study, db_path).start()
    with sync_playwright() as pw:
        ctx, page = signed_in_page(pw, tmp_path / "profile", server.url, {"width": 1100, "height": 900})

        # 1. both videos play, stay in sync, loop (12 frames at 8 fps = 1.5 s; wait past the end)
        wait_js(page, "[vA, vB].every(v => v.readyState >= 2 && !v.paused && v.currentTime > 0.2)")
        page.wait_for_timeout(2200)
        st = page.evaluate("[vA, vB].map(v => ({t: v.currentTime, d: v.duration, paused: v.paused, loop: v.loop, "
                           "w: v.videoWidth, err: v.error && v.error.code}))")
        assert all(s["loop"] and not s["paused"] and s["err"] is None and s["w"] == 64 for s in st), st
        assert all(s["t"] < s["d"] for s in st), st                     # past 2.2 s of a 1.5 s clip: it looped
        assert abs(st[0]["t"] - st[1]["t"]) < 0.3, st
        page.evaluate("vA.currentTime = (vA.currentTime + 0.7) % vA.duration")   # A jumps: B must follow
        page.wait_for_timeout(700)
        drift = page.evaluate("Math.abs(vA.currentTime - vB.currentTime)")
        assert drift < 0.25, drift
        assert page.text_content("#progress").startswith("Item 1 of 3")

        def item_id() -> str:
            return page.evaluate("ui.item.item")

        def wait_answers(n: int) -> None:
            wait_js(page, f"document.querySelectorAll('#questions .chosen').length === {n}")

        # 2. item 1: three answers by click, three by keys (each key goes to the focused question, which moves on)
        first = item_id()
        for k, q in enumerate(QUESTIONS[:3]):
            page.click(f"li[data-question={q}] button[data-answer={_answer(db_path, first, q)}]")
            wait_answers(k + 1)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "humaneval-page.png"))
        for k, q in enumerate(QUESTIONS[3:]):
            page.keyboard.press(KEY[_answer(db_path, first, q)])
            wait_answers(k + 4)
        assert page.text_content("#progress").startswith("Item 1 of 3 \u00b7 6 / 18 answers")
        page.keyboard.press("Enter")
        wait_js(page, f"ui.item && ui.item.item !== '{first}'")

        # 3. item 2: three answers, then reload: the page resumes on item 2 with those answers
        second = item_id()
        for k, q in enumerate(QUESTIONS[:3]):
            page.keyboard.press(str(k + 1))                            # pick the question by number
            page.keyboard.press(KEY[_answer(db_path, second, q)])
            wait_answers(k + 1)
        page.reload()
        page.wait_for_selector("#study:not([hidden])")
        wait_answers(3)
        assert item_id() == second and page.text_content("#progress").startswith("Item 2 of 3")

        # 4. the server dies (SIGKILL) and comes back on the same port: nothing lost, the page resumes
        server.kill9()
        server = servers(study, db_path, port=server.port).start()
        page.reload()
        page.wait_for_selector("#study:not([hidden])")
        wait_answers(3)
        assert item_id() == second
        for k, q in enumerate(QUESTIONS[3:]):
            page.click(f"li[data-question={q}] button[data-answer={_answer(db_path, second, q)}]")
            wait_answers(k + 4)
        page.click("#next")
        wait_js(page, f"ui.item && ui.item.item !== '{second}'")

        # 5. item 3 by keys only (focus starts on the first open question), then done
        third = item_id()
        for k, q in enumerate(QUESTIONS):
            page.keyboard.press(KEY[_answer(db_path, third, q)])
            wait_answers(k + 1)
        page.keyboard.press("Enter")
        page.wait_for_selector("#done:not([hidden])")
        assert page.text_content("#progress") == "3 of 3 items done"
        ctx.close()

    # 6. the rows in SQLite: one effective vote per (item, question), each stored with the order shown
    con = sqlite3.connect(db_path)
    con.row_factory = sqlite3.Row
    rows = con.execute("SELECT v.*, i.arm_x, i.arm_y FROM votes v JOIN items i USING (item_id)").fetchall()
    assert len(rows) == 18 and len({(r["item_id"], r["question"]) for r in rows}) == 18
    assert {r["item_id"] for r in rows} == {first, second, third}
    for r in rows:
        assert r["winner"] == PLAN.get(r["question"], "tie"), dict(r)
        assert r["winner"] == {"A": r["left_arm"], "B": r["right_arm"], "tie": "tie"}[r["answer"]]
        assert (r["left_arm"], r["right_arm"]) == _sides(db_path, r["item_id"])
        assert r["shown_at"] and r["cast_at"] >= r["shown_at"] and r["client_ms"] >= 0
    # left/right is balanced per rater (half the items show the reference on the left): both orders occur
    assert len({r["left_arm"] for r in rows}) == 2

    # 7. the win rates the report computes from them
    from evalkit.humaneval import stats
    from evalkit.humaneval.cli import main as he_main
    from evalkit.core.typed import to_dict
    from evalkit.humaneval.study import load_study

    server.stop()
    out = tmp_path / "exports"
    assert he_main(["report", str(study), "--db", str(db_path), "--out", str(out)]) == 0
    run = next(out.iterdir())
    recs = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    rates = {r["question"]: r for r in stats.winrates(recs, to_dict(load_study(study)[0]))}
    assert rates["quality"]["win_rate"] == 1.0 and rates["quality"]["n_votes"] == 3
    assert rates["motion_match"]["win_rate"] == 0.0 and rates["motion_match"]["loss_share"] == 1.0
    assert all(rates[q]["win_rate"] == 0.5 and rates[q]["tie_share"] == 1.0 for q in QUESTIONS
               if q not in PLAN)
    shutil.copy(ARTIFACTS / "humaneval-page.png", tmp_path / "page.png")   # also kept with the test's tmp files
