"""Max-frames probe: the longest video whose denoiser forward fits on one GPU at a resolution (paper Table 1,
"Max. Raw Frames": LinGen 1088 at 512p).

Bisection over the number of latent frames k (duration = k x temporal compression / fps): a probe builds the
inputs at that duration and runs one ``inference_mode`` forward in ``max_frames.dtype_cuda``; a CUDA OOM means
"does not fit". Durations that ``models.validate_point`` rejects (e.g. fewer latent frames than the TESA window)
are skipped to the next valid one. The upper end is ``max_frames.max_duration_s``; if that fits the record says
so (the answer is a lower bound). ``max_frames.memory_limit_gib`` probes as if the card had that much memory
(``torch.cuda.set_per_process_memory_fraction``: the paper's GPU on a larger one). ``max_frames.max_seconds``
(set by ``sweep --budget-s``) stops the bisection before a probe predicted, from the probes so far (time
proportional to frames), to end after it; the record then has the bracket found (``max_frames`` fits, a
lower bound; ``max_frames_upper`` did not fit, when probed). Every probe is kept with its seconds and peak
bytes. Needs CUDA: without it the row is ``skipped``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalkit import models
from evalkit.core.errors import EvalkitError, FieldError
from evalkit.measure.common import Context, DType, cuda_available, environment, is_oom
from evalkit.measure.memory import peak_forward_bytes

if TYPE_CHECKING:
    from evalkit.measure.point import Point


@dataclass(frozen=True, kw_only=True)
class MaxFramesSettings:
    """The ``max_frames:`` section of a sweep file."""
    resolutions: tuple[str, ...] = ()   # names from `resolutions`; empty = all of them
    max_duration_s: float = 272.0       # upper end of the bisection (4x the paper's 68 s)
    dtype_cuda: DType = "bfloat16"
    # > 0: probe as if the GPU had only this many GiB (torch.cuda.set_per_process_memory_fraction), e.g. an
    # 80 GB H100 on a larger card; 0 = the whole card
    memory_limit_gib: float = 0.0
    # > 0: stop the bisection before a probe predicted to end later than this many seconds after the start (the
    # record then gives the bracket found so far); `sweep --budget-s` sets it per point
    max_seconds: float = 0.0

    def check(self, where: str) -> None:
        if not self.max_duration_s > 0:
            raise FieldError(f"{where}.max_duration_s", f"must be > 0, got {self.max_duration_s}")
        for name in ("memory_limit_gib", "max_seconds"):
            if getattr(self, name) < 0:
                raise FieldError(f"{where}.{name}", f"must be >= 0 (0: no limit), got {getattr(self, name)}")


def _valid(point: Point, duration_s: float) -> bool:
    try:
        models.validate_point(point.config, point.at(duration_s))
        return True
    except EvalkitError:
        return False


def duration_quantum(point: Point) -> tuple[float, int]:
    """(seconds per latent frame, raw frames per latent frame) of a max-frames point, from its reference duration."""
    fps, ref = point.fps, float(point.ref_duration_s)
    t_ref = models.latent_shape(point.config, point.at(ref))[1]
    compression_t = round(ref * fps) // t_ref           # raw frames per latent frame
    return compression_t / fps, compression_t


class _Stop(Exception):
    """The next probe would end after max_frames.max_seconds."""


def _memory_cap(limit_gib: float) -> tuple[float, int]:
    """Set the per-process memory fraction for ``limit_gib`` (0: none); returns (fraction, total bytes)."""
    import torch

    total = int(torch.cuda.get_device_properties(0).total_memory)
    fraction = 1.0 if limit_gib <= 0 else min(1.0, limit_gib * 2**30 / total)
    torch.cuda.set_per_process_memory_fraction(fraction, 0)
    return fraction, total


def run(point: Point, ctx: Context) -> list[dict[str, Any]]:
    started = time.perf_counter()
    mf = point.settings.max_frames
    base = {"dtype": mf.dtype_cuda, "device": "cuda" if cuda_available() else "cpu",
            "max_duration_bound_s": mf.max_duration_s}
    if not cuda_available():
        return [{**base, "status": "skipped", "message": "no CUDA: max-frames probe needs a GPU"}]
    import torch

    base.update(environment())
    quantum_s, compression_t = duration_quantum(point)
    k_hi_bound = int(mf.max_duration_s / quantum_s)
    valid = [k for k in range(1, k_hi_bound + 1) if _valid(point, k * quantum_s)]
    if not valid:
        return [{**base, "status": "error", "message": "no valid duration up to max_frames.max_duration_s"}]
    probes: list[list[Any]] = []    # [duration_s, fits, seconds, peak allocated bytes or None]
    cap_s = mf.max_seconds

    def fits(k: int) -> bool:
        done = [p for p in probes if p[1]]
        if cap_s > 0 and done:       # predicted from the slowest-per-frame fitting probe so far
            per_k = max(p[2] / (p[0] / quantum_s) for p in done)
            if time.perf_counter() - started + per_k * k > cap_s:
                raise _Stop
        t0 = time.perf_counter()
        try:
            peak = peak_forward_bytes(ctx, point, k * quantum_s, mf.dtype_cuda, point.settings.latency.kernels)[0]
            ok = True
        except Exception as exc:
            if not is_oom(exc):
                raise
            ok, peak = False, None
            torch.cuda.empty_cache()
        probes.append([k * quantum_s, ok, round(time.perf_counter() - t0, 3), peak])
        return ok

    fraction, total = _memory_cap(mf.memory_limit_gib)
    lo_i, hi_i = 0, len(valid) - 1          # indices into `valid`
    upper: int | None = None
    try:
        if not fits(valid[lo_i]):
            best, note = 0, f"even the shortest valid duration {valid[0] * quantum_s:g} s does not fit"
        elif fits(valid[hi_i]):
            best, note = valid[hi_i], (f"fits at the longest valid duration {valid[hi_i] * quantum_s:g} s (the bound: "
                                       "max_frames.max_duration_s or the model's positional table): a lower bound")
        else:
            upper = valid[hi_i]
            while hi_i - lo_i > 1:           # invariant: valid[lo_i] fits, valid[hi_i] does not
                mid = (lo_i + hi_i) // 2
                if fits(valid[mid]):
                    lo_i = mid
                else:
                    hi_i, upper = mid, valid[mid]
            best, note = valid[lo_i], ""
    except _Stop:
        fit = [p[0] for p in probes if p[1]]
        failed = [p[0] for p in probes if not p[1]]
        best = round(max(fit) / quantum_s) if fit else 0
        upper = round(min(failed) / quantum_s) if failed else None
        note = (f"bisection stopped by max_frames.max_seconds={cap_s:g} s after {len(probes)} probe(s): a lower "
                f"bound" + (f" (does not fit at {upper * compression_t} frames)" if upper else ""))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
    return [{**base, "status": "ok", "message": note, "max_frames": best * compression_t,
             "max_latent_frames": best, "max_duration_s": best * quantum_s, "probe_steps": len(probes),
             "max_frames_upper": None if upper is None else upper * compression_t,
             "memory_limit_bytes": int(fraction * total), "gpu_memory_bytes": total, "probes": probes}]
