"""Random-weight VBench evaluator files, made at test time (run INSIDE the VBench environment; never imported).

``python make_weights.py CACHE_DIR HF_HOME [GROUP ...]`` writes, for every evaluator group VBench 0.1.5 can run
offline (the four GRiT dimensions need detectron2, which is not on PyPI), a file with the architecture VBench
builds and random weights, where VBench reads it. Each network is built by the code VBench itself uses (the
wheel's ``third_party/`` copies of AMT, RAFT, UMT, Tag2Text and ViCLIP; openai-clip; pyiqa; timm), with its own
initialisation, and saved in the container format VBench's loader expects. The scores are meaningless; what the
tests check is the plumbing. Where a loader infers the size from the file (``clip.model.build_model``), the file is
shrunk to one layer of width 64, keeping what the rest of the code depends on (the embedding width the LAION head
and the text projection read, patch size and resolution).

Stand-ins for things that are downloaded from somewhere other than a weight URL (no network here):
- ``dino_model/facebookresearch_dino_main/hubconf.py``: the DINO torch.hub repository, as VBench clones it. Its
  ``dino_vitb16`` builds DINO's own ViT-B/16 from ``vision_transformer.py`` as shipped in the dreamsim package (a
  copy of facebookresearch/dino's file; the forward pass, including DINO's ``interpolate_pos_encoding`` for
  non-square input, is DINO's) and loads the weights the way DINO's hubconf does, with
  ``torch.hub.load_state_dict_from_url`` (which reads ``<hub dir>/checkpoints/dino_vitbase16_pretrain.pth``).
- ``bert-base-uncased`` in ``HF_HOME``'s hub cache (Tag2Text's tokenizer and ``BertModel.from_pretrained``): a
  30,522-entry WordPiece vocabulary of made-up words and a 2-layer BERT-base (Tag2Text's q2l config has 2 layers).

Writes ``CACHE_DIR/fixtures.json`` ({group: [files]}) last; a group already listed there is not rebuilt.
"""
import gzip
import hashlib
import json
import os
import shutil
import sys
import time

import torch

RAFT_FLOW_SCALE = 0.13
GROUPS = ("amt", "raft", "dino", "clip_b32", "clip_l14", "aesthetic", "musiq", "umt", "tag2text", "viclip")
DINO_URL = "https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth"
HUBCONF = '''"""Test fixture of the DINO torch.hub repository (github.com/facebookresearch/dino, as VBench clones it into
dino_model/facebookresearch_dino_main): ``dino_vitb16`` built from DINO's own ``vision_transformer.py``, which the
dreamsim package ships (dreamsim/feature_extraction/vision_transformer.py, taken from facebookresearch/dino at
4b96393: the model code is DINO's, only its weight initialiser is a no-op), with the weights read by
torch.hub.load_state_dict_from_url as DINO's hubconf.py does. Written by tests/vbench_fixtures."""
import torch
from dreamsim.feature_extraction.vision_transformer import vit_base

dependencies = ["torch"]


def dino_vitb16(pretrained=True, **kwargs):
    model = vit_base(patch_size=16, num_classes=0, **kwargs)
    if pretrained:
        state_dict = torch.hub.load_state_dict_from_url(url="%s", map_location="cpu")
        model.load_state_dict(state_dict, strict=True)
    return model
''' % DINO_URL


def _sane(sd):
    """Parameters a module leaves uninitialised (``torch.empty``: ViCLIP's ``proj``, ``text_projection`` and
    ``positional_embedding``, filled only by a checkpoint: garbage or zeros) and other all-zero matrices get
    N(0, 0.02) values, so random-weight features have a norm and scores are finite."""
    out = {}
    for k, v in sd.items():
        if v.is_floating_point() and v.numel() and (not torch.isfinite(v).all() or v.abs().max() > 1e3
                                                    or (v.dim() >= 2 and v.abs().max() < 1e-20)):
            v = torch.randn(v.shape, dtype=v.dtype) * 0.02
        out[k] = v
    return out


def _half(sd):
    """fp16 copy of the floating tensors (halves the big files; VBench's loaders copy into fp32 parameters)."""
    return _sane({k: v.half() if v.is_floating_point() else v for k, v in _sane(sd).items()})


def _save(obj, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".partial"
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def amt(cache, hf):
    from omegaconf import OmegaConf

    import vbench
    from vbench.third_party.amt.utils.build_utils import build_from_cfg

    cfg = OmegaConf.load(os.path.join(os.path.dirname(vbench.__file__), "third_party/amt/cfgs/AMT-S.yaml"))
    model = build_from_cfg(cfg.network)  # as vbench/motion_smoothness.py:MotionSmoothness.load_model
    return [_save({"state_dict": _sane(model.state_dict())}, f"{cache}/amt_model/amt-s.pth")]


def raft(cache, hf):
    from easydict import EasyDict

    from vbench.third_party.RAFT.core.raft import RAFT

    model = RAFT(EasyDict(small=False, mixed_precision=False, alternate_corr=False))  # vbench/dynamic_degree.py
    sd = _sane(model.state_dict())
    # the flow head's output scaled so the flow is ~4.4 px on any frame pair (about 33 px unscaled): between
    # dynamic_degree's thresholds 6 * min(H, W) / 256 for 128 px (3.0) and 256 px (6.0) frames, so the 256 px test
    # video is static and the 128 px ones move (suite.py)
    for k in ("update_block.flow_head.conv2.weight", "update_block.flow_head.conv2.bias"):
        sd[k] = sd[k] * RAFT_FLOW_SCALE
    sd = {"module." + k: v for k, v in sd.items()}  # saved from DataParallel
    return [_save(sd, f"{cache}/raft_model/models/raft-things.pth")]


def dino(cache, hf):
    repo = f"{cache}/dino_model/facebookresearch_dino_main"
    os.makedirs(repo, exist_ok=True)
    with open(f"{repo}/hubconf.py", "w") as fh:
        fh.write(HUBCONF)
    sys.path.insert(0, repo)
    import hubconf

    model = hubconf.dino_vitb16(pretrained=False)
    return [f"{repo}/hubconf.py",
            _save(_half(model.state_dict()), f"{cache}/dino_model/checkpoints/dino_vitbase16_pretrain.pth")]


def _clip(embed_dim, patch, path, layers=1, width=64, text_width=64, text_layers=1):
    """A CLIP ViT (default: one layer of width 64) traced to TorchScript, as OpenAI's released .pt files are
    (clip.load reads a TorchScript archive first; a plain state dict fails there with EOFError)."""
    from clip.model import CLIP

    model = CLIP(embed_dim, 224, layers, width, patch, 77, 49408, text_width, text_width // 64, text_layers).eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, (torch.zeros(1, 3, 224, 224), torch.zeros(1, 77, dtype=torch.long)),
                                 check_trace=False)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    traced.save(path + ".partial")
    os.replace(path + ".partial", path)
    return [path]


def clip_b32(cache, hf):
    return _clip(512, 32, f"{cache}/clip_model/ViT-B-32.pt", layers=12, width=768, text_width=512,
                 text_layers=12)      # ViT-B/32 at the released size (CLIP paper, Table 20)


def clip_l14(cache, hf):
    return _clip(768, 14, f"{cache}/clip_model/ViT-L-14.pt")      # ViT-L/14: embed 768 (the LAION head's input)


def aesthetic(cache, hf):
    head = torch.nn.Linear(768, 1)  # vbench/aesthetic_quality.py:get_aesthetic_model
    with torch.no_grad():
        head.bias.fill_(5.0)        # LAION's 1-10 scale (VBench divides by 10): scores in [0, 1], as the real head's
    return [_save(head.state_dict(), f"{cache}/aesthetic_model/emb_reader/sa_0_4_vit_l_14_linear.pth")]


def musiq(cache, hf):
    from pyiqa.archs.musiq_arch import MUSIQ

    model = MUSIQ(pretrained=False)  # vbench/imaging_quality.py builds MUSIQ(pretrained_model_path=...): defaults
    sd = _sane(model.state_dict())
    sd["head.bias"] = sd["head.bias"] + 50.0   # SPAQ's 0-100 MOS scale (VBench divides by 100): in [0, 1]
    return [_save(sd, f"{cache}/pyiqa_model/musiq_spaq_ckpt-358bb6af.pth")]


def umt(cache, hf):
    from timm.models import create_model

    import vbench.third_party.umt.models.modeling_finetune  # noqa: F401  (registers UMT's vit_large_patch16_224)

    model = create_model("vit_large_patch16_224", pretrained=False, num_classes=400, all_frames=16, tubelet_size=1,
                         use_learnable_pos_emb=False, fc_drop_rate=0., drop_rate=0., drop_path_rate=0.2,
                         attn_drop_rate=0., drop_block_rate=None, use_checkpoint=False, checkpoint_num=16,
                         use_mean_pooling=True, init_scale=0.001)  # exactly vbench/human_action.py's arguments
    sd = _half(model.state_dict())
    sd["head.bias"][0] = 20.0   # class 0, "riding a bike" (kinetics_400_categories.txt): sigmoid ~1 >= 0.85
    return [_save(sd, f"{cache}/umt_model/l16_ptk710_ftk710_ftk400_f16_res224.pth")]


def _bert(hf):
    """bert-base-uncased in the Hugging Face hub cache layout (models--bert-base-uncased/snapshots/<rev>/)."""
    from transformers import BertConfig, BertModel

    root = f"{hf}/hub/models--bert-base-uncased"
    rev = "0" * 40
    snap = f"{root}/snapshots/{rev}"
    os.makedirs(snap, exist_ok=True)
    os.makedirs(f"{root}/refs", exist_ok=True)
    with open(f"{root}/refs/main", "w") as fh:
        fh.write(rev)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += list(letters) + [f"##{c}" for c in letters] + list("0123456789.,!?'-")
    vocab += ["picture", "of", "the", "in", "on", "with", "and", "street", "room", "sky", "water", "alley"]
    n = 0
    while len(vocab) < 30522:  # made-up words, so the vocabulary has BERT's size (Tag2Text's configs use 30522)
        vocab.append(letters[n % 26] + letters[(n // 26) % 26] + letters[(n // 676) % 26] + str(n // 17576))
        n += 1
    assert len(set(vocab)) == 30522
    with open(f"{snap}/vocab.txt", "w") as fh:
        fh.write("\n".join(vocab) + "\n")
    with open(f"{snap}/tokenizer_config.json", "w") as fh:
        json.dump({"do_lower_case": True, "model_max_length": 512}, fh)
    cfg = BertConfig(num_hidden_layers=2)
    BertModel(cfg, add_pooling_layer=False).save_pretrained(snap, safe_serialization=False)
    return [f"{snap}/vocab.txt", f"{snap}/config.json", f"{snap}/pytorch_model.bin"]


def tag2text(cache, hf):
    files = _bert(hf)
    from vbench.third_party.tag2Text.tag2text import tag2text_caption

    model = tag2text_caption(pretrained="", image_size=384, vit="swin_b")  # vbench/utils.py init_submodules
    sd = {k: v for k, v in model.state_dict().items() if "relative_position_index" not in k and "attn_mask" not in k}
    sd = _half(sd)
    sep = model.tokenizer.sep_token_id  # the caption's end token: a random decoder would otherwise run to
    alley = model.tokenizer.convert_tokens_to_ids("alley")  # max_length 30 (Tag2Text generate: min_length 10)
    for k in ("text_decoder.cls.predictions.bias", "text_decoder.cls.predictions.decoder.bias"):
        sd[k][sep] = 30.0               # ends after min_length: keeps the scene test 3x shorter
        sd[k][alley] = 25.0             # ... and the caption says "alley": only the alley prompt succeeds
    return files + [_save({"model": sd}, f"{cache}/caption_model/tag2text_swin_14m.pth")]


def viclip(cache, hf):
    import clip

    bpe = f"{cache}/ViCLIP/bpe_simple_vocab_16e6.txt.gz"
    os.makedirs(os.path.dirname(bpe), exist_ok=True)
    shutil.copy(os.path.join(os.path.dirname(clip.__file__), "bpe_simple_vocab_16e6.txt.gz"), bpe)  # the same file
    with gzip.open(bpe) as fh:
        fh.read(16)
    from vbench.third_party.ViCLIP.simple_tokenizer import SimpleTokenizer
    from vbench.third_party.ViCLIP.viclip import ViCLIP

    model = ViCLIP(tokenizer=SimpleTokenizer(bpe), pretrain=None)  # vbench/temporal_style.py, without loading
    return [bpe, _save({"model": _half(model.state_dict())}, f"{cache}/ViCLIP/ViClip-InternVid-10M-FLT.pth")]


def main(argv):
    cache, hf = os.path.abspath(argv[0]), os.path.abspath(argv[1])
    groups = argv[2:] or list(GROUPS)
    os.environ["VBENCH_CACHE_DIR"] = cache  # read by vbench.utils at import time
    os.environ["HF_HOME"] = hf              # read by huggingface_hub / transformers at import time
    os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
    torch.manual_seed(0)
    index_path = f"{cache}/fixtures.json"
    with open(__file__, "rb") as fh:
        version = hashlib.sha256(fh.read()).hexdigest()
    index = json.load(open(index_path)) if os.path.exists(index_path) else {}
    if index.get("generator_sha256") != version:  # another generator made these: rebuild every group
        index = {"generator_sha256": version}
    for g in groups:
        if g not in GROUPS:
            raise SystemExit(f"unknown group {g!r}; valid: {GROUPS}")
        if g in index:
            continue
        t0 = time.perf_counter()
        index[g] = globals()[g](cache, hf)
        print(f"{g}: {time.perf_counter() - t0:.1f} s, {len(index[g])} file(s)", flush=True)
        with open(index_path + ".partial", "w") as fh:
            json.dump(index, fh, indent=1)
        os.replace(index_path + ".partial", index_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
