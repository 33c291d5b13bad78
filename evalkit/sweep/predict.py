"""Predicted seconds of every (point, measurement) of a sweep: the clock of the budget planner
(``sweep --budget-s``, :mod:`evalkit.sweep.budget`) and of the progress bar's ETA.

Not a paper figure: it decides which of the paper's latency claims (Fig. 6a, Table 2, Fig. 20, Table 1 max
frames; experiments/paper_latency.yaml) fit into a fixed amount of GPU time. A prediction is arithmetic on the
point's analytic FLOPs (``models.estimate_flops``, 0.2 ms) and a :class:`Throughput` profile of the device:

    forward  = forward_overhead_s + FLOPs / (peak_tflops x achieved_fraction[model]) x scale[model]
    latency  = [startup] + [build] + [first_forward] + (warmup + iterations) x call (+ 1 profiled forward at the
               shortest duration when warmup is 0: the profile rides on the first warm-up call otherwise); under a
               budget a model already warm in the process gets no warm-up (its first call is a timed one)
    memory   = 0 right after a latency unit of the same point (its peak comes from the timed forwards),
               else [startup] + [build] + [first_forward] + 1 forward
    max_frames = [startup] + [build] + the bisection's probes (each one forward at its duration)
    flops    = [startup] + [meta build] + count_s[model] (+ fvcore_s[model] where fvcore runs)

Bracketed terms are paid only when the simulated process state (:class:`SimState`: process started, the one
real-device model the measurement context keeps, the meta models it caches) says so, exactly as
``evalkit.measure.common.Context`` caches. Rows the measurement only skips (no CUDA) cost ``skip_s``.
``scale[model]`` starts at 1 and is set from each measured latency (measured / predicted forward), so the
plan follows the machine once it has timed one forward of a model.

The profiles: :class:`CudaThroughput` defaults are assumptions (restated with their sources in
experiments/paper_latency.yaml); :class:`CpuThroughput` defaults were measured on this project's shared 2-core
box (see the comments). Pure python: never imports torch (nor, at import, the models: experiment files load
their ``budget:`` section from here, and ``report`` never imports the models).
"""
from __future__ import annotations

import json
import math
import statistics
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from evalkit.core.errors import EvalkitError, FieldError

if TYPE_CHECKING:
    from evalkit.measure.point import Point
    from evalkit.sweep.budget import BudgetSettings

Device = Literal["cuda", "cpu"]


@dataclass(frozen=True, kw_only=True)
class Throughput:
    """How fast one device runs the sweep's measurements (all seconds are wall seconds)."""
    peak_tflops: float = 989.0
    achieved_fraction: dict[str, float] = field(default_factory=lambda: {"default": 0.3})  # model -> fraction
    forward_overhead_s: float = 0.01        # per forward, independent of its FLOPs (launches, Python)
    import_s: float = 5.0                   # once per process: importing torch (not paid where it is imported)
    startup_s: float = 30.0                 # once per process besides: CUDA context, kernel JIT compiles
    point_overhead_s: float = 0.05          # per point: job file and record writes (fsync), launcher bookkeeping
    build_s: float = 2.0                    # per real-device model build ...
    build_s_per_gparam: float = 0.5         # ... plus this per billion parameters
    first_forward_s: float = 2.0            # extra on a freshly built model's first forward
    meta_build_s: dict[str, float] = field(default_factory=lambda: {"default": 0.05})  # flops: meta build
    count_s: dict[str, float] = field(default_factory=lambda: {"default": 0.2})        # flops: one count
    fvcore_s: dict[str, float] = field(default_factory=lambda: {"default": 0.1})       # flops: fvcore trace
    skip_s: float = 0.002                   # a measurement that only writes a `skipped` row


@dataclass(frozen=True, kw_only=True)
class CudaThroughput(Throughput):
    """One H100/H200-class GPU, bf16. assumed: the values experiments/paper_latency.yaml states with sources."""


@dataclass(frozen=True, kw_only=True)
class CpuThroughput(Throughput):
    """This project's shared 2-core box, float32 (measured at load average 3-5, 2026-12; see each comment)."""
    peak_tflops: float = 0.1                # nominal: 2 cores x ~2.5 GHz x 32 fp32 FLOP/cycle ~ 0.16 TFLOP/s
    # tiny models at 64x112: LinGen 0.27 / 0.44 s per forward at 8.5 / 17 s (~1.5 GFLOP/s on the margin),
    # DiT 0.29 s at 17 s, 1.27 s at 68 s (~15 GFLOP/s), w/ Mamba 1.7 / 3.6 s (reference selective scan)
    achieved_fraction: dict[str, float] = field(default_factory=lambda: {
        "default": 0.015, "dit": 0.15, "lingen-no-ma": 0.05, "lingen-mamba1": 0.0015})
    forward_overhead_s: float = 0.1
    import_s: float = 2.0                   # `import torch`: 1.5-3 s
    startup_s: float = 2.4                  # the first LinGen build's imports and custom ops (2.3-2.7 s)
    # per point: the default sweep's 22 points took ~0.05 s each beyond their measurements (benchmarks/sweep_eta.py)
    point_overhead_s: float = 0.05
    build_s: float = 0.05                   # tiny models build in 0.03-0.08 s
    build_s_per_gparam: float = 60.0        # real CPU weights (never planned here beyond tiny sizes)
    first_forward_s: float = 0.0
    meta_build_s: dict[str, float] = field(default_factory=lambda: {"default": 0.04, "dit": 0.008})
    # one FLOP count on meta (per layer kind: LinGen 4 kinds, DiT 1), 4b at any point: 0.19-0.22 / 0.03-0.05 s
    count_s: dict[str, float] = field(default_factory=lambda: {"default": 0.2, "dit": 0.04})
    # fvcore's jit trace on meta: DiT-4B 0.07-0.12 s; LinGen's fails fast (~0.03 s) and records why
    fvcore_s: dict[str, float] = field(default_factory=lambda: {"default": 0.05, "dit": 0.1})


def _per_model(table: dict[str, float], model: str) -> float:
    return float(table.get(model, table["default"]))


def model_key(point: Point) -> str:
    """What the measurement context caches a model by (registry name, flavor, overrides)."""
    return json.dumps([point.model, point.flavor, dict(point.overrides)], sort_keys=True)


def point_key(point: Point) -> str:
    return json.dumps([model_key(point), point.height, point.width, point.duration_s, point.batch])


@dataclass(kw_only=True)
class SimState:
    """The process state a prediction depends on: torch imported?, started?, the one cached real model (and
    whether it has run a forward), the meta models cached (most recent last), points whose latency ran (memory
    reuses their peak)."""
    imported: bool = False
    started: bool = False
    real: str | None = None
    real_warm: bool = False
    meta: list[str] = field(default_factory=list)
    timed_points: set[str] = field(default_factory=set)

    def copy(self) -> SimState:
        return SimState(imported=self.imported, started=self.started, real=self.real, real_warm=self.real_warm,
                        meta=list(self.meta), timed_points=set(self.timed_points))


@dataclass(frozen=True, kw_only=True)
class UnitPlan:
    """How much work one unit does: a latency unit's warm-up calls and timed iterations; a max-frames unit's
    probes (``iterations``; the bisection stops after that many, or at its time cap)."""
    warmup: int = 0
    iterations: int = 0


class Predictor:
    """Seconds per unit on one device (``cuda`` | ``cpu``) for a launcher (``inline``: one process keeps its
    models; ``process``/``submitit``: every point starts a fresh process)."""

    def __init__(self, budget: BudgetSettings, device: Device, launcher: str = "inline") -> None:
        self.device = device
        self.prof: Throughput = budget.cuda if device == "cuda" else budget.cpu
        self.fresh_process_per_point = launcher != "inline"
        self.scale: dict[str, float] = {}
        self._ratios: dict[str, list[float]] = {}

    # -- the pieces ---------------------------------------------------------------------------------------------
    def flops(self, point: Point, duration_s: float | None = None) -> float:
        if duration_s is None:
            return point.flops_analytic
        from evalkit import models

        return models.estimate_flops(point.config, point.at(duration_s)).total * point.batch

    def forward_s(self, point: Point, duration_s: float | None = None) -> float:
        """One denoiser forward at the point (or at ``duration_s``)."""
        rate = self.prof.peak_tflops * 1e12 * _per_model(self.prof.achieved_fraction, point.model)
        return self.prof.forward_overhead_s + self.flops(point, duration_s) / rate * self.scale.get(point.model, 1.0)

    def call_s(self, point: Point) -> float:
        """One timed call of the latency measurement: a forward, or the whole sampling loop."""
        lat, samp = point.settings.latency, point.settings.sampling
        if lat.scope == "sampling_loop":
            return self.forward_s(point) * samp.steps * samp.cfg_factor
        return self.forward_s(point)

    def build_s(self, point: Point) -> float:
        return self.prof.build_s + self.prof.build_s_per_gparam * point.params / 1e9

    def skipped_on_cpu(self, point: Point, measurement: str) -> bool:
        """The measurement will only write a `skipped` row here (the same rule as the measurements')."""
        if self.device == "cuda" or measurement == "flops":
            return False
        if measurement in ("memory", "max_frames"):
            return True
        from evalkit.measure.latency import cpu_skip_reason

        return cpu_skip_reason(point) is not None

    def desired(self, point: Point, measurement: str = "latency", state: SimState | None = None) -> UnitPlan:
        """What the measurement does unbudgeted: ``min_iterations`` and ``min_seconds``, at most
        ``max_iterations`` (max frames: the whole bisection); no warm-up for a model ``state`` holds warm."""
        if measurement == "max_frames":
            return UnitPlan(iterations=len(bisection_durations(point)))
        lat = point.settings.latency
        n = max(lat.min_iterations, math.ceil(lat.min_seconds / max(self.call_s(point), 1e-9)))
        return UnitPlan(warmup=self._warmup(point, state, lat.warmup), iterations=min(n, lat.max_iterations))

    def minimal(self, point: Point, measurement: str = "latency", state: SimState | None = None) -> UnitPlan:
        """The least a budget may cut a unit to: latency one warm-up call (kernel selection and JIT compiles
        happen there) unless the file asks for none or the model is already warm in the process (``state``: its
        first call is then a timed one), and one timed iteration; max frames its first two probes (the shortest
        and the longest duration: a bracket, or the answer when the longest fits)."""
        if measurement == "max_frames":
            return UnitPlan(iterations=2)
        return UnitPlan(warmup=self._warmup(point, state, min(point.settings.latency.warmup, 1)), iterations=1)

    def _warmup(self, point: Point, state: SimState | None, n: int) -> int:
        """``n`` warm-up calls, none when ``state`` holds this model warm (it ran a forward in this process)."""
        warm = state is not None and state.real == model_key(point) and state.real_warm
        return 0 if warm else n

    def short_s(self, point: Point) -> float:
        """One forward at the shortest duration the point's model represents (the profiled call without a
        warm-up, ``evalkit.measure.latency.short_duration``)."""
        from evalkit.measure.latency import short_duration

        key = point_key(point)
        if key not in _SHORT:
            _SHORT[key] = short_duration(point)
        return self.forward_s(point, _SHORT[key])

    # -- one unit -----------------------------------------------------------------------------------------------
    def initial_state(self) -> SimState:
        """The state of the process the first point runs in: this one (torch already imported or not), or a
        fresh one per point."""
        return SimState(imported="torch" in sys.modules and not self.fresh_process_per_point)

    def _enter(self, state: SimState) -> float:
        """Start-up paid by the unit (a fresh process for every point under process/submitit launchers)."""
        if state.started:
            return 0.0
        return self.prof.startup_s + (0.0 if state.imported else self.prof.import_s)

    def _real(self, point: Point, state: SimState) -> float:
        """Build + first-forward cost of having the point's model on the device."""
        if state.real == model_key(point):
            return 0.0 if state.real_warm else self.prof.first_forward_s
        return self.build_s(point) + self.prof.first_forward_s

    def cost(self, point: Point, measurement: str, state: SimState, plan: UnitPlan | None = None) -> float:
        """Predicted seconds of (point, measurement) from ``state`` (which is not changed)."""
        if self.skipped_on_cpu(point, measurement):
            return self.prof.skip_s
        s = self._enter(state)
        if measurement == "flops":
            mk = model_key(point)
            if mk not in state.meta:
                s += _per_model(self.prof.meta_build_s, point.model)
            s += _per_model(self.prof.count_s, point.model)
            fs = point.settings.flops
            if fs.fvcore and (not fs.fvcore_max_tokens or point.num_tokens <= fs.fvcore_max_tokens):
                s += _per_model(self.prof.fvcore_s, point.model)
            return s
        s += self._real(point, state)
        if measurement == "latency":
            plan = plan or self.desired(point)
            profiled = 0 if plan.warmup and point.settings.latency.scope == "denoiser_forward" else 1
            return s + (plan.warmup + plan.iterations) * self.call_s(point) + profiled * self.short_s(point)
        if measurement == "memory":
            if point_key(point) in state.timed_points and state.real == model_key(point):
                return self.prof.skip_s
            return s + self.forward_s(point)
        if measurement == "max_frames":
            probes = bisection_durations(point)
            n = len(probes) if plan is None else plan.iterations
            return s + sum(self.forward_s(point, d) for d in probes[:n])
        raise FieldError("measurement", f"no prediction for measurement {measurement!r}")

    def apply(self, point: Point, measurement: str, state: SimState) -> None:
        """``state`` after the unit ran (the process's model cache, as Context keeps it)."""
        state.imported = True
        if self.skipped_on_cpu(point, measurement):
            return
        state.started = True
        if measurement == "flops":
            mk = model_key(point)
            if mk in state.meta:
                state.meta.remove(mk)
            state.meta = (state.meta + [mk])[-2:]
            return
        if state.real != model_key(point):
            state.real, state.timed_points = model_key(point), set()
        state.real_warm = True
        if measurement == "latency":
            state.timed_points.add(point_key(point))

    def end_point(self, state: SimState) -> None:
        """After a point: a fresh process per point forgets everything."""
        if self.fresh_process_per_point:
            state.imported, state.started, state.real, state.real_warm = False, False, None, False
            state.meta, state.timed_points = [], set()

    def observe(self, point: Point, record: dict[str, Any]) -> None:
        """Learn from a measured latency record: scale[model] = the median over its points so far of measured
        forward / predicted forward (overhead excluded; the median, so one disturbed point does not swing it)."""
        if record.get("measurement") != "latency" or record.get("status") != "ok" or not record.get("latency_ms_p50"):
            return
        measured = record["latency_ms_p50"] / 1e3
        if point.settings.latency.scope == "sampling_loop":
            samp = point.settings.sampling
            measured /= samp.steps * samp.cfg_factor
        old = self.scale.get(point.model, 1.0)
        base = (self.forward_s(point) - self.prof.forward_overhead_s) / old
        if base > 0:
            ratios = self._ratios.setdefault(point.model, [])
            ratios.append(max(1e-3, (measured - self.prof.forward_overhead_s) / base))
            self.scale[point.model] = statistics.median(ratios)


def bisection_durations(point: Point) -> list[float]:
    """Durations a max-frames bisection probes, predicted conservatively: the shortest and the longest valid
    duration (as evalkit.measure.max_frames finds them), then every midpoint as if it fitted (each step moves
    up, so each probe is as long as it can be)."""
    from evalkit import models
    from evalkit.measure.max_frames import duration_quantum

    ms = point.settings.max_frames
    key = json.dumps([point_key(point), ms.max_duration_s, point.ref_duration_s])
    if key in _BISECTION:
        return _BISECTION[key]
    quantum, _ = duration_quantum(point)

    def valid(k: int) -> bool:
        try:
            models.validate_point(point.config, point.at(k * quantum))
            return True
        except EvalkitError:
            return False

    ks = [k for k in range(1, int(ms.max_duration_s / quantum) + 1) if valid(k)]
    probes: list[float] = []
    if ks:
        lo, hi = 0, len(ks) - 1
        probes = [ks[lo] * quantum] + ([ks[hi] * quantum] if hi > lo else [])
        while hi - lo > 1:
            lo = (lo + hi) // 2
            probes.append(ks[lo] * quantum)
    _BISECTION[key] = probes
    return probes


_BISECTION: dict[str, list[float]] = {}
_SHORT: dict[str, float] = {}
