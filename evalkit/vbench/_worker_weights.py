"""Weight-file check, run INSIDE the VBench environment by ``_worker.py`` (action "check_weights"); never imported
by evalkit.

For one dimension it builds the evaluator network with VBench's own code, exactly as ``vbench/<dim>.py`` does
(vbench 0.1.5), and records every ``load_state_dict`` call made while doing so: the module's own keys and shapes
against the keys and shapes of the state dict VBench hands it (after VBench's own key edits: the DataParallel
``module.`` prefix of RAFT, the ``{'state_dict'}`` / ``{'model'}`` containers, Tag2Text's dropped buffers). A key
the module has and the file lacks, or a shape that differs, is a failure even where VBench loads with
``strict=False`` (UMT for human_action, Tag2Text for scene), where such a file would load silently and score with
random parameters. Keys the file has and the module lacks are listed (ignored by a non-strict load). For CLIP,
whose size ``clip.model.build_model`` infers from the file, the inferred size is compared with the released model's.
"""
import os

import torch

# Sizes of OpenAI's released CLIP models (clip.model.build_model's inferred fields; CLIP paper, Table 20).
CLIP_RELEASED = {
    "ViT-B-32.pt": {"embed_dim": 512, "vision_layers": 12, "vision_width": 768, "vision_patch_size": 32,
                    "image_resolution": 224, "transformer_layers": 12, "transformer_width": 512},
    "ViT-L-14.pt": {"embed_dim": 768, "vision_layers": 24, "vision_width": 1024, "vision_patch_size": 14,
                    "image_resolution": 224, "transformer_layers": 12, "transformer_width": 768},
}
# Keys VBench's loader removes from the file on purpose and the module rebuilds (tag2text.py
# load_checkpoint_swinbase drops relative_position_index and attn_mask; they are derived buffers).
IGNORED_MISSING = {"scene": ("relative_position_index", "attn_mask")}


class _Spy:
    """Records (module class, module keys/shapes, given keys/shapes, strict) of every load_state_dict call."""

    def __init__(self):
        self.loads = []
        self._orig = torch.nn.Module.load_state_dict

    def __enter__(self):
        spy, orig = self, self._orig

        def load_state_dict(module, state_dict, strict=True, *args, **kwargs):
            own = {k: tuple(v.shape) for k, v in module.state_dict().items()}
            given = {k: tuple(v.shape) for k, v in state_dict.items() if hasattr(v, "shape")}
            spy.loads.append({"module": type(module).__name__, "own": own, "given": given, "strict": bool(strict)})
            return orig(module, state_dict, strict, *args, **kwargs)

        torch.nn.Module.load_state_dict = load_state_dict
        return self

    def __exit__(self, *exc):
        torch.nn.Module.load_state_dict = self._orig
        return False


def _clip_inferred(path):
    """clip.load's first step (a TorchScript archive) and build_model's inferred size of the file at ``path``."""
    try:
        sd = torch.jit.load(path, map_location="cpu").state_dict()
    except RuntimeError as exc:
        raise ValueError(f"{path}: not a TorchScript archive ({str(exc).splitlines()[0]}); clip.load needs the "
                         "released TorchScript file (a plain state dict fails inside clip.load with EOFError)")
    return {"embed_dim": sd["text_projection"].shape[1],
            "vision_layers": len([k for k in sd if k.startswith("visual.") and k.endswith(".attn.in_proj_weight")]),
            "vision_width": sd["visual.conv1.weight"].shape[0], "vision_patch_size": sd["visual.conv1.weight"].shape[-1],
            "image_resolution": sd["visual.conv1.weight"].shape[-1] * round((sd["visual.positional_embedding"].shape[0]
                                                                             - 1) ** 0.5),
            "transformer_layers": len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks")}),
            "transformer_width": sd["ln_final.weight"].shape[0]}


def _build(dim, cache):
    """Build (and load) the evaluator of ``dim`` as vbench/<dim>.py does; returns (architecture, inferred sizes)."""
    inferred = {}
    if dim == "motion_smoothness":
        import vbench
        from vbench.motion_smoothness import MotionSmoothness

        cfg = os.path.join(os.path.dirname(vbench.__file__), "third_party/amt/cfgs/AMT-S.yaml")
        MotionSmoothness(cfg, f"{cache}/amt_model/amt-s.pth", torch.device("cpu"))
        return "AMT-S (vbench third_party/amt, cfgs/AMT-S.yaml)", inferred
    if dim == "dynamic_degree":
        from easydict import EasyDict

        from vbench.dynamic_degree import DynamicDegree

        DynamicDegree(EasyDict(model=f"{cache}/raft_model/models/raft-things.pth", small=False, mixed_precision=False,
                               alternate_corr=False), torch.device("cpu"))
        return "RAFT (vbench third_party/RAFT, raft-things)", inferred
    if dim == "subject_consistency":
        torch.hub.set_dir(f"{cache}/dino_model")
        torch.hub.load(f"{cache}/dino_model/facebookresearch_dino_main/", "dino_vitb16", source="local")
        return "DINO ViT-B/16 (torch.hub dino_vitb16 from dino_model/facebookresearch_dino_main)", inferred
    if dim in ("background_consistency", "appearance_style", "aesthetic_quality"):
        import clip

        name = "ViT-L-14.pt" if dim == "aesthetic_quality" else "ViT-B-32.pt"
        path = f"{cache}/clip_model/{name}"
        inferred[name] = _clip_inferred(path)
        clip.load(path, device="cpu")
        arch = f"CLIP {name[:-3]} (openai-clip, size inferred from the file)"
        if dim == "aesthetic_quality":
            from vbench.aesthetic_quality import get_aesthetic_model

            get_aesthetic_model(f"{cache}/aesthetic_model/emb_reader")
            arch += " + LAION aesthetic linear head 768 -> 1"
            if inferred[name]["embed_dim"] != 768:
                raise ValueError(f"{path}: CLIP embedding width {inferred[name]['embed_dim']}, the LAION head reads 768")
        return arch, inferred
    if dim == "imaging_quality":
        from pyiqa.archs.musiq_arch import MUSIQ

        MUSIQ(pretrained_model_path=f"{cache}/pyiqa_model/musiq_spaq_ckpt-358bb6af.pth")
        return "MUSIQ (pyiqa.archs.musiq_arch, default size)", inferred
    if dim == "human_action":
        from vbench.human_action import human_action

        try:  # builds UMT and loads the file; with no video its accuracy is 0 / 0
            human_action(f"{cache}/umt_model/l16_ptk710_ftk710_ftk400_f16_res224.pth", [], torch.device("cpu"))
        except ZeroDivisionError:
            pass
        return "UMT ViT-L/16, 16 frames, Kinetics-400 head (vbench third_party/umt)", inferred
    if dim == "scene":
        from vbench.third_party.tag2Text.tag2text import tag2text_caption

        tag2text_caption(pretrained=f"{cache}/caption_model/tag2text_swin_14m.pth", image_size=384, vit="swin_b")
        return "Tag2Text Swin-B 384 (vbench third_party/tag2Text) + bert-base-uncased tokenizer", inferred
    if dim in ("temporal_style", "overall_consistency"):
        from vbench.third_party.ViCLIP.simple_tokenizer import SimpleTokenizer
        from vbench.third_party.ViCLIP.viclip import ViCLIP

        tok = SimpleTokenizer(f"{cache}/ViCLIP/bpe_simple_vocab_16e6.txt.gz")
        ViCLIP(tokenizer=tok, pretrain=f"{cache}/ViCLIP/ViClip-InternVid-10M-FLT.pth")
        return "ViCLIP ViT-L/14, 8 frames (vbench third_party/ViCLIP)", inferred
    raise ValueError(f"no weight check for {dim} (needs detectron2 / not an evaluator with weights)")


def check(dim, cache):
    """{"ok", "architecture", "loads": [...], "inferred", "problems": [...]} for one dimension."""
    problems, loads, arch, inferred = [], [], "", {}
    with _Spy() as spy:
        try:
            arch, inferred = _build(dim, cache)
        except Exception as exc:  # the evaluator cannot be built from these files: that is the finding
            first = (str(exc).strip().splitlines() or [""])[0][:400]
            problems.append(f"building the {dim} evaluator with these files failed: {type(exc).__name__}: {first}")
    ignore = IGNORED_MISSING.get(dim, ())
    for load in spy.loads:
        own, given = load.pop("own"), load.pop("given")
        missing = sorted(k for k in own if k not in given and not any(s in k for s in ignore))
        unexpected = sorted(k for k in given if k not in own)
        mismatched = sorted(f"{k}: file {list(given[k])} vs module {list(own[k])}" for k in own
                            if k in given and given[k] != own[k] and "relative_position_bias_table" not in k)
        load.update(n_module_keys=len(own), n_file_keys=len(given), missing=missing[:20], n_missing=len(missing),
                    unexpected=unexpected[:20], n_unexpected=len(unexpected), mismatched=mismatched[:20],
                    n_mismatched=len(mismatched))
        if missing or mismatched:
            problems.append(f"{load['module']}: {len(missing)} key(s) of the architecture missing in the file "
                            f"{missing[:5]}, {len(mismatched)} shape mismatch(es) {mismatched[:3]}"
                            + (" (VBench loads it with strict=False: these would stay randomly initialised)"
                               if not load["strict"] else ""))
        loads.append(load)
    if not spy.loads and not problems:
        problems.append(f"no weights were loaded while building the {dim} evaluator")
    for name, got in inferred.items():
        want = CLIP_RELEASED.get(name)
        if want and got != want:
            inferred[name] = {**got, "differs_from_release": {k: [got[k], v] for k, v in want.items() if got[k] != v}}
    return {"ok": not problems, "architecture": arch, "loads": loads, "inferred": inferred, "problems": problems}
