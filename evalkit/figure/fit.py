"""Fit the unstated geometry of LinGen-4B / DiT-4B to every FLOPs point the project page's efficiency figure plots
(the absolute-value counterpart of the paper's Fig. 6b; values from ``experiments/paper/efficiency_figure_values
.yaml``), under the project's analytic cost (``evalkit.models.estimate_flops`` = the FLOPs counted on ``meta``).

Searched (:class:`SearchSpace`; every range an assumption, recorded in the run's manifest): width (head dim 128,
so heads = width / 128: the head count does not enter either model's FLOPs), FFN / width, depth (every depth with
both models in the "4B" band), VAE time / space compression, patch, the pixel size of "512^2" (the other
categories scale with their label: 256^2 = half of it, 1024^2 twice), text tokens, forward passes per step
(1, or 2 with classifier-free guidance), and for LinGen the TESA window (shift = half of it), the review-token
stride and d_state (= SSD head dim). Stage 1 scores every backbone x tokens x text x passes combination with the
presets' MATE settings; stage 2 varies the MATE settings of the best ``keep`` of them.

A point's residual is z = (predicted - plotted) / u, u the digitized half-width: a geometry *fits* when |z| <= 1
at every plotted FLOPs marker. Candidates rank by max |z|, then by the sum of z^2. FLOPs are exactly linear in
depth in the analytic cost (per-layer terms x depth + embeddings), so each combination is evaluated at depth 1
and 2 and extrapolated (checked exact at a third depth for every best candidate, and each best candidate's
config is rebuilt with ``models.resolve`` and must equal the one scored).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from evalkit import models
from evalkit.core.errors import FieldError

Triple = tuple[int, int, int]
MODELS = ("dit", "lingen")
# growth ratios whose attainable range is recorded (numerator / denominator: (label h, label w, duration))
GROWTH_PAIRS = (((512, 512, 68.0), (512, 512, 17.0)), ((512, 512, 34.0), (512, 512, 17.0)),
                ((1024, 1024, 17.0), (512, 512, 17.0)), ((512, 512, 17.0), (256, 256, 17.0)))
LEVEL_LABEL = (512, 512, 17.0)      # "level-matched": the model's 512^2 / 17 s FLOPs per step within its half-width
PRINTED_FRAME = (512, 512)          # the figure's "512^2" read as printed
TIE_Z = 0.05
BOUND_KEYS = ("d_model", "ffn_dim", "text_len", "compression", "patch", "frame")



@dataclass(frozen=True, kw_only=True)
class SearchSpace:
    """The ranges searched (all assumptions: the paper states none of these)."""
    widths: tuple[int, ...] = tuple(range(1024, 4608 + 1, 128))     # multiples of the head dim
    head_dim: int = 128                                             # Llama / Movie Gen head size
    ffn_ratios: tuple[float, ...] = (2.0, 8 / 3, 2.75, 3.0, 3.5, 4.0)   # SwiGLU hidden / width (FFN rounded to 128)
    params_band_billions: tuple[float, float] = (3.6, 4.4)         # "4B" (as experiments/sensitivity.yaml)
    max_depth: int = 160
    temporal_compression: tuple[int, ...] = (4, 8)                 # 4x (e.g. CogVideoX, Wan VAE) or 8x (Movie Gen TAE)
    spatial_compression: tuple[int, ...] = (8, 16)
    patches: tuple[Triple, ...] = ((1, 1, 1), (1, 2, 2), (2, 2, 2))
    # the pixel size of "512^2": square as printed, or a 16:9 / 3:2 / 4:3 frame of the same height
    frames: tuple[tuple[int, int], ...] = ((384, 384), (512, 512), (640, 640), (768, 768), (1024, 1024),
                                           (512, 688), (512, 768), (512, 896))
    text_lens: tuple[int, ...] = (77, 128, 256, 512)
    passes: tuple[int, ...] = (1, 2)                               # forward passes per sampling step (2: CFG)
    windows: tuple[Triple, ...] = ((8, 4, 4), (17, 2, 2), (17, 4, 4), (17, 8, 8), (34, 4, 4))
    review_strides: tuple[int, ...] = (4, 8, 16, 32, 64)
    d_states: tuple[int, ...] = (32, 64, 128)                      # = SSD head dim (B <- k, C <- q per head)
    fps: int = 16                                                  # 1088 raw frames / 68 s (Table 1)
    keep: int = 300                                                # stage-1 candidates refined in stage 2


@dataclass(frozen=True, kw_only=True)
class Marker:
    """One plotted FLOPs marker: what and where, the plotted value and its half-width (TFLOP per step)."""
    panel: str
    model: str
    category: str
    height: int
    width: int
    duration_s: float
    value: float
    u: float


def flops_markers(values: dict[str, Any]) -> list[Marker]:
    out = [Marker(panel=m["panel"], model=m["model"], category=m["category"], height=int(m["height"]),
                  width=int(m["width"]), duration_s=float(m["duration_s"]), value=float(m["value"]),
                  u=float(m["u_value"]))
           for m in values["markers"] if m["quantity"] == "tflop_per_step"]
    if {m.model for m in out} != set(MODELS):
        raise FieldError("markers", f"expected FLOPs markers of {MODELS}, got {sorted({m.model for m in out})}")
    return out


def scaled_frame(frame: tuple[int, int], label: tuple[int, int], quantum: int) -> tuple[int, int] | None:
    """The frame of a category labelled ``label`` (e.g. 256x256) when "512^2" means ``frame``: scaled by
    label / 512 per side; None when that is not a whole number of tokens (``quantum`` px per token)."""
    h, w = (frame[0] * label[0] / 512, frame[1] * label[1] / 512)
    if h != int(h) or w != int(w) or int(h) % quantum or int(w) % quantum:
        return None
    return int(h), int(w)


@dataclass(frozen=True, kw_only=True)
class Tokens:
    """A token geometry: latent compression, patch, the "512^2" frame; the frame of every category."""
    compression: Triple
    patch: Triple
    frame: tuple[int, int]
    points: dict[tuple[int, int, float], models.VideoPoint]     # (label h, label w, duration) -> point


def token_geometries(space: SearchSpace, labels: set[tuple[int, int, float]]) -> list[Tokens]:
    out = []
    for ct, cs, patch, frame in itertools.product(space.temporal_compression, space.spatial_compression,
                                                  space.patches, space.frames):
        comp = (ct, cs, cs)
        pts = {}
        for lh, lw, dur in sorted(labels):
            hw = scaled_frame(frame, (lh, lw), cs * patch[1])
            frames = round(dur * space.fps)
            if hw is None or frames % (ct * patch[0]):
                break
            pts[(lh, lw, dur)] = models.VideoPoint(height=hw[0], width=hw[1], duration_s=dur, fps=space.fps)
        else:
            out.append(Tokens(compression=comp, patch=patch, frame=frame, points=pts))
    return out


def geometry_overrides(g: dict[str, Any], model: str) -> dict[str, Any]:
    """A candidate as ``models.resolve`` overrides of the 4b presets (nested, as an experiment file writes them)."""
    o: dict[str, Any] = {"d_model": g["d_model"], "heads": g["heads"], "ffn_dim": g["ffn_dim"], "depth": g["depth"],
                         "text_len": g["text_len"], "max_grid": list(g["max_grid"]),
                         "latent": {"compression": list(g["compression"]), "patch": list(g["patch"])}}
    if model == "lingen":
        o["mate"] = {"window": list(g["window"]), "shift": [w // 2 for w in g["window"]],
                     "review_stride": g["review_stride"], "ssm": {"headdim": g["d_state"], "d_state": g["d_state"]}}
    return o


class Evaluator:
    """Per-layer and constant FLOPs / parameters of one model family at the figure's points (depth-linear)."""

    def __init__(self, markers: list[Marker], space: SearchSpace) -> None:
        self.markers, self.space = markers, space
        self.labels = sorted({(m.height, m.width, m.duration_s) for m in markers})
        self.base = {m: models.resolve(m, "4b") for m in MODELS}
        self.evaluations = 0

    def config(self, model: str, g: dict[str, Any], depth: int) -> Any:
        """The candidate's ModelConfig (presets + candidate, as resolve builds it), at ``depth``."""
        b = self.base[model]
        cfg = dataclasses.replace(
            b, d_model=g["d_model"], heads=g["heads"], ffn_dim=g["ffn_dim"], depth=depth, text_len=g["text_len"],
            max_grid=tuple(g["max_grid"]),
            latent=dataclasses.replace(b.latent, compression=tuple(g["compression"]), patch=tuple(g["patch"])))
        if model == "lingen":
            ssm = dataclasses.replace(b.mate.ssm, headdim=g["d_state"], d_state=g["d_state"])
            cfg = dataclasses.replace(cfg, mate=dataclasses.replace(
                b.mate, window=tuple(g["window"]), shift=tuple(w // 2 for w in g["window"]),
                review_stride=g["review_stride"], ssm=ssm))
        cfg.check()
        return cfg

    def linear(self, model: str, g: dict[str, Any], tokens: Tokens) -> tuple[np.ndarray, np.ndarray, float, float]:
        """(const, per_layer) forward FLOPs at each label in ``self.labels``, and (const, per_layer) parameters."""
        f, p = [], []
        for depth in (1, 2):
            cfg = self.config(model, g, depth)
            f.append([models.estimate_flops(cfg, tokens.points[lab]).total for lab in self.labels])
            p.append(models.param_count(cfg))
            self.evaluations += len(self.labels)
        f1, f2 = np.array(f[0]), np.array(f[1])
        return f1 - (f2 - f1), f2 - f1, float(2 * p[0] - p[1]), float(p[1] - p[0])


def _max_grid(tokens: Tokens, compression: Triple, patch: Triple) -> tuple[int, int, int]:
    grids = []
    for pt in tokens.points.values():
        t = round(pt.duration_s * pt.fps) // compression[0] // patch[0]
        grids.append((t, pt.height // compression[1] // patch[1], pt.width // compression[2] // patch[2]))
    return tuple(max(g[i] for g in grids) for i in range(3))


def score(pred: np.ndarray, markers: list[Marker]) -> tuple[float, float, np.ndarray]:
    """(max |z|, sum z^2, z) of predicted TFLOP per step at the markers (``pred``: rows = markers' order)."""
    z = (pred - np.array([m.value for m in markers])) / np.array([m.u for m in markers])
    return float(np.abs(z).max()), float((z ** 2).sum()), z


def _best_depths(pred: np.ndarray, ok: np.ndarray, markers: list[Marker], rows: list[int]
                 ) -> tuple[int, float, float] | None:
    """Among depths where ``ok``, the one whose predictions (depth x marker) score best on the markers ``rows``:
    (index, max |z|, sum z^2), or None."""
    if not ok.any():
        return None
    v = np.array([markers[i].value for i in rows])
    u = np.array([markers[i].u for i in rows])
    z = (pred[:, rows] - v) / u
    mx, ss = np.abs(z).max(axis=1), (z ** 2).sum(axis=1)
    mx, ss = np.where(ok, mx, np.inf), np.where(ok, ss, np.inf)
    i = int(np.lexsort((ss, mx))[0])
    return i, float(mx[i]), float(ss[i])


def search(values: dict[str, Any], space: SearchSpace = SearchSpace(), progress: Any = None) -> dict[str, Any]:
    """Stage 1 + stage 2 (module docstring). Returns ``joint`` (every backbone x tokens x text x passes
    combination at its best depth, both models in the band, scored on all markers), ``dit`` / ``lingen`` (the
    same for one model's markers, only that model in the band) and ``refined`` (stage 2, ranked)."""
    markers = flops_markers(values)
    ev = Evaluator(markers, space)
    lab_of = {lab: i for i, lab in enumerate(ev.labels)}
    rows = {mod: [i for i, m in enumerate(markers) if m.model == mod] for mod in MODELS}
    cols = np.array([lab_of[(m.height, m.width, m.duration_s)] for m in markers])
    is_mod = {mod: np.array([m.model == mod for m in markers]) for mod in MODELS}
    all_rows = list(range(len(markers)))
    lo, hi = (b * 1e9 for b in space.params_band_billions)
    base_lin = ev.base["lingen"].mate
    found: dict[str, list[tuple[float, float, dict[str, Any]]]] = {"joint": [], "dit": [], "lingen": []}
    pairs = [(num, den, lab_of[num], lab_of[den]) for num, den in GROWTH_PAIRS if num in lab_of and den in lab_of]
    level = {mod: min((m for m in markers if m.model == mod and (m.height, m.width, m.duration_s) == LEVEL_LABEL),
                      key=lambda m: m.u) for mod in MODELS}
    lv_i = lab_of[LEVEL_LABEL]
    bounds: dict[tuple[str, tuple, tuple], dict[str, Any]] = {}
    geos = token_geometries(space, set(ev.labels))
    combos = list(itertools.product(geos, space.text_lens, space.widths, space.ffn_ratios))
    depths = np.arange(1, space.max_depth + 1)
    for n, (tok, S, d, r) in enumerate(combos):
        if progress and n % 2000 == 0:
            progress(n, len(combos))
        g = {"d_model": d, "heads": d // space.head_dim, "ffn_dim": int(round(r * d / 128)) * 128, "text_len": S,
             "compression": tok.compression, "patch": tok.patch, "frame": tok.frame,
             "max_grid": _max_grid(tok, tok.compression, tok.patch), "window": tuple(base_lin.window),
             "review_stride": base_lin.review_stride, "d_state": base_lin.ssm.d_state}
        try:
            lin = {mod: ev.linear(mod, g, tok) for mod in MODELS}
        except (FieldError, ValueError):
            continue          # e.g. a TESA window larger than the token grid, a width the SSD head dim does not divide
        inband = {mod: (lin[mod][2] + depths * lin[mod][3] >= lo) & (lin[mod][2] + depths * lin[mod][3] <= hi)
                  for mod in MODELS}
        if not (inband["dit"].any() or inband["lingen"].any()):
            continue
        # forward FLOPs (depth x marker), TFLOP: each marker from its model's terms at its label
        fwd = np.zeros((len(depths), len(markers)))
        for mod in MODELS:
            c0, c1 = lin[mod][0][cols], lin[mod][1][cols]
            fwd += np.where(is_mod[mod], c0[None, :] + depths[:, None] * c1[None, :], 0.0) / 1e12
        for mod in MODELS:
            c0, c1 = lin[mod][0], lin[mod][1]
            for num, den, a, b in pairs:
                ratio = (c0[a] + depths * c1[a]) / (c0[b] + depths * c1[b])
                lv = (c0[lv_i] + depths * c1[lv_i]) / 1e12
                near = np.zeros(len(depths), dtype=bool)
                for passes in space.passes:
                    near |= np.abs(passes * lv - level[mod].value) <= level[mod].u
                for tag, mask in (("any", inband[mod]), ("level", inband[mod] & near)):
                    if not mask.any():
                        continue
                    bd = bounds.setdefault((mod, num, den), {})
                    for which, i in (("max", int(np.argmax(np.where(mask, ratio, -np.inf)))),
                                     ("min", int(np.argmin(np.where(mask, ratio, np.inf))))):
                        k, r_i = f"{which}_{tag}", float(ratio[i])
                        if k not in bd or (r_i > bd[k][0] if which == "max" else r_i < bd[k][0]):
                            bd[k] = (r_i, {**{x: g[x] for x in BOUND_KEYS}, "depth": int(depths[i])})
        for passes in space.passes:
            pred = passes * fwd
            for name, ok, rws in (("joint", inband["dit"] & inband["lingen"], all_rows),
                                  ("dit", inband["dit"], rows["dit"]), ("lingen", inband["lingen"], rows["lingen"])):
                best = _best_depths(pred, ok, markers, rws)
                if best is not None:
                    found[name].append((best[1], best[2], {**g, "depth": int(depths[best[0]]), "passes": passes,
                                                           "_tokens": tok}))
    for lst in found.values():
        lst.sort(key=lambda c: (c[0], c[1]))
    refined, seen = [], set()
    for _, _, g in found["joint"][:space.keep]:
        for window, stride, ds in itertools.product(space.windows, space.review_strides, space.d_states):
            h = {**g, "window": window, "review_stride": stride, "d_state": ds}
            key = tuple(sorted((k, str(v)) for k, v in h.items() if k != "_tokens"))
            if key in seen:
                continue
            seen.add(key)
            try:
                refined.append(evaluate(ev, h, h["_tokens"]))
            except (FieldError, ValueError):
                continue
    refined.sort(key=lambda c: (c["max_abs_z"], c["sum_z2"]))
    # a spelling of the best with the frame as printed (the same token grids, another compression x patch) wins
    # when within TIE_Z of it (they differ only in the patch embedding's few FLOPs)
    same = [i for i, c in enumerate(refined[:50]) if tuple(c["frame"]) == PRINTED_FRAME
            and c["max_abs_z"] <= refined[0]["max_abs_z"] + TIE_Z and c["passes"] == refined[0]["passes"]
            and all(c[k] == refined[0][k] for k in ("d_model", "ffn_dim", "depth", "text_len", "window",
                                                     "review_stride", "d_state"))] if refined else []
    if same:
        refined.insert(0, refined.pop(same[0]))
    return {"markers": markers, "evaluator": ev, "space": space, "combinations": len(combos),
            "token_geometries": geos, **found, "refined": refined, "bounds": bounds}


def evaluate(ev: Evaluator, g: dict[str, Any], tokens: Tokens) -> dict[str, Any]:
    """One geometry at every marker: predictions (TFLOP per step), residuals, z, parameters."""
    out = dict(g)          # keeps "_tokens" (not serialised: evalkit.figure.results picks the fields it records)
    out["_tokens"] = tokens
    preds, params = {}, {}
    for mod in MODELS:
        c0, c1, p0, p1 = ev.linear(mod, g, tokens)
        preds[mod] = g["passes"] * (c0 + g["depth"] * c1) / 1e12
        params[mod] = int(round(p0 + g["depth"] * p1))
    lab_of = {lab: i for i, lab in enumerate(ev.labels)}
    pred = np.array([preds[m.model][lab_of[(m.height, m.width, m.duration_s)]] for m in ev.markers])
    mx, ss, z = score(pred, ev.markers)
    per_model = {f"max_abs_z_{mod}": float(max(abs(zi) for zi, m in zip(z, ev.markers) if m.model == mod))
                 for mod in MODELS}
    out.update(params_dit=params["dit"], params_lingen=params["lingen"], max_abs_z=mx, sum_z2=ss, **per_model,
               fits=bool(mx <= 1.0), predicted=[float(v) for v in pred], z=[float(v) for v in z],
               flops_by_label={mod: {f"{h}x{w}@{d:g}s": float(v) for (h, w, d), v in zip(ev.labels, preds[mod])}
                               for mod in MODELS})
    return out


def verify(ev: Evaluator, cand: dict[str, Any], tokens: Tokens) -> None:
    """The candidate's config rebuilt by ``models.resolve`` equals the one scored, and the depth extrapolation
    is exact at its depth (raises AssertionError otherwise)."""
    for mod in MODELS:
        cfg = ev.config(mod, cand, cand["depth"])
        assert models.resolve(mod, "4b", geometry_overrides(cand, mod)) == cfg, mod
        for lab in ev.labels:
            direct = models.estimate_flops(cfg, tokens.points[lab]).total * cand["passes"] / 1e12
            got = cand["flops_by_label"][mod][f"{lab[0]}x{lab[1]}@{lab[2]:g}s"]
            assert math.isclose(direct, got, rel_tol=1e-9), (mod, lab, direct, got)
        assert models.param_count(cfg) == cand[f"params_{mod}"], mod
