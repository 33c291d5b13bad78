"""The records of a figure fit run (``python -m evalkit figure fit``): what ``report`` renders as the fit of the
project page's efficiency figure (reports/paper/figure_fit.*) and its latency predictions.

Record kinds (all ``kind: figure_fit``, field ``record`` says which):
- ``candidate``: one geometry of a named list (``best``: stage 2 ranked; ``near_best``: every token class within
  one half-width of the best; ``dit_only`` / ``lingen_only``: one model's markers alone; ``printed_frame``:
  "512^2" = 512x512 px; ``passes_1`` / ``passes_2``), with its per-marker predictions, residuals and z;
- ``bound``: per model and growth ratio (e.g. 512^2 68 s / 17 s) the plotted ratio with its range and the range
  any searched 4B geometry attains (``level``: among those matching the model's 512^2 / 17 s level);
- ``latency_prediction``: the best geometry's predicted seconds per video at every plotted latency marker, from
  the planner's throughput model (evalkit.sweep.predict; the profile of experiments/paper_latency.yaml);
- ``summary``: counts, and whether any geometry fits.
"""
from __future__ import annotations

from typing import Any

from evalkit.figure import fit as F

LIST_LEN = 10          # candidates kept per list (near_best: every token class within one half-width, up to 25)
NEAR_BEST_MAX = 25
STEPS = 50             # stated: "the default setting of 50 steps employed in our main paper" (Fig. 20 caption)


def _geometry(c: dict[str, Any]) -> dict[str, Any]:
    keys = ("d_model", "heads", "ffn_dim", "depth", "text_len", "compression", "patch", "frame", "max_grid",
            "passes", "window", "review_stride", "d_state")
    return {k: (list(c[k]) if isinstance(c[k], tuple) else c[k]) for k in keys}


def _tokens(c: dict[str, Any], space: F.SearchSpace) -> int:
    """Video tokens at 512^2 / 17 s (as labelled) under the candidate's frame, compression and patch."""
    h, w = c["frame"]
    ct, cs, _ = c["compression"]
    pt, ph, _ = c["patch"]
    return (round(17 * space.fps) // ct // pt) * (h // cs // ph) * (w // cs // ph)


def _token_class(c: dict[str, Any], space: F.SearchSpace) -> tuple:
    """Candidates with the same tokens at 512^2 / 17 s, passes and backbone are one class of the near-best family
    (the frame x compression x patch spellings of that token count, and the MATE settings, vary within it)."""
    return (_tokens(c, space), c["passes"], c["d_model"], c["ffn_dim"], c["depth"], c["text_len"])


def candidate_record(name: str, rank: int, c: dict[str, Any], ev: F.Evaluator, equivalents: list | None = None
                     ) -> dict[str, Any]:
    markers = [{"panel": m.panel, "model": m.model, "category": m.category, "plotted": m.value, "u": m.u,
                "predicted": round(p, 3), "residual_pct": round(100 * (p / m.value - 1), 2), "z": round(z, 3)}
               for m, p, z in zip(ev.markers, c["predicted"], c["z"])]
    return {"key": f"candidate:{name}:{rank}", "kind": "figure_fit", "status": "ok", "record": "candidate",
            "list": name, "rank": rank, "geometry": _geometry(c), "tokens_512sq_17s": _tokens(c, ev.space),
            "params_dit": c["params_dit"], "params_lingen": c["params_lingen"], "max_abs_z": round(c["max_abs_z"], 4),
            "max_abs_z_dit": round(c["max_abs_z_dit"], 4), "max_abs_z_lingen": round(c["max_abs_z_lingen"], 4),
            "sum_z2": round(c["sum_z2"], 3), "fits": c["fits"], "markers": markers,
            "flops_by_label": c["flops_by_label"], "equivalents": equivalents or []}


def _refine_top(res: dict[str, Any], entries: list, n: int) -> list[dict[str, Any]]:
    """Stage-1 entries (presets' MATE settings) evaluated in full (predictions per marker)."""
    ev = res["evaluator"]
    return [F.evaluate(ev, g, g["_tokens"]) for _, _, g in entries[:n]]


def records(res: dict[str, Any]) -> list[dict[str, Any]]:
    ev: F.Evaluator = res["evaluator"]
    space: F.SearchSpace = res["space"]
    out: list[dict[str, Any]] = []
    best = res["refined"]
    for i, c in enumerate(best[:LIST_LEN]):
        out.append(candidate_record("best", i, c, ev))
    # near-best family: one entry per token class, within one half-width of the best max |z|
    classes: dict[tuple, list[dict[str, Any]]] = {}
    for c in best:
        if c["max_abs_z"] > best[0]["max_abs_z"] + 1.0:
            break
        classes.setdefault(_token_class(c, space), []).append(c)
    for i, members in enumerate(list(classes.values())[:NEAR_BEST_MAX]):
        spell = {(tuple(m["compression"]), tuple(m["patch"]), tuple(m["frame"])) for m in members[1:]}
        spell.discard((tuple(members[0]["compression"]), tuple(members[0]["patch"]), tuple(members[0]["frame"])))
        eq = [{"compression": list(a), "patch": list(b), "frame": list(f)} for a, b, f in sorted(spell)]
        rec = candidate_record("near_best", i, members[0], ev, eq)
        rec["mate_settings_in_band"] = len({(tuple(m["window"]), m["review_stride"], m["d_state"]) for m in members})
        out.append(rec)
    for name, key in (("dit_only", "dit"), ("lingen_only", "lingen")):
        for i, c in enumerate(_refine_top(res, res[key], 3)):
            out.append(candidate_record(name, i, c, ev))
    for name, pick in (("printed_frame", lambda c: tuple(c["frame"]) == F.PRINTED_FRAME),
                       ("passes_1", lambda c: c["passes"] == 1), ("passes_2", lambda c: c["passes"] == 2)):
        hits = [c for c in best if pick(c)][:3]
        if not hits:   # stage 2 kept none: the best of stage 1
            hits = _refine_top(res, [e for e in res["joint"] if pick(e[2])], 3)
        for i, c in enumerate(hits):
            out.append(candidate_record(name, i, c, ev))
    for (mod, num, den), bd in sorted(res["bounds"].items()):
        pair = f"{num[0]}x{num[1]}@{num[2]:g}s / {den[0]}x{den[1]}@{den[2]:g}s"
        panel = "flops_length" if num[:2] == den[:2] else "flops_resolution"
        mk = {(m.height, m.width, m.duration_s): m for m in ev.markers if m.model == mod and m.panel == panel}
        a, b = mk[num], mk[den]
        lo = max(a.value - a.u, 0.0) / (b.value + b.u)
        hi = (a.value + a.u) / (b.value - b.u) if b.value > b.u else None
        rec = {"key": f"bound:{mod}:{pair}", "kind": "figure_fit", "status": "ok", "record": "bound", "model": mod,
               "pair": pair, "panel": panel, "plotted": round(a.value / b.value, 4),
               "plotted_range": [round(lo, 4), None if hi is None else round(hi, 4)]}
        for k, (v, g) in sorted(bd.items()):
            rec[k] = round(v, 4)
            rec[f"{k}_geometry"] = {x: (list(y) if isinstance(y, tuple) else y) for x, y in g.items()}
        out.append(rec)
    return out


def latency_predictions(values: dict[str, Any], cand: dict[str, Any], budget: Any) -> list[dict[str, Any]]:
    """The candidate's predicted seconds per video at every plotted latency marker: the planner's forward
    (evalkit.sweep.predict.Predictor, CUDA profile ``budget``) x STEPS x the candidate's passes."""
    from evalkit.sweep.predict import Predictor

    pred = Predictor(budget, "cuda", "inline")
    g = cand["geometry"] if "geometry" in cand else _geometry(cand)
    out = []
    for m in values["markers"]:
        if m["quantity"] != "latency_s":
            continue
        h, w = (g["frame"][0] * int(m["height"]) // 512, g["frame"][1] * int(m["width"]) // 512)
        spec = {"model": m["model"], "flavor": "4b", "model_overrides": F.geometry_overrides(g, m["model"]),
                "height": h, "width": w, "duration_s": float(m["duration_s"]), "fps": 16, "batch": 1}
        fwd = pred.forward_s(spec)
        flops = pred.flops(spec)
        frac = float(budget.cuda.achieved_fraction.get(m["model"], budget.cuda.achieved_fraction["default"]))
        per_video = fwd * STEPS * g["passes"]
        out.append({"key": f"latency:{m['panel']}:{m['model']}:{m['category']}", "kind": "figure_fit",
                    "status": "ok", "record": "latency_prediction", "panel": m["panel"], "model": m["model"],
                    "category": m["category"], "height": h, "width": w, "duration_s": float(m["duration_s"]),
                    "plotted_s": m["value"], "u_s": m["u_value"], "tflop_per_forward": round(flops / 1e12, 3),
                    "forward_s": round(fwd, 4), "steps": STEPS, "passes": g["passes"],
                    "peak_tflops": budget.cuda.peak_tflops, "achieved_fraction": frac,
                    "predicted_s": round(per_video, 2), "predicted_over_plotted": round(per_video / m["value"], 3)})
    return out


def summary_record(res: dict[str, Any], seconds: float) -> dict[str, Any]:
    best = res["refined"][0] if res["refined"] else None
    return {"key": "summary", "kind": "figure_fit", "status": "ok", "record": "summary",
            "combinations": res["combinations"], "token_geometries": len(res["token_geometries"]),
            "candidates_joint": len(res["joint"]), "candidates_refined": len(res["refined"]),
            "evaluations": res["evaluator"].evaluations,
            "fitting": sum(1 for c in res["refined"] if c["fits"]),
            "best_max_abs_z": round(best["max_abs_z"], 4) if best else None, "seconds": round(seconds, 1),
            "markers": [{"panel": m.panel, "model": m.model, "category": m.category, "value": m.value, "u": m.u}
                        for m in res["markers"]]}
