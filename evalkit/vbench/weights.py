"""Evaluator weights VBench needs per dimension: where VBench reads them, offline check and ``prefetch``.

VBench downloads its evaluator weights at run time with ``wget`` (``vbench/utils.py:init_submodules``). evalkit
runs VBench with ``load_ckpt_from_local=True`` so that CLIP and DINO are read from ``$VBENCH_CACHE_DIR`` too, and
checks BEFORE a run that every file a requested dimension needs is there; a missing one is an error that lists, per
dimension, the files and where to put them (and the URL to fetch them from on a machine with internet).
``prefetch`` downloads them. Paths and URLs are those of the vbench 0.1.5 wheel's ``init_submodules`` unless noted;
the 0.1.5 GRiT (Azure) and aesthetic URLs are stale, so the VBench git HEAD (45e79ec) ones are used.

Two places are not what ``init_submodules`` suggests:
- DINO (subject_consistency): VBench passes ``dino_model/dino_vitbase16_pretrain.pth`` to ``torch.hub.load``, but
  DINO's ``hubconf.dino_vitb16`` ignores that argument and reads its weights through
  ``torch.hub.load_state_dict_from_url``, i.e. from ``<torch hub dir>/checkpoints/``. evalkit's worker sets the hub
  dir to ``dino_model/``, so the file read is ``dino_model/checkpoints/dino_vitbase16_pretrain.pth``; the name VBench
  tests is made a link to it (by ``prefetch`` and by the worker).
- ``bert-base-uncased`` (scene: Tag2Text's tokenizer and ``BertModel.from_pretrained``; the GRiT dimensions: the
  tokenizer) comes from the Hugging Face hub cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or
  ``~/.cache/huggingface/hub``), not from ``VBENCH_CACHE_DIR``; the worker runs with ``HF_HUB_OFFLINE=1``.

Checksums: evalkit records the sha256 of every file (weightcheck.py) and compares it with the released file's
where that is published (:data:`PUBLISHED`, printed by ``python -m evalkit vbench weights``): the two CLIP models
(the sha256 is part of their URL; ``clip.load`` verifies it on download), the LAION aesthetic head and the CLIP BPE
vocabulary that ViCLIP reads (files in public git repositories: the sha256 of the file at the named commit), and
MUSIQ-SPAQ (the first 8 hex digits are in the released file name, torch.hub's naming convention). For the others
(DINO, AMT-S, RAFT, UMT, GRiT, Tag2Text, ViCLIP's weights, bert-base-uncased, the slow-fast extractors) no published
checksum is known here: records give the hash seen and say "unverified".

VBench's own (``load_ckpt_from_local=False``) layout keeps two things outside ``VBENCH_CACHE_DIR``: CLIP in
``~/.cache/clip/`` and DINO in the torch.hub cache (``~/.cache/torch/hub/``). :func:`adopt_native` links files
found there into the layout evalkit reads, instead of asking for a download.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from evalkit.core.errors import EvalkitError


@dataclasses.dataclass(frozen=True, kw_only=True)
class Weight:
    rel: str                 # path under VBENCH_CACHE_DIR
    url: str                 # where to download it (a zip for RAFT, a git repo for the DINO code)
    kind: str = "file"       # "file" | "zip" (extract ``rel`` from the downloaded zip) | "git" (clone into rel)
    unzip_to: str = ""       # zip: folder under the cache the archive is extracted into
    holds: str = ""          # zip: what the archive holds (for the error message)
    official_sha256: str | None = None   # sha256 of the released file, where published
    official_prefix: str | None = None   # the first hex digits of it, where only those are published
    hash_source: str = ""                # where the published hash comes from
    files: tuple[str, ...] = ()          # hf: the files of the snapshot that must be there


_HF_VB = "https://huggingface.co/OpenGVLab/VBench_Used_Models/resolve/main/"
DINO_READ = "dino_model/checkpoints/dino_vitbase16_pretrain.pth"   # read (torch hub dir = dino_model/)
DINO_TESTED = "dino_model/dino_vitbase16_pretrain.pth"            # tested by init_submodules: a link to DINO_READ
# openai-clip clip/clip.py _MODELS: the URL's path component is the file's sha256, verified by clip._download
_B32_SHA = "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"
_L14_SHA = "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836"
_CLIP_SRC = "the download URL (github.com/openai/CLIP clip/clip.py _MODELS; clip.load verifies it)"
_CLIP_B32 = Weight(rel="clip_model/ViT-B-32.pt", official_sha256=_B32_SHA, hash_source=_CLIP_SRC,
                   url=f"https://openaipublic.azureedge.net/clip/models/{_B32_SHA}/ViT-B-32.pt")
_CLIP_L14 = Weight(rel="clip_model/ViT-L-14.pt", official_sha256=_L14_SHA, hash_source=_CLIP_SRC,
                   url=f"https://openaipublic.azureedge.net/clip/models/{_L14_SHA}/ViT-L-14.pt")
# bert-base-uncased from the Hugging Face hub cache (module docstring)
_BERT_TOKENIZER = Weight(rel="bert-base-uncased", kind="hf", url="https://huggingface.co/bert-base-uncased",
                         files=("vocab.txt", "config.json"))
_BERT = Weight(rel="bert-base-uncased", kind="hf", url="https://huggingface.co/bert-base-uncased",
               files=("vocab.txt", "config.json", "pytorch_model.bin|model.safetensors"))
_RAFT = Weight(rel="raft_model/models/raft-things.pth", kind="zip", unzip_to="raft_model", holds="models/raft-things.pth",
               url="https://dl.dropboxusercontent.com/s/4j4z58wuv8o0mfz/models.zip")
_GRIT = (Weight(rel="grit_model/grit_b_densecap_objectdet.pth", url=_HF_VB + "grit_b_densecap_objectdet.pth"),  # e2cacab
         _BERT_TOKENIZER)
_VICLIP = (Weight(rel="ViCLIP/ViClip-InternVid-10M-FLT.pth", url=_HF_VB + "ViClip-InternVid-10M-FLT.pth"),
           Weight(rel="ViCLIP/bpe_simple_vocab_16e6.txt.gz",
                  official_sha256="924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a",
                  hash_source="sha256 of clip/bpe_simple_vocab_16e6.txt.gz in github.com/openai/CLIP at d05afc4",
                  url="https://raw.githubusercontent.com/openai/CLIP/main/clip/bpe_simple_vocab_16e6.txt.gz"))

# dimension -> weights (vbench/utils.py:init_submodules with local=True, 0.1.5 wheel)
WEIGHTS: dict[str, tuple[Weight, ...]] = {
    "temporal_flickering": (),  # pixel MAE; no learned model (its standard-suite static filter uses RAFT)
    "subject_consistency": (
        Weight(rel="dino_model/facebookresearch_dino_main", kind="git", url="https://github.com/facebookresearch/dino"),
        Weight(rel=DINO_READ,  # read by DINO's hubconf via torch.hub (module docstring), not the name VBench tests
               url="https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth")),
    "background_consistency": (_CLIP_B32,),
    "appearance_style": (_CLIP_B32,),
    "aesthetic_quality": (
        _CLIP_L14,
        Weight(rel="aesthetic_model/emb_reader/sa_0_4_vit_l_14_linear.pth",  # the URL VBench's HEAD reads
               official_sha256="2cd4e60f4f24ae3bcd57b847b13c1f3ba27edc28cc1a7f9ce74ee9f421243cba",
               hash_source="sha256 of sa_0_4_vit_l_14_linear.pth in github.com/LAION-AI/aesthetic-predictor at 6d122ad",
               url="https://raw.githubusercontent.com/LAION-AI/aesthetic-predictor/main/sa_0_4_vit_l_14_linear.pth")),
    "imaging_quality": (Weight(rel="pyiqa_model/musiq_spaq_ckpt-358bb6af.pth", official_prefix="358bb6af",
                               hash_source="first 8 hex digits of the sha256 in the released file name (torch.hub "
                                           "convention; github.com/chaofengc/IQA-PyTorch release v0.1-weights)",
                               url="https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/"
                                   "musiq_spaq_ckpt-358bb6af.pth"),),
    "motion_smoothness": (Weight(rel="amt_model/amt-s.pth", url="https://huggingface.co/lalala125/AMT/resolve/main/amt-s.pth"),),
    "dynamic_degree": (_RAFT,),
    "human_action": (Weight(rel="umt_model/l16_ptk710_ftk710_ftk400_f16_res224.pth",
                            url=_HF_VB + "l16_ptk710_ftk710_ftk400_f16_res224.pth"),),
    "object_class": _GRIT, "multiple_objects": _GRIT, "color": _GRIT, "spatial_relationship": _GRIT,
    "scene": (Weight(rel="caption_model/tag2text_swin_14m.pth",
                     url="https://huggingface.co/spaces/xinyu1205/recognize-anything/resolve/main/tag2text_swin_14m.pth"),
              _BERT),
    "temporal_style": _VICLIP, "overall_consistency": _VICLIP,
}
NOTES: dict[str, str] = {
    **{d: "also needs detectron2 in the VBench env (not on PyPI: pip install "
          "'git+https://github.com/facebookresearch/detectron2.git' into it)"
       for d in ("object_class", "multiple_objects", "color", "spatial_relationship")},
}
# Long mode --slow-fast (eval_long.py --dev_flag) clip-to-clip extractors, loaded by _worker.py from the cache:
# DINOv2 ViT-B/14 through torch.hub with the hub dir set to dinov2_model/ (VBench: torch.hub.load(
# 'facebookresearch/dinov2', 'dinov2_vitb14'), i.e. ~/.cache/torch/hub); DreamSim (dreamsim 0.2.1, default
# "ensemble" type) with cache_dir dreamsim_model/ (VBench: ~/.cache); dreamsim's download_weights checks the 3
# backbone files and ensemble_lora/ after unzipping its checkpoint, and its DINO backbone is a torch.hub github load
# with the hub dir set to that cache_dir (dreamsim/feature_extraction/extractor.py).
_DS = "https://github.com/ssundaram21/dreamsim/releases/download/v0.2.0-checkpoints/dreamsim_ensemble_checkpoint.zip"
SLOW_FAST_WEIGHTS: dict[str, tuple[Weight, ...]] = {
    "subject_consistency": (
        Weight(rel="dinov2_model/facebookresearch_dinov2_main", kind="git", url="https://github.com/facebookresearch/dinov2"),
        Weight(rel="dinov2_model/checkpoints/dinov2_vitb14_pretrain.pth",
               url="https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth")),
    "background_consistency": tuple(
        [Weight(rel=f"dreamsim_model/{f}", kind="zip", unzip_to="dreamsim_model", url=_DS,
                holds="ensemble_lora/, dino_vitb16_pretrain.pth, clip_vitb16_pretrain.pth.tar, "
                      "open_clip_vitb16_pretrain.pth.tar")
         for f in ("ensemble_lora", "dino_vitb16_pretrain.pth", "clip_vitb16_pretrain.pth.tar",
                   "open_clip_vitb16_pretrain.pth.tar")]
        + [Weight(rel="dreamsim_model/facebookresearch_dino_main", kind="git",
                  url="https://github.com/facebookresearch/dino")]),
}


def published(w: Weight) -> str:
    """The published hash of ``w`` as shown in tables: the sha256, ``<prefix>...`` or "unverified"."""
    return w.official_sha256 or (f"{w.official_prefix}..." if w.official_prefix else "unverified")


def matches(w: Weight, sha256: str) -> bool | None:
    """Whether a file with ``sha256`` is the released ``w``: True / False, None where nothing is published."""
    if w.official_sha256:
        return sha256 == w.official_sha256
    if w.official_prefix:
        return sha256.startswith(w.official_prefix)
    return None


def table() -> list[dict]:
    """One row per evaluator file VBench reads (evaluators and slow-fast extractors): file, dimensions, published
    hash and its source."""
    rows: dict[str, dict] = {}
    for group, table_ in (("evaluator", WEIGHTS), ("slow-fast", SLOW_FAST_WEIGHTS)):
        for dim, ws in table_.items():
            for w in ws:
                row = rows.setdefault(w.rel + ("/" + "|".join(w.files) if w.files else ""), {
                    "file": w.rel, "kind": w.kind, "role": group, "dimensions": [], "published_sha256": published(w),
                    "source": w.hash_source or "no published checksum known", "url": w.url})
                row["dimensions"].append(dim)
    return list(rows.values())


# VBench's own layout (load_ckpt_from_local=False, vbench/utils.py init_submodules): where it keeps what evalkit
# reads from VBENCH_CACHE_DIR (clip.load's default root; torch.hub's default dir)
def _native(cache_dir: Path) -> dict[str, list[Path]]:
    home = Path.home() / ".cache"
    hub = Path(os.environ.get("TORCH_HOME") or home / "torch") / "hub"
    return {"clip_model/ViT-B-32.pt": [home / "clip" / "ViT-B-32.pt"],
            "clip_model/ViT-L-14.pt": [home / "clip" / "ViT-L-14.pt"],
            DINO_READ: [Path(cache_dir) / DINO_TESTED, hub / "checkpoints" / "dino_vitbase16_pretrain.pth"],
            "dino_model/facebookresearch_dino_main": [hub / "facebookresearch_dino_main"]}


def adopt_native(dimensions: Iterable[str], cache_dir: Path, slow_fast: bool | Iterable[str] = False) -> list[Path]:
    """Link weights that are missing in evalkit's layout but present where VBench itself keeps them (CLIP in
    ``~/.cache/clip``, DINO in the torch.hub cache or as ``dino_model/dino_vitbase16_pretrain.pth``); returns the
    links made. Nothing is copied or downloaded."""
    made = []
    native = _native(cache_dir)
    for ws in missing(dimensions, cache_dir, slow_fast).values():
        for w in ws:
            dest = Path(cache_dir) / w.rel
            src = next((p for p in native.get(w.rel, ()) if p.exists() and not p.is_symlink()), None)
            if src is None or os.path.lexists(dest):
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(src.resolve())
            print(f"  using {src} (VBench's own layout) for {dest}", flush=True)
            made.append(dest)
    return made


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache huggingface_hub uses: ``$HF_HUB_CACHE``, ``$HUGGINGFACE_HUB_CACHE``,
    ``$HF_HOME/hub``, else ``$XDG_CACHE_HOME/huggingface/hub`` or ``~/.cache/huggingface/hub``."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache") / "huggingface" / "hub"


def hf_snapshot(repo: str) -> Path | None:
    """The snapshot folder ``refs/main`` points to (``models--{org}--{name}/snapshots/<rev>``), or None."""
    root = hf_hub_cache() / ("models--" + repo.replace("/", "--"))
    try:
        rev = (root / "refs" / "main").read_text().strip()
    except OSError:
        return None
    snap = root / "snapshots" / rev
    return snap if snap.is_dir() else None


def resolve(w: Weight, cache_dir: Path) -> list[Path]:
    """The files of ``w`` on disk (empty when any is missing): for "hf", the snapshot's files (``a|b``: either)."""
    if w.kind != "hf":
        p = Path(cache_dir) / w.rel
        return [p] if p.exists() else []
    snap = hf_snapshot(w.rel)
    if snap is None:
        return []
    out = []
    for alternatives in w.files:
        hit = [snap / f for f in alternatives.split("|") if (snap / f).is_file()]
        if not hit:
            return []
        out.append(hit[0])
    return out


def where(w: Weight, cache_dir: Path) -> Path:
    """Where ``w`` is expected (for messages)."""
    if w.kind == "hf":
        return hf_hub_cache() / ("models--" + w.rel.replace("/", "--"))
    return Path(cache_dir) / w.rel


def default_cache_dir() -> Path:
    """VBench's own default: ``$VBENCH_CACHE_DIR`` or ``~/.cache/vbench`` (vbench/utils.py)."""
    return Path(os.environ.get("VBENCH_CACHE_DIR") or Path.home() / ".cache" / "vbench")


def missing(dimensions: Iterable[str], cache_dir: Path,
            slow_fast: bool | Iterable[str] = False) -> dict[str, list[Weight]]:
    """Per dimension, the weights that are not in ``cache_dir`` (dimensions with nothing missing are left out).
    ``slow_fast``: True, or the dimensions that also need their long-mode clip-to-clip extractor."""
    out: dict[str, list[Weight]] = {}
    dimensions = list(dimensions)
    sf_dims = set(dimensions) if slow_fast is True else set(slow_fast or ())
    for dim in dimensions:
        needs = list(WEIGHTS[dim])
        needs += list(SLOW_FAST_WEIGHTS.get(dim, ())) if dim in sf_dims else []
        gone = [w for w in needs if not resolve(w, cache_dir)]
        if gone:
            out[dim] = gone
    return out


class MissingWeightsError(EvalkitError):
    def __init__(self, gaps: dict[str, list[Weight]], cache_dir: Path, failures: dict[str, str] | None = None):
        self.gaps = gaps
        lines = [f"VBench evaluator weights missing in {cache_dir} (VBENCH_CACHE_DIR; --cache-dir):"]
        for dim, ws in gaps.items():
            lines.append(f"  {dim}:")
            for w in ws:
                what = "git clone " + w.url if w.kind == "git" else (
                    f"unzip {w.url} (it holds {w.holds}) into {Path(cache_dir) / w.unzip_to}"
                    if w.kind == "zip" else (f"the Hugging Face model {w.rel} ({', '.join(w.files)}; "
                                             "prefetch downloads it into this hub cache)" if w.kind == "hf"
                                             else w.url))
                lines.append(f"    {where(w, cache_dir)}    <- {what}")
                why = (failures or {}).get(w.rel) or (failures or {}).get(w.url)
                if why:
                    lines.append(f"      download failed: {why}")
            if dim in NOTES:
                lines.append(f"    note: {NOTES[dim]}")
        sf = any(w in SLOW_FAST_WEIGHTS.get(d, ()) for d, ws in gaps.items() for w in ws)
        lines.append("Fetch them on a machine with internet: python -m evalkit vbench prefetch --dimensions "
                     + " ".join(gaps) + (" --slow-fast" if sf else "") + f" --cache-dir {cache_dir}; then copy "
                     "the folder here.")
        super().__init__("\n".join(lines))


def require(dimensions: Iterable[str], cache_dir: Path, slow_fast: bool | Iterable[str] = False) -> None:
    gaps = missing(dimensions, cache_dir, slow_fast)
    if gaps:
        raise MissingWeightsError(gaps, cache_dir)


def _download(url: str, dest: Path, timeout: float = 30.0) -> None:
    tmp = dest.with_name(dest.name + ".partial")
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as fh:
        shutil.copyfileobj(resp, fh, length=1 << 20)
    tmp.replace(dest)


def _git_clone(url: str, dest: Path) -> None:
    proc = subprocess.run(["git", "clone", "--depth", "1", url, str(dest)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise OSError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"git exit {proc.returncode}")


def _hf_download(repo: str, patterns: tuple[str, ...]) -> None:
    """``huggingface_hub.snapshot_download`` run with the VBench environment's python (evalkit does not depend on
    huggingface_hub; the env has it through transformers) into :func:`hf_hub_cache`."""
    from evalkit.vbench import env as venv

    code = ("import sys; from huggingface_hub import snapshot_download; "
            "snapshot_download(sys.argv[2], allow_patterns=sys.argv[3:], cache_dir=sys.argv[1])")
    proc = subprocess.run([str(venv.require().python), "-c", code, str(hf_hub_cache()), repo, *patterns],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise OSError((proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1])


def link_dino(cache_dir: Path) -> None:
    """Make the file name VBench's init_submodules tests point at the DINO weights actually read."""
    read, tested = Path(cache_dir) / DINO_READ, Path(cache_dir) / DINO_TESTED
    if read.is_file() and not os.path.lexists(tested):
        tested.symlink_to(os.path.relpath(read, tested.parent))


def prefetch(dimensions: Iterable[str], cache_dir: Path, slow_fast: bool = False,
             download: Callable[[str, Path], None] = _download,
             clone: Callable[[str, Path], None] = _git_clone,
             hf_download: Callable[[str, tuple[str, ...]], None] = _hf_download) -> list[Path]:
    """Download every missing weight of ``dimensions`` into ``cache_dir`` (Hugging Face models into the hub
    cache); returns the paths fetched.

    Files already present are skipped; a failed download leaves no partial file and, after trying all of them,
    raises :class:`MissingWeightsError` naming what is still missing and why. A downloaded file whose released
    sha256 is known and differs is deleted and reported as a failure.
    """
    cache_dir = Path(cache_dir)
    gaps = missing(dimensions, cache_dir, slow_fast)
    fetched: list[Path] = []
    failures: dict[str, str] = {}
    done: set[str] = set()
    for ws in gaps.values():
        for w in ws:
            if w.rel in done or (w.kind == "zip" and w.url in done):  # one archive holds several files
                continue
            done.update((w.rel, w.url) if w.kind == "zip" else (w.rel,))
            dest = cache_dir / w.rel
            print(f"  fetching {w.url} -> {dest}", flush=True)
            try:
                if w.kind == "hf":
                    hf_download(w.rel, tuple(f for alt in w.files for f in alt.split("|")))
                    fetched += resolve(w, cache_dir)
                    continue
                if w.kind == "git":
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    clone(w.url, dest)
                elif w.kind == "zip":
                    zpath = cache_dir / w.unzip_to / "download.zip"
                    zpath.parent.mkdir(parents=True, exist_ok=True)
                    download(w.url, zpath)
                    with zipfile.ZipFile(zpath) as zf:
                        zf.extractall(zpath.parent)
                    zpath.unlink()
                else:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    download(w.url, dest)
                    if w.official_sha256:
                        from evalkit.core.hashing import file_sha256

                        got = file_sha256(dest)
                        if got != w.official_sha256:
                            dest.unlink()
                            raise OSError(f"downloaded file has sha256 {got}, the release has {w.official_sha256}")
                fetched.append(dest)
            except OSError as exc:  # URLError, timeouts, refused connections, git failures
                failures[w.rel] = failures[w.url] = f"{type(exc).__name__}: {exc}"
    link_dino(cache_dir)
    still = missing(dimensions, cache_dir, slow_fast)
    if still:
        raise MissingWeightsError(still, cache_dir, failures)
    return fetched
