"""FLOPs of one denoiser forward, two independent ways (paper Fig. 1b / Fig. 6 FLOPs curves).

1. **Counted**: :mod:`evalkit.measure.flop_counter` while the model runs on the ``meta`` device (shapes only: no
   tensor memory, any machine): a dispatch mode that counts only the ops that carry FLOPs (mm, bmm, conv, SDPA,
   the custom scans ``lingen::ssd_scan`` / ``lingen::selective_scan`` by their registered formulas) and fails on
   any op it does not know. SDPA on meta decomposes to ``bmm`` and is counted exactly (4*B*H*Nq*Nk*d); windowed
   attention counts what it computes. Each distinct layer kind is counted once and multiplied
   (``flops_method: per_layer_kind``; ``full`` for a mixer without a ``layer_kind``); tests check this against
   counting every layer and against ``torch.utils.flop_counter.FlopCounterMode``. Convention: 2 FLOPs per
   multiply-add ("2*MAC"), as FlopCounterMode's ``mm_flop``.
2. **Analytic**: ``models.estimate_flops`` (pure Python) with its per-component breakdown.

The two must agree within ``flops.rel_tol`` (1%) or the record's status is ``"flagged"`` (the numbers are still
recorded). fvcore's count is recorded next to them as ``fvcore_macs`` in *its* convention (one per multiply-add,
SDPA and custom ops uncounted; fvcore/nn/jit_handles.py), traced with ``torch.jit`` on meta tensors (one layer per
kind, combined from fvcore's per-module counts: ``fvcore_method``), or null with ``fvcore_message`` saying why.
torch's meta conv shape check fails under jit tracing (LinGen's depthwise conv), so small points
(``flops.fvcore_cpu_fallback_*``) are traced again on real CPU tensors (``fvcore_device: "cpu"``);
large LinGen points record null. Steps and CFG factor are recorded, not multiplied in: per-video FLOPs = flops x
steps x cfg_factor, computed by the reports.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalkit import models
from evalkit.core.errors import FieldError
from evalkit.measure.common import Context

if TYPE_CHECKING:
    from evalkit.measure.point import Point

CONVENTION = "2*MAC"
SOURCE = "evalkit.measure.flop_counter(meta)"
FVCORE_CONVENTION = "MAC, excludes attention/custom ops"


def count_fvcore(model: Any, inputs: tuple, plan: tuple | None = None, blocks_attr: str = "blocks") -> dict[str, Any]:
    """fvcore's multiply-add count (jit trace on the given tensors); null with the reason when it cannot run.

    With ``plan`` (``flop_counter.kind_plan``) ``model`` holds one layer per layer kind and the total is combined
    from fvcore's own per-module counts exactly as the FLOP count is (``flop_counter.combine``); the listed
    unsupported ops are those of the traced layers."""
    try:
        from fvcore.nn import FlopCountAnalysis
    except ImportError:
        return {"fvcore_macs": None, "fvcore_message": "fvcore not installed (pip install -e '.[fvcore]')"}
    import torch

    from evalkit.measure.flop_counter import combine, no_opt_einsum

    t0 = time.perf_counter()
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    try:
        with no_opt_einsum(), torch.no_grad():
            analysis = FlopCountAnalysis(model, inputs)
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
            total = int(analysis.total())
            unsupported = analysis.unsupported_ops()
            if plan is not None:
                by_module = analysis.by_module()
                total = combine(total, [int(by_module[f"{blocks_attr}.{i}"]) for i in range(plan[0])], plan[1])
    except Exception as exc:  # fvcore's jit tracer fails on some graphs: record why, never a zero
        return {"fvcore_macs": None, "fvcore_message": f"fvcore trace failed: {type(exc).__name__}: {exc}"[:300]}
    listed = "; ".join(f"{op} x{n}" for op, n in sorted(unsupported.items(), key=lambda kv: -kv[1]))
    return {"fvcore_macs": total, "fvcore_convention": FVCORE_CONVENTION, "fvcore_unsupported_ops": listed,
            "fvcore_method": "full" if plan is None else "per_layer_kind",
            "fvcore_seconds": round(time.perf_counter() - t0, 3)}


@dataclass(frozen=True, kw_only=True)
class FlopsSettings:
    """The ``flops:`` section of a sweep file."""
    rel_tol: float = 0.01            # counted vs analytic: > 1% -> status "flagged"
    fvcore: bool = True              # also record fvcore's multiply-add count (on meta tensors)
    fvcore_max_tokens: int = 0       # 0 = every point; else only points with num_tokens <= this
    # when fvcore's trace fails on meta, points this small are traced again on real CPU tensors
    fvcore_cpu_fallback_max_tokens: int = 4096
    fvcore_cpu_fallback_max_params: int = 50_000_000

    def check(self, where: str) -> None:
        if self.rel_tol < 0:
            raise FieldError(f"{where}.rel_tol", f"must be >= 0, got {self.rel_tol}")


def run(point: Point, ctx: Context) -> list[dict[str, Any]]:
    import torch

    from evalkit.measure import flop_counter

    fs, sampling = point.settings.flops, point.settings.sampling
    cfg, video, batch = point.config, point.video, point.batch
    t0 = time.perf_counter()
    est = models.estimate_flops(cfg, video, cfg_factor=1)
    analytic = float(est.total) * batch
    analytic_s = time.perf_counter() - t0
    c = flop_counter.count_point(cfg, video, batch=batch, build=lambda sub: ctx.build(sub, "meta"))
    counted = c.total
    rel = abs(counted - analytic) / analytic if analytic else float("inf")
    rec: dict[str, Any] = {
        "flops": counted, "flops_analytic": analytic, "flops_convention": CONVENTION, "flops_source": SOURCE,
        "flops_method": c.method, "flops_layer_kinds": c.kinds, "flops_layers_counted": c.layers_counted,
        "flops_rel_diff": rel, "flops_agree": rel <= fs.rel_tol, "flops_rel_tol": fs.rel_tol,
        "flops_build_seconds": round(c.build_seconds, 3), "flops_count_seconds": round(c.count_seconds, 3),
        "flops_analytic_seconds": round(analytic_s, 6), "cfg_factor": sampling.cfg_factor,
        "steps": sampling.steps, "dtype": "float32", "device": "meta",
        "status": "ok" if rel <= fs.rel_tol else "flagged",
        "message": "" if rel <= fs.rel_tol else
        f"counted {counted:.4g} vs analytic {analytic:.4g} differ by {rel:.2%} > {fs.rel_tol:.0%}",
    }
    assert getattr(est, "convention", CONVENTION) == CONVENTION, est.convention
    for part in ("mixer", "cross_attention", "ffn", "other"):
        rec[f"flops_breakdown_{part}"] = float(est.breakdown[part]) * batch  # every model reports all four
    for op, n in sorted(c.by_op.items()):
        rec[f"flops_op_{op}"] = n
    if not fs.fvcore:
        rec.update(fvcore_macs=None, fvcore_message="disabled (flops.fvcore=false)")
    elif fs.fvcore_max_tokens and point.num_tokens > fs.fvcore_max_tokens:
        rec.update(fvcore_macs=None, fvcore_message=f"not run: {point.num_tokens} tokens > "
                                                    f"flops.fvcore_max_tokens={fs.fvcore_max_tokens}")
    else:
        sub, plan = flop_counter.reduced(cfg)  # one layer per kind, combined like the FLOP count
        model = ctx.build(sub, "meta")
        inputs = models.dummy_inputs(sub, video, batch=batch, device="meta", dtype=torch.float32)
        fv = count_fvcore(model, tuple(inputs), plan, cfg.blocks_attr)
        fv["fvcore_device"] = "meta"
        small = point.num_tokens <= fs.fvcore_cpu_fallback_max_tokens and \
            point.params <= fs.fvcore_cpu_fallback_max_params
        if fv["fvcore_macs"] is None and small:
            # torch's meta conv shape check fails under jit tracing (e.g. the depthwise conv of the MA-branch):
            # small points are traced again on real CPU tensors (random weights; counts depend on shapes only)
            cpu_model = ctx.build(sub, "cpu")
            cpu_inputs = models.dummy_inputs(sub, video, batch=batch, device="cpu", dtype=torch.float32)
            fv = {**count_fvcore(cpu_model, tuple(cpu_inputs), plan, cfg.blocks_attr), "fvcore_device": "cpu",
                  "fvcore_meta_message": fv["fvcore_message"]}
        rec.update(fv)
    return [rec]
