"""The end-of-sweep summary: a table of the run's cost records, DiT/LinGen ratios and the one-line JSON.

Pure functions of records (the same records the reports read). FLOPs are one denoiser forward in the
2-per-MAC convention; the DiT/LinGen ratio is printed per (flavor, resolution, duration) where both ran, and per
variation in a sweep with variations (experiments/sensitivity.yaml), per part in a sweep with parts.
:func:`latency_table` is the short latency table a GPU run ends with (benchmarks/gpu/run.sh).
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
    """The flavor, with the variation's (or part's) name in a sweep with variations (parts): its rows and ratios
    stay apart."""
    label = f"{r['flavor']} {r['variation']}" if r.get("variation") else r["flavor"]
    return f"{label} {r['part']}" if r.get("part") else label


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
            "skipped_budget": sum(1 for r in records if r.get("kind") == "cost" and r.get("skip_reason") == "budget"),
            "plots": plots, "seconds": round(seconds, 2)}


def _video_s(r: dict[str, Any]) -> float:
    """Seconds per video: one-forward p50 x steps x CFG factor (the sampling loop's p50 as it is)."""
    per = r["steps"] * r["cfg_factor"] if r.get("scope") == "denoiser_forward" else 1
    return r["latency_ms_p50"] / 1e3 * per


def latency_table(records: list[dict[str, Any]]) -> str:
    """One line per latency record (ok or not): part, point, p50 per forward, per video, iterations, peak
    memory, achieved TFLOP/s, backends, then the DiT/LinGen latency ratio at every point where both ran."""
    lat = [r for r in records if r.get("kind") == "cost" and r.get("measurement") == "latency"]
    mem = {(r.get("part"), r["model"], r["flavor"], r["height"], r["width"], r["duration_s"]): r for r in records
           if r.get("measurement") == "memory" and r.get("status") == "ok"}
    head = (f"{'part':<12}{'model':<18}{'flavor':<7}{'res':<9}{'dur':>5}{'fwd p50':>11}{'per video':>11}{'it':>4}"
            f"{'peak GiB':>10}{'TFLOP/s':>9}  backends (sdpa / ssd / tesa) or status")
    lines = [head, "-" * len(head)]
    for r in sorted(lat, key=lambda r: (r.get("part_index", 0), r["model"], r["flavor"], r["height"],
                                        r["duration_s"])):
        m = mem.get((r.get("part"), r["model"], r["flavor"], r["height"], r["width"], r["duration_s"]))
        peak = m["mem_peak_allocated_bytes"] if m else r.get("mem_peak_allocated_bytes")
        row = (f"{r.get('part') or '-':<12}{r['model']:<18}{r['flavor']:<7}{r['height']}x{r['width']:<5}"
               f"{r['duration_s']:>5g}")
        if r["status"] == "ok":
            lines.append(row + f"{r['latency_ms_p50'] / 1e3:>10.3f}s{_video_s(r):>10.1f}s{r['iterations']:>4}"
                         f"{'-' if peak is None else f'{peak / 2**30:.1f}':>10}{r.get('achieved_tflops', 0):>9.0f}  "
                         f"{r.get('backend_sdpa')} / {r.get('backend_ssd')} / {r.get('backend_tesa')}")
        else:
            lines.append(row + f"{'-':>11}{'-':>11}{'-':>4}{'-':>10}{'-':>9}  {r['status']}: "
                         f"{(r.get('message') or '')[:70]}")
    ok = {(r.get("part_group") or r.get("part"), r["flavor"], r["height"], r["width"], r["duration_s"], r["model"]): r
          for r in lat if r["status"] == "ok" and r.get("variant", "default") == "default"}
    for (g, fl, h, w, d, model), r in sorted(ok.items(), key=lambda kv: str(kv[0])):
        other = ok.get((g, fl, h, w, d, "lingen"))
        if model == "dit" and other is not None:
            lines.append(f"DiT/LinGen latency, {g or '-'} {fl} {h}x{w} {d:g} s: "
                         f"{r['latency_ms_p50'] / other['latency_ms_p50']:.2f}x")
    return "\n".join(lines)
