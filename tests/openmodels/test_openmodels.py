"""The released models (openmodels/): diffusers' own classes built on meta, parameters against the built model and
the published sizes, FLOPs counted by the project's counter against each family's analytic terms, token geometry of
the published native videos, Mochi's meta workaround, bad input. The generation side (generate --pipeline) is in
tests/evalkit/generate/test_generate_pipeline.py."""
from __future__ import annotations

import dataclasses
import inspect
import math

import pytest
import torch

from evalkit import models as M
from evalkit.core.errors import ChoiceError, FieldError
from evalkit.measure import flop_counter as fc

OPEN = M.names("t2v")
# the published sizes are rounded (CogVideoX-2B's transformer has 1.69B parameters, Wan2.1-1.3B's 1.42B): within 20%
PUBLISHED_TOL = 0.20
# (height, width, frames) of each model's published native video and its token count, L = T (H / ch ph) (W / cw pw)
# with T = (frames - 1) / ct + 1 (the pipelines' rule; the references' own numbers, not ours)
NATIVE = {"wan2.1-1.3b": (480, 832, 81, 32_760), "wan2.1-14b": (720, 1280, 81, 75_600),
          "wan2.2-ti2v-5b": (704, 1280, 121, 27_280), "cogvideox-2b": (480, 720, 49, 17_550),
          "cogvideox-5b": (480, 720, 49, 17_550), "hunyuanvideo": (720, 1280, 129, 118_800),
          "ltx-video": (512, 768, 161, 8_064), "sana-video": (480, 832, 81, 32_760),
          "mochi-1": (480, 848, 163, 44_520)}
# models counted in full (layer_kind None): their quick FLOPs points use fewer layers, the full depth is `slow`
SHALLOW = {"hunyuanvideo": {"num_layers": 2, "num_single_layers": 2, "num_refiner_layers": 1},
           "mochi-1": {"num_layers": 3}}


def video(cfg, height: int, width: int, frames: int) -> M.VideoPoint:
    return M.VideoPoint(height=height, width=width, duration_s=(frames - 1) / cfg.latent.fps, fps=cfg.latent.fps)


def counted(cfg, point: M.VideoPoint, method: str = "per_layer_kind") -> fc.Count:
    return fc.count_point(cfg, point, build=lambda c: M.build(c, device="meta"), method=method)


def test_every_family_is_registered():
    assert set(OPEN) == set(NATIVE)
    assert {M.REGISTRY.entry(n).family.name for n in OPEN} == {"wan", "cogvideox", "hunyuan", "ltx", "sana_video",
                                                                 "mochi"}
    assert all(M.flavors(n) == ["t2v"] for n in OPEN)


@pytest.mark.parametrize("name", OPEN)
def test_params_on_meta_equal_analytic_and_published(name):
    cfg = M.resolve(name, "t2v")
    model = M.build(cfg, device="meta")
    assert type(model).__name__ == cfg.transformer_class and type(model).__module__.startswith("diffusers.")
    assert sum(p.numel() for p in model.parameters()) == M.param_count(cfg)           # exact
    assert abs(M.param_count(cfg) / cfg.published_params - 1) <= PUBLISHED_TOL, (M.param_count(cfg),
                                                                                  cfg.published_params)


def test_config_fields_are_the_diffusers_signature():
    """Every family's config holds exactly the arguments of diffusers' class, with the class's defaults (a new or
    changed argument in another diffusers version fails here, before a preset silently drifts)."""
    import diffusers

    for name in OPEN:
        family = M.REGISTRY.entry(name).family
        cls = getattr(diffusers, family.config.transformer_class)
        params = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"}
        ours = {f.name: f.default for f in dataclasses.fields(family.config)
                if f.name not in family.config.harness_fields}
        assert set(ours) == set(params), (name, set(ours) ^ set(params))
        for key, default in params.items():
            assert ours[key] == (tuple(default) if isinstance(default, list) else default), (name, key)


@pytest.mark.parametrize("name", OPEN)
def test_native_video_tokens(name):
    cfg = M.resolve(name, "t2v")
    h, w, frames, tokens = NATIVE[name]
    point = video(cfg, h, w, frames)
    assert M.num_frames(cfg, point) == frames and M.num_tokens(cfg, point) == tokens


def _points(name: str) -> list[tuple[int, int, int]]:
    """Native; native size with 3 latent frames; half resolution (rounded to the VAE x patch) at native frames."""
    h, w, frames, _ = NATIVE[name]
    cfg = M.resolve(name, "t2v")
    px = cfg.latent.compression[1] * cfg.latent.patch[1]
    return [(h, w, frames), (h, w, 1 + 2 * cfg.latent.compression[0]), (h // 2 // px * px, w // 2 // px * px, frames)]


@pytest.mark.parametrize("name", OPEN)
def test_counted_equals_analytic(name):
    cfg = M.resolve(name, "t2v", SHALLOW.get(name))
    for h, w, frames in _points(name):
        point = video(cfg, h, w, frames)
        c = counted(cfg, point)
        assert c.total == M.estimate_flops(cfg, point).total, (name, h, w, frames)   # exact
        assert c.method == ("full" if name in SHALLOW else "per_layer_kind")


@pytest.mark.slow
@pytest.mark.parametrize("name", OPEN)
def test_counted_equals_analytic_full_depth_native_and_68s(name):
    cfg = M.resolve(name, "t2v")
    h, w, frames, _ = NATIVE[name]
    for point in (video(cfg, h, w, frames), M.VideoPoint(height=h, width=w, duration_s=68, fps=cfg.latent.fps)):
        assert counted(cfg, point).total == M.estimate_flops(cfg, point).total


@pytest.mark.parametrize("name", ["wan2.1-1.3b", "cogvideox-5b", "ltx-video", "sana-video"])
def test_per_layer_kind_equals_full_and_torch_flopcountermode(name):
    """One block counted and multiplied = every block counted = torch's own FlopCounterMode (an independent table).
    Per op, a Linear is ``addmm`` or ``mm`` + add depending on its input's strides, which differ between SANA-Video's
    first block and the later ones; only that split may differ."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = M.resolve(name, "t2v", {"num_layers": 3})
    h, w, frames = _points(name)[2]
    point = video(cfg, h, w, frames)
    kind, full = counted(cfg, point), counted(cfg, point, "full")
    assert kind.layers_counted == 1 and full.layers_counted == 3
    assert kind.total == full.total

    def merged(by_op: dict[str, int]) -> dict[str, int]:
        out = {k: v for k, v in by_op.items() if k not in ("mm", "addmm")}
        return {**out, "matmul": by_op.get("mm", 0) + by_op.get("addmm", 0)}

    assert merged(kind.by_op) == merged(full.by_op)
    assert kind.by_op == full.by_op or name == "sana-video"
    model = M.build(cfg, device="meta")
    with fc.no_opt_einsum(), torch.no_grad(), FlopCounterMode(display=False) as mode:
        model(*M.dummy_inputs(cfg, point, device="meta"))
    assert mode.get_total_flops() == full.total


# small configs of every family (diffusers' classes at toy widths) for real CPU forwards
TOY = {
    "wan2.1-1.3b": {"num_attention_heads": 2, "attention_head_dim": 12, "ffn_dim": 32, "num_layers": 2,
                    "text_dim": 32, "freq_dim": 32, "text_len": 8},
    "cogvideox-2b": {"num_attention_heads": 2, "attention_head_dim": 16, "time_embed_dim": 16,
                     "text_embed_dim": 32, "num_layers": 2, "max_text_seq_length": 8, "text_len": 8},
    "cogvideox-5b": {"num_attention_heads": 2, "attention_head_dim": 16, "time_embed_dim": 16,
                     "text_embed_dim": 32, "num_layers": 2, "text_len": 8},
    "hunyuanvideo": {"num_attention_heads": 2, "attention_head_dim": 16, "rope_axes_dim": [4, 6, 6], "num_layers": 1,
                     "num_single_layers": 1, "num_refiner_layers": 1, "text_embed_dim": 32,
                     "pooled_projection_dim": 16, "text_len": 8},
    "ltx-video": {"num_attention_heads": 2, "attention_head_dim": 16, "cross_attention_dim": 32, "num_layers": 1,
                  "caption_channels": 32, "text_len": 8},
    "sana-video": {"num_attention_heads": 2, "attention_head_dim": 16, "num_layers": 1,
                   "num_cross_attention_heads": 2, "cross_attention_head_dim": 16, "cross_attention_dim": 32,
                   "caption_channels": 32, "text_len": 8},
    "mochi-1": {"num_attention_heads": 2, "attention_head_dim": 16, "num_layers": 2, "pooled_projection_dim": 16,
                "text_embed_dim": 32, "time_embed_dim": 16, "max_sequence_length": 8, "text_len": 8},
}


@pytest.mark.filterwarnings("ignore:In CPU autocast")   # diffusers' MochiRoPE asks CPU autocast for float32
@pytest.mark.parametrize("name", sorted(TOY))
def test_real_cpu_forward_of_a_small_config(name):
    """diffusers' class at toy widths on real CPU tensors: the prediction has the input's layout and is finite, and
    the FLOPs counted on real tensors equal the analytic terms too (no meta-only path behind the agreement; at
    batch 2 Mochi computes its RoPE table once, not per sample)."""
    cfg = M.resolve(name, "t2v", TOY[name])
    px = cfg.latent.compression[1] * cfg.latent.patch[1]
    point = video(cfg, 2 * px, 3 * px, 1 + 2 * cfg.latent.compression[0])
    torch.manual_seed(0)
    model = M.build(cfg, device="cpu")
    inputs = M.dummy_inputs(cfg, point, batch=2, device="cpu", seed=1)
    counter = fc.FlopCounter()
    with torch.no_grad(), fc.no_opt_einsum(), counter:
        out = fc.output_tensor(model(*inputs))
    assert out.shape == inputs[0].shape and torch.isfinite(out).all()
    once = cfg.rope_flops(M.token_grid(cfg, point)) if name == "mochi-1" else 0
    assert counter.total == M.estimate_flops(cfg, point, batch=2).total - once


@pytest.mark.filterwarnings("ignore:In CPU autocast")
def test_mochi_meta_workaround_is_needed_and_faithful():
    """diffusers' Mochi fails on meta (autocast, then nonzero); the replacement RoPE computes what diffusers'
    computes on CPU; the meta nonzero switch is back off after the forward."""
    from diffusers.models.transformers.transformer_mochi import MochiRoPE
    from torch.fx.experimental import _config as fx_config

    from openmodels.mochi import model as mochi

    cfg = M.resolve("mochi-1", "t2v", TOY["mochi-1"])
    point = video(cfg, 32, 48, 13)
    inputs = M.dummy_inputs(cfg, point, device="meta")
    plain = mochi.build(cfg, device="meta", meta_workaround=False)
    with pytest.raises(RuntimeError, match="autocast"):
        plain(*inputs)
    plain.rope = mochi._meta_safe_rope(plain.rope)         # the first change alone: nonzero is the next failure
    with pytest.raises(NotImplementedError, match="nonzero"):
        plain(*inputs)
    out = fc.output_tensor(mochi.build(cfg, device="meta")(*inputs))
    assert out.shape == inputs[0].shape and fx_config.meta_nonzero_assume_all_nonzero is False
    gen = torch.Generator().manual_seed(0)
    freqs, pos = torch.randn(3, 2, 8, generator=gen), torch.randn(50, 3, generator=gen)
    ref = MochiRoPE()._create_rope(freqs, pos)
    assert all(torch.equal(a, b) for a, b in zip(ref, mochi.rope_fp32(freqs, pos)))


def test_models_do_not_need_diffusers_until_built(monkeypatch):
    from openmodels import building

    monkeypatch.setitem(__import__("sys").modules, "diffusers", None)
    cfg = M.resolve("wan2.1-14b", "t2v")
    assert M.param_count(cfg) > 0 and M.estimate_flops(cfg, video(cfg, 720, 1280, 81)).total > 0
    with pytest.raises(ImportError, match=r"pip install -e '\.\[open\]'"):
        building.require_diffusers()


def test_bad_input_names_field_and_choices():
    with pytest.raises(ChoiceError, match=r"flavor of wan2.1-14b 'tiny'\. Valid choices: t2v"):
        M.resolve("wan2.1-14b", "tiny")
    with pytest.raises(ChoiceError, match="Did you mean 'wan2.1-14b'"):
        M.resolve("wan2.1-14", "t2v")
    with pytest.raises(FieldError, match=r"wan2.1-14b\[t2v\]\.added_kv_proj_dim: 5120 is not supported"):
        M.resolve("wan2.1-14b", "t2v", {"added_kv_proj_dim": 5120})
    with pytest.raises(FieldError, match=r"cogvideox-2b\[t2v\]\.text_len: 100 .* exactly max_text_seq_length = 226"):
        M.resolve("cogvideox-2b", "t2v", {"text_len": 100})
    with pytest.raises(FieldError, match=r"latent\.channels: 16 but the transformer takes in_channels 48"):
        M.resolve("wan2.1-14b", "t2v", {"in_channels": 48, "out_channels": 48})
    with pytest.raises(ChoiceError, match="num_layer.*Did you mean 'num_layers'"):
        M.resolve("ltx-video", "t2v", {"num_layer": 3})
    cfg = M.resolve("wan2.1-1.3b", "t2v")
    with pytest.raises(FieldError, match=r"duration_s: 5.1 s x 16 fps = 81.6 frames.*closest valid: 5 s or 5.25 s"):
        M.latent_shape(cfg, M.VideoPoint(height=480, width=832, duration_s=5.1, fps=16))
    with pytest.raises(FieldError, match=r"duration_s: .*= 82 frames after the first \(a causal VAE makes 1 \+ 4 k "
                                         r"frames\), not a positive multiple .* = 4 \(closest valid: 5 s or 5.25 s\)"):
        M.latent_shape(cfg, M.VideoPoint(height=480, width=832, duration_s=82 / 16, fps=16))
    with pytest.raises(FieldError, match=r"height: 472 px .* compression x patch = 16 \(closest valid: 464 or 480\)"):
        M.latent_shape(cfg, M.VideoPoint(height=472, width=832, duration_s=5, fps=16))
    with pytest.raises(FieldError, match=r"max_grid: .* 1025 latent frames, more than the positional table \(1024\)"):
        M.validate_point(cfg, M.VideoPoint(height=480, width=832, duration_s=256, fps=16))
    cog = M.resolve("cogvideox-2b", "t2v")     # 8 fps x 1.5 s = 12 frames after the first: 4 latent frames
    with pytest.raises(FieldError, match=r"latent.compression: 4 latent frames; CogVideoX's VAE makes 1 \+ 4 \(T - 1\)"):
        M.validate_point(cog, M.VideoPoint(height=480, width=720, duration_s=1.5, fps=8))


def test_per_video_cost_grows_as_the_mixer_says():
    """Quadratic attention models: FLOPs per forward grow ~ tokens^2 at long videos; SANA-Video's linear attention
    ~ tokens (2 x frames -> ~2 x FLOPs) -- the growth the open-models report measures as an exponent."""
    def growth(name: str) -> float:
        cfg = M.resolve(name, "t2v")
        h, w, _, _ = NATIVE[name]
        a, b = (M.VideoPoint(height=h, width=w, duration_s=d, fps=cfg.latent.fps) for d in (34, 68))
        return math.log(M.estimate_flops(cfg, b).total / M.estimate_flops(cfg, a).total) / \
            math.log(M.num_tokens(cfg, b) / M.num_tokens(cfg, a))

    assert growth("sana-video") == pytest.approx(1.0, abs=0.01)
    for name in ("wan2.1-14b", "hunyuanvideo", "mochi-1"):
        assert 1.9 < growth(name) < 2.0, name


@pytest.mark.parametrize("name", ["wan2.1-1.3b", "ltx-video"])
def test_cpu_latency_of_a_small_config_profiles_its_own_short_call(name, tmp_path):
    """A latency point of a released model (toy widths, CPU) without a warm-up: the profiled call is a forward
    with the model's own inputs at the shortest duration its causal VAE represents (ct frames after the first:
    4 / 16 s for Wan, 8 / 24 s for LTX), and the timed calls take those inputs too."""
    from evalkit.measure.common import Context
    from evalkit.measure.latency import LatencySettings, short_duration
    from evalkit.measure.point import Point, Settings
    from evalkit.sweep.runner import run_point

    cfg = M.resolve(name, "t2v", TOY[name])
    fps, ct = cfg.latent.fps, cfg.latent.compression[0]
    lat = LatencySettings(warmup=0, min_iterations=2, min_seconds=0.0, max_iterations=2)
    point = Point(experiment="t", model=name, flavor="t2v", config=cfg, resolution="toy", height=64, width=64,
                  fps=fps, batch=1, duration_s=4 * ct / fps, measurements=("latency",),
                  settings=Settings(latency=lat))
    assert short_duration(point) == ct / fps
    M.validate_point(cfg, point.at(short_duration(point)))
    (rec,) = run_point(point, tmp_path, ctx=Context())
    assert rec["status"] == "ok", rec.get("error")
    assert rec["profiled_call"] == "short_call" and rec["iterations"] == 2 == len(rec["latency_ms_raw"])
