"""Weights-free alignment suite for the synthetic videos: colour, motion direction, temporal consistency.

All three read pixels only (uint8 (F, H, W, 3) frames, e.g. decoded back from the mp4), no learned model:
- ``color_accuracy``: the object is the set of bright, saturated pixels; its dominant colour is the majority vote
  of the nearest palette hue over all object pixels of all frames; correct if it is the requested colour.
- ``direction_accuracy``: least-squares slope of the object's centroid over frames, times (F - 1) = displacement;
  the larger axis and its sign give left/right/up/down; under ``min_travel`` px it is "static" (wrong).
- ``temporal_consistency``: mean over consecutive frame pairs of cos(hue histogram_t, hue histogram_t+1) x
  IoU(mask_t, mask_t+1) after moving each object mask so its centroid sits at the frame centre (motion is
  factored out); 1 for a rigid object of constant colour, 0 when the object vanishes, lower when it flickers,
  morphs, changes colour or is noise. (A motion-invariant analogue of VBench's subject
  consistency; assumed, not the paper's metric.)
This is the small-scale analogue of the paper's alignment / consistency scores, not a VBench substitute.
"""
from __future__ import annotations

import numpy as np

from evalkit.train.data import DIRECTIONS, PALETTE

SAT_MIN, VAL_MIN = 0.4, 0.35     # assumed thresholds for "object" pixels (background is black)
VERSION = 2                      # bump when a metric changes (2: centring with floor(x + 0.5))


def _hue(rgb: np.ndarray) -> np.ndarray:
    """Hue in degrees [0, 360) of float RGB (..., 3) in [0, 1]."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx, mn = rgb.max(-1), rgb.min(-1)
    d = np.where(mx - mn == 0, 1e-9, mx - mn)
    h = np.where(mx == r, (g - b) / d % 6, np.where(mx == g, (b - r) / d + 2, (r - g) / d + 4))
    return (h * 60.0) % 360.0


def object_mask(frames: np.ndarray) -> np.ndarray:
    """(F, H, W) bool: bright and saturated pixels."""
    x = frames.astype(np.float32) / 255.0
    mx, mn = x.max(-1), x.min(-1)
    sat = (mx - mn) / np.maximum(mx, 1e-6)
    return (mx > VAL_MIN) & (sat > SAT_MIN)


def _palette_bins(frames: np.ndarray, mask: np.ndarray, names: list[str]) -> np.ndarray:
    """Palette index of the nearest hue for every pixel (F, H, W)."""
    ref = np.array([_hue(np.array(PALETTE[n], np.float32) / 255.0) for n in names])        # (K,)
    hue = _hue(frames.astype(np.float32) / 255.0)[..., None]                              # (F, H, W, 1)
    dist = np.abs((hue - ref + 180.0) % 360.0 - 180.0)                                    # (F, H, W, K)
    return dist.argmin(-1)


def dominant_color(frames: np.ndarray, names: list[str] | None = None) -> str | None:
    names = list(names or PALETTE)
    mask = object_mask(frames)
    if not mask.any():
        return None
    bins = _palette_bins(frames, mask, names)[mask]
    return names[int(np.bincount(bins, minlength=len(names)).argmax())]


def motion_direction(frames: np.ndarray, min_travel: float = 2.0) -> str | None:
    """'left'/'right'/'up'/'down', 'static' under ``min_travel`` px, None when the object is never seen."""
    mask = object_mask(frames)
    ts, xs, ys = [], [], []
    for f in range(mask.shape[0]):
        yy, xx = np.nonzero(mask[f])
        if len(xx):
            ts.append(f), xs.append(xx.mean()), ys.append(yy.mean())
    if len(ts) < 2:
        return None
    t = np.array(ts, np.float64)
    span = frames.shape[0] - 1
    dx, dy = (np.polyfit(t, np.array(v), 1)[0] * span for v in (xs, ys))
    if max(abs(dx), abs(dy)) < min_travel:
        return "static"
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def _centred(mask: np.ndarray) -> np.ndarray:
    """``mask`` (H, W) rolled so that its centroid lands on the frame centre."""
    yy, xx = np.nonzero(mask)
    h, w = mask.shape
    # floor(x + 0.5), not round(): banker's rounding of .5 centroids would misalign a rigidly moving object by 1 px
    dy, dx = (int(np.floor(v + 0.5)) for v in (h / 2 - yy.mean(), w / 2 - xx.mean()))
    return np.roll(mask, (dy, dx), axis=(0, 1))


def temporal_consistency(frames: np.ndarray, names: list[str] | None = None) -> float:
    names = list(names or PALETTE)
    mask = object_mask(frames)
    bins = _palette_bins(frames, mask, names)
    hists = [np.bincount(bins[f][mask[f]], minlength=len(names)).astype(np.float64) for f in range(len(frames))]
    sims = []
    for f in range(len(frames) - 1):
        a, b = hists[f], hists[f + 1]
        if a.sum() == 0 or b.sum() == 0:
            sims.append(0.0)
            continue
        cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        ma, mb = _centred(mask[f]), _centred(mask[f + 1])
        sims.append(cos * float((ma & mb).sum() / (ma | mb).sum()))
    return float(np.mean(sims)) if sims else 0.0


def score_video(frames: np.ndarray, color: str, direction: str, min_travel: float = 2.0) -> dict[str, float]:
    """Per-video scores against the requested colour and direction."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}")
    return {"color_accuracy": float(dominant_color(frames) == color),
            "direction_accuracy": float(motion_direction(frames, min_travel) == direction),
            "temporal_consistency": temporal_consistency(frames)}


def aggregate(scores: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over videos."""
    return {k: float(np.mean([s[k] for s in scores])) for k in scores[0]} if scores else {}


def parse_caption(prompt: str) -> tuple[str, str, str]:
    """'a red square moving left' -> ('red', 'square', 'left')."""
    words = prompt.lower().split()
    if len(words) != 5 or words[0] != "a" or words[3] != "moving":
        raise ValueError(f"not a synthetic-set caption: {prompt!r}")
    return words[1], words[2], words[4]
