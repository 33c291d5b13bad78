"""Experiment files with ``parts:`` (experiments/paper_latency.yaml): each part a partial override resolved to a
complete config, in priority order; keys and records name the part; smoke goes over every part; errors name the
part and the closest key; the budget section is outside the config hash."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from evalkit.core.errors import ChoiceError, FieldError
from evalkit.sweep.config import load_experiment
from evalkit.sweep.plan import plan_points

BASE = {"kind": "sweep", "name": "p", "models": ["lingen", "dit"], "flavors": ["tiny"],
        "resolutions": {"64p": [64, 112]}, "durations_s": [8.5, 17], "measurements": ["latency"]}


def write(tmp_path: Path, **over) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text("# parts test\n" + yaml.safe_dump({**BASE, **over}))
    return path


def test_paper_latency_parts_resolve_in_priority_order() -> None:
    exp = load_experiment("paper_latency")
    parts = exp.parts
    names = ["fig6a_512p", "table2", "fig6a_512p_cudnn", "figure_512sq", "figure_17s", "fig20", "table2_mamba1",
             "fig6a_256p", "max_frames", "figure_fitted_512sq", "figure_fitted_17s",
             *(f"open_{m}" for m in ("wan2.1-1.3b", "cogvideox-2b", "cogvideox-5b", "ltx-video", "sana-video",
                                     "wan2.2-ti2v-5b", "mochi-1", "hunyuanvideo", "wan2.1-14b"))]
    assert [p.name for p, _ in parts] == names
    cfg = {p.name: c for p, c in parts}
    assert cfg["fig6a_512p"].models == ("lingen", "dit") and cfg["fig6a_512p"].durations_s == (17, 68)
    assert len(cfg["table2"].models) == 6 and cfg["table2"].durations_s == (17,)   # + w/ Mamba in table2_mamba1
    assert cfg["table2_mamba1"].models == ("lingen-mamba1",)
    assert cfg["fig6a_512p"].latency.min_iterations == 3 and exp.parts[0][0].strict
    assert cfg["fig6a_512p_cudnn"].latency.sdpa_backend == "cudnn" and cfg["fig6a_512p_cudnn"].models == ("dit",)
    assert cfg["fig20"].flavors == ("1b", "2b", "4b", "8b") and cfg["fig20"].sampling.steps == 100
    assert cfg["table2"].sampling.steps == 50                      # the override is the part's only
    assert cfg["fig6a_256p"].resolutions == {"256p": (256, 448)}
    assert cfg["max_frames"].measurements == ("max_frames",) and cfg["max_frames"].max_frames.memory_limit_gib == 80
    specs = plan_points(exp)
    order = [s.tag.part for s in specs]
    assert order == sorted(order, key=names.index)
    for s in specs:
        assert all(k.startswith(f"{s.tag.part}:") for k in s.record_keys.values())
        group = {"fig6a_512p_cudnn": "fig6a_cudnn", "table2_mamba1": "table2"}.get(s.tag.part) or next(
            (g for g in ("fig6a", "figure_fitted", "figure", "open") if s.tag.part.startswith(g)), s.tag.part)
        group = "open_models" if group == "open" else group
        assert s.tag.part_group == group
    keys = [k for s in specs for k in s.record_keys.values()]
    assert len(keys) == len(set(keys))                             # one point in two parts: two keys
    fig20 = next(s for s in specs if s.tag.part == "fig20" and s.flavor == "4b" and s.model == "lingen")
    fig6a = next(s for s in specs if s.tag.part == "fig6a_512p" and s.duration_s == 17 and s.model == "lingen")
    assert fig20.settings.sampling.steps == 100 and fig6a.settings.sampling.steps == 50


def test_smoke_goes_over_every_part() -> None:
    exp = load_experiment("paper_latency", smoke=True)
    full = [p.name for p, _ in load_experiment("paper_latency").parts]
    # the released models' parts (smoke: false: no tiny flavor) are left out, every other part is shrunk
    assert [p.name for p, _ in exp.parts] == [n for n in full if not n.startswith("open_")]
    for part, cfg in exp.parts:
        assert cfg.flavors == ("tiny",) and list(cfg.resolutions) == ["64p"], part.name
        assert cfg.budget.device == "cpu"
    assert plan_points(exp)            # every tiny point is valid


def test_part_filter_and_unknown_part(tmp_path: Path) -> None:
    exp = load_experiment("paper_latency")
    assert {s.tag.part for s in plan_points(exp, ["table2"])} == {"table2"}
    with pytest.raises(ChoiceError, match="Did you mean 'table2'"):
        plan_points(exp, ["tabel2"])
    with pytest.raises(FieldError, match="no parts"):
        plan_points(load_experiment(write(tmp_path)), ["x"])


@pytest.mark.parametrize("parts, match", [
    ([{"name": "a", "modles": ["dit"]}], r"parts\[0\]\(a\)\.modles: unknown key of a part .* Did you mean 'models'"),
    ([{"name": "a", "launch": {"launcher": "process"}}], r"parts\[0\]\(a\)\.launch: unknown key"),
    ([{"name": "a"}, {"name": "a", "durations_s": [17]}], r"parts\[1\]: 'a' is listed twice"),
    ([{"name": "../x"}], r"parts\[0\]\.name: '\.\./x' is not a plain file name"),
    ([{"models": ["dit"]}], r"parts\[0\]\.name: is required"),
    ([{"name": "a", "durations_s": [-1]}], r"parts\[0\]\(a\)\.durations_s\[0\]: must be > 0"),
    ([{"name": "a", "flavors": ["tiny", "tiny"]}], r"parts\[0\]\(a\)\.flavors\[1\]: 'tiny' is listed twice"),
    ([{"name": "a", "latency": {"warmupp": 1}}], r"parts\[0\]\(a\)\.latency\.warmupp: unknown key.*'warmup'"),
])
def test_bad_parts_are_errors_naming_the_part(tmp_path: Path, parts, match) -> None:
    with pytest.raises((ChoiceError, FieldError), match=match):
        load_experiment(write(tmp_path, parts=parts))


def test_parts_and_variations_do_not_combine(tmp_path: Path) -> None:
    with pytest.raises(FieldError, match="parts and variations do not combine"):
        load_experiment(write(tmp_path, parts=[{"name": "a"}], variations={"v": {}}))


def test_a_part_model_that_does_not_exist_names_the_part(tmp_path: Path) -> None:
    with pytest.raises(FieldError, match=r"parts\(a\)\.models='ditt'"):
        plan_points(load_experiment(write(tmp_path, parts=[{"name": "a", "models": ["ditt"]}])))


def test_budget_is_outside_the_config_hash_parts_are_inside() -> None:
    h = load_experiment("paper_latency").config_hash()
    assert load_experiment("paper_latency", sets=["budget.seconds=5", "budget.cuda.peak_tflops=500"]).config_hash() == h
    assert load_experiment("paper_latency", sets=["sampling.steps=10"]).config_hash() != h


def test_budget_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(FieldError, match=r"budget\.cuda\.achieved_fraction\.dit: must be in \(0, 1\]"):
        load_experiment(write(tmp_path, budget={"cuda": {"achieved_fraction": {"default": 0.3, "dit": 2}}}))
    with pytest.raises(FieldError, match=r"achieved_fraction: needs a 'default'"):
        load_experiment(write(tmp_path, budget={"cuda": {"achieved_fraction": {"dit": 0.3}}}))
    with pytest.raises(ChoiceError, match=r"achieved_fraction\.ditt.*Did you mean 'dit'"):
        load_experiment(write(tmp_path, budget={"cpu": {"achieved_fraction": {"default": 0.3, "ditt": 0.3}}}))
    with pytest.raises(FieldError, match=r"--budget-s: must be >= 0"):
        from evalkit.sweep import cli
        cli.main([str(write(tmp_path)), "--budget-s", "-1", "--dry-run"])
