"""The rating server against hostile requests: cross-site votes and DNS rebinding (Host, Origin / Referer /
Sec-Fetch-Site, Content-Type), hostile numbers and nesting, oversized and chunked bodies (against a real uvicorn),
votes for items never shown or already left, parallel first sign-ins, control characters in names, sign-out,
files that are not the study's videos, security headers, ETags, and what ``token`` / ``report`` print."""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from evalkit.core.errors import FieldError
from evalkit.humaneval import db
from evalkit.humaneval.cli import main as he_main
from evalkit.humaneval.guard import MAX_BODY, host_names
from evalkit.humaneval.server import make_app
from evalkit.humaneval.study import load_study, scan_videos

URL = "http://127.0.0.1:8765"
HOSTS = host_names("127.0.0.1", 8765)
QUESTIONS = ["quality", "frame_consistency", "motion_naturalness", "motion_match", "subject_match",
             "overall_alignment"]


def _setup(study_path: Path, **kw):
    study, path = load_study(study_path)
    inputs = scan_videos(study, path)
    db_path = path.parent / "study.sqlite"
    db.create(db_path, inputs)
    app = make_app(inputs, db_path, hosts=HOSTS, **kw)
    return inputs, db_path, app


def _client(app) -> TestClient:
    return TestClient(app, base_url=URL)


def _signed_in(app, name: str = "alice") -> TestClient:
    c = _client(app)
    r = c.post("/api/login", json={"name": name})
    assert r.status_code == 200, r.text
    return c


def _n_votes(db_path: Path) -> int:
    con = sqlite3.connect(db_path)
    try:
        return con.execute("SELECT COUNT(*) FROM votes").fetchone()[0]
    finally:
        con.close()


def test_host_names():
    assert host_names("127.0.0.1", 9000) == {"127.0.0.1:9000", "localhost:9000", "[::1]:9000"}
    pub = host_names("0.0.0.0", 8765, url="http://10.0.0.5:8765", extra=["study.lab.example", "x.example:443"])
    assert pub == {"127.0.0.1:8765", "localhost:8765", "[::1]:8765", "10.0.0.5:8765", "study.lab.example",
                   "study.lab.example:8765", "x.example:443"}
    assert "0.0.0.0:8765" not in pub
    assert host_names("10.0.0.5", 8765) == {"10.0.0.5:8765"}       # no loopback names on a LAN address


def test_rebinding_and_cross_site_requests_are_refused(make_study):
    """A DNS-rebinding Host gets nothing; a vote or sign-in from another origin (another port of 127.0.0.1,
    localhost for 127.0.0.1, any site) or with a non-JSON Content-Type is refused and stores nothing."""
    _, db_path, app = _setup(make_study())
    evil = TestClient(app, base_url="http://rebind.attacker.example:8765")
    for path in ("/", "/api/state", "/api/next", "/app.js"):
        r = evil.get(path)
        assert r.status_code == 421 and "rebind.attacker.example:8765" in r.json()["error"], path
    r = evil.post("/api/login", json={"name": "mallory"})
    assert r.status_code == 421 and "Set-Cookie" not in r.headers
    assert TestClient(app, base_url="http://localhost:8765").get("/").status_code == 200   # the loopback name

    c = _signed_in(app)
    item = c.get("/api/next").json()["item"]
    vote = {"item": item, "question": "quality", "answer": "A"}
    body = json.dumps(vote)
    refused = [
        ({"Origin": "http://evil.example", "Content-Type": "text/plain"}, 403, "Origin"),
        ({"Origin": "http://evil.example"}, 403, "Origin"),
        ({"Origin": "http://127.0.0.1:9999"}, 403, "Origin"),             # same site, another port
        ({"Origin": "http://localhost:8765"}, 403, "Origin"),             # the page opened by the other name
        ({"Origin": "null"}, 403, "Origin"),                              # sandboxed frame, file://
        ({"Referer": "http://127.0.0.1:9999/attack.html"}, 403, "Referer"),
        ({"Sec-Fetch-Site": "same-site"}, 403, "Sec-Fetch-Site"),
        ({"Sec-Fetch-Site": "cross-site"}, 403, "Sec-Fetch-Site"),
        ({"Content-Type": "text/plain"}, 415, "Content-Type"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "Content-Type"),
        ({"Content-Type": "multipart/form-data; boundary=x"}, 415, "Content-Type"),
        ({"Content-Type": ""}, 415, "Content-Type"),
    ]
    for headers, status, field in refused:
        h = {"Content-Type": "application/json", **headers}
        r = c.post("/api/vote", content=body, headers=h)
        assert r.status_code == status and r.json()["error"].startswith(field), (headers, r.status_code, r.text)
    assert _n_votes(db_path) == 0
    # a cross-site GET cannot mark an item as shown either (nor read anything)
    assert c.get("/api/next", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert c.get("/api/state", headers={"Origin": "http://evil.example"}).status_code == 403
    # local-mode sign-in from another origin: refused, no rater made, no cookie set
    other = _client(app)
    for headers in ({"Origin": "http://127.0.0.1:9999"}, {"Sec-Fetch-Site": "same-site"}):
        r = other.post("/api/login", json={"name": "mallory"}, headers=headers)
        assert r.status_code == 403 and "set-cookie" not in r.headers
    r = other.post("/api/login", content=json.dumps({"name": "mallory"}), headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert sqlite3.connect(db_path).execute("SELECT COUNT(*) FROM raters WHERE name = 'mallory'").fetchone()[0] == 0
    # the page's own requests pass: same origin, with what browsers send
    same = {"Origin": URL, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json; charset=utf-8"}
    assert c.post("/api/vote", content=body, headers=same).status_code == 200
    assert _n_votes(db_path) == 1


def test_public_mode_answers_its_names_only(make_study):
    study, path = load_study(make_study())
    inputs = scan_videos(study, path)
    db_path = path.parent / "study.sqlite"
    db.create(db_path, inputs)
    app = make_app(inputs, db_path, public=True,
                   hosts=host_names("0.0.0.0", 8765, url="http://10.0.0.5:8765", extra=["study.lab.example"]))
    token = db.add_rater(db.connect(db_path), "frank")[1]
    auth = {"Authorization": f"Bearer {token}"}
    for base in ("http://10.0.0.5:8765", "http://study.lab.example", "http://127.0.0.1:8765"):
        assert TestClient(app, base_url=base).get("/api/next", headers=auth).status_code == 200, base
    for base in ("http://10.0.0.6:8765", "http://attacker.example:8765", "http://0.0.0.0:8765"):
        assert TestClient(app, base_url=base).get("/api/next", headers=auth).status_code == 421, base
    with pytest.raises(FieldError, match=r"--url: --host 0\.0\.0\.0 listens on every address"):
        he_main(["serve", str(path), "--public", "--host", "0.0.0.0"])


def test_hostile_client_ms_is_a_named_422(make_study):
    _, db_path, app = _setup(make_study())
    c = _signed_in(app)
    item = c.get("/api/next").json()["item"]

    def body(raw: str) -> str:
        return f'{{"item": "{item}", "question": "quality", "answer": "A", "client_ms": {raw}}}'

    for raw in ("Infinity", "-Infinity", "NaN", "1e300", "1e400", "1e20", "100000000000000000000", "-1", "12.5",
                "true", '"12"', "[1]", str(db.CLIENT_MS_MAX + 1)):
        r = c.post("/api/vote", content=body(raw), headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["error"].startswith("client_ms:"), (raw, r.text)
    assert _n_votes(db_path) == 0
    for raw in ("0", "null", str(db.CLIENT_MS_MAX)):
        assert c.post("/api/vote", content=body(raw), headers={"Content-Type": "application/json"}).status_code == 200
    assert _n_votes(db_path) == 3


def test_hostile_bodies_are_refused_without_500(make_study):
    _, db_path, app = _setup(make_study())
    c = _client(app)
    c.post("/api/login", json={"name": "alice"})
    item = c.get("/api/next").json()["item"]
    j = {"Content-Type": "application/json"}
    deep = '{"item": ' + "[" * 2000 + "]" * 2000 + ', "question": "quality", "answer": "A"}'
    assert len(deep) < MAX_BODY
    r = c.post("/api/vote", content=deep, headers=j)
    assert r.status_code == 400 and "nested deeper" in r.json()["error"]
    r = c.post("/api/login", content="[" * 100_000, headers=j)        # 100k nested: over the size limit first
    assert r.status_code == 413 and f"{MAX_BODY} bytes" in r.json()["error"]
    r = c.post("/api/vote", content=b"x" * (MAX_BODY + 1), headers=j)
    assert r.status_code == 413
    for body, field in ((json.dumps({"item": [item], "question": "quality", "answer": "A"}), "item:"),
                        (json.dumps({"item": item, "question": {"q": 1}, "answer": "A"}), "question:"),
                        (json.dumps({"item": item, "question": "quality", "answer": None}), "answer:"),
                        (json.dumps({"item": "x" * 100, "question": "quality", "answer": "A"}), "item:"),
                        (json.dumps([1, 2]), "body:"), ("\xff\xfe", "body:"), ('{"item": "a"', "body:")):
        r = c.post("/api/vote", content=body.encode("latin-1") if body.startswith("\xff") else body, headers=j)
        assert r.status_code in (400, 422) and r.json()["error"].startswith(field), (body[:40], r.text)
    r = _client(app).post("/api/login", json={"name": ["alice"]})
    assert r.status_code == 422 and r.json()["error"].startswith("name:")
    assert _n_votes(db_path) == 0


def _raw_http(port: int, head: bytes, body_parts: list[bytes], timeout: float = 10.0) -> bytes:
    """Send a request by hand (a chunked body, optionally left unfinished) and read what comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        for part in body_parts:
            s.sendall(part)
        s.settimeout(timeout)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_real_server_body_limit_and_served_port(make_study, servers, capsys):
    """Against a real uvicorn: a chunked body is refused (413) as soon as it passes the limit, while the client
    is still sending (the request is never finished); a huge Content-Length is refused before any body; and
    ``token`` prints the port the server was started with."""
    study = make_study()
    db_path = study.parent / "study.sqlite"
    server = servers(study, db_path).start()
    host = f"127.0.0.1:{server.port}".encode()
    head = (b"POST /api/login HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"a" * 1024
    parts = [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"] * (MAX_BODY // 1024 + 2)   # no final 0-chunk
    reply = _raw_http(server.port, head, parts)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    head = (b"POST /api/vote HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: 200000000\r\n\r\n")
    assert _raw_http(server.port, head, []).startswith(b"HTTP/1.1 413")
    rebind = b"GET / HTTP/1.1\r\nHost: rebind.attacker.example\r\n\r\n"
    assert _raw_http(server.port, rebind, []).startswith(b"HTTP/1.1 421")
    capsys.readouterr()
    assert he_main(["token", str(study), "carol", "--db", str(db_path)]) == 0
    assert f"link for carol: http://127.0.0.1:{server.port}/?t=" in capsys.readouterr().out
    assert he_main(["token", str(study), "dan", "--db", str(db_path), "--port", "9001"]) == 0
    assert "link for dan: http://127.0.0.1:9001/?t=" in capsys.readouterr().out


def test_votes_only_for_the_current_shown_item(make_study, capsys):
    """No vote for an item never shown; an answer can change only until the rater moves on; none after done.
    Rows an older server stored for never-shown items are not counted (progress, next item, export)."""
    inputs, db_path, app = _setup(make_study())
    c = _signed_in(app)
    con = sqlite3.connect(db_path)
    order = [r[0] for r in con.execute("SELECT item_id FROM assignments WHERE rater_id = 'r1' ORDER BY position")]

    def vote(item: str, q: str = "quality", a: str = "A"):
        return c.post("/api/vote", json={"item": item, "question": q, "answer": a})

    r = vote(order[0])
    assert r.status_code == 409 and "has not been shown to you" in r.json()["error"]
    assert c.get("/api/next").json()["item"] == order[0]
    assert vote(order[1]).status_code == 409                            # the next one is not shown yet
    for q in QUESTIONS:
        assert vote(order[0], q).status_code == 200
    assert vote(order[0], "quality", "B").status_code == 200             # still on it: may change
    assert c.get("/api/next").json()["item"] == order[1]                 # moved on
    r = vote(order[0], "quality", "tie")
    assert r.status_code == 409 and "moved on" in r.json()["error"]
    assert db._answers(db.connect(db_path), "r1", order[0])["quality"] == "B"
    for item in order[1:]:
        assert c.get("/api/next").json()["item"] == item
        for q in QUESTIONS:
            assert vote(item, q).status_code == 200
    assert c.get("/api/next").json()["done"] is True
    r = vote(order[-1], "quality", "B")
    assert r.status_code == 409 and "finished" in r.json()["error"]
    n = _n_votes(db_path)
    assert n == 6 * 3 + 1
    # a row an older server stored for an item never shown to its rater: not counted anywhere
    c2 = _signed_in(app, "bob")
    item_b = con.execute("SELECT item_id FROM assignments WHERE rater_id = 'r2' ORDER BY position").fetchone()[0]
    for q in QUESTIONS:
        con.execute("INSERT INTO votes (rater_id, item_id, question, answer, left_arm, right_arm, winner, shown_at, "
                    "cast_at) SELECT 'r2', item_id, ?, 'A', left_arm, right_arm, left_arm, NULL, '2020' FROM "
                    "assignments WHERE rater_id = 'r2' AND item_id = ?", (q, item_b))
    con.commit()
    nxt = c2.get("/api/next").json()
    assert nxt["item"] == item_b and nxt["answers"] == {} and nxt["progress"]["answers"] == 0
    eff = db.effective_votes(db.connect(db_path))
    assert len(eff) == 18 and {v["rater_id"] for v in eff} == {"r1"}
    assert all(v["shown_at"] for v in eff)
    q = [v for v in eff if v["item_id"] == order[0] and v["question"] == "quality"][0]
    assert q["answer"] == "B" and q["revisions"] == 1
    run = db.export(inputs, db_path, db_path.parent / "exports")
    man = json.loads((run / "manifest.json").read_text())
    assert man["n_votes"] == 18 and man["n_votes_not_counted"] == 6
    assert he_main(["report", str(inputs.path), "--db", str(db_path), "--out", str(db_path.parent / "ex")]) == 0
    assert "warning: 6 stored vote(s) are not counted: cast for items never shown to the rater" in \
        capsys.readouterr().out


def test_schema_1_database_is_upgraded_in_place(make_study):
    inputs, db_path, _ = _setup(make_study())
    con = sqlite3.connect(db_path)
    con.execute("DROP TABLE finished")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    c = _signed_in(make_app(inputs, db_path, hosts=HOSTS))
    assert c.get("/api/next").json()["done"] is False
    assert db.meta(db.connect(db_path))["schema_version"] == str(db.SCHEMA_VERSION)


def test_parallel_first_sign_ins_with_one_name(make_study):
    """Eight browsers sign in with one new name at the same moment: all get the same rater, none an error."""
    _, db_path, app = _setup(make_study())
    for name in ("zoe", "yan", "xia"):
        barrier, results = threading.Barrier(8), []

        def sign_in() -> None:
            c = _client(app)
            barrier.wait()
            r = c.post("/api/login", json={"name": name})
            results.append((r.status_code, r.text, c.get("/api/state").json().get("rater")))

        threads = [threading.Thread(target=sign_in) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert [s for s, _, _ in results] == [200] * 8, results
        assert {who for _, _, who in results} == {name}
    con = sqlite3.connect(db_path)
    assert con.execute("SELECT COUNT(*) FROM raters").fetchone()[0] == 3
    assert con.execute("SELECT COUNT(*) FROM tokens").fetchone()[0] == 24
    assert con.execute("SELECT COUNT(*) FROM assignments").fetchone()[0] == 3 * 3


def test_busy_database_is_a_retryable_503(make_study, monkeypatch):
    _, db_path, app = _setup(make_study())
    real_connect = db.connect

    def quick(path):
        conn = real_connect(path)
        conn.execute("PRAGMA busy_timeout = 50")
        return conn

    monkeypatch.setattr(db, "connect", quick)
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        r = _client(app).post("/api/login", json={"name": "late"})
    finally:
        holder.execute("ROLLBACK")
    assert r.status_code == 503 and r.headers["retry-after"] == "1" and "try again" in r.json()["error"]
    assert "humaneval token" not in r.json()["error"]


def test_names_sign_out_and_status(make_study, capsys):
    inputs, db_path, app = _setup(make_study())
    for bad in ("eve\x1b[2J\x1b[31m", "\u202eevil", "a\x00b", "line\u2028two", " ", "x" * 65):
        r = _client(app).post("/api/login", json={"name": bad})
        assert r.status_code == 422 and r.json()["error"].startswith("name: a rater name is 1-64 printable"), bad
    c = _signed_in(app, "ann")
    token = c.cookies.get("humaneval_token")
    assert c.post("/api/logout", json={}).status_code == 200
    r = _client(app).get("/api/next", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401                                          # revoked in the database, not just forgotten
    # a name stored with control characters by an older server reaches the terminal escaped
    con = sqlite3.connect(db_path)
    con.execute("UPDATE raters SET name = ? WHERE rater_id = 'r1'", ("ann\x1b[2J\x1b]0;pwned\x07",))
    con.commit()
    capsys.readouterr()
    assert he_main(["status", str(inputs.path), "--db", str(db_path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "ann\\x1b[2J\\x1b]0;pwned\\x07" in out


def test_hostile_names_on_the_command_line_touch_no_database(make_study, tmp_path):
    """``token`` and ``serve --rater`` refuse a name a terminal would run as escape codes before any database is
    made or opened."""
    path, db_path = make_study(), tmp_path / "fresh" / "study.sqlite"
    for argv in (["token", str(path), "eve\x1b[2J", "--db", str(db_path)],
                 ["serve", str(path), "--public", "--host", "127.0.0.1", "--rater", "a\u2028b", "--db", str(db_path)]):
        with pytest.raises(FieldError, match="name: a rater name is 1-64 printable"):
            he_main(argv)
        assert not db_path.parent.exists(), argv


def test_only_the_study_videos_are_served(make_study, tmp_path):
    """With or without probing: a symlink out of the arm folder, or a file that is not an MP4, is refused before
    serving; a file changed after startup is refused, never served."""
    path = make_study()
    root = path.parent
    secret = tmp_path / "secret.txt"
    secret.write_text("api_key = hunter2\n")
    victim = root / "lingen" / "a cat-0.mp4"
    saved = victim.read_bytes()
    victim.unlink()
    victim.symlink_to(secret)
    for probe in (False, True):
        with pytest.raises(FieldError, match=r"a cat-0\.mp4 is a symlink to .*secret\.txt, outside the arm folder"):
            scan_videos(*load_study(path), probe=probe)
    outside = tmp_path / "real.mp4"
    outside.write_bytes(saved)
    victim.unlink()
    victim.symlink_to(outside)                                             # a real video, but outside
    with pytest.raises(FieldError, match="outside the arm folder"):
        scan_videos(*load_study(path), probe=False)
    victim.unlink()
    victim.write_text("not a video at all, but long enough\n")
    with pytest.raises(FieldError, match=r"a cat-0\.mp4: not an MP4 file"):
        scan_videos(*load_study(path), probe=False)
    inside = root / "lingen" / ".real"                                     # a symlink within the folder is fine
    inside.write_bytes(saved)
    victim.unlink()
    victim.symlink_to(inside)
    inputs = scan_videos(*load_study(path), probe=False)
    db_path = root / "study.sqlite"
    db.create(db_path, inputs)
    c = _signed_in(make_app(inputs, db_path, hosts=HOSTS))
    item = c.get("/api/next").json()
    r = c.get(item["videos"]["A"])
    assert r.status_code == 200 and r.headers["x-content-type-options"] == "nosniff"
    etag = r.headers["etag"]
    r304 = c.get(item["videos"]["A"], headers={"If-None-Match": etag})
    assert r304.status_code == 304 and r304.content == b"" and r304.headers["etag"] == etag
    assert c.get(item["videos"]["A"], headers={"If-None-Match": '"other"'}).status_code == 200
    vid = item["videos"]["A"].rsplit("/", 1)[1]
    name = sqlite3.connect(db_path).execute("SELECT arm, filename FROM videos WHERE video_id = ?", (vid,)).fetchone()
    target = (root / name[0] / name[1]).resolve()
    os.utime(target, ns=(1, 1))                                             # touched after startup
    r = c.get(item["videos"]["A"])
    assert r.status_code == 409 and "changed on disk" in r.json()["error"]


def test_security_headers_and_etags(make_study):
    _, _, app = _setup(make_study())
    c = _signed_in(app)
    item = c.get("/api/next").json()
    responses = {p: c.get(p) for p in ("/", "/app.js", "/style.css", "/api/state", "/api/next", item["videos"]["B"],
                                       "/no-such-page")}
    for p, r in responses.items():
        assert r.headers["x-content-type-options"] == "nosniff", p
        assert r.headers["x-frame-options"] == "DENY", p
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp, p
    for p in ("/app.js", "/style.css"):
        etag = responses[p].headers["etag"]
        r = c.get(p, headers={"If-None-Match": etag})
        assert r.status_code == 304 and r.content == b"" and r.headers["x-content-type-options"] == "nosniff"
        assert c.get(p, headers={"If-None-Match": '"stale"'}).status_code == 200
    assert responses["/"].headers["cache-control"] == "no-store"


def test_report_prints_na_kappa_and_warns_on_few_prompts(make_study, capsys):
    inputs, db_path, app = _setup(make_study())
    c = _signed_in(app)
    while not (item := c.get("/api/next").json())["done"]:
        for q in QUESTIONS:
            assert c.post("/api/vote", json={"item": item["item"], "question": q, "answer": "A"}).status_code == 200
    capsys.readouterr()
    assert he_main(["report", str(inputs.path), "--db", str(db_path), "--out", str(db_path.parent / "ex")]) == 0
    out = capsys.readouterr().out
    assert "nan" not in out.lower()
    assert "Fleiss kappa n/a (no item was rated by two or more raters)" in out
    assert "warning: dit vs lingen: the interval resamples only 3 prompts (fewer than 20)" in out \
        or "warning: lingen vs dit: the interval resamples only 3 prompts (fewer than 20)" in out
