"""Synthetic data set and the weights-free alignment suite (colour, direction, temporal consistency)."""
from __future__ import annotations

import numpy as np
import pytest

from evalkit.core.errors import ChoiceError, FieldError
from evalkit.train.alignment import aggregate, motion_direction, parse_caption, score_video
from evalkit.train.data import DataConfig, all_captions, caption, render, sample_batch
from evalkit.runtime.video_io import read_video, write_video
from repo_paths import REPO

OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}


def test_ground_truth_scores_high_through_mp4(tmp_path):
    cfg, rng = DataConfig(), np.random.default_rng(0)
    combos = all_captions(cfg)
    assert len(combos) == 6 * 3 * 4
    scores = []
    for i, (c, s, d) in enumerate(combos):
        path = write_video(tmp_path / f"{caption(c, s, d)}-0.mp4", render(cfg, c, s, d, rng), cfg.fps,
                           pix_fmt="yuv420p" if i % 2 else "yuv444p")
        frames, fps = read_video(path)
        assert frames.shape == (cfg.num_frames, cfg.height, cfg.width, 3) and fps == cfg.fps
        scores.append(score_video(frames, c, d))
    agg = aggregate(scores)
    assert agg["color_accuracy"] == 1.0 and agg["direction_accuracy"] == 1.0
    assert agg["temporal_consistency"] > 0.95


def test_wrong_colour_direction_and_noise_score_low():
    cfg, rng = DataConfig(), np.random.default_rng(1)
    colors = list(cfg.colors)
    wrong = []
    for c, s, d in all_captions(cfg):
        v = render(cfg, c, s, d, rng)
        wrong.append(score_video(v, colors[(colors.index(c) + 1) % len(colors)], OPPOSITE[d]))
    agg = aggregate(wrong)
    assert agg["color_accuracy"] == 0.0 and agg["direction_accuracy"] == 0.0
    noise = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    assert score_video(noise, "red", "left")["temporal_consistency"] < 0.8
    static = np.repeat(render(cfg, "red", "square", "left", rng)[:1], 8, axis=0)
    assert motion_direction(static) == "static"
    blank = np.zeros((8, 32, 32, 3), np.uint8)
    assert score_video(blank, "red", "left") == {"color_accuracy": 0.0, "direction_accuracy": 0.0,
                                                 "temporal_consistency": 0.0}


def test_flicker_lowers_temporal_consistency():
    cfg = DataConfig()
    v = render(cfg, "green", "circle", "down", np.random.default_rng(2))
    v[1::2] = 0                                            # object vanishes every other frame
    assert score_video(v, "green", "down")["temporal_consistency"] < 0.1


def test_data_is_deterministic_and_captions_parse():
    cfg = DataConfig()
    a, caps, labels = sample_batch(cfg, 5, np.random.default_rng(7))
    b, caps2, _ = sample_batch(cfg, 5, np.random.default_rng(7))
    assert np.array_equal(a, b) and caps == caps2
    assert [parse_caption(c) for c in caps] == labels


def test_data_config_errors():
    with pytest.raises(ChoiceError, match="Did you mean 'red'"):
        DataConfig(colors=("redd",))
    with pytest.raises(FieldError, match="does not fit"):
        DataConfig(height=12, width=12)


def test_committed_experiment_ground_truth_is_perfect():
    """The data set of experiments/train_tiny.yaml (16x16, 6 px objects) scores 1 on every metric."""
    from pathlib import Path

    from evalkit.train.alignment import VERSION
    from evalkit.train.cli import ALIGNMENT_VERSION
    from evalkit.train.config import load_train

    assert VERSION == ALIGNMENT_VERSION
    exp = load_train(REPO / "experiments" / "train_tiny.yaml")
    rng = np.random.default_rng(3)
    agg = aggregate([score_video(render(exp.data, c, s, d, rng), c, d) for c, s, d in all_captions(exp.data)])
    assert agg == {"color_accuracy": 1.0, "direction_accuracy": 1.0, "temporal_consistency": 1.0}
