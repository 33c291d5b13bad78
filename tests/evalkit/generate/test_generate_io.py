"""Pluggable text encoders and decoders: pixel decoder is an exact inverse; missing local weights never download."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from evalkit.runtime.decoders import DecoderSpec, DiffusersDecoder, PixelDecoder, build_decoder
from evalkit.core.errors import FieldError
from evalkit.runtime.text import BOS, T5TextEncoder, TextEncoderSpec, build_builtin, tokenize
from evalkit.runtime.video_io import read_video, write_video


def test_pixel_decoder_round_trip_and_uint8():
    dec = PixelDecoder(DecoderSpec(compression=(1, 4, 4)))
    px = torch.rand(2, 3, 8, 32, 32) * 2 - 1
    lat = dec.encode(px)
    assert lat.shape == (2, 48, 8, 8, 8)
    torch.testing.assert_close(dec.decode(lat), px, rtol=0, atol=0)
    assert lat[0, [0, 16, 32], 0, 0, 0].tolist() == px[0, :, 0, 0, 0].tolist()   # channel = rgb*16 + dy*4 + dx
    assert lat[0, 1, 0, 0, 0] == px[0, 0, 0, 0, 1] and lat[0, 4, 0, 0, 0] == px[0, 0, 0, 1, 0]
    frames = dec.to_uint8(lat)
    assert frames[0].shape == (8, 32, 32, 3) and frames[0].dtype == np.uint8
    with pytest.raises(FieldError, match="space only"):
        PixelDecoder(DecoderSpec(compression=(2, 1, 1)))


def test_missing_local_weights_are_errors(tmp_path):
    with pytest.raises(FieldError, match="never downloaded"):
        build_decoder(DecoderSpec(kind="diffusers", path=str(tmp_path / "no-vae")))
    with pytest.raises(FieldError, match="decoder.path"):
        DiffusersDecoder(DecoderSpec(kind="diffusers", path=None))
    with pytest.raises(FieldError, match="never downloaded"):
        T5TextEncoder(TextEncoderSpec(kind="t5", path=str(tmp_path / "no-t5")))
    with pytest.raises(FieldError, match="needs a local folder"):
        T5TextEncoder(TextEncoderSpec(kind="t5"))


def test_builtin_tokenizer_and_null_prompt():
    assert tokenize("", 64, 8) == [BOS]
    ids = tokenize("A red Square, moving LEFT!", 64, 8)
    assert ids[0] == BOS and len(ids) == 6 and ids == tokenize("a red square moving left", 64, 8)
    assert len(tokenize(" ".join(["w"] * 20), 64, 8)) == 8
    enc = build_builtin(TextEncoderSpec(dim=16, max_len=8, vocab_size=64))
    ctx, mask = enc(["", "a red square moving left"])
    assert ctx.shape == (2, 8, 16) and mask.sum(1).tolist() == [1, 6]
    assert (ctx[~mask] == 0).all()


def test_video_io_sizes(tmp_path):
    v = np.random.default_rng(0).integers(0, 255, (5, 16, 24, 3), dtype=np.uint8)
    frames, fps = read_video(write_video(tmp_path / "a b-0.mp4", v, 16, pix_fmt="yuv444p", crf=0))
    assert frames.shape == v.shape and fps == 16
    assert np.abs(frames.astype(int) - v).mean() < 3
    with pytest.raises(FieldError, match="even"):
        write_video(tmp_path / "x.mp4", v[:, :15], 16)
    assert not list(tmp_path.glob(".*tmp*"))                                  # no temporary files left
