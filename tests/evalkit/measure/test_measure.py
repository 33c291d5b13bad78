"""Measurements: FLOPs complexity (LinGen linear, DiT attention quadratic) through the sweep path, counted vs
analytic for every registered model, no real memory on meta, CPU latency rows."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from evalkit import measure, models
from evalkit.sweep.config import load_experiment
from evalkit.measure.common import Context, sdpa_backend_from_names, ssd_backend_from_names
from evalkit.measure.latency import percentile
from evalkit.core.records import read_records
from evalkit.sweep import cli
from evalkit.sweep.plan import plan_points
from evalkit.sweep.runner import run_point


def sweep_records(tmp_path: Path, capsys, data: dict, *extra: str) -> list[dict]:
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text("# test\n" + yaml.safe_dump(data))
    rc = cli.main([str(path), "--runs-root", str(tmp_path / "runs"), "--no-progress", "--no-plots", *extra])
    summ = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0
    return read_records([summ["run_dir"]])


@pytest.fixture(scope="module")
def full_size(tmp_path_factory) -> dict:
    """Counted FLOPs of lingen-4b / dit-4b at 512p for 17, 34, 68 s (meta device, via the sweep CLI)."""
    tmp = tmp_path_factory.mktemp("full")
    data = {"kind": "sweep", "name": "fs", "models": ["lingen", "dit"], "flavors": ["4b"], "resolutions": {"512p": [512, 896]},
            "durations_s": [17, 34, 68], "measurements": ["flops"], "flops": {"fvcore": False}}
    path = tmp / "fs.yaml"
    path.write_text("# test\n" + yaml.safe_dump(data))
    assert cli.main([str(path), "--runs-root", str(tmp / "runs"), "--no-progress", "--no-plots"]) == 0
    run_dir = next((tmp / "runs" / "fs").iterdir())
    return {(r["model"], r["duration_s"]): r for r in read_records([run_dir])}


def test_lingen_flops_linear_in_tokens(full_size: dict) -> None:
    a, b = full_size[("lingen", 17.0)], full_size[("lingen", 68.0)]
    token_ratio = b["num_tokens"] / a["num_tokens"]
    assert token_ratio == pytest.approx(4.0)
    assert b["flops"] / a["flops"] == pytest.approx(token_ratio, rel=0.02)


def test_dit_attention_term_quadratic(full_size: dict) -> None:
    """Fit counted FLOPs = a + b N + c N^2 through N, 2N, 4N: c must be full attention's 4 d per layer and the
    quadratic term must dominate at 68 s; LinGen's fitted c must be negligible."""
    cfg = models.resolve("dit", "4b")
    for model, expect_quadratic in (("dit", True), ("lingen", False)):
        recs = [full_size[(model, d)] for d in (17.0, 34.0, 68.0)]
        n = torch.tensor([float(r["num_tokens"]) for r in recs], dtype=torch.float64)
        f = torch.tensor([float(r["flops"]) for r in recs], dtype=torch.float64)
        a = torch.stack([torch.ones_like(n), n, n * n], dim=1)
        _, _, c = torch.linalg.solve(a, f).tolist()
        quad_share = c * n[-1].item() ** 2 / f[-1].item()
        if expect_quadratic:
            assert c == pytest.approx(4 * cfg.d_model * cfg.depth, rel=0.01)  # QK^T + AV: 4 N^2 d per layer
            assert quad_share > 0.5
        else:
            assert abs(quad_share) < 0.01
    ratio = full_size[("dit", 68.0)]["flops"] / full_size[("lingen", 68.0)]["flops"]
    assert ratio > 3


def _all_models_tiny(tmp_path: Path, capsys, fvcore: bool) -> list[dict]:
    smoke = load_experiment("ablations", smoke=True).config
    data = {"kind": "sweep", "name": "all", "models": models.names("tiny"), "flavors": ["tiny"],
            "resolutions": {k: list(v) for k, v in smoke.resolutions.items()},
            "durations_s": list(smoke.durations_s), "measurements": ["flops"], "flops": {"fvcore": fvcore}}
    return sweep_records(tmp_path, capsys, data)


@pytest.mark.slow
def test_fvcore_counts_macs_without_attention(tmp_path: Path, capsys) -> None:
    for r in _all_models_tiny(tmp_path, capsys, fvcore=True):
        assert r["fvcore_macs"] is not None, (r["key"], r.get("fvcore_message"))
        assert r["fvcore_convention"] == "MAC, excludes attention/custom ops"
        # multiply-adds without attention/custom ops: at most half of the 2*MAC count
        assert 0 < r["fvcore_macs"] <= r["flops"] / 2 * 1.001


def test_counted_matches_analytic_for_every_registered_model(tmp_path: Path, capsys) -> None:
    recs = _all_models_tiny(tmp_path, capsys, fvcore=False)
    assert {r["model"] for r in recs} == set(models.names("tiny"))
    for r in recs:
        assert r["status"] == "ok", (r["key"], r["message"])
        assert r["flops_rel_diff"] <= 0.01 and r["flops_agree"]
        parts = sum(r[f"flops_breakdown_{p}"] for p in ("mixer", "cross_attention", "ffn", "other"))
        assert parts == pytest.approx(r["flops_analytic"], rel=1e-9)
        assert r["fvcore_macs"] is None and "disabled" in r["fvcore_message"]


def test_meta_count_allocates_no_tensor_memory() -> None:
    """lingen-4b at 68 s / 512p (weights alone would be > 14 GB in fp32) counts without real memory."""
    exp = load_experiment("scaling", sets=["measurements=[flops]", "flops.fvcore=false", "durations_s=[68]",
                                           "models=[lingen]"])
    point = next(s for s in plan_points(exp) if s.height == 512)

    def rss() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * 4096

    ctx = Context()
    before = rss()
    rec = measure.MEASUREMENTS.get("flops")(point, ctx)[0]
    grown = rss() - before
    model = ctx.build(point.config, "meta")
    assert all(p.device.type == "meta" for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) * 4 > 10e9
    assert rec["flops"] > 1e14 and grown < 1.5e9, f"RSS grew by {grown / 1e9:.2f} GB"


def _cpu_latency(tmp_path: Path, model: str) -> dict:
    exp = load_experiment("scaling", smoke=True, sets=["measurements=[latency]", f"models=[{model}]",
                                                       "durations_s=[8.5]"])
    (spec,) = plan_points(exp)
    (r,) = run_point(spec, tmp_path, ctx=Context())
    assert r["status"] == "ok" and r["timer"] == "perf_counter" and r["device"] == "cpu", r["message"]
    assert r["iterations"] == len(r["latency_ms_raw"]) >= exp.config.latency.min_iterations
    assert r["latency_ms_p10"] <= r["latency_ms_p50"] <= r["latency_ms_p90"] and r["latency_ms_p50"] > 0
    assert r["scope"] == "denoiser_forward" and r["backend_sdpa"] == "cpu_flash"
    return r


def test_cpu_latency_tiny_ok_large_skipped(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("CPU latency path only")
    assert _cpu_latency(tmp_path, "dit")["backend_ssd"] == "none"
    big = plan_points(load_experiment("scaling", sets=["measurements=[latency]", "durations_s=[68]"]))[-1]
    (s,) = run_point(big, tmp_path, ctx=Context())
    assert s["status"] == "skipped" and "no CUDA" in s["message"] and "latency_ms_p50" not in s


@pytest.mark.slow
def test_cpu_latency_lingen_reports_reference_scan(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("CPU latency path only")
    r = _cpu_latency(tmp_path, "lingen")
    assert r["backend_ssd"] == "ref" and r["backend_ssd_selected"] == "ref"
    assert "CPU tensors" in r["backend_ssd_reason"]  # why not the fused kernel, from the kernel switch
    assert r["backend_tesa"].startswith("split:")  # the mask-free TESA path and the SDPA kernel it dispatched to


def test_percentile_and_backend_names() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([0.0, 10.0], 10) == pytest.approx(1.0)
    assert sdpa_backend_from_names({"aten::_scaled_dot_product_flash_attention_for_cpu"}) == "cpu_flash"
    assert sdpa_backend_from_names({"aten::_scaled_dot_product_cudnn_attention"}) == "cudnn"
    assert sdpa_backend_from_names({"aten::linear"}) == "none"
    assert ssd_backend_from_names({"lingen::ssd_scan"}) == "ref"
    assert ssd_backend_from_names({"lingen::ssd_scan", "_chunk_scan_fwd_kernel"}) == "fused"


def test_sampling_loop_latency_times_the_sampler_generate_runs(tmp_path: Path, monkeypatch) -> None:
    """The timed loop is ``evalkit.runtime.sampling.sample`` (the one users run), not a second copy: every timed call goes
    through it with the experiment's steps and CFG (cfg_factor 2 = the batched conditional/unconditional pass)."""
    if torch.cuda.is_available():
        pytest.skip("CPU latency path only")
    import evalkit.runtime.sampling as sampling

    calls = []
    real = sampling.sample

    def counting(model, noise, context, mask, null_context, null_mask, cfg, progress=None):
        calls.append((cfg.steps, cfg.cfg_scale != 1.0, tuple(noise.shape)))
        return real(model, noise, context, mask, null_context, null_mask, cfg, progress)

    monkeypatch.setattr(sampling, "sample", counting)
    spec = plan_points(load_experiment("scaling", smoke=True, sets=[
        "measurements=[latency]", "durations_s=[8.5]", "models=[dit]", "latency.scope=sampling_loop",
        "sampling.steps=2", "latency.min_iterations=1", "latency.min_seconds=0", "latency.warmup=1",
        "resolutions={64p: [64, 64]}"]))[0]
    (rec,) = run_point(spec, tmp_path, ctx=Context())
    assert rec["status"] == "ok" and rec["scope"] == "sampling_loop" and rec["iterations"] == 1
    assert len(calls) == 1 + 1 and all(c[:2] == (2, True) for c in calls)   # warm-up + timed, guided
