"""``evalkit.train.config.load_train``: the same file lookup and YAML errors as the sweep's experiments."""
from __future__ import annotations

import pytest

from evalkit.core.errors import ChoiceError, FieldError
from evalkit.train.config import load_train


def test_name_resolves_like_the_sweep():
    exp = load_train("train_tiny")
    assert exp.experiment and exp.models


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(ChoiceError, match="train_tiny"):
        load_train("train_tiy")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [\n")
    with pytest.raises(FieldError, match="not valid YAML"):      # was an uncaught yaml.YAMLError
        load_train(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n")
    with pytest.raises(FieldError, match="mapping"):
        load_train(listed)
