"""Pluggable text encoders: prompt strings -> (context (B, L, D), mask (B, L)) for the denoiser's cross-attention.

Built in: ``builtin``, a word tokenizer (lower-cased words hashed into a fixed vocabulary with CRC32, so
no vocabulary file is needed) + a learned token and position embedding, trained jointly with the project's small
models and saved inside the checkpoint; ``t5``, a T5 encoder through ``transformers`` from a LOCAL folder only
(LinGen/Movie Gen use T5-class encoders; Movie Gen, arXiv 2410.13720). Every sequence starts with a BOS token, so the
empty prompt "" (the unconditional branch of classifier-free guidance) is a one-token context, never an all-masked one.
"""
from __future__ import annotations

import dataclasses
import re
import zlib
from pathlib import Path
from typing import Literal

from evalkit.core.errors import EvalkitError, FieldError

PAD, BOS, N_SPECIAL = 0, 1, 2


@dataclasses.dataclass(frozen=True, kw_only=True)
class TextEncoderSpec:
    kind: Literal["builtin", "t5"] = "builtin"
    vocab_size: int = 1024        # builtin: hash buckets (assumed: large enough for the synthetic captions)
    max_len: int = 16             # tokens incl. BOS; longer prompts are truncated
    dim: int = 0                  # builtin: embedding width, 0 = the model's text width
    path: str | None = None       # t5: local folder with config + weights (never downloaded)


def tokenize(prompt: str, vocab_size: int, max_len: int) -> list[int]:
    """BOS + one id per lower-cased word (CRC32 bucket), truncated to ``max_len``."""
    words = re.findall(r"[a-z0-9]+", prompt.lower())
    ids = [BOS] + [N_SPECIAL + zlib.crc32(w.encode()) % (vocab_size - N_SPECIAL) for w in words]
    return ids[:max_len]


def _torch_module():
    import torch
    from torch import nn

    class BuiltinTextEncoder(nn.Module):
        """Hashed-word embedding + learned positions + LayerNorm (Movie Gen's "Linear + LN" per encoder, sec. 9)."""

        def __init__(self, spec: TextEncoderSpec) -> None:
            super().__init__()
            if spec.dim <= 0:
                raise FieldError("text_encoder.dim", f"must be positive, got {spec.dim}")
            self.spec = spec
            self.tok = nn.Embedding(spec.vocab_size, spec.dim)
            self.pos = nn.Parameter(torch.zeros(spec.max_len, spec.dim))
            self.norm = nn.LayerNorm(spec.dim)
            nn.init.normal_(self.tok.weight, std=0.02)
            nn.init.normal_(self.pos, std=0.02)

        def forward(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
            dev = self.tok.weight.device
            ids = torch.full((len(prompts), self.spec.max_len), PAD, dtype=torch.long)
            for i, p in enumerate(prompts):
                toks = tokenize(p, self.spec.vocab_size, self.spec.max_len)
                ids[i, : len(toks)] = torch.tensor(toks)
            ids = ids.to(dev)
            mask = ids != PAD                                     # (B, L)
            ctx = self.norm(self.tok(ids) + self.pos)             # (B, L, D)
            return ctx * mask[..., None], mask

    return BuiltinTextEncoder


def build_builtin(spec: TextEncoderSpec):
    return _torch_module()(spec)


class T5TextEncoder:
    """T5 encoder from a local folder (``transformers`` with ``local_files_only=True``; frozen, eval mode)."""

    def __init__(self, spec: TextEncoderSpec, device: str = "cpu") -> None:
        if not spec.path:
            raise FieldError("text_encoder.path", "the t5 encoder needs a local folder with its weights")
        if not Path(spec.path).is_dir():
            raise FieldError("text_encoder.path", f"{spec.path!r} is not a folder; weights are never downloaded")
        try:
            from transformers import AutoTokenizer, T5EncoderModel
        except ImportError as exc:
            raise EvalkitError("the t5 text encoder needs transformers: pip install -e '.[hf]'") from exc
        self.spec = spec
        self.tokenizer = AutoTokenizer.from_pretrained(spec.path, local_files_only=True)
        self.model = T5EncoderModel.from_pretrained(spec.path, local_files_only=True).to(device).eval()
        self.dim = int(self.model.config.d_model)

    def __call__(self, prompts: list[str]):
        import torch

        tok = self.tokenizer(list(prompts), padding="max_length", truncation=True, max_length=self.spec.max_len,
                             return_tensors="pt").to(self.model.device)
        with torch.no_grad():
            ctx = self.model(input_ids=tok.input_ids, attention_mask=tok.attention_mask).last_hidden_state
        return ctx, tok.attention_mask.bool()

    def to(self, device):
        self.model.to(device)
        return self
