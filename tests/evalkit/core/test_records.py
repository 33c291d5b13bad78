"""``evalkit.core.records``: de-duplication across the job files of one run folder, whole lines, torn lines."""
from __future__ import annotations

from evalkit.core.records import append, done_keys, read_records


def test_newer_ok_row_of_a_job_file_beats_an_older_error_row(tmp_path):
    # results.0_0.jsonl sorts before results.jsonl: file order alone would let the old error hide the retry's ok
    append(tmp_path / "results.jsonl", {"key": "k", "kind": "selftest", "status": "error", "created": "2026-01-01T00:00:00Z"})
    append(tmp_path / "results.0_0.jsonl", {"key": "k", "kind": "selftest", "status": "ok", "created": "2026-01-01T00:05:00Z"})
    recs = read_records([tmp_path])
    assert [r["status"] for r in recs] == ["ok"]
    assert done_keys(tmp_path) == {"k"}


def test_later_line_wins_within_one_file_and_ok_beats_error_in_the_same_second(tmp_path):
    path = tmp_path / "results.jsonl"
    append(path, {"key": "a", "kind": "selftest", "status": "ok", "v": 1, "created": "2026-01-01T00:00:00Z"})
    append(path, {"key": "a", "kind": "selftest", "status": "ok", "v": 2, "created": "2026-01-01T00:00:00Z"})
    append(tmp_path / "results.x.jsonl", {"key": "b", "kind": "selftest", "status": "ok", "created": "2026-01-01T00:00:01Z"})
    append(tmp_path / "results.y.jsonl", {"key": "b", "kind": "selftest", "status": "error", "created": "2026-01-01T00:00:01Z"})
    by_key = {r["key"]: r for r in read_records([tmp_path])}
    assert by_key["a"]["v"] == 2
    assert by_key["b"]["status"] == "ok"


def _write_one(run_dir: str) -> str:
    from pathlib import Path

    from evalkit.core.runs import write_manifest
    return write_manifest(Path(run_dir), job="x").name


def test_concurrent_manifest_writers_each_get_their_own_file(tmp_path):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        names = list(pool.map(_write_one, [str(tmp_path)] * 8))
    assert sorted(names) == sorted(["manifest.json"] + [f"manifest.{i}.json" for i in range(1, 8)])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)   # no temp file left behind
