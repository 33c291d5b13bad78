"""Procedurally generated captioned videos: one coloured shape moving in a stated direction on black.

Captions name colour, shape and direction ("a red square moving left"), so a text-conditioned model must bind
all three; the alignment suite (``alignment.py``) checks colour and direction back from pixels. This is the
project's small-scale stand-in for a captioned video corpus (no data set is downloadable here). Every sample is a
pure function of (config, seed): the same seed gives the same video.
"""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from evalkit.core.errors import ChoiceError, FieldError

# Saturated RGB prototypes; hues are 60 degrees apart so the alignment suite can tell them apart from pixels.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (235, 35, 35), "yellow": (235, 225, 35), "green": (35, 215, 35),
    "cyan": (35, 215, 225), "blue": (45, 70, 240), "magenta": (225, 40, 225),
}
SHAPES = ("square", "circle", "triangle")
# image coordinates: x grows to the right, y grows downwards
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig:
    height: int = 32
    width: int = 32
    num_frames: int = 8
    fps: int = 8
    object_size: int = 10            # px, side / diameter
    speed: float = 2.0               # px per frame
    colors: tuple[str, ...] = tuple(PALETTE)
    shapes: tuple[str, ...] = SHAPES
    directions: tuple[str, ...] = tuple(DIRECTIONS)

    def __post_init__(self) -> None:
        for field, values, valid in (("data.colors", self.colors, PALETTE), ("data.shapes", self.shapes, SHAPES),
                                     ("data.directions", self.directions, DIRECTIONS)):
            for v in values:
                if v not in valid:
                    raise ChoiceError(field, v, valid)
        travel = self.speed * (self.num_frames - 1)
        if self.object_size + travel + 2 > min(self.height, self.width):
            raise FieldError("data", f"object_size {self.object_size} + travel {travel:g} px does not fit a "
                                     f"{self.height}x{self.width} frame")


def caption(color: str, shape: str, direction: str) -> str:
    return f"a {color} {shape} moving {direction}"


def all_captions(cfg: DataConfig) -> list[tuple[str, str, str]]:
    """Every (colour, shape, direction) combination, in a fixed order."""
    return list(itertools.product(cfg.colors, cfg.shapes, cfg.directions))


def _shape_mask(shape: str, cx: float, cy: float, size: int, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    r = size / 2
    if shape == "square":
        return (np.abs(xx - cx) <= r) & (np.abs(yy - cy) <= r)
    if shape == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    # isosceles triangle pointing up: inside if below the apex lines and above the base
    dy = yy - (cy - r)
    return (dy >= 0) & (yy <= cy + r) & (np.abs(xx - cx) <= dy / 2)


def render(cfg: DataConfig, color: str, shape: str, direction: str, rng: np.random.Generator) -> np.ndarray:
    """One video (F, H, W, 3) uint8: the object starts at a random place from which its whole path stays inside."""
    dx, dy = DIRECTIONS[direction]
    travel = cfg.speed * (cfg.num_frames - 1)
    r = cfg.object_size / 2 + 1

    def start(extent: int, d: int) -> float:
        lo, hi = r + (travel if d < 0 else 0), extent - r - (travel if d > 0 else 0)
        return float(rng.uniform(lo, hi))

    x0, y0 = start(cfg.width, dx), start(cfg.height, dy)
    out = np.zeros((cfg.num_frames, cfg.height, cfg.width, 3), np.uint8)
    rgb = np.array(PALETTE[color], np.uint8)
    for f in range(cfg.num_frames):
        m = _shape_mask(shape, x0 + dx * cfg.speed * f, y0 + dy * cfg.speed * f, cfg.object_size,
                        cfg.height, cfg.width)
        out[f][m] = rgb
    return out


def sample_batch(cfg: DataConfig, batch: int, rng: np.random.Generator):
    """(videos (B, F, H, W, 3) uint8, captions, labels [(colour, shape, direction)]) drawn uniformly."""
    combos = all_captions(cfg)
    picks = [combos[i] for i in rng.integers(0, len(combos), size=batch)]
    videos = np.stack([render(cfg, c, s, d, rng) for c, s, d in picks])
    return videos, [caption(*p) for p in picks], picks


def to_model_pixels(videos: np.ndarray):
    """uint8 (B, F, H, W, 3) -> float tensor (B, 3, F, H, W) in [-1, 1]."""
    import torch

    x = torch.from_numpy(videos).float().div(127.5).sub(1.0)
    return x.permute(0, 4, 1, 2, 3).contiguous()   # (B, 3, F, H, W)
