"""Tiny random diffusers pipelines of the released classes, built from config in code and saved with
``save_pretrained``: no hub, no downloaded file (tokenizers are made from an in-code vocabulary, text encoders
from a transformers config). ``generate --pipeline`` then loads the saved folder like a user's checkpoint.

Each builder returns the pipeline object; :func:`save` writes it as safetensors. Sizes are the smallest the real
classes accept with the released layouts' compression and patch (Wan: VAE (4, 8, 8), patch (1, 2, 2); CogVideoX:
VAE (4, 8, 8), patch 2; LTX: a VAE of (4, 4, 4), 1 x 1 x 1 patch; Mochi: VAE (6, 8, 8)).
"""
from __future__ import annotations

import string
from pathlib import Path

import torch

# metaspace + every printable ASCII character are pieces of the unigram vocabulary, so no prompt maps to <unk>
WORDS = ("a", "the", "red", "blue", "car", "dog", "cat", "moving", "left", "right", "on", "beach", "in", "city")


def t5_tokenizer():
    """A T5 (unigram) tokenizer from an in-code vocabulary (transformers 5 builds it without a sentencepiece file)."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [(c, -5.0) for c in string.ascii_letters + string.digits + string.punctuation]
    vocab += [("\u2581" + w, -3.0) for w in WORDS]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def t5_encoder(vocab_size: int, umt5: bool = False, d_model: int = 32, seed: int = 0):
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    kw = dict(vocab_size=vocab_size, d_model=d_model, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
              relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0,
              feed_forward_proj="gated-gelu", is_encoder_decoder=False, pad_token_id=0, eos_token_id=1)
    torch.manual_seed(seed)
    cls, cfg = (UMT5EncoderModel, UMT5Config) if umt5 else (T5EncoderModel, T5Config)
    return cls(cfg(**kw)).eval()


def wan(seed: int = 0):
    """WanPipeline: AutoencoderKLWan (4, 8, 8), WanTransformer3DModel patch (1, 2, 2), UMT5, the UniPC flow
    scheduler of huggingface/diffusers scripts/convert_wan_to_diffusers.py."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel

    tok = t5_tokenizer()
    torch.manual_seed(seed)
    vae = AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
                                        in_channels=16, out_channels=16, text_dim=32, freq_dim=32, ffn_dim=32,
                                        num_layers=1, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                                        rope_max_seq_len=32)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        num_train_timesteps=1000, flow_shift=3.0)
    return WanPipeline(tokenizer=tok, text_encoder=t5_encoder(len(tok), umt5=True, seed=seed), vae=vae,
                       transformer=transformer, scheduler=scheduler)


def cogvideox(seed: int = 0):
    """CogVideoXPipeline in the 2B layout (sincos positions, max_text_seq_length 16): AutoencoderKLCogVideoX
    (4, 8, 8), patch 2, T5, the DDIM scheduler of huggingface/diffusers scripts/convert_cogvideox_to_diffusers.py."""
    from diffusers import (AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline,
                           CogVideoXTransformer3DModel)

    tok = t5_tokenizer()
    torch.manual_seed(seed)
    transformer = CogVideoXTransformer3DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4,
                                              out_channels=4, time_embed_dim=8, text_embed_dim=32, num_layers=1,
                                              sample_width=4, sample_height=4, sample_frames=9, patch_size=2,
                                              temporal_compression_ratio=4, max_text_seq_length=16)
    torch.manual_seed(seed)
    vae = AutoencoderKLCogVideoX(in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
                                 up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8),
                                 latent_channels=4, layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4)
    scheduler = CogVideoXDDIMScheduler(snr_shift_scale=3.0, beta_end=0.012, beta_schedule="scaled_linear",
                                       beta_start=0.00085, clip_sample=False, num_train_timesteps=1000,
                                       prediction_type="v_prediction", rescale_betas_zero_snr=True,
                                       set_alpha_to_one=True, timestep_spacing="trailing")
    return CogVideoXPipeline(tokenizer=tok, text_encoder=t5_encoder(len(tok), seed=seed), vae=vae,
                             transformer=transformer, scheduler=scheduler)


def ltx(seed: int = 0):
    """LTXPipeline: an AutoencoderKLLTXVideo of (4, 4, 4) (patch 1, two downsampling stages; the release: (8, 32,
    32)), 1 x 1 x 1 patch, T5, the flow-matching Euler scheduler."""
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXPipeline, LTXVideoTransformer3DModel

    tok = t5_tokenizer()
    torch.manual_seed(seed)
    transformer = LTXVideoTransformer3DModel(in_channels=8, out_channels=8, patch_size=1, patch_size_t=1,
                                             num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16,
                                             num_layers=1, caption_channels=32)
    torch.manual_seed(seed)
    vae = AutoencoderKLLTXVideo(in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
                                decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
                                decoder_layers_per_block=(1, 1, 1, 1, 1),
                                spatio_temporal_scaling=(True, True, False, False),
                                decoder_spatio_temporal_scaling=(True, True, False, False),
                                decoder_inject_noise=(False, False, False, False, False),
                                upsample_residual=(False, False, False, False), upsample_factor=(1, 1, 1, 1),
                                timestep_conditioning=False, patch_size=1, patch_size_t=1, encoder_causal=True,
                                decoder_causal=False)
    return LTXPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae,
                       text_encoder=t5_encoder(len(tok), seed=seed), tokenizer=tok, transformer=transformer)


def mochi(seed: int = 0):
    """MochiPipeline: AutoencoderKLMochi (6, 8, 8) as the pipeline hard-codes, patch 2, T5, the inverted-sigma
    Euler scheduler of huggingface/diffusers scripts/convert_mochi_to_diffusers.py."""
    from diffusers import AutoencoderKLMochi, FlowMatchEulerDiscreteScheduler, MochiPipeline, MochiTransformer3DModel

    tok = t5_tokenizer()
    torch.manual_seed(seed)
    transformer = MochiTransformer3DModel(patch_size=2, num_attention_heads=2, attention_head_dim=8, num_layers=1,
                                          pooled_projection_dim=16, in_channels=12, text_embed_dim=32,
                                          time_embed_dim=4, max_sequence_length=16)
    torch.manual_seed(seed)
    vae = AutoencoderKLMochi(latent_channels=12, out_channels=3, encoder_block_out_channels=(32, 32, 32, 32),
                             decoder_block_out_channels=(32, 32, 32, 32), layers_per_block=(1, 1, 1, 1, 1))
    return MochiPipeline(scheduler=FlowMatchEulerDiscreteScheduler(invert_sigmas=True), vae=vae,
                         text_encoder=t5_encoder(len(tok), seed=seed), tokenizer=tok, transformer=transformer)


BUILDERS = {"wan": wan, "cogvideox": cogvideox, "ltx": ltx, "mochi": mochi}


def save(pipe, folder: Path) -> Path:
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder
