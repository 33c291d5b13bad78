"""Digitize the LinGen project page's efficiency figure (LinGen-4B vs DiT-4B latency and TFLOP per step; the
absolute-value counterpart of the paper's Fig. 6): every plotted marker's value with its pixel uncertainty.

Input: the figure and a spec of what it prints (``experiments/paper/efficiency_figure.yaml``: panels in reading
order, each with its y-axis tick values, categories and ratio labels; the series' marker colour and shape).
Method, per panel (all positions found in the image, :mod:`evalkit.figure.image`):

1. the plot frame (a box of black lines) and its horizontal gridlines; their rows, fitted against the printed
   tick values (linear, or log10 for a log axis), give the pixel -> value map; the fit's largest residual is
   ``u_cal_px`` (how far the renderer moved lines off a uniform grid: markers are taken to be moved as much);
2. category centres: the frame split into equal bins (the markers' x is checked against them);
3. each marker: the best ring template of the series' shape and colour in a narrow column around its category,
   outside the legend box; ``u_centre_px`` = max(0.75 px, the centre's spread over templates one pixel smaller
   and larger), large only for a marker mostly hidden under another;
4. value = map(marker row); ``u_px = u_cal_px + u_centre_px`` is a half-width (not a standard deviation) and
   ``u_value`` its image in value units.
Ratio labels (DiT / LinGen, printed with a given number of decimals) are checked against the digitized ratio's
interval. Output: ``experiments/paper/efficiency_figure_values.yaml`` (``python -m evalkit figure digitize``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from evalkit.core.errors import FieldError
from evalkit.figure import image
from evalkit.core.typed import from_dict

PAPER_DIR = Path(__file__).resolve().parents[2] / "experiments" / "paper"
SPEC = PAPER_DIR / "efficiency_figure.yaml"
VALUES = PAPER_DIR / "efficiency_figure_values.yaml"
COLUMN_HALF_PX = 6          # a marker's centre is searched within this many pixels of its category centre
# the least centre uncertainty of a marker (px): markers are snapped to the renderer's pixel grid and the line
# entering a ring biases the template a little; on the figure with known values that tests/evalkit/figure/test_figure_digitize.py
# draws, the largest error of a whole (unhidden) marker was 0.64 px
U_CENTRE_MIN_PX = 0.75


@dataclass(frozen=True, kw_only=True)
class SourceSpec:
    title: str
    repository: str
    path: str
    commit: str
    date: str
    blob: str
    sha256: str
    licence: str
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class SeriesSpec:
    label: str
    colour: tuple[int, int, int]
    marker: Literal["circle", "diamond"]


@dataclass(frozen=True, kw_only=True)
class CategorySpec:
    label: str
    height: int
    width: int
    duration_s: float


@dataclass(frozen=True, kw_only=True)
class LabelSpec:
    category: int          # index into the panel's categories
    text: str              # as printed, e.g. "1.1x"


@dataclass(frozen=True, kw_only=True)
class PanelSpec:
    id: str
    quantity: Literal["latency_s", "tflop_per_step"]
    y_label: str
    y_scale: Literal["linear", "log"] = "linear"
    y_ticks: tuple[float, ...]
    categories: tuple[CategorySpec, ...]
    labels: tuple[LabelSpec, ...] = ()
    ratio: tuple[str, str] = ("dit", "lingen")   # labels print series[0] / series[1]


@dataclass(frozen=True, kw_only=True)
class FigureSpec:
    file: str
    source: SourceSpec
    legend_colour: tuple[int, int, int]
    series: dict[str, SeriesSpec]
    panels: tuple[PanelSpec, ...]


def load_spec(path: Path = SPEC) -> FigureSpec:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    spec = from_dict(FigureSpec, data, Path(path).name)
    for p in spec.panels:
        where = f"{Path(path).name}:panels.{p.id}"
        if len(p.y_ticks) < 3 or list(p.y_ticks) != sorted(p.y_ticks):
            raise FieldError(f"{where}.y_ticks", f"needs 3 or more increasing values, got {list(p.y_ticks)}")
        if p.y_scale == "log" and min(p.y_ticks) <= 0:
            raise FieldError(f"{where}.y_ticks", "a log axis needs positive tick values")
        for s in p.ratio:
            if s not in spec.series:
                raise FieldError(f"{where}.ratio", f"unknown series {s!r} (series: {sorted(spec.series)})")
        for lab in p.labels:
            if not 0 <= lab.category < len(p.categories):
                raise FieldError(f"{where}.labels", f"category {lab.category} out of range 0..{len(p.categories) - 1}")
            _printed(lab.text, where)
    return spec


def _printed(text: str, where: str) -> tuple[float, int]:
    """'1.1x' / '15×' -> (1.1, 1): the printed number and its decimals."""
    m = re.fullmatch(r"\s*(\d+(?:\.(\d+))?)\s*[x×]\s*", text)
    if not m:
        raise FieldError(f"{where}.labels", f"label {text!r} is not a number followed by 'x'")
    return float(m.group(1)), len(m.group(2) or "")


def _axis(values: np.ndarray, scale: str) -> np.ndarray:
    return np.log10(values) if scale == "log" else values


def _r(v: float, nd: int = 2) -> float:
    return float(round(float(v), nd))


def _sig(v: float, n: int = 5) -> float:
    return float(f"{float(v):.{n}g}") if math.isfinite(v) else v


def digitize(png: Path, spec: FigureSpec) -> dict[str, Any]:
    """Everything the output file holds (see the module docstring), as plain data."""
    rgb = image.load_rgb(png)
    frames = image.find_frames(rgb)
    if len(frames) != len(spec.panels):
        raise FieldError("panels", f"the spec lists {len(spec.panels)} panels, the image has {len(frames)} plot "
                                   "frames (reading order: top to bottom, left to right)")
    weights = {name: image.colour_weight(rgb, s.colour) for name, s in spec.series.items()}
    panels, markers, labels = [], [], []
    for frame, p in zip(frames, spec.panels):
        legend = image.legend_box(rgb, frame, spec.legend_colour)
        rows = np.array(image.gridlines(rgb, frame, legend))[::-1]     # bottom (first tick) to top (last)
        if len(rows) != len(p.y_ticks):
            raise FieldError(f"panels.{p.id}.y_ticks", f"{len(p.y_ticks)} ticks printed but {len(rows)} gridlines "
                                                       f"(frame lines included) found at rows {np.round(rows, 1)}")
        t = _axis(np.asarray(p.y_ticks, dtype=float), p.y_scale)
        slope, icpt = np.polyfit(t, rows, 1)                           # row = icpt + slope * axis(value)
        resid = rows - (icpt + slope * t)
        u_cal = float(np.abs(resid).max())
        n = len(p.categories)
        xcs = [frame.left + (i + 0.5) * (frame.right - frame.left) / n for i in range(n)]
        found: dict[tuple[str, int], dict[str, Any]] = {}
        for name, s in spec.series.items():
            for i, (xc, cat) in enumerate(zip(xcs, p.categories)):
                box = (int(math.floor(xc)) - COLUMN_HALF_PX, int(frame.top), int(math.ceil(xc)) + COLUMN_HALF_PX,
                       int(frame.bottom) + 20)
                m = image.locate(weights[name], s.marker, box, legend)
                if m is None or m.score < 0.1:
                    raise FieldError(f"panels.{p.id}", f"no {s.marker} marker of {name} near x = {xc:.0f} px "
                                                       f"({cat.label})")
                u_centre = max(U_CENTRE_MIN_PX, m.spread_y)
                u_px = u_cal + u_centre

                def value(row: float) -> float:
                    a = (row - icpt) / slope
                    return float(10 ** a) if p.y_scale == "log" else float(a)
                v = value(m.y)
                u_v = max(abs(value(m.y - u_px) - v), abs(value(m.y + u_px) - v))
                rec = {"panel": p.id, "quantity": p.quantity, "model": name, "category": cat.label,
                       "height": cat.height, "width": cat.width, "duration_s": cat.duration_s,
                       "x_px": _r(m.x), "dx_category_px": _r(m.x - xc), "y_px": _r(m.y), "marker_size_px": m.size,
                       "score": _r(m.score, 3), "u_centre_px": _r(u_centre), "u_px": _r(u_px),
                       "value": _sig(v), "u_value": _sig(u_v, 3)}
                found[(name, i)] = rec
                markers.append(rec)
        for lab in p.labels:
            num, den = found[(p.ratio[0], lab.category)], found[(p.ratio[1], lab.category)]
            printed, decimals = _printed(lab.text, f"panels.{p.id}")
            r = num["value"] / den["value"]
            lo = max(num["value"] - num["u_value"], 0.0) / (den["value"] + den["u_value"])
            hi_den = den["value"] - den["u_value"]
            hi = (num["value"] + num["u_value"]) / hi_den if hi_den > 0 else math.inf
            half = 0.5 * 10 ** (-decimals)
            labels.append({"panel": p.id, "category": p.categories[lab.category].label, "text": lab.text,
                           "printed": printed, "printed_range": [_r(printed - half, 3), _r(printed + half, 3)],
                           "ratio": _sig(r, 4), "ratio_range": [_sig(lo, 4), _sig(hi, 4)],
                           "agrees": bool(lo <= printed + half and hi >= printed - half)})
        panels.append({"id": p.id, "quantity": p.quantity, "y_scale": p.y_scale,
                       "frame_px": {k: _r(getattr(frame, k)) for k in ("left", "right", "top", "bottom")},
                       "legend_px": list(legend) if legend else None,
                       "gridline_rows_px": [_r(v) for v in rows], "y_ticks": list(p.y_ticks),
                       "residual_px": [_r(v) for v in resid], "u_cal_px": _r(u_cal),
                       "px_per_unit": _sig(slope, 6) if p.y_scale == "linear" else None,
                       "px_per_decade": _sig(slope, 6) if p.y_scale == "log" else None,
                       "category_x_px": [_r(x) for x in xcs]})
    return {"figure": spec.file, "sha256": image.sha256(png), "source": f"{spec.source.repository}, "
            f"{spec.source.path} at {spec.source.commit}", "panels": panels, "markers": markers, "labels": labels}


HEADER = """\
# GENERATED by `python -m evalkit figure digitize` from efficiency_figure.png and efficiency_figure.yaml: do not
# edit (tests/evalkit/figure/test_figure_digitize.py checks that the script reproduces it). Every plotted marker of the LinGen
# project page's efficiency figure: value +- u_value, u_value being the image of +-u_px pixels (u_px = u_cal_px,
# the largest gridline-fit residual of the panel, + u_centre_px, max(0.75 px, the marker centre's spread over
# template sizes)); a half-width, not a standard deviation. Latency in s (the figure's "Computational Cost
# (Latency)"), FLOPs in TFLOP per sampling step as plotted ("Computational Cost per Step (TFLOP)"). Labels: the
# printed DiT / LinGen ratio against the digitized one (ratio_range: from the values' half-widths).
# Method: evalkit/figure/digitize.py (module docstring).
"""


def write(result: dict[str, Any], out: Path = VALUES) -> Path:
    text = yaml.safe_dump(result, sort_keys=False, allow_unicode=True, width=120, default_flow_style=None)
    Path(out).write_text(HEADER + text, encoding="utf-8")
    return Path(out)


def read(path: Path = VALUES) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FieldError("values", f"{path} not found (python -m evalkit figure digitize writes it)")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def compare(old: Any, new: Any, where: str = "") -> list[str]:
    """Differences between two digitizations (numbers equal within 1e-4 relative or 0.011 absolute: the output
    rounds pixels to 0.01 and values to 5 significant digits, and FFT round-off may move a last digit)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = [f"{where}{'.' if where else ''}{k}: missing in one" for k in sorted(set(old) ^ set(new), key=str)]
        for k in old:
            if k in new:
                out += compare(old[k], new[k], f"{where}{'.' if where else ''}{k}")
        return out
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{where}: {len(old)} items vs {len(new)}"]
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in compare(a, b, f"{where}[{i}]")]
    if isinstance(old, (int, float)) and isinstance(new, (int, float)) and not isinstance(old, bool):
        ok = (math.isinf(old) and old == new) or math.isclose(old, new, rel_tol=1e-4, abs_tol=0.011)
        return [] if ok else [f"{where}: {old} vs {new}"]
    return [] if old == new else [f"{where}: {old!r} vs {new!r}"]
