"""The run's own quick-look plots: FLOPs and measured latency along the axis the experiment varies.

Which plot fits depends on the experiment: several durations per model (``scaling``: paper Fig. 1b / 6 shape) ->
value vs duration, one panel per resolution, one line per (model, flavor); one duration but several sizes
(``size_ladder``: Fig. 20 shape) -> value vs parameters, one line per model; one point per model
(``ablations``: Table 2 shape) -> one bar per model. In a sweep with parts, one plot per part group
(``latency_<group>_vs_*.png``: paper_latency's Fig. 6a, Table 2, Fig. 20 shapes apart). Log y throughout, written
into ``<run_dir>/plots/``. Only
records with numbers are drawn (skipped latency rows are absent, never zero). The polished figures, with their
CSVs, come from ``python -m evalkit report``; these are for looking at a run right after it finishes.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any


def _points(records: list[dict[str, Any]], measurement: str, value_key: str, statuses: tuple[str, ...]):
    return [r for r in records if r.get("measurement") == measurement and r.get("status") in statuses
            and r.get(value_key) is not None and r.get("duration_s") is not None
            and not r.get("variation")]   # a sweep's variations: `report` draws them (sensitivity table, tornado)


def axis_of(points: list[dict[str, Any]]) -> str:
    """``duration`` | ``params`` | ``model``: the axis the records vary along (see the module docstring)."""
    per_line: dict[tuple, set] = defaultdict(set)
    for r in points:
        per_line[(r["model"], r["flavor"], r["height"], r["width"])].add(r["duration_s"])
    if any(len(d) > 1 for d in per_line.values()):
        return "duration"
    sizes: dict[str, set] = defaultdict(set)
    for r in points:
        sizes[r["model"]].add(r["flavor"])
    return "params" if any(len(f) > 1 for f in sizes.values()) else "model"


def _figure(points: list[dict[str, Any]], value_key: str, ylabel: str, title: str, path: Path) -> Path | None:
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axis = axis_of(points)
    panels: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in points:
        panel = f"{r.get('resolution')} ({r['height']}x{r['width']})"
        if axis != "duration":
            panel += f", {r['duration_s']:g} s"
        panels[panel].append(r)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, (panel, recs) in zip(axes[0], sorted(panels.items())):
        if axis == "model":
            recs = sorted(recs, key=lambda r: (r["model"], r["flavor"]))
            ax.bar(range(len(recs)), [float(r[value_key]) for r in recs])
            ax.set_xticks(range(len(recs)), [f"{r['model']}\n{r['flavor']}" for r in recs], fontsize=7,
                          rotation=30, ha="right")
        else:
            lines: dict[str, list[tuple[float, float]]] = defaultdict(list)
            for r in recs:
                label = r["model"] if axis == "params" else f"{r['model']}-{r['flavor']}"
                x = r["duration_s"] if axis == "duration" else float(r.get("params") or 0)
                lines[label].append((x, float(r[value_key])))
            for label, pts in sorted(lines.items()):
                pts.sort()
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
            ax.set_xlabel("video duration (s)" if axis == "duration" else "parameters")
            if axis == "params":
                ax.set_xscale("log")
            ax.legend(fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.set_title(panel)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    path = path.with_name(f"{path.stem}_vs_{axis}.png" if axis != "model" else f"{path.stem}_by_model.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(records: list[dict[str, Any]], run_dir: Path) -> list[str]:
    """Write the run's plots (one set per part group in a sweep with parts); returns their paths (none when
    nothing numeric was recorded)."""
    out = []
    for group in sorted({str(r.get("part_group") or "") for r in records}):
        recs = [r for r in records if str(r.get("part_group") or "") == group]
        tag, where = (f"_{group}", f", part group {group}") if group else ("", "")
        p = _figure(_points(recs, "flops", "flops", ("ok", "flagged")), "flops",
                    "FLOPs per denoiser forward (2 per MAC)", f"Counted FLOPs (on the meta device{where})",
                    Path(run_dir) / "plots" / f"flops{tag}.png")
        if p:
            out.append(str(p))
        lat = _points(recs, "latency", "latency_ms_p50", ("ok",))
        devices = sorted({str(r.get("gpu") or r.get("device")) for r in lat})
        p = _figure(lat, "latency_ms_p50", "latency p50 (ms)", f"Measured latency ({', '.join(devices)}{where})",
                    Path(run_dir) / "plots" / f"latency{tag}.png")
        if p:
            out.append(str(p))
    return out
