"""Pixel-level pieces of the figure digitizer (:mod:`evalkit.figure.digitize`): the image composited on white,
colour masks, the plot frames, gridlines and legend boxes found in it, and marker centres found by matching a
ring template. numpy (and Pillow, which matplotlib requires, to read the PNG) only: no torch, no models.

Conventions: images are (rows, columns, RGB) float arrays in 0..255; ``y`` is a row and ``x`` a column, both in
pixels, with the centre of pixel (0, 0) at (0.0, 0.0). Every found position is sub-pixel (a weighted centroid or
a quadratic peak fit) and comes with the numbers needed to judge it (residuals, visibility).
"""
from __future__ import annotations

import functools
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evalkit.core.errors import FieldError

NEUTRAL_SPREAD = 14.0    # a pixel is grey (axis, gridline, frame) when max - min of its RGB is below this
BLACK_MAX = 90.0         # ... and black (frame, axis line, tick mark) when its mean is below this
MIN_LINE_PX = 200        # a frame line is a straight black run at least this long


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_rgb(path: Path) -> np.ndarray:
    """The PNG as (H, W, 3) float RGB, composited over white (the figure has an alpha channel)."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FieldError("png", f"{path} not found (the figure is experiments/paper/efficiency_figure.png)")
    with Image.open(path) as im:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32)
    alpha = rgba[..., 3:] / np.float32(255.0)
    return rgba[..., :3] * alpha + np.float32(255.0) * (np.float32(1.0) - alpha)


def colour_weight(rgb: np.ndarray, colour: tuple[int, int, int], tol: float = 30.0) -> np.ndarray:
    """Per pixel, how much of ``colour`` it holds when read as a blend of that colour over white (0..1): the
    antialiased edge of a marker counts with its coverage. Pixels far from the white-``colour`` line get 0."""
    c = 255.0 - np.asarray(colour, dtype=rgb.dtype)
    p = 255.0 - rgb
    alpha = (p @ c) / float(c @ c)
    off2 = ((p - alpha[..., None] * c) ** 2).sum(-1)
    return np.where((off2 <= tol * tol) & (alpha >= 0.15), np.clip(alpha, 0.0, 1.0), 0.0).astype(np.float64)


def neutral(rgb: np.ndarray) -> np.ndarray:
    return (rgb.max(-1) - rgb.min(-1)) < NEUTRAL_SPREAD


def black(rgb: np.ndarray) -> np.ndarray:
    return neutral(rgb) & (rgb.mean(-1) < BLACK_MAX)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of the True runs of a 1-D mask."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.nonzero(d == 1)[0].tolist(), np.nonzero(d == -1)[0].tolist()))


@dataclass(frozen=True, kw_only=True)
class Frame:
    """One plot area: the black box around it (line centres, sub-pixel)."""
    left: float
    right: float
    top: float
    bottom: float


def _vertical_lines(blk: np.ndarray) -> list[tuple[float, int, int]]:
    """(x centre, y0, y1) of every black vertical line at least MIN_LINE_PX long (adjacent columns merged)."""
    cols: list[tuple[int, int, int]] = []
    for x in range(blk.shape[1]):
        for y0, y1 in _runs(blk[:, x]):
            if y1 - y0 >= MIN_LINE_PX:
                cols.append((x, y0, y1))
    lines: list[list[tuple[int, int, int]]] = []
    for x, y0, y1 in cols:
        for line in lines:
            lx, ly0, ly1 = line[-1]
            if x - lx == 1 and abs(y0 - ly0) <= 4 and abs(y1 - ly1) <= 4:
                line.append((x, y0, y1))
                break
        else:
            lines.append([(x, y0, y1)])
    return [(float(np.mean([c[0] for c in ln])), min(c[1] for c in ln), max(c[2] for c in ln)) for ln in lines]


def line_centre(profile: np.ndarray, lo: int) -> float:
    """Sub-pixel centre of the one dark line in ``profile`` (darkness per row or column, starting at ``lo``):
    the darkness-weighted centroid of the run above half the peak, widened by one pixel on each side."""
    peak = int(np.argmax(profile))
    half = profile[peak] / 2.0
    a = peak
    while a > 0 and profile[a - 1] > half:
        a -= 1
    b = peak
    while b < len(profile) - 1 and profile[b + 1] > half:
        b += 1
    a, b = max(0, a - 1), min(len(profile) - 1, b + 1)
    w = profile[a:b + 1]
    return lo + float((np.arange(a, b + 1) * w).sum() / w.sum())


def _darkness(rgb: np.ndarray) -> np.ndarray:
    return np.where(neutral(rgb), 255.0 - rgb.mean(-1), 0.0)


def find_frames(rgb: np.ndarray) -> list[Frame]:
    """Every plot area boxed by black lines (left and right lines of one height, top and bottom refined from the
    rows), in reading order (top to bottom, then left to right)."""
    dark = _darkness(rgb)
    vert = sorted(_vertical_lines(dark > 255.0 - BLACK_MAX), key=lambda v: (v[1], v[0]))
    frames, used = [], set()
    for i, (x0, ya, yb) in enumerate(vert):
        if i in used:
            continue
        pair = [j for j, (x1, y0, y1) in enumerate(vert)
                if j != i and j not in used and x1 > x0 + MIN_LINE_PX and abs(y0 - ya) <= 12 and abs(y1 - yb) <= 12]
        if not pair:
            continue
        j = min(pair, key=lambda k: vert[k][0])
        used.update((i, j))
        x1 = vert[j][0]
        xs = slice(int(x0) + 6, int(x1) - 5)
        edges = []
        # the top line is where both side lines start; the bottom one where the first ends (a tick mark below
        # the bottom line can lengthen the other)
        for y in (min(ya, vert[j][1]), min(yb, vert[j][2]) - 1):
            lo = max(0, y - 8)
            prof = np.median(dark[lo:y + 9, xs], axis=1)
            edges.append(line_centre(prof, lo))
        cols = []
        for x in (x0, x1):
            lo = max(0, int(round(x)) - 8)
            prof = np.median(dark[int(ya) + 10:int(yb) - 10, lo:int(round(x)) + 9], axis=0)
            cols.append(line_centre(prof, lo))
        frames.append(Frame(left=cols[0], right=cols[1], top=edges[0], bottom=edges[1]))
    if not frames:
        raise FieldError("png", "no plot frame (a box of black lines) found in the image")
    rows: list[list[Frame]] = []
    for f in sorted(frames, key=lambda f: f.top):
        if rows and abs(rows[-1][0].top - f.top) < 0.25 * (f.bottom - f.top):
            rows[-1].append(f)
        else:
            rows.append([f])
    return [f for row in rows for f in sorted(row, key=lambda f: f.left)]


def gridlines(rgb: np.ndarray, frame: Frame, exclude: tuple[int, int, int, int] | None = None,
              min_cover: float = 0.2) -> list[float]:
    """Rows (sub-pixel, top to bottom) of the frame's top line, every horizontal gridline, and its bottom line: a
    row is on a gridline when at least ``min_cover`` of the frame's columns are light grey there (legend boxes
    in ``exclude``, markers and curves hide the rest)."""
    x0, x1 = int(round(frame.left)) + 6, int(round(frame.right)) - 5
    y0, y1 = int(round(frame.top)) + 5, int(round(frame.bottom)) - 4
    sub = rgb[y0:y1, x0:x1]
    grey = neutral(sub) & (sub.mean(-1) < 250.0) & (sub.mean(-1) > BLACK_MAX)
    if exclude is not None:
        ex0, ey0, ex1, ey1 = exclude
        grey[max(0, ey0 - y0 - 2):max(0, ey1 - y0 + 2), max(0, ex0 - x0 - 2):max(0, ex1 - x0 + 2)] = False
    cover = grey.mean(axis=1)
    dark = np.where(grey, 255.0 - sub.mean(-1), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # rows with no grey pixel: an all-NaN median
        prof = np.nan_to_num(np.nanmedian(dark, axis=1)) * (cover >= min_cover)
    rows = [frame.top]
    for a, b in _runs(cover >= min_cover):
        lo, hi = max(0, a - 1), min(len(prof), b + 1)
        rows.append(line_centre(prof[lo:hi], y0 + lo))
    rows.append(frame.bottom)
    return rows


def legend_box(rgb: np.ndarray, frame: Frame, colour: tuple[int, int, int], tol: float = 12.0
               ) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the legend's box drawn in ``colour`` inside the frame, from its long edges (text
    antialiasing has every grey level but no long runs of it), or None."""
    x0, x1 = int(round(frame.left)) + 4, int(round(frame.right)) - 3
    y0, y1 = int(round(frame.top)) + 4, int(round(frame.bottom)) - 3
    m = np.abs(rgb[y0:y1, x0:x1] - np.asarray(colour, dtype=np.float64)).max(-1) <= tol
    rows = [y for y in range(m.shape[0]) if any(b - a >= 60 for a, b in _runs(m[y]))]
    cols = [x for x in range(m.shape[1]) if any(b - a >= 30 for a, b in _runs(m[:, x]))]
    if not rows or not cols:
        return None
    return (x0 + min(cols), y0 + min(rows), x0 + max(cols) + 1, y0 + max(rows) + 1)


# ---- marker templates and matching ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def template(shape: str, size: float, thickness: float, supersample: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(ring, interior) coverage masks of a hollow marker centred in an odd square: ``circle`` of outer radius
    ``size``, ``diamond`` of outer half-diagonal ``size``; the edge is ``thickness`` thick (normal to it); the
    interior stops one pixel inside the edge (antialiasing)."""
    half = int(np.ceil(size)) + 2
    n = 2 * half + 1
    s = (np.arange(n * supersample) + 0.5) / supersample - half - 0.5
    yy, xx = np.meshgrid(s, s, indexing="ij")
    if shape == "circle":
        d, t = np.hypot(xx, yy), thickness
    elif shape == "diamond":
        d, t = np.abs(xx) + np.abs(yy), thickness * np.sqrt(2.0)
    else:
        raise FieldError("marker", f"unknown marker shape {shape!r} (circle, diamond)")
    ring = ((d <= size) & (d > size - t)).astype(np.float64)
    inner = (d <= size - t - (1.0 if shape == "circle" else np.sqrt(2.0))).astype(np.float64)

    def pool(a: np.ndarray) -> np.ndarray:
        return a.reshape(n, supersample, n, supersample).mean(axis=(1, 3))
    return pool(ring), pool(inner)


def _correlate(img: np.ndarray, kern: np.ndarray) -> np.ndarray:
    """'valid' cross-correlation of img with kern through the FFT (numpy only)."""
    kh, kw = kern.shape
    shape = (img.shape[0] + kh, img.shape[1] + kw)
    f = np.fft.rfft2(img, shape) * np.conj(np.fft.rfft2(kern, shape))
    full = np.fft.irfft2(f, shape)
    return full[:img.shape[0] - kh + 1, :img.shape[1] - kw + 1]


@dataclass(frozen=True, kw_only=True)
class Match:
    x: float
    y: float
    score: float       # mean ring coverage minus mean interior coverage at the peak (1: a perfect ring)


def match_marker(weight: np.ndarray, shape: str, size: float, thickness: float, box: tuple[int, int, int, int],
                 exclude: tuple[int, int, int, int] | None = None) -> Match | None:
    """The best ring of the given shape whose centre lies in ``box`` = (x0, y0, x1, y1) of ``weight`` (a colour
    weight image), ignoring centres whose ring would reach into ``exclude`` (a legend); sub-pixel by a quadratic
    fit of the score around its peak. None when no centre is allowed."""
    ring, inner = template(shape, size, thickness)
    half = ring.shape[0] // 2
    x0, y0, x1, y1 = box
    H, W = weight.shape
    ox, oy = max(0, x0 - half - 1), max(0, y0 - half - 1)
    crop = weight[oy:min(H, y1 + half + 2), ox:min(W, x1 + half + 2)]
    if crop.shape[0] <= ring.shape[0] or crop.shape[1] <= ring.shape[1]:
        return None
    score = _correlate(crop, ring) / ring.sum() - _correlate(crop, inner) / max(inner.sum(), 1e-9)
    cy = np.arange(score.shape[0]) + oy + half    # centre row / column of each score entry
    cx = np.arange(score.shape[1]) + ox + half
    ok = ((cy >= y0) & (cy <= y1))[:, None] & ((cx >= x0) & (cx <= x1))[None, :]
    if exclude is not None:
        ex0, ey0, ex1, ey1 = exclude
        ok &= ~(((cy >= ey0 - half) & (cy <= ey1 + half))[:, None] & ((cx >= ex0 - half) & (cx <= ex1 + half))[None, :])
    if not ok.any():
        return None
    s = np.where(ok, score, -np.inf)
    i, j = np.unravel_index(int(np.argmax(s)), s.shape)

    def refine(a: float, b: float, c: float) -> float:
        den = a - 2 * b + c
        return 0.0 if not np.isfinite(den) or den >= 0 else float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))
    di = refine(score[i - 1, j], score[i, j], score[i + 1, j]) if 0 < i < score.shape[0] - 1 else 0.0
    dj = refine(score[i, j - 1], score[i, j], score[i, j + 1]) if 0 < j < score.shape[1] - 1 else 0.0
    return Match(x=float(cx[j] + dj), y=float(cy[i] + di), score=float(score[i, j]))


SIZES = tuple(float(s) for s in np.arange(6.0, 30.5, 1.0))   # marker sizes (px) tried, then +-0.5 px
THIN = 2.5                                                    # ring thickness of the template (px)


@dataclass(frozen=True, kw_only=True)
class Marker:
    """A located marker: centre (sub-pixel), the template size that fits it best, its score, and the spread of
    the centre over templates one pixel smaller and larger (``spread_y``: how much the answer depends on the
    template, small for a whole ring, large for a marker mostly hidden under another)."""
    x: float
    y: float
    size: float
    score: float
    spread_y: float


def locate(weight: np.ndarray, shape: str, box: tuple[int, int, int, int],
           exclude: tuple[int, int, int, int] | None = None, size: float | None = None) -> Marker | None:
    """Find the one marker of ``shape`` in ``box``: a coarse search over the whole box with three template sizes,
    then the best size (``size`` if given, else every size in SIZES around the coarse centre), then the spread
    of the centre over sizes within one pixel of it."""
    coarse = [m for s in ((size,) if size else (10.0, 15.0, 20.0))
              if (m := match_marker(weight, shape, s, THIN, box, exclude)) is not None]
    if not coarse:
        return None
    c = max(coarse, key=lambda m: m.score)

    def near(s: float) -> Match | None:
        b = (int(round(c.x)) - 4, int(round(c.y)) - 4, int(round(c.x)) + 4, int(round(c.y)) + 4)
        return match_marker(weight, shape, s, THIN, b, exclude)
    sizes = (size,) if size else SIZES
    fits = [(s, m) for s in sizes if (m := near(s)) is not None]
    best_s, best = max(fits, key=lambda sm: sm[1].score)
    if not size:   # half-pixel steps around the best whole-pixel size
        fits = [(best_s, best)] + [(s, m) for s in (best_s - 0.5, best_s + 0.5) if (m := near(s)) is not None]
        best_s, best = max(fits, key=lambda sm: sm[1].score)
    ys = [m.y for s in (best_s - 1.0, best_s - 0.5, best_s, best_s + 0.5, best_s + 1.0) if s > THIN + 1
          and (m := near(s)) is not None]
    return Marker(x=best.x, y=best.y, size=best_s, score=best.score, spread_y=(max(ys) - min(ys)) / 2.0)
