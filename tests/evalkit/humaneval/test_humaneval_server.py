"""The rating server and its database through Starlette's test client: blind pages, votes written as cast with
the order shown, resume, tokens, and bad input (../ paths, a forged token, an unknown item,
two raters at once)."""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from evalkit.core.errors import EvalkitError
from evalkit.humaneval import db
from evalkit.humaneval.guard import host_names
from evalkit.humaneval.server import make_app
from evalkit.humaneval.study import load_study, scan_videos

URL = "http://127.0.0.1:8765"
HOSTS = host_names("127.0.0.1", 8765)
QUESTIONS = ["quality", "frame_consistency", "motion_naturalness", "motion_match", "subject_match",
             "overall_alignment"]


def _setup(study_path: Path, public: bool = False):
    study, path = load_study(study_path)
    inputs = scan_videos(study, path)
    db_path = path.parent / "study.sqlite"
    db.create(db_path, inputs)
    return inputs, db_path, TestClient(make_app(inputs, db_path, hosts=HOSTS, public=public), base_url=URL)


def _login(client: TestClient, name: str) -> None:
    r = client.post("/api/login", json={"name": name})
    assert r.status_code == 200, r.text


def test_page_is_blind_and_votes_are_stored_as_cast(make_study):
    inputs, db_path, client = _setup(make_study())
    assert client.get("/api/next").status_code == 401            # not signed in
    page = client.get("/")
    assert page.status_code == 200 and "Which video is better?" in page.text
    _login(client, "alice")
    item = client.get("/api/next").json()
    assert item["done"] is False and item["prompt"] in inputs.prompts
    assert item["progress"] == {"items_done": 0, "items_total": 3, "answers": 0, "answers_total": 18}
    blob = str(item) + client.get("/api/state").text
    for secret in ("lingen", "dit", ".mp4", str(inputs.folders["lingen"])):  # no model, file or folder names
        assert secret not in blob
    for side in ("A", "B"):
        v = client.get(item["videos"][side])
        assert v.status_code == 200 and v.headers["content-type"] == "video/mp4" and v.content[4:8] == b"ftyp"
    r = client.post("/api/vote", json={"item": item["item"], "question": "quality", "answer": "A", "client_ms": 1234})
    assert r.status_code == 200 and r.json()["answers"] == {"quality": "A"}
    con = sqlite3.connect(db_path)
    row = con.execute("SELECT v.*, a.left_arm AS al, a.right_arm AS ar, a.first_shown FROM votes v JOIN assignments "
                      "a USING (rater_id, item_id)").fetchone()
    cols = [d[0] for d in con.execute("SELECT v.*, a.left_arm AS al, a.right_arm AS ar, a.first_shown FROM votes "
                                      "v JOIN assignments a USING (rater_id, item_id)").description]
    row = dict(zip(cols, row))
    assert row["rater_id"] == "r1" and row["answer"] == "A" and row["client_ms"] == 1234
    assert {row["left_arm"], row["right_arm"]} == {"lingen", "dit"}
    assert row["left_arm"] == row["al"] and row["winner"] == row["left_arm"]   # A = the left video as shown
    assert row["shown_at"] == row["first_shown"] and row["cast_at"] >= row["shown_at"]
    # the video ids shown are exactly the left and right arms' files of this item
    vids = {r[0]: r[1] for r in con.execute("SELECT video_id, arm FROM videos")}
    assert vids[item["videos"]["A"].rsplit("/", 1)[1]] == row["left_arm"]
    assert vids[item["videos"]["B"].rsplit("/", 1)[1]] == row["right_arm"]
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_resume_changed_answer_and_done(make_study):
    _, db_path, client = _setup(make_study(prompts=("p one", "p two")))
    _login(client, "bob")
    first = client.get("/api/next").json()
    for q in QUESTIONS[:3]:
        client.post("/api/vote", json={"item": first["item"], "question": q, "answer": "tie"})
    # a reload (new client, same cookie jar) or a new sign-in with the same name resumes on the same item
    again = client.get("/api/next").json()
    assert again["item"] == first["item"] and again["videos"] == first["videos"]
    assert again["answers"] == {q: "tie" for q in QUESTIONS[:3]}
    other = TestClient(client.app, base_url=URL)
    _login(other, "bob")
    assert other.get("/api/next").json()["item"] == first["item"]
    # changing an answer adds a row; the latest one counts
    client.post("/api/vote", json={"item": first["item"], "question": "quality", "answer": "B"})
    for q in QUESTIONS[3:]:
        client.post("/api/vote", json={"item": first["item"], "question": q, "answer": "A"})
    second = client.get("/api/next").json()
    assert second["item"] != first["item"] and second["progress"]["items_done"] == 1
    for q in QUESTIONS:
        client.post("/api/vote", json={"item": second["item"], "question": q, "answer": "B"})
    assert client.get("/api/next").json() == {"done": True, "progress": {"items_done": 2, "items_total": 2,
                                                                         "answers": 12, "answers_total": 12}}
    con = sqlite3.connect(db_path)
    assert con.execute("SELECT COUNT(*) FROM votes").fetchone()[0] == 3 + 1 + 3 + 6
    eff = db.effective_votes(db.connect(db_path))
    assert len(eff) == 12
    q = [v for v in eff if v["item_id"] == first["item"] and v["question"] == "quality"][0]
    assert q["answer"] == "B" and q["revisions"] == 1


def test_bad_input_is_refused(make_study):
    inputs, db_path, client = _setup(make_study())
    _login(client, "carol")
    item = client.get("/api/next").json()
    # paths from the request never reach the file system
    from urllib.parse import quote

    names = [quote(v.path.name) for v in inputs.videos[:2]]             # real files of the arm folders
    for bad in ("/video/../study.yaml", "/video/..%2F..%2Fstudy.yaml", "/video/%2e%2e%2fprompts.txt",
                "/video/%2e%2e", "/video/" + str(inputs.videos[0].path), "/video/does-not-exist",
                *[f"/video/{n}" for n in names], "/video/..%2Fprompts.txt", "/static/../db.py",
                "/../../etc/passwd", "/app.js/../study.sqlite", "/index.html", "/static/app.js"):
        r = client.get(bad)
        assert r.status_code == 404, (bad, r.status_code)
        assert b"ftyp" not in r.content and b"name:" not in r.content
    # an unknown item, question or answer
    r = client.post("/api/vote", json={"item": "0123456789ab", "question": "quality", "answer": "A"})
    assert r.status_code == 404 and "not one of this rater's items" in r.json()["error"]
    r = client.post("/api/vote", json={"item": item["item"], "question": "qualty", "answer": "A"})
    assert r.status_code == 422 and "Did you mean 'quality'" in r.json()["error"]
    r = client.post("/api/vote", json={"item": item["item"], "question": "quality", "answer": "left"})
    assert r.status_code == 422 and "A, B, tie" in r.json()["error"]
    r = client.post("/api/vote", content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    # another rater's item is unknown to this one
    other = TestClient(client.app, base_url=URL)
    _login(other, "dave")
    con = sqlite3.connect(db_path)
    con.execute("DELETE FROM assignments WHERE rater_id = 'r2' AND item_id = ?", (item["item"],))
    con.commit()
    r = other.post("/api/vote", json={"item": item["item"], "question": "quality", "answer": "A"})
    assert r.status_code == 404
    assert con.execute("SELECT COUNT(*) FROM votes").fetchone()[0] == 0


def test_public_mode_needs_tokens(make_study):
    inputs, db_path, client = _setup(make_study(), public=True)
    assert client.post("/api/login", json={"name": "eve"}).status_code == 403      # no self sign-up
    conn = db.connect(db_path)
    rater, token = db.add_rater(conn, "frank")
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert client.get("/", params={"t": forged}).status_code == 401
    assert client.get("/api/next", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    client.cookies.set("humaneval_token", forged)
    assert client.get("/api/next").status_code == 401
    client.cookies.clear()
    r = client.get("/", params={"t": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/" and "humaneval_token" in r.headers["set-cookie"]
    client.cookies.set("humaneval_token", token)
    item = client.get("/api/next").json()
    assert client.get(item["videos"]["A"]).status_code == 200
    assert TestClient(client.app, base_url=URL).get(item["videos"]["A"]).status_code == 401       # videos need a token too
    # a reissued token replaces the old one
    new = db.new_token(conn, "frank", revoke_others=True)
    assert client.get("/api/next").status_code == 401
    assert client.get("/api/next", headers={"Authorization": f"Bearer {new}"}).status_code == 200
    with pytest.raises(EvalkitError, match="already exists"):
        db.add_rater(conn, "frank")


def test_two_raters_voting_at_once(make_study):
    _, db_path, client = _setup(make_study(prompts=[f"prompt {i}" for i in range(6)]))
    clients = {}
    for name in ("r-one", "r-two"):
        clients[name] = TestClient(client.app, base_url=URL)
        _login(clients[name], name)
    errors = []

    def rate_all(c: TestClient) -> None:
        try:
            while not (item := c.get("/api/next").json())["done"]:
                for q in QUESTIONS:
                    r = c.post("/api/vote", json={"item": item["item"], "question": q, "answer": "A"})
                    assert r.status_code == 200
        except Exception as exc:   # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=rate_all, args=(c,)) for c in clients.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    con = sqlite3.connect(db_path)
    per_rater = dict(con.execute("SELECT rater_id, COUNT(*) FROM votes GROUP BY rater_id").fetchall())
    assert per_rater == {"r1": 36, "r2": 36}
    assert con.execute("SELECT COUNT(DISTINCT rater_id || item_id || question) FROM votes").fetchone()[0] == 72


def test_changed_inputs_are_refused(make_study):
    from conftest import write_clip

    path = make_study()
    inputs, db_path, _ = _setup(path)
    # a video re-rendered after the study started: the votes were cast on the old file
    victim = inputs.videos[0]
    write_clip(victim.path, (255, 255, 0), frames=10)
    study, p = load_study(path)
    with pytest.raises(EvalkitError, match=r"different study .*1 video file\(s\) changed.*lingen/"):
        make_app(scan_videos(study, p), db_path, hosts=HOSTS)
    # other questions are a different study too
    write_clip(victim.path, (230, 60, 40))
    study2, _ = load_study(path, sets=["report.ties=exclude"])            # report settings: same study
    make_app(scan_videos(study2, p), db_path, hosts=HOSTS)
    study3, _ = load_study(path, sets=["seed=1"])
    with pytest.raises(EvalkitError, match="different study .*seed"):
        make_app(scan_videos(study3, p), db_path, hosts=HOSTS)


class Rater:
    """A rater talking to a real server over HTTP (stdlib only), keeping its cookie."""

    def __init__(self, url: str, name: str) -> None:
        import http.cookiejar
        import urllib.request

        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.call("/api/login", {"name": name})

    def call(self, path: str, body: dict | None = None) -> dict:
        import json
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        with self.opener.open(req, timeout=10) as resp:
            return json.loads(resp.read())


@pytest.mark.slow
def test_server_killed_mid_study_loses_no_vote(make_study, servers):
    """Two raters vote at once against a real uvicorn; the server is killed with SIGKILL mid-stream; every vote
    the server acknowledged is in the database, and after a restart each rater resumes on their open item."""
    study = make_study(prompts=[f"prompt {i}" for i in range(8)])
    db_path = study.parent / "study.sqlite"
    server = servers(study, db_path).start()
    raters = {n: Rater(server.url, n) for n in ("ann", "ben")}
    acked: dict[str, list[int]] = {n: [] for n in raters}
    stop = threading.Event()

    def vote_forever(name: str) -> None:
        r = raters[name]
        try:
            while not stop.is_set():
                item = r.call("/api/next")
                if item["done"]:
                    return
                for q in QUESTIONS:
                    if q in item["answers"]:
                        continue
                    acked[name].append(r.call("/api/vote", {"item": item["item"], "question": q,
                                                            "answer": "A"})["vote_id"])
        except OSError:    # the server died under us: what it acknowledged must be stored
            return

    threads = [threading.Thread(target=vote_forever, args=(n,)) for n in raters]
    for t in threads:
        t.start()
    import time
    deadline = time.monotonic() + 30
    while min(len(v) for v in acked.values()) < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    server.kill9()                                   # mid-stream: both raters are still voting
    stop.set()
    for t in threads:
        t.join(timeout=30)
    con = sqlite3.connect(db_path)
    stored = {r[0] for r in con.execute("SELECT vote_id FROM votes")}
    for name, ids in acked.items():
        assert len(ids) >= 10 and set(ids) <= stored, name
    con.close()
    server2 = servers(study, db_path).start()
    for name in raters:
        r = Rater(server2.url, name)                 # same name, new browser: resumes
        nxt = r.call("/api/next")
        done = set(nxt["answers"])
        n_stored = sqlite3.connect(db_path).execute(
            "SELECT COUNT(DISTINCT item_id || question) FROM votes v JOIN raters USING (rater_id) WHERE name = ?",
            (name,)).fetchone()[0]
        assert nxt["progress"]["answers"] == n_stored
        assert done == set(QUESTIONS[:len(done)])    # the open item's answered questions, in order
        r.call("/api/vote", {"item": nxt["item"], "question": QUESTIONS[len(done) % 6], "answer": "tie"})
