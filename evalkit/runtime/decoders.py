"""Latent <-> pixel decoders: ``pixel`` for the project's small models, ``diffusers`` for real latents.

``pixel``: the "latent" is the RGB video itself in [-1, 1], optionally space-to-depth packed (pixel-unshuffle) by
``compression`` = (1, h, w): latent (C = 3*h*w, T, H/h, W/w). Encoding is exact and decoding is its inverse, so a
small model trained on these latents is trained in pixel space. ``diffusers``: a video VAE loaded from a LOCAL
folder (``from_pretrained(path, local_files_only=True)``); a missing folder is an error, never a download.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from evalkit.core.errors import EvalkitError, FieldError


@dataclasses.dataclass(frozen=True, kw_only=True)
class DecoderSpec:
    kind: Literal["pixel", "diffusers"] = "pixel"
    compression: tuple[int, int, int] = (1, 1, 1)   # pixel: (t, h, w) space-to-depth factors; t must be 1
    path: str | None = None                         # diffusers: local folder
    class_name: str = "AutoencoderKLCogVideoX"      # diffusers: the autoencoder class (assumed default)
    scaling_factor: float | None = None             # diffusers: None = the VAE config's value


class PixelDecoder:
    """RGB video <-> pixel-unshuffled latent. Shapes: pixels (B, 3, F, Hp, Wp) in [-1, 1]; latent (B, C, T, H, W)."""

    def __init__(self, spec: DecoderSpec) -> None:
        ct, ch, cw = spec.compression
        if ct != 1 or ch < 1 or cw < 1:
            raise FieldError("decoder.compression", f"the pixel decoder packs space only: (1, h, w), got "
                                                    f"{tuple(spec.compression)}")
        self.spec, self.ch, self.cw = spec, ch, cw
        self.channels = 3 * ch * cw

    def encode(self, pixels):
        b, c, f, hp, wp = pixels.shape
        x = pixels.reshape(b, c, f, hp // self.ch, self.ch, wp // self.cw, self.cw)   # (B, 3, F, H, ch, W, cw)
        x = x.permute(0, 1, 4, 6, 2, 3, 5)                                             # (B, 3, ch, cw, F, H, W)
        return x.reshape(b, c * self.ch * self.cw, f, hp // self.ch, wp // self.cw)

    def decode(self, latent):
        b, cl, t, h, w = latent.shape
        if cl != self.channels:
            raise FieldError("decoder", f"latent has {cl} channels, the pixel decoder expects {self.channels}")
        x = latent.reshape(b, 3, self.ch, self.cw, t, h, w).permute(0, 1, 4, 5, 2, 6, 3)  # (B, 3, T, H, ch, W, cw)
        return x.reshape(b, 3, t, h * self.ch, w * self.cw)

    def to_uint8(self, latent):
        """Latent -> list of (F, Hp, Wp, 3) uint8 numpy videos."""
        px = self.decode(latent.float()).clamp(-1, 1)
        px = ((px + 1) * 127.5).round().to(dtype=__import__("torch").uint8)           # (B, 3, F, Hp, Wp)
        return [v.permute(1, 2, 3, 0).cpu().numpy() for v in px]


class DiffusersDecoder:
    """A diffusers video autoencoder from a local folder; decodes (B, C, T, H, W) latents to uint8 frames."""

    def __init__(self, spec: DecoderSpec, device: str = "cpu") -> None:
        if not spec.path or not Path(spec.path).is_dir():
            raise FieldError("decoder.path", f"{spec.path!r} is not a local folder with VAE weights; "
                                             "weights are never downloaded")
        try:
            import diffusers
        except ImportError as exc:
            raise EvalkitError("the diffusers decoder needs diffusers: pip install -e '.[hf]'") from exc
        cls = getattr(diffusers, spec.class_name, None)
        if cls is None:
            raise FieldError("decoder.class_name", f"diffusers has no class {spec.class_name!r}")
        self.spec = spec
        self.vae = cls.from_pretrained(spec.path, local_files_only=True).to(device).eval()
        self.scale = spec.scaling_factor or float(getattr(self.vae.config, "scaling_factor", 1.0))

    def to_uint8(self, latent):
        import torch

        with torch.no_grad():
            px = self.vae.decode(latent.to(self.vae.dtype) / self.scale).sample.float().clamp(-1, 1)
        px = ((px + 1) * 127.5).round().to(torch.uint8)                                # (B, 3, F, Hp, Wp)
        return [v.permute(1, 2, 3, 0).cpu().numpy() for v in px]


def build_decoder(spec: DecoderSpec, device: str = "cpu"):
    if spec.kind == "pixel":
        return PixelDecoder(spec)
    return DiffusersDecoder(spec, device)
