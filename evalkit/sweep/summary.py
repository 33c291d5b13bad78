"""The end-of-sweep summary: a table of the run's cost records, DiT/LinGen ratios and the one-line JSON.

Pure functions of records (the same records the reports read). FLOPs are one denoiser forward in the
2-per-MAC convention; the DiT/LinGen ratio is printed per (flavor, resolution, duration) where both ran, and per
variation in a sweep with variations (experiments/sensitivity.yaml).
"""
from __future__ import annotations

from collections import Counter
from typing import Any


def _fmt_flops(x: float | None) -> str:
    return "-" if x is None else f"{x / 1e12:,.1f}T" if x >= 1e12 else f"{x / 1e9:,.2f}G"


def flops_ratios(records: list[dict[str, Any]], num: str = "dit", den: str = "lingen") -> list[dict[str, Any]]:
    """counted-FLOPs ratio num/den at every (flavor, variation, height, width, duration) where both have a flops
    record; ``params`` is the numerator model's parameter count (to tell flavors apart by size). With variations,
    ``flavor`` reads ``"4b {variation}"`` so that each printed line names its point set."""
    flops = {(r["model"], _flavor(r), r["height"], r["width"], r["duration_s"]): r for r in records
             if r.get("measurement") == "flops" and r.get("status") in ("ok", "flagged") and r.get("flops")}
    out = []
    for (model, flavor, h, w, d), rec in sorted(flops.items(), key=lambda kv: (kv[0][1:])):
        if model != num or (den, flavor, h, w, d) not in flops:
            continue
        out.append({"flavor": flavor, "variation": rec.get("variation"), "height": h, "width": w,
                    "duration_s": d, "params": rec.get("params") or 0,
                    "ratio": rec["flops"] / flops[(den, flavor, h, w, d)]["flops"]})
    return out


def _flavor(r: dict[str, Any]) -> str:
    """The flavor, with the variation's name in a sweep with variations (its rows and ratios stay apart)."""
    return f"{r['flavor']} {r['variation']}" if r.get("variation") else r["flavor"]


def table(records: list[dict[str, Any]]) -> str:
    """A fixed-width table, one row per point: tokens, counted/analytic FLOPs, latency, memory, statuses."""
    rows: dict[tuple, dict[str, Any]] = {}
    for r in records:
        if r.get("kind") != "cost":
            continue
        k = (r["model"], _flavor(r), r.get("resolution"), r["height"], r["width"],
             float("inf") if r["duration_s"] is None else r["duration_s"])
        row = rows.setdefault(k, {"status": []})
        row["status"].append(f"{r['measurement'][:3]}:{r['status']}")
        if r["measurement"] == "flops":
            row.update(tokens=r.get("num_tokens"), flops=r.get("flops"), analytic=r.get("flops_analytic"),
                       rel=r.get("flops_rel_diff"))
        elif r["measurement"] == "latency" and r["status"] == "ok":
            row["lat"] = f"{r['latency_ms_p50']:.1f}ms({r['device']})"
        elif r["measurement"] == "memory" and r["status"] == "ok":
            row["mem"] = f"{r['mem_peak_allocated_bytes'] / 2**30:.1f}GiB"
        elif r["measurement"] == "max_frames" and r["status"] == "ok":
            row["maxf"] = str(r["max_frames"])
    wm = max([len("model")] + [len(k[0]) for k in rows]) + 2
    wf = max([len("flavor")] + [len(k[1]) for k in rows]) + 2
    wr = max([len("res")] + [len(f"{k[2]}={k[3]}x{k[4]}") for k in rows]) + 2
    head = f"{'model':<{wm}}{'flavor':<{wf}}{'res':<{wr}}{'dur_s':>6}{'tokens':>9}{'counted':>11}{'analytic':>11}" \
           f"{'diff':>8}  {'latency p50':<18}{'mem':<9}status"
    lines = [head, "-" * len(head)]
    for (model, flavor, res, h, w, d), row in sorted(rows.items(), key=lambda kv: kv[0]):
        rel = row.get("rel")
        lines.append(f"{model:<{wm}}{flavor:<{wf}}{f'{res}={h}x{w}':<{wr}}"
                     f"{'max' if d == float('inf') else f'{d:g}':>6}{row.get('tokens') or '-':>9}"
                     f"{_fmt_flops(row.get('flops')):>11}{_fmt_flops(row.get('analytic')):>11}"
                     f"{'-' if rel is None else f'{rel:.2%}':>8}  {row.get('lat', '-'):<18}"
                     f"{row.get('mem', row.get('maxf', '-')):<9}{' '.join(row['status'])}")
    return "\n".join(lines)


def summary_json(records: list[dict[str, Any]], *, experiment: str, run_dir: str, resumed: bool,
                 seconds: float, ran: int, skipped_done: int, plots: list[str]) -> dict[str, Any]:
    statuses = Counter(r.get("status") for r in records if r.get("kind") == "cost")
    ratios = flops_ratios(records)
    top = max(ratios, key=lambda r: (r["duration_s"], r["height"] * r["width"], r["params"]), default=None)
    return {"experiment": experiment, "run_dir": run_dir, "resumed": resumed, "records": sum(statuses.values()),
            "ran": ran, "already_done": skipped_done, "status": dict(sorted(statuses.items())),
            "dit_over_lingen_flops_at_largest": None if top is None else round(top["ratio"], 3),
            "largest_point": None if top is None else f"{top['flavor']} {top['height']}x{top['width']} "
                                                       f"{top['duration_s']:g}s",
            "plots": plots, "seconds": round(seconds, 2)}
