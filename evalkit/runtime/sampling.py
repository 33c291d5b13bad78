"""Flow-matching training target and Euler sampler with Movie Gen's linear-quadratic schedule and CFG.

Convention (Movie Gen, arXiv 2410.13720): t = 0 is pure noise X0 ~ N(0, I), t = 1 is data X1;
X_t = t X1 + (1 - (1 - sigma_min) t) X0, velocity target V = X1 - (1 - sigma_min) X0, training times
t ~ logit-normal(0, 1). The denoiser gets this same t (B,) in [0, 1] at training and sampling time.

Sampling (section 5/9: "[I] Euler, 50 steps, linear-quadratic schedule, CFG 7.5"): integrate dx/dt = v from t = 0
to t = 1 with first-order Euler over a t-grid of ``steps + 1`` points. The linear-quadratic grid takes its first
``steps // 2`` steps from a fine linear schedule of ``steps * 5`` steps (50 steps: the first 25 of 250, so
t = 0, 1/250, ..., 25/250 = 0.1), then ``steps - steps // 2`` quadratically growing steps to t = 1. The quadratic
is not stated by Movie Gen: ASSUMED the C1 one (its first step equals the linear step, ends exactly at 1).
Classifier-free guidance: v = v_u + s (v_c - v_u), with v_u from the empty prompt; s = 1 runs no unconditional pass.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

from evalkit.core.errors import FieldError
from evalkit.core.typed import finite

SIGMA_MIN = 1e-5          # Movie Gen (arXiv 2410.13720)
EMULATED_FACTOR = 5       # Movie Gen: 50 steps emulate a 250-step linear schedule (section 5)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SamplerConfig:
    steps: int = 50                                         # paper default (Fig. 20 text)
    schedule: Literal["linear-quadratic", "linear"] = "linear-quadratic"
    cfg_scale: float = 7.5                                  # Movie Gen's scale; LinGen does not state it (assumed)
    sigma_min: float = SIGMA_MIN

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise FieldError("sampler.steps", f"must be an integer >= 1, got {self.steps!r}")
        finite("sampler.cfg_scale", self.cfg_scale, minimum=0.0)   # NaN would give all-black videos
        finite("sampler.sigma_min", self.sigma_min, minimum=0.0)
        if self.sigma_min >= 1:
            raise FieldError("sampler.sigma_min", f"must be < 1, got {self.sigma_min}")


def time_grid(steps: int, schedule: str = "linear-quadratic") -> list[float]:
    """``steps + 1`` increasing times from 0.0 (noise) to 1.0 (data)."""
    if steps < 1:
        raise FieldError("sampler.steps", f"must be >= 1, got {steps}")
    if schedule == "linear" or steps < 2:
        return [i / steps for i in range(steps + 1)]
    if schedule != "linear-quadratic":
        from evalkit.core.errors import ChoiceError
        raise ChoiceError("sampler.schedule", schedule, ("linear-quadratic", "linear"))
    n_lin = steps // 2
    dt = 1.0 / (steps * EMULATED_FACTOR)                    # step of the emulated fine linear schedule
    grid = [i * dt for i in range(n_lin + 1)]               # 1. linear part: t = 0 .. n_lin * dt
    t0, n_q = grid[-1], steps - n_lin
    # 2. quadratic part q(j) = t0 + dt*j + a*j^2, j = 0..n_q, with q(n_q) = 1  (C1 at the junction)
    a = (1.0 - t0 - dt * n_q) / (n_q * n_q)
    grid += [t0 + dt * j + a * j * j for j in range(1, n_q + 1)]
    grid[-1] = 1.0
    return grid


def logit_normal_t(batch: int, generator=None, device="cpu"):
    """Training times t ~ sigmoid(N(0, 1)) (Movie Gen / Esser et al. 2024)."""
    import torch

    return torch.sigmoid(torch.randn(batch, generator=generator)).to(device)


def interpolate(x1, x0, t, sigma_min: float = SIGMA_MIN):
    """X_t and the velocity target V for data ``x1``, noise ``x0``, times ``t`` (B,)."""
    tt = t.view(-1, *([1] * (x1.dim() - 1))).to(x1.dtype)
    xt = tt * x1 + (1 - (1 - sigma_min) * tt) * x0
    return xt, x1 - (1 - sigma_min) * x0


def flow_matching_loss(model, x1, context, mask, generator=None, sigma_min: float = SIGMA_MIN):
    """Mean squared error between the model's velocity and the target, t ~ logit-normal."""
    import torch

    b = x1.shape[0]
    t = logit_normal_t(b, generator, x1.device)
    x0 = torch.randn(x1.shape, generator=generator).to(x1.device, x1.dtype)
    xt, v = interpolate(x1, x0, t, sigma_min)
    pred = model(xt, t.to(x1.dtype), context, mask)
    return torch.mean((pred.float() - v.float()) ** 2)


def initial_noise(shape, seeds: list[int], device="cpu", dtype=None):
    """One noise tensor per seed, drawn on the CPU generator (same video for the same seed on any device)."""
    import torch

    out = [torch.randn(tuple(shape), generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.stack(out).to(device=device, dtype=dtype or torch.float32)


def sample(model, noise, context, mask, null_context, null_mask, cfg: SamplerConfig, progress=None):
    """Euler integration of the flow-matching ODE from ``noise`` (t=0) to data (t=1) with CFG.

    context (B, L, D) / mask (B, L) are the prompts; null_context / null_mask the empty prompt, same shapes.
    """
    import torch

    grid = time_grid(cfg.steps, cfg.schedule)
    x = noise
    guided = cfg.cfg_scale != 1.0
    if guided:
        ctx2, mask2 = torch.cat([context, null_context]), torch.cat([mask, null_mask])
    with torch.no_grad():
        for i in range(cfg.steps):
            t = torch.full((x.shape[0],), grid[i], device=x.device, dtype=x.dtype)
            if guided:  # 1. conditional and unconditional velocities in one batch (cfg_factor 2)
                v_c, v_u = model(torch.cat([x, x]), torch.cat([t, t]), ctx2, mask2).chunk(2)
                v = v_u + cfg.cfg_scale * (v_c - v_u)
            else:
                v = model(x, t, context, mask)
            x = x + (grid[i + 1] - grid[i]) * v      # 2. Euler step towards t = 1
            if progress is not None:
                progress(i + 1, cfg.steps)
    return x
