"""``evalkit.train.config.load_experiment``: the same file lookup and YAML errors as the sweep's experiments."""
from __future__ import annotations

import pytest

from evalkit.errors import ChoiceError, FieldError
from evalkit.train.config import load_experiment


def test_name_resolves_like_the_sweep():
    exp, _ = load_experiment("train_tiny")
    assert exp.experiment and exp.models


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(ChoiceError, match="train_tiny"):
        load_experiment("train_tiy")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [\n")
    with pytest.raises(FieldError, match="not valid YAML"):      # was an uncaught yaml.YAMLError
        load_experiment(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n")
    with pytest.raises(FieldError, match="mapping"):
        load_experiment(listed)
