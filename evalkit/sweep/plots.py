"""The run's own quick-look plots (paper Fig. 1b / Fig. 6 shape): FLOPs and measured latency vs duration.

One panel per resolution, log y, one line per (model, flavor), written into ``<run_dir>/plots/``. Only records
with numbers are drawn (skipped latency rows are absent, never zero). The polished figures, with their CSVs,
come from ``python -m evalkit report``; these are for looking at a run right after it finishes.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any


def _panels(records: list[dict[str, Any]], measurement: str, value_key: str, statuses: tuple[str, ...]):
    data: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r.get("measurement") == measurement and r.get("status") in statuses and r.get(value_key) is not None \
                and r.get("duration_s") is not None:
            res = f"{r.get('resolution')} ({r['height']}x{r['width']})"
            data[res][f"{r['model']}-{r['flavor']}"].append((r["duration_s"], float(r[value_key])))
    return data


def _plot(data, ylabel: str, title: str, path: Path) -> Path | None:
    if not data:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(data), figsize=(5.2 * len(data), 4.2), squeeze=False)
    for ax, (res, lines) in zip(axes[0], sorted(data.items())):
        for label, pts in sorted(lines.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.set_yscale("log")
        ax.set_xlabel("video duration (s)")
        ax.set_ylabel(ylabel)
        ax.set_title(res)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(records: list[dict[str, Any]], run_dir: Path) -> list[str]:
    """Write the run's plots; returns their paths (none when nothing numeric was recorded)."""
    out = []
    flops = _panels(records, "flops", "flops", ("ok", "flagged"))
    p = _plot(flops, "FLOPs per denoiser forward (2 per MAC)", "Counted FLOPs (FlopCounterMode on meta)",
              Path(run_dir) / "plots" / "flops_vs_duration.png")
    if p:
        out.append(str(p))
    lat = _panels(records, "latency", "latency_ms_p50", ("ok",))
    devices = sorted({r.get("device") for r in records if r.get("measurement") == "latency" and r["status"] == "ok"})
    p = _plot(lat, "latency p50 (ms)", f"Measured latency ({', '.join(map(str, devices))})",
              Path(run_dir) / "plots" / "latency_vs_duration.png")
    if p:
        out.append(str(p))
    return out
