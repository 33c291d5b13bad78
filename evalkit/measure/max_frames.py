"""Max-frames probe: the longest video whose denoiser forward fits on one GPU at a resolution (paper Table 1,
"Max. Raw Frames": LinGen 1088 at 512p).

Bisection over the number of latent frames k (duration = k x temporal compression / fps): a probe builds the
inputs at that duration and runs one ``inference_mode`` forward in ``max_frames.dtype_cuda``; a CUDA OOM means
"does not fit". Durations that ``models.validate_point`` rejects (e.g. fewer latent frames than the TESA window)
are skipped to the next valid one. The upper end is ``max_frames.max_duration_s``; if that fits the record says
so (the answer is a lower bound). Needs CUDA: without it the row is ``skipped``.
"""
from __future__ import annotations

from typing import Any

from evalkit import models
from evalkit.errors import EvalkitError
from evalkit.measure.common import Context, cuda_available, is_oom, video_point
from evalkit.measure.memory import peak_forward_bytes


def _valid(cfg: Any, spec: dict[str, Any], duration_s: float) -> bool:
    try:
        models.validate_point(cfg, video_point(spec, duration_s))
        return True
    except EvalkitError:
        return False


def run(spec: dict[str, Any], settings: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    mf = settings["max_frames"]
    base = {"dtype": mf["dtype_cuda"], "device": "cuda" if cuda_available() else "cpu",
            "max_duration_bound_s": mf["max_duration_s"]}
    if not cuda_available():
        return [{**base, "status": "skipped", "message": "no CUDA: max-frames probe needs a GPU"}]
    cfg = ctx.model_config(spec)
    fps = int(spec["fps"])
    ref = float(spec["ref_duration_s"])
    t_ref = models.latent_shape(cfg, video_point(spec, ref))[1]
    compression_t = round(ref * fps) // t_ref           # raw frames per latent frame
    quantum_s = compression_t / fps                       # seconds per latent frame
    k_hi_bound = int(mf["max_duration_s"] / quantum_s)
    valid = [k for k in range(1, k_hi_bound + 1) if _valid(cfg, spec, k * quantum_s)]
    if not valid:
        return [{**base, "status": "error", "message": "no valid duration up to max_frames.max_duration_s"}]
    probes: list[tuple[float, bool]] = []

    def fits(k: int) -> bool:
        try:
            peak_forward_bytes(ctx, spec, k * quantum_s, mf["dtype_cuda"], settings["latency"]["kernels"])
            ok = True
        except Exception as exc:
            if not is_oom(exc):
                raise
            ok = False
            import torch

            torch.cuda.empty_cache()
        probes.append((k * quantum_s, ok))
        return ok

    lo_i, hi_i = 0, len(valid) - 1          # indices into `valid`
    if not fits(valid[lo_i]):
        best, note = 0, f"even the shortest valid duration {valid[0] * quantum_s:g} s does not fit"
    elif fits(valid[hi_i]):
        best, note = valid[hi_i], "fits at the upper bound max_frames.max_duration_s: a lower bound"
    else:
        while hi_i - lo_i > 1:               # invariant: valid[lo_i] fits, valid[hi_i] does not
            mid = (lo_i + hi_i) // 2
            if fits(valid[mid]):
                lo_i = mid
            else:
                hi_i = mid
        best, note = valid[lo_i], ""
    return [{**base, "status": "ok", "message": note, "max_frames": best * compression_t,
             "max_latent_frames": best, "max_duration_s": best * quantum_s, "probe_steps": len(probes),
             "probes": [[d, ok] for d, ok in probes]}]
