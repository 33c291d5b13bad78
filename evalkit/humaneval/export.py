"""Study database -> a run folder the report pipeline reads: ``manifest.json`` + ``results.jsonl``.

One record per effective vote (``kind: humaneval_vote``; the latest answer of each rater x item x question, with
how often it was changed), raters as pseudonyms (``r1``, ``r2`` ... in the order they joined; names stay in the
database). The manifest holds the resolved study (questions, tie rule, bootstrap) and the study hash, so the
report renders from the folder alone. Each export is a new folder (``<study>-<UTC time>-<pid>``): votes keep
coming while a study runs, and an earlier export is never overwritten.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError
from evalkit.humaneval import db, stats
from evalkit.humaneval.study import Inputs
from evalkit.results import new_run_dir, now_iso, write_manifest
from evalkit.typed import to_dict

EXPERIMENT = "humaneval"
KIND = "humaneval_vote"


def vote_records(rows: list[dict[str, Any]], study_name: str) -> list[dict[str, Any]]:
    created = now_iso()
    out = []
    for r in rows:
        out.append({"kind": KIND, "status": "ok", "key": f"{r['rater_id']}|{r['item_id']}|{r['question']}",
                    "created": created, "study": study_name, "rater": r["rater_id"], "item": r["item_id"],
                    "prompt": r["prompt"], "index": r["idx"], "x": r["arm_x"], "y": r["arm_y"],
                    "question": r["question"], "answer": r["answer"], "left": r["left_arm"],
                    "right": r["right_arm"], "winner": r["winner"],
                    "outcome": stats.outcome(r["winner"], r["arm_x"], r["arm_y"]), "shown_at": r["shown_at"],
                    "cast_at": r["cast_at"], "client_ms": r["client_ms"], "revisions": r["revisions"]})
    return out


def export(inputs: Inputs, db_path: Path, out_root: Path) -> Path:
    """Write a new run folder under ``out_root`` from the database's effective votes; returns it."""
    conn = db.connect(db_path)
    try:
        db.check_inputs(conn, inputs, db_path)
        rows = db.effective_votes(conn)
        n_raters = conn.execute("SELECT COUNT(*) FROM raters").fetchone()[0]
        n_items = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        created = db.meta(conn)["created"]
    finally:
        conn.close()
    if not rows:
        raise EvalkitError(f"{db_path}: no votes yet; nothing to report")
    s = inputs.study
    records = vote_records(rows, s.name)
    run_dir = new_run_dir(out_root, prefix=f"{s.name}-")
    tmp = run_dir / f".results.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, run_dir / "results.jsonl")
    write_manifest(run_dir, experiment=EXPERIMENT, run_id=run_dir.name, kind=EXPERIMENT, study=to_dict(s),
                   study_hash=inputs.study_hash, study_file=str(inputs.path), db=str(Path(db_path).resolve()),
                   db_created=created, exported=now_iso(), n_votes=len(records), n_raters=n_raters,
                   n_items=n_items, n_prompts=len(inputs.prompts), smoke=False)
    return run_dir
