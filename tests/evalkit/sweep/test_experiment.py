"""Experiment files: every shipped file validates (base and smoke), bad input fails before any work with the
field, the valid choices and the closest match."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from evalkit.core.errors import ChoiceError, EvalkitError, FieldError
from evalkit.core.experiments import EXPERIMENTS_DIR, experiment_names
from evalkit.sweep.config import load_experiment, parse_experiment
from evalkit.sweep import cli
from evalkit.sweep.plan import plan_points

SHIPPED = ["scaling", "size_ladder", "ablations", "sensitivity"]

BASE = {"kind": "sweep", "name": "t", "models": ["lingen", "dit"], "flavors": ["tiny"], "resolutions": {"64p": [64, 112]},
        "durations_s": [17], "measurements": ["flops"], "flops": {"fvcore": False}}


def write(tmp_path: Path, data: dict, name: str = "t") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text("# test experiment\n" + yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("smoke", [False, True])
def test_shipped_experiments_validate(name: str, smoke: bool) -> None:
    exp = load_experiment(name, smoke=smoke)
    specs = plan_points(exp)
    assert specs and all(spec.record_keys for spec in specs)
    keys = [k for s in specs for k in s.record_keys.values()]
    assert len(keys) == len(set(keys)), "record keys must be unique within an experiment"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_experiments_open_with_a_comment(name: str) -> None:
    text = (EXPERIMENTS_DIR / f"{name}.yaml").read_text()
    head = text.split("\nname:")[0]
    assert head.startswith("#")
    assert f"python -m evalkit sweep" in head and "Hardware" in head and "Feeds" in head


def test_default_experiment_is_scaling_with_the_paper_points() -> None:
    assert "scaling" in experiment_names()
    c = load_experiment().config
    assert set(c.models) == {"lingen", "dit"} and c.flavors == ("4b",)
    assert c.resolutions["256p"] == (256, 448) and c.resolutions["512p"] == (512, 896)
    assert min(c.durations_s) <= 10 and max(c.durations_s) == 68


def test_unknown_top_level_key_did_you_mean(tmp_path: Path) -> None:
    data = dict(BASE)
    data["duration_s"] = data.pop("durations_s")
    with pytest.raises(ChoiceError) as err:
        load_experiment(write(tmp_path, data))
    assert "durations_s" in str(err.value) and "Did you mean 'durations_s'" in str(err.value)


def test_unknown_nested_and_smoke_keys(tmp_path: Path) -> None:
    with pytest.raises(ChoiceError, match="Did you mean 'warmup'"):
        load_experiment(write(tmp_path, {**BASE, "latency": {"warmpu": 3}}))
    # the smoke section is validated even when --smoke is not given
    with pytest.raises(ChoiceError, match="Did you mean 'flavors'"):
        load_experiment(write(tmp_path, {**BASE, "smoke": {"flavours": ["tiny"]}}))


def test_bad_values_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(FieldError, match=r"resolutions\.64p"):
        load_experiment(write(tmp_path, {**BASE, "resolutions": {"64p": [64]}}))
    with pytest.raises(FieldError, match=r"durations_s\[0\]"):
        load_experiment(write(tmp_path, {**BASE, "durations_s": [-1]}))
    with pytest.raises(ChoiceError, match="Did you mean 'latency'"):
        load_experiment(write(tmp_path, {**BASE, "measurements": ["latncy"]}))
    with pytest.raises(ChoiceError, match="Did you mean 'height'"):
        load_experiment(write(tmp_path, {**BASE, "resolutions": {"64p": {"heigth": 64, "width": 112}}}))


def test_resolution_as_mapping_and_set_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, {**BASE, "resolutions": {"64p": {"height": 64, "width": 112}}})
    exp = load_experiment(path, sets=["latency.warmup=7", "durations_s=[8.5, 17]"])
    assert exp.config.resolutions["64p"] == (64, 112)
    assert exp.config.latency.warmup == 7 and exp.config.durations_s == (8.5, 17.0)
    with pytest.raises(ChoiceError, match="Did you mean 'warmup'"):
        load_experiment(path, sets=["latency.warmpu=7"])


def test_config_hash_tracks_results_not_launch(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    h = load_experiment(path).config_hash()
    assert load_experiment(path, sets=["launch.launcher=process"]).config_hash() == h
    assert load_experiment(path, sets=["sampling.steps=100"]).config_hash() != h


@pytest.mark.parametrize("change, match", [
    ({"models": ["ditt"]}, "Did you mean 'dit'"),
    ({"flavors": ["4bb"]}, "4b"),
    ({"resolutions": {"bad": [65, 112]}}, "resolution"),
])
def test_bad_experiment_fails_before_any_work(tmp_path: Path, change: dict, match: str, capsys) -> None:
    runs = tmp_path / "runs"
    path = write(tmp_path, {**BASE, **change})
    with pytest.raises(EvalkitError, match=match):
        cli.main([str(path), "--runs-root", str(runs), "--no-progress"])
    assert not runs.exists(), "no run folder may be created for an invalid experiment"


def test_validate_verb_handles_both_kinds(capsys) -> None:
    from evalkit.validate import main as validate_main

    assert validate_main(["scaling"]) == 0
    out = capsys.readouterr().out
    assert "ok (sweep" in out and "points" in out
    assert validate_main(["train_tiny", "--set", "train.steps=5"]) == 0
    assert "ok (train, 4 models" in capsys.readouterr().out


def test_each_verb_names_only_files_of_its_kind(tmp_path: Path) -> None:
    """``sweep train_tiny`` names the verb that runs it; a typo lists sweep files only (no train file)."""
    assert "train_tiny" not in experiment_names("sweep") and "scaling" in experiment_names("sweep")
    assert experiment_names("train") == ["train_mixers", "train_tiny"]
    with pytest.raises(FieldError, match=r"train experiment.*python -m evalkit train train_tiny"):
        load_experiment("train_tiny")
    with pytest.raises(ChoiceError) as err:
        load_experiment("scalng")
    assert "Did you mean 'scaling'" in str(err.value) and "train_tiny" not in str(err.value)
    from evalkit.train.config import load_train

    with pytest.raises(FieldError, match=r"sweep experiment.*python -m evalkit sweep scaling"):
        load_train("scaling")
    no_kind = write(tmp_path, {k: v for k, v in BASE.items() if k != "kind"}, "nokind")
    with pytest.raises(ChoiceError, match=r"nokind\.kind.*sweep, train"):
        load_experiment(no_kind)


def test_parse_rejects_non_mapping() -> None:
    with pytest.raises(FieldError):
        parse_experiment(["not", "a", "mapping"], where="x")  # type: ignore[arg-type]
    assert json.dumps(BASE)  # the fixture itself is plain data


VARIED = {**BASE, "variations": {
    "baseline": {"axis": "presets"},
    "width": {"axis": "width", "grid": {"d_model+heads": [[32, 2], [96, 4]]}},
    "frame": {"grid": {"resolution": [[64, 64], [64, 96]], "text_len": [4, 16]}},
    "window": {"model_overrides": {"mate": {"shift": [0, 0, 0]}}, "grid": {"mate.window": [[1, 1, 1], [2, 2, 2]]}},
}}


def test_variations_expand_to_named_point_sets(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, VARIED))
    specs = plan_points(exp)
    by_var: dict[str, list] = {}
    for s in specs:
        by_var.setdefault(s.tag.variation, []).append(s)
    names = list(by_var)
    assert names.index("width[d_model=32,heads=2]") + 1 == names.index("width[d_model=96,heads=4]")  # grid order
    assert len(by_var) == 1 + 2 + 2 * 2 + 2 and len(specs) == 2 * len(by_var)   # x 2 models, 1 point each
    w = by_var["width[d_model=96,heads=4]"][0]
    assert w.overrides == {"d_model": 96, "heads": 4} and w.tag.variation_axis == "width"
    assert w.tag.variation_value == "d_model=96,heads=4" and w.params > by_var["baseline"][0].params
    f = by_var["frame[resolution=64x96,text_len=16]"][0]
    assert (f.height, f.width, f.overrides) == (64, 96, {"text_len": 16})
    assert f.tag.variation_axis == "frame"                                   # axis defaults to the name
    win = by_var["window[window=2x2x2]"][0].overrides
    assert win == {"mate.shift": [0, 0, 0], "mate.window": [2, 2, 2]}      # nested fixed part, flattened
    keys = [k for s in specs for k in s.record_keys.values()]
    assert len(set(keys)) == len(keys) and "{baseline}" in by_var["baseline"][0].record_key("flops")
    plain = plan_points(load_experiment(write(tmp_path, BASE, "plain")))
    assert plain[0].tag.variation is None and "{" not in plain[0].record_key("flops")   # other experiments unchanged


@pytest.mark.parametrize("grid, match", [
    ({"d_model+heads": [[32, 2], [96]]}, r"variations\.w\.grid\.d_model\+heads\[1\]: expected 2 values"),
    ({"d_model": []}, r"variations\.w\.grid\.d_model: needs at least one value"),
    ({"resolution": [[64, -1]]}, r"variations\.w\.grid\.resolution\[0\]: expected \[height, width\], positive"),
    ({"d_modle": [32]}, r"Did you mean 'd_model'"),
    ({"mate.window": [[9, 9, 9]]}, r"variation='w\[window=9x9x9\]'.*mate\.window"),
])
def test_bad_variations_name_the_field(tmp_path: Path, grid: dict, match: str) -> None:
    exp = load_experiment(write(tmp_path, {**BASE, "variations": {"w": {"grid": grid}}}))
    with pytest.raises(EvalkitError, match=match):
        plan_points(exp)


def test_variation_records_carry_the_variation(tmp_path: Path, capsys) -> None:
    data = {**BASE, "models": ["dit"], "variations": {"baseline": {}, "text": {"grid": {"text_len": [4, 16]}}}}
    rc = cli.main([str(write(tmp_path, data)), "--runs-root", str(tmp_path / "runs"), "--no-progress", "--no-plots"])
    summ = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    from evalkit.core.records import read_records

    recs = {r["variation"]: r for r in read_records([summ["run_dir"]])}
    assert rc == 0 and set(recs) == {"baseline", "text[text_len=4]", "text[text_len=16]"}
    assert recs["text[text_len=16]"]["variation_axis"] == "text"
    assert recs["text[text_len=16]"]["model_overrides"] == {"text_len": 16}
    assert recs["text[text_len=16]"]["flops"] > recs["text[text_len=4]"]["flops"]
