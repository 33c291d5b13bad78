"""Sampler: Movie Gen flow-matching convention, linear-quadratic schedule, Euler exactness, CFG formula."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from evalkit.core.errors import FieldError
from evalkit.runtime.sampling import SIGMA_MIN, SamplerConfig, initial_noise, interpolate, sample, time_grid


def test_linear_quadratic_default_50_steps():
    g = np.array(time_grid(50))
    assert len(g) == 51 and g[0] == 0.0 and g[-1] == 1.0
    d = np.diff(g)
    assert (d > 0).all()                                     # monotone
    np.testing.assert_allclose(d[:25], 1 / 250)              # first 25 steps of a 250-step linear schedule
    assert g[25] == pytest.approx(0.1)
    assert (np.diff(d[25:]) > 0).all()                       # quadratic part: growing steps
    assert d[25] == pytest.approx(1 / 250 + (1 - 0.1 - 25 / 250) / 625)   # C1 junction + curvature


@pytest.mark.parametrize("steps", [1, 2, 7, 20, 100])
def test_grid_properties_any_steps(steps):
    for sched in ("linear-quadratic", "linear"):
        g = np.array(time_grid(steps, sched))
        assert len(g) == steps + 1 and g[0] == 0 and g[-1] == 1 and (np.diff(g) > 0).all()


def test_bad_steps():
    with pytest.raises(FieldError, match="steps"):
        SamplerConfig(steps=0)


def test_interpolation_endpoints_and_velocity():
    x1, x0 = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    xt, v = interpolate(x1, x0, torch.zeros(2))
    torch.testing.assert_close(xt, x0)                       # t = 0 is noise
    xt, _ = interpolate(x1, x0, torch.ones(2))
    torch.testing.assert_close(xt, x1 + SIGMA_MIN * x0)      # t = 1 is data
    a, _ = interpolate(x1, x0, torch.full((2,), 0.3))
    b, _ = interpolate(x1, x0, torch.full((2,), 0.4))
    torch.testing.assert_close((b - a) / 0.1, v, atol=1e-4, rtol=1e-4)   # V = dX_t/dt


def test_euler_exact_for_point_mass_and_cfg_formula():
    x1 = torch.randn(1, 3, 2, 4, 4)

    def oracle(x, t, ctx, mask):                             # exact velocity of a point-mass data set
        tt = t.view(-1, 1, 1, 1, 1)
        x0 = (x - tt * x1) / (1 - (1 - SIGMA_MIN) * tt)
        return x1 - (1 - SIGMA_MIN) * x0

    noise = initial_noise(x1.shape[1:], [3], "cpu")
    ctx, mask = torch.zeros(1, 2, 4), torch.ones(1, 2, dtype=torch.bool)
    for steps in (5, 50):
        out = sample(oracle, noise, ctx, mask, ctx, mask, SamplerConfig(steps=steps, cfg_scale=3.0))
        torch.testing.assert_close(out, x1 + SIGMA_MIN * noise, atol=1e-4, rtol=1e-4)

    def const(x, t, ctx, mask):                              # velocity = mean of the context
        return ctx.mean(dim=(1, 2)).view(-1, 1, 1, 1, 1).expand_as(x)

    c, n = torch.full((1, 2, 4), 2.0), torch.full((1, 2, 4), 0.5)
    out = sample(const, noise, c, mask, n, mask, SamplerConfig(steps=10, cfg_scale=3.0))
    torch.testing.assert_close(out, noise + (0.5 + 3.0 * (2.0 - 0.5)))     # v_u + s (v_c - v_u), integrated over 1
    out = sample(const, noise, c, mask, n, mask, SamplerConfig(steps=10, cfg_scale=1.0))
    torch.testing.assert_close(out, noise + 2.0)


def test_noise_is_per_seed():
    a = initial_noise((2, 3), [1, 2])
    b = initial_noise((2, 3), [2])
    torch.testing.assert_close(a[1], b[0])
    assert not torch.equal(a[0], a[1])
