"""Prompt suites and work items of ``generate``: bad files fail early, seeds are stable, shards partition."""
from __future__ import annotations

import json

import pytest

from evalkit.core.errors import EvalkitError, FieldError
from evalkit.generate.core import make_items, read_videos, video_name
from evalkit.launch.torchrun import shard
from evalkit.generate.prompts import load_prompts, read_vbench_prompts
from evalkit.core.records import append


def test_prompt_file_errors(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("a red square moving left\n\na blue circle moving up\n")
    with pytest.raises(FieldError, match=r"empty line\(s\) \[2\]"):
        load_prompts(str(f))
    f.write_text("a\nb\na\n")
    with pytest.raises(FieldError, match="line 3 repeats line 1"):
        load_prompts(str(f))
    f.write_text("a cat/dog\n")
    with pytest.raises(FieldError, match="'/'"):
        load_prompts(str(f))
    with pytest.raises(FieldError, match="neither 'vbench' nor an existing prompt file"):
        load_prompts(str(tmp_path / "missing.txt"))
    f.write_text("A Cat, sitting.\nb\n")
    assert load_prompts(str(f)) == ["A Cat, sitting.", "b"]          # kept verbatim (VBench names)


def test_vbench_list(tmp_path, monkeypatch):
    info = tmp_path / "VBench_full_info.json"
    info.write_text(json.dumps([{"prompt_en": "x y", "dimension": ["a"]}, {"prompt_en": "z", "dimension": ["b"]},
                                {"prompt_en": "x y", "dimension": ["c"]}]))
    assert read_vbench_prompts(info) == ["x y", "z"]
    assert load_prompts("vbench", str(info)) == ["x y", "z"]
    monkeypatch.delenv("VBENCH_FULL_INFO", raising=False)
    monkeypatch.delenv("EVALKIT_VBENCH_ENV", raising=False)
    monkeypatch.setattr("evalkit.generate.prompts.REPO_ROOT", tmp_path)
    with pytest.raises(EvalkitError, match="--vbench-info"):
        load_prompts("vbench")


def test_items_seeds_and_shards(tmp_path):
    items = make_items(["p", "q", "r"], 5, base_seed=3)
    assert [it.name for it in items[:2]] == ["p-0.mp4", "p-1.mp4"] and video_name("q", 4) == "q-4.mp4"
    assert len({it.seed for it in items}) == 15
    assert make_items(["r"], 5, 3) == [it for it in items if it.prompt == "r"]       # seed independent of list
    shards = [shard(items, r, 4) for r in range(4)]
    assert sorted(sum(shards, []), key=items.index) == items
    for r in range(2):
        for it in shard(items, r, 2):
            append(tmp_path / f"videos.{r}.jsonl", {"key": it.name, "kind": "video", "status": "ok", "file": it.name})
    assert sorted(r["file"] for r in read_videos(tmp_path)) == sorted(it.name for it in items)
    with pytest.raises(FieldError):
        make_items(["p"], 0)
