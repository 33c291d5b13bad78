"""The rating page in a real browser (Debian's chromium via Playwright, as test_humaneval_browser.py), on what a
rater could get wrong or never see, and on what another page in the same browser could do:

- at 1366x768 (and 1366x657, a maximised browser on such a screen) every question, the key legend and the Next
  button are on screen without scrolling; on a 390-px phone nothing sticks out sideways; the page says who is signed in;
- the arrow keys: up / down only move between questions (never cast), left / right cast A / B;
- a vote that cannot be saved (server killed) or that the server refuses (the item was left in another tab)
  shows its error inside the window;
- pages on other origins of the same machine (127.0.0.1 on another port, and ``localhost``) cannot vote, sign
  in or frame the page for a signed-in rater, in the same browser.

Screenshots (1366x768, 1366x657, the error, 390 px) are kept in runs/test-artifacts/.
"""
from __future__ import annotations

import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_humaneval_browser import ARTIFACTS, CHROMIUM, QUESTIONS, signed_in_page, wait_js

ATTACK = """<!doctype html><html><body>
<form id="f" method="POST" action="{target}/api/vote" enctype="text/plain" target="sink">
<input name='{{"item": "{item}", "question": "{question}", "answer": "B", "pad": "' value='"}}'></form>
<iframe name="sink"></iframe><iframe id="framed" src="{target}/"></iframe>
<script>
const vote = JSON.stringify({{item: "{item}", question: "{question}", answer: "B"}});
const opts = (type, body) => ({{method: "POST", credentials: "include", headers: {{"Content-Type": type}}, body}});
(async () => {{
  await Promise.allSettled([
    fetch("{target}/api/vote", {{mode: "no-cors", ...opts("text/plain", vote)}}),
    fetch("{target}/api/vote", opts("application/json", vote)),
    fetch("{target}/api/login", {{mode: "no-cors", ...opts("text/plain", JSON.stringify({{name: "mallory"}}))}}),
    fetch("{target}/api/next", {{mode: "no-cors", credentials: "include"}}),
  ]);
  document.querySelector("iframe[name=sink]").addEventListener("load", () => {{ document.title = "done"; }});
  document.getElementById("f").submit();
}})();
</script></body></html>"""


class Attacker:
    """Another web server on this machine (127.0.0.1:<its own port>) serving one page that tries to vote."""

    def __init__(self) -> None:
        pages: dict[str, bytes] = {}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = pages.get(self.path.split("?")[0], b"")
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.pages = pages
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def page(self, name: str, html: str) -> str:
        self.pages[f"/{name}"] = html.encode()
        return f"/{name}"


def _rows(db_path: Path) -> list[tuple[str, str, str]]:
    con = sqlite3.connect(db_path)
    try:
        return con.execute("SELECT item_id, question, answer FROM votes ORDER BY vote_id").fetchall()
    finally:
        con.close()


def _visible_box(page, selector: str) -> dict:
    return page.evaluate("(s) => { const r = document.querySelector(s).getBoundingClientRect(); return {top: r.top, "
                         "bottom: r.bottom, left: r.left, right: r.right, w: innerWidth, h: innerHeight}; }",
                         selector)


def _on_screen(box: dict) -> bool:
    return box["top"] >= 0 and box["left"] >= 0 and box["bottom"] <= box["h"] and box["right"] <= box["w"]


OVERFLOW = """() => {
  const w = document.documentElement.clientWidth;
  const out = [...document.querySelectorAll("body *")].filter((e) => e.getClientRects().length)
    .map((e) => [e.tagName + (e.id ? "#" + e.id : ""), e.getBoundingClientRect()])
    .filter(([, r]) => r.width > 0 && (r.right > w + 0.5 || r.left < -0.5)).map(([n, r]) => `${n} ${r.left}-${r.right}`);
  return {scroll: document.documentElement.scrollWidth, width: w, inner: innerWidth, out};
}"""


@pytest.mark.browser
def test_page_layout_keys_errors_and_other_origins(make_study, servers, tmp_path):
    assert CHROMIUM.exists(), f"{CHROMIUM} missing: apt-get install -y chromium chromium-driver"
    from playwright.sync_api import sync_playwright   # the browser extra: pip install -e ".[browser]"

    study = make_study(prompts=("a red fox running through a snowy forest at dawn", "a blue car", "a cat"))
    db_path = study.parent / "study.sqlite"
    server = servers(study, db_path).start()
    attacker = Attacker()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        ctx, page = signed_in_page(pw, tmp_path / "profile", server.url, {"width": 1366, "height": 768})
        wait_js(page, "[vA, vB].every(v => v.readyState >= 2)")

        # 1. who is signed in; at 1366x768 the whole task is on screen, nothing wider than the window
        assert page.is_visible("#whoami") and page.text_content("#whoami").strip() == "Signed in as alice"
        for height in (768, 657):          # 657: inside a maximised browser on a 1366x768 screen
            page.set_viewport_size({"width": 1366, "height": height})
            page.wait_for_timeout(200)
            for sel in ("#prompt", "#vA", "#vB", "#questions li:last-child", "#keys", "#next"):
                box = _visible_box(page, sel)
                assert _on_screen(box), (height, sel, box)
            assert _visible_box(page, "#vA")["bottom"] - _visible_box(page, "#vA")["top"] >= 150
            ov = page.evaluate(OVERFLOW)
            assert ov["scroll"] <= ov["width"] and not ov["out"], ov
            page.screenshot(path=str(ARTIFACTS / f"humaneval-1366x{height}.png"))
        page.set_viewport_size({"width": 1366, "height": 768})

        # 2. arrows: up / down move the focus and cast nothing; left / right cast A / B on the focused question
        def focus() -> int:
            return page.evaluate("[...document.querySelectorAll('#questions li')].findIndex(li => "
                                 "li.classList.contains('focus'))")

        def chosen(n: int) -> None:
            wait_js(page, f"document.querySelectorAll('#questions .chosen').length === {n}")

        item1 = page.evaluate("ui.item.item")
        assert focus() == 0
        for key, want in (("ArrowDown", 1), ("ArrowDown", 2), ("ArrowUp", 1)):
            page.keyboard.press(key)
            assert focus() == want
        page.wait_for_timeout(300)
        assert _rows(db_path) == [] and page.evaluate("document.querySelectorAll('#questions .chosen').length") == 0
        page.keyboard.press("ArrowLeft")                        # A on question 2
        chosen(1)
        assert focus() == 2
        page.keyboard.press("ArrowRight")                       # B on question 3
        chosen(2)
        page.keyboard.press("ArrowDown")                        # from 4 to 5, then tie by T
        page.keyboard.press("t")
        chosen(3)
        assert _rows(db_path) == [(item1, "frame_consistency", "A"), (item1, "motion_naturalness", "B"),
                                  (item1, "subject_match", "tie")]

        # 3. other origins in the same browser, with the rater signed in: nothing stored, nothing framed
        #    (127.0.0.1:<other port> is the same *site*, so the SameSite cookie goes with its requests; localhost
        #    is another site). The rater also signs in by the other name (localhost), attacked from localhost too.
        page2 = ctx.new_page()
        page2.goto(server.url.replace("127.0.0.1", "localhost") + "/")
        page2.fill("#name", "alice")
        page2.click("#login-form button")
        page2.wait_for_selector("#study:not([hidden])")
        page2.close()
        before = _rows(db_path)
        for origin, target in ((f"http://127.0.0.1:{attacker.port}", server.url),
                               (f"http://localhost:{attacker.port}", server.url),
                               (f"http://localhost:{attacker.port}", server.url.replace("127.0.0.1", "localhost"))):
            html = ATTACK.format(target=target, item=item1, question="quality")
            evil = ctx.new_page()
            evil.goto(origin + attacker.page(f"attack-{len(attacker.pages)}.html", html))
            wait_js(evil, "document.title === 'done'")
            framed = [f for f in evil.frames if f.parent_frame is not None and f.name != "sink"]
            assert framed and all(f.evaluate("() => !document.getElementById('study')") for f in framed), origin
            evil.close()
            assert _rows(db_path) == before, origin
        con = sqlite3.connect(db_path)
        assert con.execute("SELECT name FROM raters").fetchall() == [("alice",)]
        con.close()

        # 4. a vote that cannot be saved: the server is gone; the error shows inside the window, on top
        server.kill9()
        page.click("li[data-question=quality] button[data-answer=A]")
        wait_js(page, "document.getElementById('error').textContent.startsWith('Not saved')")
        box = _visible_box(page, "#error")
        assert _on_screen(box) and box["bottom"] - box["top"] > 10, box
        assert page.evaluate("(() => { const r = document.getElementById('error').getBoundingClientRect(); "
                             "const e = document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2);"
                             " return e && e.closest('#error') !== null; })()")
        page.screenshot(path=str(ARTIFACTS / "humaneval-error.png"))
        server = servers(study, db_path, port=server.port).start()
        page.click("li[data-question=quality] button[data-answer=A]")
        wait_js(page, "document.querySelector('li[data-question=quality] button[data-answer=A].chosen') !== null")
        assert page.text_content("#error") == "" and not page.is_visible("#error") and _rows(db_path)[-1] == (item1, "quality", "A")

        # 5. a vote the server refuses: the item was finished and left in another tab; this tab shows why and
        #    moves to the current item
        tab = ctx.new_page()
        tab.goto(server.url + "/")
        tab.wait_for_selector("#study:not([hidden])")
        for q in QUESTIONS:
            tab.click(f"li[data-question={q}] button[data-answer=tie]")
            wait_js(tab, f"document.querySelector('li[data-question={q}] .chosen') !== null")
        tab.keyboard.press("Enter")
        wait_js(tab, f"ui.item && ui.item.item !== '{item1}'")
        item2 = tab.evaluate("ui.item.item")
        tab.close()
        n = len(_rows(db_path))
        page.click("li[data-question=quality] button[data-answer=B]")
        wait_js(page, "document.getElementById('error').textContent.includes('moved on')")
        assert _on_screen(_visible_box(page, "#error"))
        wait_js(page, f"ui.item && ui.item.item === '{item2}'")
        assert len(_rows(db_path)) == n

        # 6. a 390-px phone: nothing sticks out sideways, the rater's name still shows
        page.set_viewport_size({"width": 390, "height": 844})
        page.wait_for_timeout(300)
        ov = page.evaluate(OVERFLOW)
        assert ov["inner"] == 390 and ov["scroll"] <= ov["width"] and not ov["out"], ov
        assert page.is_visible("#whoami") and _on_screen(_visible_box(page, "#whoami"))
        page.screenshot(path=str(ARTIFACTS / "humaneval-390.png"), full_page=True)
        ctx.close()
    attacker.httpd.shutdown()
