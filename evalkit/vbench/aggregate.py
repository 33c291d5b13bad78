"""VBench's Quality / Semantic / Total score from raw per-dimension scores (paper Tables 1, 3, 4 score columns).

A re-implementation of VBench ``scripts/cal_final_score.py`` (github.com/Vchitect/VBench), with one deliberate
difference: a
missing dimension is an error, or, when the caller asks for ``partial=True``, the groups are averaged over the
dimensions present and the result is labelled ``partial`` with the ``missing`` list. VBench itself sets a missing
dimension to raw 0, which gives a silently wrong (even negative) contribution; that is never done here.

    norm[d]  = (raw[d] - Min[d]) / (Max[d] - Min[d]) * weight[d]        # no clipping, as in VBench
    Quality  = sum(norm over quality dims)  / sum(weight over quality dims)     # / 6.5
    Semantic = sum(norm over semantic dims) / sum(weight over semantic dims)    # / 9
    Total    = (4 * Quality + 1 * Semantic) / 5
"""
from __future__ import annotations

import math
from collections.abc import Mapping

from evalkit.core.errors import ChoiceError, FieldError
from evalkit.vbench.dimensions import (
    DIMENSIONS,
    NORMALIZE,
    QUALITY_DIMENSIONS,
    QUALITY_WEIGHT,
    SEMANTIC_DIMENSIONS,
    SEMANTIC_WEIGHT,
    WEIGHTS,
    code_key,
)


class MissingDimensionsError(FieldError):
    """Raised when a full aggregate is asked for but some dimensions have no score."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        super().__init__("scores", f"missing VBench dimensions {missing}; score them, or pass partial=True "
                                   "for a result labelled partial (VBench would silently count them as raw 0)")


def _clean(scores: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in scores.items():
        dim = code_key(name)
        if dim not in NORMALIZE:
            raise ChoiceError("scores", name, DIMENSIONS, what="VBench dimension")
        if value is None:
            continue
        try:
            v = float(value)
        except (TypeError, ValueError) as exc:
            raise FieldError(f"scores.{dim}", f"not a number: {value!r}") from exc
        if not math.isfinite(v) or v < 0.0 or v > 1.0:
            raise FieldError(f"scores.{dim}", f"raw VBench score must be a fraction in [0, 1], got {v!r}"
                                              + (" (looks like a percentage: divide by 100)" if 1 < v <= 100 else ""))
        out[dim] = v
    return out


def normalized(dim: str, raw: float, normalize: Mapping[str, tuple[float, float]] = NORMALIZE) -> float:
    """(raw - Min) / (Max - Min), unclipped, as VBench does."""
    lo, hi = normalize[dim]
    return (raw - lo) / (hi - lo)


def _group(vals: dict[str, float], dims: tuple[str, ...], weights: Mapping[str, float],
           normalize: Mapping[str, tuple[float, float]]) -> float | None:
    present = [d for d in dims if d in vals]
    if not present:
        return None
    return sum(normalized(d, vals[d], normalize) * weights[d] for d in present) / sum(weights[d] for d in present)


def aggregate(scores: Mapping[str, float], partial: bool = False, *,
              weights: Mapping[str, float] = WEIGHTS,
              normalize: Mapping[str, tuple[float, float]] = NORMALIZE,
              quality_weight: float = QUALITY_WEIGHT, semantic_weight: float = SEMANTIC_WEIGHT) -> dict:
    """Quality, Semantic and Total score (fractions, VBench's scale) from raw scores in [0, 1].

    ``scores`` is keyed by VBench dimension keys (code keys or display keys with spaces). Returns
    ``{"quality_score", "semantic_score", "total_score", "partial", "missing", "n_dimensions"}``. Without
    ``partial`` a missing dimension raises :class:`MissingDimensionsError` listing them; with it, each group is the
    weighted mean over its present dimensions, a group with none present is ``None`` and so is the total.
    ``weights``/``normalize``/group weights default to VBench's and exist for the integrity check's hypotheses.
    """
    vals = _clean(scores)
    missing = [d for d in DIMENSIONS if d not in vals]
    if missing and not partial:
        raise MissingDimensionsError(missing)
    q = _group(vals, QUALITY_DIMENSIONS, weights, normalize)
    s = _group(vals, SEMANTIC_DIMENSIONS, weights, normalize)
    total = None if q is None or s is None else (quality_weight * q + semantic_weight * s) / (
        quality_weight + semantic_weight)
    return {"quality_score": q, "semantic_score": s, "total_score": total,
            "partial": bool(missing), "missing": missing, "n_dimensions": len(vals)}


def aggregate_records(records: list[Mapping]) -> dict:
    """Quality / Semantic / Total from vbench records, each computed only from a complete dimension set.

    A group score needs every dimension of its group with a record of status ``ok`` (a ``flagged`` record scored
    fewer videos than the suite has); the total needs both groups. Returns the three scores (None where the set
    is incomplete), ``missing`` (no record), ``incomplete`` (flagged records) and ``complete`` (all 16 ok)."""
    ok = {r["dimension"]: r["score"] for r in records if r.get("status") == "ok"}
    flagged = sorted(r["dimension"] for r in records if r.get("status") == "flagged" and r["dimension"] not in ok)
    missing = [d for d in DIMENSIONS if d not in ok and d not in flagged]

    def group(dims: tuple[str, ...]) -> float | None:
        if any(d not in ok for d in dims):
            return None
        return _group(_clean({d: ok[d] for d in dims}), dims, WEIGHTS, NORMALIZE)

    q, s = group(QUALITY_DIMENSIONS), group(SEMANTIC_DIMENSIONS)
    total = None if q is None or s is None else (QUALITY_WEIGHT * q + SEMANTIC_WEIGHT * s) / (
        QUALITY_WEIGHT + SEMANTIC_WEIGHT)
    return {"quality_score": q, "semantic_score": s, "total_score": total, "missing": missing,
            "incomplete": flagged, "complete": total is not None}
