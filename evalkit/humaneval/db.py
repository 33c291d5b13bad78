"""The study database: SQLite (Python's sqlite3) in WAL mode, one file per study.

Tables: ``meta`` (schema version, study hash, resolved study), ``videos`` (an opaque id per video file: the only
handle a browser ever gets), ``items`` (one per compared pair x prompt x sample index, ``x`` = the reference side),
``raters`` (pseudonymous id, name), ``tokens`` (sha256 of each token a rater holds: only hashes are
stored), ``assignments`` (each rater's item order and the left/right order of every item, drawn once when the
rater is added and never redrawn; ``first_shown`` is set when the item is first served), ``finished`` (raters who
were told they are done) and ``votes`` (append-only: one row per click, with rater, item, question, answer
A/B/tie, the left/right arms it was cast under, the winner arm and timestamps). A rater who changes an answer adds
a row; the latest row of a (rater, item, question) is the effective vote, earlier ones stay as history.

What a vote may be for (``cast``): only an item of the rater that was served to them (``first_shown`` set), and
only the rater's current item: once a later item was served (the rater moved on) or the rater was told they are
done, the earlier items are closed. Only *valid* rows count anywhere (progress, the next item, the export): rows
with ``shown_at`` set. A database of schema 1 (before ``finished``) gains that table when opened; nothing else
changes in it.

Export (``export``): the effective votes -> a run folder the report pipeline reads (``manifest.json`` +
``results.jsonl``, one ``humaneval_vote`` record per effective vote, raters as pseudonyms r1, r2 ... in the order
they joined; names stay here). The manifest holds the resolved study (questions, tie rule, bootstrap) and the
study hash, so the report renders from the folder alone. Each export is a new folder (``<study>-<UTC time>-<pid>``):
votes keep coming while a study runs, and an earlier export is never overwritten.

Durability: every vote is its own transaction, committed before the server answers, with ``synchronous=FULL``
(the WAL is fsynced at each commit), so a server killed with SIGKILL loses no acknowledged vote. Several raters
write at once through separate connections; ``busy_timeout`` serialises the writers.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import random
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.core.errors import EvalkitError, FieldError
from evalkit.humaneval.stats import outcome
from evalkit.humaneval.study import Inputs
from evalkit.core.records import results_file
from evalkit.core.schema import check_record, humaneval_vote_key
from evalkit.core.runs import new_run_dir, now_iso, write_manifest
from evalkit.core.typed import to_dict

SCHEMA_VERSION = 2
CLIENT_MS_MAX = 30 * 24 * 3600 * 1000   # time on an item, in ms, the server stores (30 days)
ANSWERS = ("A", "B", "tie")        # A = the left video, B = the right one
SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE videos (video_id TEXT PRIMARY KEY, arm TEXT NOT NULL, prompt TEXT NOT NULL, idx INTEGER NOT NULL,
                     filename TEXT NOT NULL, sha256 TEXT NOT NULL, UNIQUE (arm, prompt, idx));
CREATE TABLE items (item_id TEXT PRIMARY KEY, ordinal INTEGER NOT NULL UNIQUE, prompt TEXT NOT NULL,
                    idx INTEGER NOT NULL, arm_x TEXT NOT NULL, arm_y TEXT NOT NULL,
                    video_x TEXT NOT NULL REFERENCES videos, video_y TEXT NOT NULL REFERENCES videos);
CREATE TABLE raters (rater_id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created TEXT NOT NULL);
CREATE TABLE tokens (token_sha256 TEXT PRIMARY KEY, rater_id TEXT NOT NULL REFERENCES raters,
                     created TEXT NOT NULL, revoked TEXT);
CREATE TABLE assignments (rater_id TEXT NOT NULL REFERENCES raters, position INTEGER NOT NULL,
                          item_id TEXT NOT NULL REFERENCES items, left_arm TEXT NOT NULL, right_arm TEXT NOT NULL,
                          first_shown TEXT, PRIMARY KEY (rater_id, position), UNIQUE (rater_id, item_id));
CREATE TABLE votes (vote_id INTEGER PRIMARY KEY AUTOINCREMENT, rater_id TEXT NOT NULL REFERENCES raters,
                    item_id TEXT NOT NULL REFERENCES items, question TEXT NOT NULL,
                    answer TEXT NOT NULL CHECK (answer IN ('A', 'B', 'tie')), left_arm TEXT NOT NULL,
                    right_arm TEXT NOT NULL, winner TEXT NOT NULL, shown_at TEXT, cast_at TEXT NOT NULL,
                    client_ms INTEGER);
CREATE INDEX votes_by_rater_item ON votes (rater_id, item_id, question);
CREATE TABLE finished (rater_id TEXT PRIMARY KEY REFERENCES raters, at TEXT NOT NULL);
"""
VALID = "shown_at IS NOT NULL"       # a counted vote row: cast for an item that had been shown to the rater



@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` (takes the write lock at once, waiting up to busy_timeout) ... ``COMMIT``, or roll back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (writes use explicit ``BEGIN IMMEDIATE``), WAL, fsync at each commit."""
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def create(path: Path, inputs: Inputs) -> None:
    """Create the database of ``inputs`` at ``path`` (built under a temporary name, then renamed)."""
    path = Path(path)
    if path.exists():
        raise FieldError("--db", f"{path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    conn = connect(tmp)
    try:
        conn.executescript(SCHEMA)
        conn.execute("BEGIN IMMEDIATE")
        s = inputs.study
        meta = {"schema_version": str(SCHEMA_VERSION), "study_hash": inputs.study_hash, "created": now(),
                "study": json.dumps(to_dict(s), sort_keys=True), "prompts": json.dumps(list(inputs.prompts))}
        conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        vid: dict[tuple[str, str, int], str] = {}
        for v in inputs.videos:
            vid[(v.arm, v.prompt, v.index)] = secrets.token_hex(8)
            conn.execute("INSERT INTO videos VALUES (?, ?, ?, ?, ?, ?)",
                         (vid[(v.arm, v.prompt, v.index)], v.arm, v.prompt, v.index, v.path.name, v.sha256))
        ordinal = 0
        for x, y in s.pairs_list():
            for prompt in inputs.prompts:
                for i in range(s.samples):
                    conn.execute("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                 (secrets.token_hex(6), ordinal, prompt, i, x, y, vid[(x, prompt, i)],
                                  vid[(y, prompt, i)]))
                    ordinal += 1
        conn.execute("COMMIT")
    finally:
        conn.close()
    for suffix in ("-wal", "-shm"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)
    os.replace(tmp, path)


def meta(conn: sqlite3.Connection) -> dict[str, str]:
    return {r["key"]: r["value"] for r in conn.execute("SELECT key, value FROM meta")}


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    """Set a bookkeeping key (e.g. ``served_url``, the address ``serve`` printed); never the study's identity."""
    if key in ("schema_version", "study_hash", "study", "prompts", "created"):
        raise ValueError(f"meta key {key!r} is part of the study's identity")
    with _transaction(conn):
        conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


def check_inputs(conn: sqlite3.Connection, inputs: Inputs, db_path: Path) -> None:
    """Refuse a database made from other inputs (changed videos, prompts, questions, arms ...), naming what
    changed: its votes would be silently reused for something that was not asked."""
    m = meta(conn)
    if m.get("schema_version") == "1":                  # additive upgrade: the `finished` table
        with _transaction(conn):
            conn.execute("CREATE TABLE IF NOT EXISTS finished (rater_id TEXT PRIMARY KEY REFERENCES raters, "
                         "at TEXT NOT NULL)")
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
        m = meta(conn)
    if int(m.get("schema_version", 0)) != SCHEMA_VERSION:
        raise EvalkitError(f"{db_path}: schema version {m.get('schema_version')} != {SCHEMA_VERSION}")
    if m["study_hash"] == inputs.study_hash:
        return
    old = json.loads(m["study"])
    new = to_dict(inputs.study)
    changed = [k for k in ("name", "samples", "arms", "pairs", "reference", "questions", "seed")
               if old.get(k) != new.get(k)]
    if json.loads(m["prompts"]) != list(inputs.prompts):
        changed.append("prompts (the prompt list)")
    stored = {(r["arm"], r["prompt"], r["idx"]): r["sha256"] for r in conn.execute("SELECT * FROM videos")}
    edited = [f"{v.arm}/{v.path.name}" for v in inputs.videos
              if (v.arm, v.prompt, v.index) in stored and stored[(v.arm, v.prompt, v.index)] != v.sha256]
    if edited:
        changed.append(f"{len(edited)} video file(s) changed since the study started: " + ", ".join(edited[:5]))
    raise EvalkitError(f"{db_path} holds votes of a different study ({'; '.join(changed) or 'study hash'}). "
                       "Votes are never reused for changed inputs: restore the inputs, or start a new study "
                       "database (--db NEW.sqlite)")


def video_paths(conn: sqlite3.Connection, inputs: Inputs) -> dict[str, Path]:
    """Opaque video id -> file, built once at startup; the only way a request reaches a file."""
    files = {(v.arm, v.prompt, v.index): v.path for v in inputs.videos}
    return {r["video_id"]: files[(r["arm"], r["prompt"], r["idx"])] for r in conn.execute("SELECT * FROM videos")}


def _assign(item_ids: list[tuple[str, str, str]], seed: int, rater_id: str) -> list[tuple[str, str, str]]:
    """(item_id, left, right) in this rater's order: items shuffled, and left/right balanced (half the items show
    the reference side on the left) then shuffled, from a seed of (study seed, rater id)."""
    rng = random.Random(int.from_bytes(hashlib.sha256(f"{seed}|{rater_id}".encode()).digest()[:8], "big"))
    order = list(item_ids)
    rng.shuffle(order)
    flips = [i < len(order) // 2 for i in range(len(order))]
    if len(order) % 2:
        flips[-1] = rng.random() < 0.5
    rng.shuffle(flips)
    return [(item, y, x) if flip else (item, x, y) for (item, x, y), flip in zip(order, flips)]


@dataclass(frozen=True, kw_only=True)
class Rater:
    rater_id: str
    name: str


def check_name(name: object) -> str:
    """A rater name: a string of 1-64 printable characters once stripped (no control, format or line-separator
    characters: names are printed by ``humaneval status`` and a terminal would run escape sequences)."""
    if not isinstance(name, str):
        raise FieldError("name", f"a rater name is a string, got {type(name).__name__}")
    name = name.strip()
    bad = next((c for c in name if not c.isprintable()), None)
    if not name or len(name) > 64 or bad is not None:
        why = f" (character U+{ord(bad):04X} is not printable)" if bad is not None else ""
        raise FieldError("name", f"a rater name is 1-64 printable characters on one line, got {name[:80]!r}{why}")
    return name


def _insert_rater(conn: sqlite3.Connection, name: str) -> tuple[Rater, str]:
    """Inside a write transaction: a new rater with all items assigned, and its first token."""
    token = secrets.token_urlsafe(24)
    study = json.loads(meta(conn)["study"])
    n = conn.execute("SELECT COUNT(*) FROM raters").fetchone()[0]
    rater_id = f"r{n + 1}"
    conn.execute("INSERT INTO raters VALUES (?, ?, ?)", (rater_id, name, now()))
    conn.execute("INSERT INTO tokens VALUES (?, ?, ?, NULL)", (token_hash(token), rater_id, now()))
    items = [(r["item_id"], r["arm_x"], r["arm_y"]) for r in conn.execute("SELECT * FROM items ORDER BY ordinal")]
    for pos, (item, left, right) in enumerate(_assign(items, int(study["seed"]), rater_id)):
        conn.execute("INSERT INTO assignments VALUES (?, ?, ?, ?, ?, NULL)", (rater_id, pos, item, left, right))
    return Rater(rater_id=rater_id, name=name), token


def add_rater(conn: sqlite3.Connection, name: str) -> tuple[Rater, str]:
    """A new rater with all items assigned; returns it and its token (only its sha256 is stored)."""
    name = check_name(name)
    with _transaction(conn):
        if conn.execute("SELECT 1 FROM raters WHERE name = ?", (name,)).fetchone():
            raise FieldError("rater", f"a rater named {name!r} already exists (issue a new token with "
                                      "`humaneval token STUDY NAME --reissue`)")
        return _insert_rater(conn, name)


def sign_in(conn: sqlite3.Connection, name: str) -> tuple[Rater, str]:
    """Local sign-in by name, in one write transaction: the rater of that name with a fresh token, made first if
    there is none. Parallel first sign-ins with one name all get the same rater (the first makes it)."""
    name = check_name(name)
    token = secrets.token_urlsafe(24)
    with _transaction(conn):
        r = conn.execute("SELECT rater_id, name FROM raters WHERE name = ?", (name,)).fetchone()
        if r is None:
            return _insert_rater(conn, name)
        conn.execute("INSERT INTO tokens VALUES (?, ?, ?, NULL)", (token_hash(token), r["rater_id"], now()))
    return Rater(rater_id=r["rater_id"], name=r["name"]), token


def revoke_token(conn: sqlite3.Connection, token: str | None) -> bool:
    """Sign-out: this token stops working (the rater's other tokens do not). True if it was valid."""
    if not token:
        return False
    with _transaction(conn):
        cur = conn.execute("UPDATE tokens SET revoked = ? WHERE token_sha256 = ? AND revoked IS NULL",
                           (now(), token_hash(token)))
    return cur.rowcount > 0


def new_token(conn: sqlite3.Connection, name: str, *, revoke_others: bool) -> str:
    """A fresh token for an existing rater (a second browser signing in locally); ``revoke_others`` makes every
    earlier token of the rater stop working (``humaneval token --reissue`` for a leaked link)."""
    rater = rater_by_name(conn, name)
    if rater is None:
        names = [r[0] for r in conn.execute("SELECT name FROM raters")]
        raise FieldError("rater", f"no rater named {name!r}; raters: {', '.join(names) or 'none yet'}")
    token = secrets.token_urlsafe(24)
    with _transaction(conn):
        if revoke_others:
            conn.execute("UPDATE tokens SET revoked = ? WHERE rater_id = ? AND revoked IS NULL",
                         (now(), rater.rater_id))
        conn.execute("INSERT INTO tokens VALUES (?, ?, ?, NULL)", (token_hash(token), rater.rater_id, now()))
    return token


def rater_by_token(conn: sqlite3.Connection, token: str | None) -> Rater | None:
    if not token:
        return None
    r = conn.execute("SELECT r.rater_id, r.name FROM tokens t JOIN raters r USING (rater_id) WHERE "
                     "t.token_sha256 = ? AND t.revoked IS NULL", (token_hash(token),)).fetchone()
    return Rater(rater_id=r["rater_id"], name=r["name"]) if r else None


def rater_by_name(conn: sqlite3.Connection, name: str) -> Rater | None:
    r = conn.execute("SELECT rater_id, name FROM raters WHERE name = ?", (name.strip(),)).fetchone()
    return Rater(rater_id=r["rater_id"], name=r["name"]) if r else None


def _answers(conn: sqlite3.Connection, rater_id: str, item_id: str) -> dict[str, str]:
    rows = conn.execute(f"SELECT question, answer FROM votes WHERE vote_id IN (SELECT MAX(vote_id) FROM votes "
                        f"WHERE rater_id = ? AND item_id = ? AND {VALID} GROUP BY question)", (rater_id, item_id))
    return {r["question"]: r["answer"] for r in rows}


def progress(conn: sqlite3.Connection, rater_id: str, questions: list[str]) -> dict[str, Any]:
    """Items fully answered, answers cast (effective), and the totals, for one rater."""
    total = conn.execute("SELECT COUNT(*) FROM assignments WHERE rater_id = ?", (rater_id,)).fetchone()[0]
    marks = ",".join("?" * len(questions))
    per_item = conn.execute(f"SELECT item_id, COUNT(DISTINCT question) AS n FROM votes WHERE rater_id = ? AND "
                            f"question IN ({marks}) AND {VALID} GROUP BY item_id", (rater_id, *questions)).fetchall()
    answered = sum(r["n"] for r in per_item)
    done = sum(1 for r in per_item if r["n"] == len(questions))
    return {"items_done": done, "items_total": total, "answers": answered, "answers_total": total * len(questions)}


def next_item(conn: sqlite3.Connection, rater_id: str, questions: list[str]) -> dict[str, Any] | None:
    """The rater's first item (in their order) with an unanswered question, and the answers cast on it so far;
    None when every item is answered, and the rater is then marked finished (no answer can change any more).
    Marks the item as shown (first time only): from then on the items before it are closed."""
    marks = ",".join("?" * len(questions))
    row = conn.execute(
        f"SELECT a.*, i.prompt, i.idx, i.arm_x, i.arm_y, i.video_x, i.video_y FROM assignments a "
        f"JOIN items i USING (item_id) WHERE a.rater_id = ? AND (SELECT COUNT(DISTINCT v.question) FROM votes v "
        f"WHERE v.rater_id = a.rater_id AND v.item_id = a.item_id AND v.question IN ({marks}) AND v.{VALID}) < ? "
        f"ORDER BY a.position LIMIT 1", (rater_id, *questions, len(questions))).fetchone()
    if row is None:
        conn.execute("INSERT OR IGNORE INTO finished VALUES (?, ?)", (rater_id, now()))
        return None
    if row["first_shown"] is None:
        conn.execute("UPDATE assignments SET first_shown = ? WHERE rater_id = ? AND item_id = ? AND first_shown "
                     "IS NULL", (now(), rater_id, row["item_id"]))
    vid = {row["arm_x"]: row["video_x"], row["arm_y"]: row["video_y"]}
    return {"item": row["item_id"], "position": row["position"], "prompt": row["prompt"],
            "videos": {"A": vid[row["left_arm"]], "B": vid[row["right_arm"]]},
            "answers": _answers(conn, rater_id, row["item_id"])}


class UnknownItem(EvalkitError):
    """A vote for an item that is not assigned to this rater (or does not exist)."""


class ClosedItem(EvalkitError):
    """A vote for an item of this rater that is not open: never shown, moved past, or the rater is done."""


def cast(conn: sqlite3.Connection, rater_id: str, item_id: str, question: str, answer: str,
         client_ms: int | None = None) -> dict[str, Any]:
    """Record one vote (its own committed transaction). ``answer`` is A (left), B (right) or tie, relative to the
    order this rater was shown; the row also stores that order and the winner arm."""
    if answer not in ANSWERS:
        raise FieldError("answer", f"{answer!r} is not one of {', '.join(ANSWERS)}")
    if client_ms is not None and not 0 <= client_ms <= CLIENT_MS_MAX:
        raise FieldError("client_ms", f"must be in 0..{CLIENT_MS_MAX}, got {client_ms}")
    with _transaction(conn):
        a = conn.execute("SELECT position, left_arm, right_arm, first_shown FROM assignments WHERE rater_id = ? "
                         "AND item_id = ?", (rater_id, item_id)).fetchone()
        if a is None:
            raise UnknownItem(f"item {item_id!r} is not one of this rater's items")
        if a["first_shown"] is None:
            raise ClosedItem(f"item {item_id!r} has not been shown to you yet: answers are taken only for the item "
                             "on your screen")
        if conn.execute("SELECT 1 FROM assignments WHERE rater_id = ? AND position > ? AND first_shown IS NOT NULL "
                        "LIMIT 1", (rater_id, a["position"])).fetchone():
            raise ClosedItem(f"item {item_id!r} is closed: you moved on to a later item (perhaps in another tab), "
                             "and an answer can be changed only until you move on")
        if conn.execute("SELECT 1 FROM finished WHERE rater_id = ?", (rater_id,)).fetchone():
            raise ClosedItem("you have finished the study: answers can no longer be changed")
        winner = {"A": a["left_arm"], "B": a["right_arm"], "tie": "tie"}[answer]
        cur = conn.execute("INSERT INTO votes (rater_id, item_id, question, answer, left_arm, right_arm, winner, "
                           "shown_at, cast_at, client_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (rater_id, item_id, question, answer, a["left_arm"], a["right_arm"], winner,
                            a["first_shown"], now(), client_ms))
    return {"vote_id": cur.lastrowid, "answers": _answers(conn, rater_id, item_id)}


def effective_votes(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """The latest valid vote of every (rater, item, question), with its item, and how many times it was
    changed (valid rows only)."""
    rows = conn.execute(
        f"SELECT v.*, i.prompt, i.idx, i.arm_x, i.arm_y, i.ordinal, "
        f"(SELECT COUNT(*) FROM votes w WHERE w.rater_id = v.rater_id AND w.item_id = v.item_id AND "
        f"w.question = v.question AND w.{VALID}) - 1 AS revisions FROM votes v JOIN items i USING (item_id) "
        f"WHERE v.vote_id IN (SELECT MAX(vote_id) FROM votes WHERE {VALID} GROUP BY rater_id, item_id, question) "
        f"ORDER BY i.ordinal, v.rater_id, v.question")
    return [dict(r) for r in rows]


def invalid_votes(conn: sqlite3.Connection) -> int:
    """Stored rows that are not counted: votes for items that were never shown to the rater (a server before
    these checks stored them)."""
    return conn.execute(f"SELECT COUNT(*) FROM votes WHERE NOT ({VALID})").fetchone()[0]


def rater_status(conn: sqlite3.Connection, questions: list[str]) -> list[dict[str, Any]]:
    out = []
    for r in conn.execute("SELECT rater_id, name, created FROM raters ORDER BY created, rater_id").fetchall():
        last = conn.execute(f"SELECT MAX(cast_at) FROM votes WHERE rater_id = ? AND {VALID}",
                            (r["rater_id"],)).fetchone()[0]
        out.append({"rater": r["rater_id"], "name": r["name"], "last_vote": last,
                    **progress(conn, r["rater_id"], questions)})
    return out


EXPERIMENT = "humaneval"
KIND = "humaneval_vote"       # evalkit.core.records.HumanEvalVoteRecord


def vote_records(rows: list[dict[str, Any]], study_name: str) -> list[dict[str, Any]]:
    created = now_iso()
    out = []
    for r in rows:
        key = humaneval_vote_key(r["rater_id"], r["item_id"], r["question"])
        out.append({"kind": KIND, "status": "ok", "key": key,
                    "created": created, "study": study_name, "rater": r["rater_id"], "item": r["item_id"],
                    "prompt": r["prompt"], "index": r["idx"], "x": r["arm_x"], "y": r["arm_y"],
                    "question": r["question"], "answer": r["answer"], "left": r["left_arm"],
                    "right": r["right_arm"], "winner": r["winner"],
                    "outcome": outcome(r["winner"], r["arm_x"], r["arm_y"]), "shown_at": r["shown_at"],
                    "cast_at": r["cast_at"], "client_ms": r["client_ms"], "revisions": r["revisions"]})
        check_record(out[-1])
    return out


def export(inputs: Inputs, db_path: Path, out_root: Path) -> Path:
    """Write a new run folder under ``out_root`` from the database's effective votes; returns it."""
    conn = connect(db_path)
    try:
        check_inputs(conn, inputs, db_path)
        rows = effective_votes(conn)
        n_invalid = invalid_votes(conn)
        n_raters = conn.execute("SELECT COUNT(*) FROM raters").fetchone()[0]
        n_items = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        created = meta(conn)["created"]
    finally:
        conn.close()
    if not rows:
        raise EvalkitError(f"{db_path}: no votes yet; nothing to report")
    s = inputs.study
    records = vote_records(rows, s.name)
    run_dir = new_run_dir(out_root, prefix=f"{s.name}-")
    # a fresh folder nobody else writes: all records in one file, written whole, then renamed into place
    tmp = run_dir / f".results.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, results_file(run_dir))
    write_manifest(run_dir, experiment=EXPERIMENT, run_id=run_dir.name, kind=EXPERIMENT, study=to_dict(s),
                   study_hash=inputs.study_hash, study_file=str(inputs.path), db=str(Path(db_path).resolve()),
                   db_created=created, exported=now_iso(), n_votes=len(records), n_raters=n_raters,
                   n_items=n_items, n_prompts=len(inputs.prompts), n_votes_not_counted=n_invalid, smoke=False)
    return run_dir
