"""The one limited YAML loader (evalkit.core.safe_yaml): hostile files are refused by name, before any value is
built; the project's own files (aliases, merge keys) still load."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from evalkit.core import safe_yaml
from evalkit.core.errors import FieldError
from evalkit.core.experiments import EXPERIMENTS_DIR, REPO_ROOT, read_yaml
from evalkit.core.typed import apply_overrides

BOMB = "a: &a [" + ",".join(["lol"] * 9) + "]\n" + "".join(
    f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))


def refused(tmp_path: Path, text: str | bytes, match: str) -> str:
    path = tmp_path / "x.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(FieldError, match=match) as exc:
        safe_yaml.load(path)
    assert str(path) in str(exc.value)
    return str(exc.value)


def test_project_yaml_files_load_as_with_safe_load():
    files = sorted(EXPERIMENTS_DIR.rglob("*.yaml")) + sorted((REPO_ROOT / "backbone").glob("*.yaml")) + sorted(
        (REPO_ROOT / "lingen").glob("*.yaml"))
    assert len(files) > 10
    for f in files:
        assert safe_yaml.load(f) == yaml.safe_load(f.read_text(encoding="utf-8")), f


def test_alias_bomb_is_refused_at_once(tmp_path):
    t0 = time.perf_counter()
    msg = refused(tmp_path, BOMB, "expands to more than")
    assert time.perf_counter() - t0 < 5 and len(msg) < 300


@pytest.mark.parametrize("text, match", [
    ("a: &a [*a]\n", "recursive alias"),
    ("x: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested deeper than 32"),
    ("x: [" + ",".join(["1"] * 10_001) + "]\n", "a list of 10001 items"),
    ("x: " + "y" * 70_000 + "\n", "a value of 70000 characters"),
    ("x: !!python/object/apply:os.system [echo hi]\n", "tag '!!python/object/apply:os.system' is not allowed"),
    ("x: !!python/name:os.system ''\n", "tag '!!python/name:os.system' is not allowed"),
    ("x: !local 3\n", "tag '!local' is not allowed"),
    ("x: !!binary aGk=\n", "tag '!!binary' is not allowed"),
    ("x: !!set {a: null}\n", "tag '!!set' is not allowed"),
    ("".join(f"k{i}: &k{i} {i}\n" for i in range(10)) + "y: [" + ",".join(["*k0"] * 300) + "]\n",
     "more than 256 aliases"),
    (b"x: \xff\xfe\n", "not UTF-8"),
    ("x: [1, 2\n", "not valid YAML"),
])
def test_hostile_documents_are_refused_by_name(tmp_path, text, match):
    refused(tmp_path, text, match)


def test_size_limit_reads_no_further(tmp_path):
    path = tmp_path / "big.yaml"
    with open(path, "wb") as fh:
        fh.write(b"x: [")
        fh.truncate(50 << 20)   # sparse 50 MB
    with pytest.raises(FieldError, match="larger than 1048576 bytes"):
        safe_yaml.load(path)


def test_fifo_and_folder_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "f.yaml"
    os.mkfifo(fifo)
    with pytest.raises(FieldError, match="not a regular file"):
        read_yaml(fifo)
    with pytest.raises(FieldError, match="is a folder"):
        read_yaml(tmp_path)


def test_bom_merge_keys_and_anchors_still_work(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("\ufeffbase: &b {x: 1, y: 2}\nover:\n  <<: *b\n  y: 3\nwhen: 2026-12-01\n", encoding="utf-8")
    data = safe_yaml.load(path)
    assert data["over"] == {"x": 1, "y": 3} and "base" in data


def test_set_values_use_the_limited_loader_and_errors_stay_short():
    with pytest.raises(FieldError, match="tag '!!python/object/apply:os.system' is not allowed"):
        apply_overrides({"a": 1}, ["a=!!python/object/apply:os.system [echo hi]"])
    with pytest.raises(FieldError, match="aliases"):
        apply_overrides({"a": 1}, ["a={x: &x [1], y: *x}"])
    from evalkit.core.typed import from_dict
    from dataclasses import dataclass

    @dataclass(frozen=True, kw_only=True)
    class C:
        n: int

    huge = [[list(range(1000))] * 1000] * 1000      # shared: a billion items once expanded
    with pytest.raises(FieldError) as exc:
        from_dict(C, {"n": huge})
    assert len(str(exc.value)) < 300
    assert safe_yaml.short_repr(huge).startswith("[[[") and len(safe_yaml.short_repr(huge)) <= 160
