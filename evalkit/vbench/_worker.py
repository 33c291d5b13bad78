"""Script run INSIDE the dedicated VBench environment (``python _worker.py SPEC.json``); never imported by evalkit.

It imports the real ``vbench`` package and runs one (dimension, shard) through ``VBench.evaluate`` exactly as the
package's own ``vbench/launch/evaluate.py`` does (single process, so no ``dist_init``: WORLD_SIZE=1 and
single-GPU aggregation), then writes ``worker.json`` next to VBench's ``{name}_eval_results.json`` with the
versions used. Exit code 0 only when the results file exists.

Spec keys: ``action`` ("evaluate" | "check_weights" | "selfcheck" | "flicker_reference" | "clip2clip"),
``dimension``, ``vbench_mode`` ("vbench_standard" | "custom_input" | "entries"), ``videos_dir``, ``full_info``
(vbench_standard), ``prompts`` ({file name: prompt}, custom_input), ``entries`` (full-info entries with their
``video_list`` already filled: VBench-Long's ``long_vbench_standard`` / ``long_custom_input`` lists of clips, which
``VBench.build_full_info_json`` cannot build), ``output_dir``, ``name``, ``cache_dir`` (VBENCH_CACHE_DIR),
``local`` (VBench's load_ckpt_from_local), ``device`` ("auto" | "cpu" | "cuda"),
``imaging_quality_preprocessing_mode``.

Offline and cache rules (applied before anything is imported): ``VBENCH_CACHE_DIR`` = ``cache_dir``;
``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` (bert-base-uncased, read by Tag2Text and GRiT, must already be
in the Hugging Face cache: never a download in the middle of a run); the torch.hub directory is
``cache_dir/dino_model``, because DINO's ``hubconf.py`` ignores the ``path`` VBench passes and reads
``<hub dir>/checkpoints/dino_vitbase16_pretrain.pth`` through ``torch.hub.load_state_dict_from_url``. VBench's
``init_submodules`` still tests ``dino_model/dino_vitbase16_pretrain.pth`` (and wgets it when absent), so that name
is made a link to the file actually read.

VBench.evaluate runs under ``torch.no_grad()``. The forward results are the same; without it some dimensions keep
the autograd graph of every frame (scene: Tag2Text's ``generate`` on 16 Swin-B frames reached 22.9 GB of memory
for one video on the CPU, 4.5 GB without the graph), which is an out-of-memory kill on a 24 GB machine or GPU.

"check_weights" builds each of ``dimensions``' evaluators with VBench's code and reports how the weight files fit
it (``_worker_weights.py``); writes ``check.json``. "clip2clip" scores the first-frames videos ``videos`` of a
long-mode ``dimension`` with VBench-Long's own dev-flag functions (DINOv2 ViT-B/14 from ``dinov2_model/``,
DreamSim from ``dreamsim_model/``); writes ``clip2clip.json``. "flicker_reference" calls
``vbench.temporal_flickering.cal_score`` on each of ``videos`` (for the tests).
"""
import json
import os
import sys

DINO_READ = "dino_model/checkpoints/dino_vitbase16_pretrain.pth"   # what DINO's hubconf reads (hub dir dino_model)
DINO_TESTED = "dino_model/dino_vitbase16_pretrain.pth"            # what vbench.utils.init_submodules tests


def _versions():
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for pkg in ("vbench", "torch", "torchvision", "numpy", "decord", "opencv-python-headless", "opencv-python",
                "transformers", "openai-clip", "pyiqa", "timm"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _device(spec):
    import torch

    device = spec.get("device", "auto")
    return "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)


def _dino_alias(cache):
    read, tested = os.path.join(cache, DINO_READ), os.path.join(cache, DINO_TESTED)
    if os.path.isfile(read) and not os.path.lexists(tested):
        try:
            os.symlink(os.path.relpath(read, os.path.dirname(tested)), tested)
        except OSError as exc:
            raise SystemExit(f"cannot link {tested} -> {read} ({exc}); create it by hand (VBench's init_submodules "
                             "tests that name and downloads the file when it is absent)")


def _selfcheck(spec):
    """Import vbench, write a 4-frame video with OpenCV and score its flicker with the package's function."""
    import cv2
    import numpy as np

    import vbench
    from vbench.temporal_flickering import cal_score

    path = os.path.join(spec["output_dir"], "selfcheck.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 8, (32, 32))
    for _ in range(4):
        writer.write(np.full((32, 32, 3), 128, np.uint8))
    writer.release()
    score = cal_score(path)
    if not 0.9 <= score <= 1.0:
        raise SystemExit(f"selfcheck: flicker score of a constant video is {score}, expected ~1")
    return {"selfcheck_flicker_score": score, "vbench_file": vbench.__file__}


def _evaluate(spec):
    import torch

    from vbench import VBench
    from vbench.utils import save_json

    device = _device(spec)
    full_info = spec.get("full_info")
    if not full_info:  # custom_input never reads it, but VBench's constructor takes one: the packaged file
        import vbench

        full_info = os.path.join(os.path.dirname(vbench.__file__), "VBench_full_info.json")
    mode, entries = spec["vbench_mode"], spec.get("entries")
    if mode == "entries":
        class _Listed(VBench):  # VBench.evaluate unchanged, except that the full-info list is given
            def build_full_info_json(self, videos_path, name, dimension_list, *args, **kwargs):
                path = os.path.join(self.output_path, name + "_full_info.json")
                save_json(entries, path)
                return path
        bench, mode = _Listed(torch.device(device), full_info, spec["output_dir"]), "vbench_standard"
    else:
        bench = VBench(torch.device(device), full_info, spec["output_dir"])
    kwargs = {"imaging_quality_preprocessing_mode": spec.get("imaging_quality_preprocessing_mode", "longer")}
    with torch.no_grad():  # see the module docstring: same forward results, no autograd graph kept
        bench.evaluate(videos_path=spec["videos_dir"], name=spec["name"], prompt_list=spec.get("prompts") or [],
                       dimension_list=[spec["dimension"]], local=bool(spec.get("local", True)), read_frame=False,
                       mode=mode, **kwargs)
    result = os.path.join(spec["output_dir"], spec["name"] + "_eval_results.json")
    if not os.path.isfile(result):
        raise SystemExit(f"VBench wrote no results file {result}")
    return {"device": device, "results": result, "grad": "disabled (torch.no_grad)"}


def _check_weights(spec):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _worker_weights

    import torch

    with torch.no_grad():
        report = {d: _worker_weights.check(d, spec["cache_dir"]) for d in spec["dimensions"]}
    out = os.path.join(spec["output_dir"], "check.json")
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1)
    return {"results": out}


def _clip2clip(spec):
    import torch

    device = _device(spec)
    cache = spec["cache_dir"]
    videos = list(spec["videos"])
    torch.set_grad_enabled(False)  # as in _evaluate
    if spec["dimension"] == "subject_consistency":
        from vbench2_beta_long.subject_consistency import subject_consistency_dinov2

        hub = os.path.join(cache, "dinov2_model")
        torch.hub.set_dir(hub)  # checkpoints/dinov2_vitb14_pretrain.pth is read from here (no download)
        model = torch.hub.load(os.path.join(hub, "facebookresearch_dinov2_main"), "dinov2_vitb14",
                               source="local").to(device)
        overall, per_video = subject_consistency_dinov2(model, videos, device, False)
    elif spec["dimension"] == "background_consistency":
        from dreamsim import dreamsim
        from vbench2_beta_long.background_consistency import background_consistency_dreamsim

        model, preprocess = dreamsim(pretrained=True, device=device, cache_dir=os.path.join(cache, "dreamsim_model"))
        overall, per_video = background_consistency_dreamsim(model, preprocess, videos, device, False)
    else:
        raise SystemExit(f"clip2clip: no slow-fast term for {spec['dimension']}")
    out = os.path.join(spec["output_dir"], "clip2clip.json")
    with open(out, "w", encoding="utf-8") as fh:
        json.dump({"dimension": spec["dimension"], "all_results": overall,
                   "video_results": {r["video_path"]: r["video_results"] for r in per_video}}, fh, indent=1)
    return {"device": device, "results": out}


def _flicker_reference(spec):
    from vbench.temporal_flickering import cal_score

    return {"scores": {p: cal_score(p) for p in spec["videos"]}}


def main(argv):
    if len(argv) != 1:
        print("usage: python _worker.py SPEC.json", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as fh:
        spec = json.load(fh)
    os.makedirs(spec["output_dir"], exist_ok=True)
    os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"  # read at import time
    if spec.get("cache_dir"):  # read by vbench.utils at import time
        os.environ["VBENCH_CACHE_DIR"] = spec["cache_dir"]
        _dino_alias(spec["cache_dir"])
        import torch

        torch.hub.set_dir(os.path.join(spec["cache_dir"], "dino_model"))  # DINO's weights: see module docstring
    action = spec.get("action", "evaluate")
    handlers = {"evaluate": _evaluate, "selfcheck": _selfcheck, "flicker_reference": _flicker_reference,
                "clip2clip": _clip2clip, "check_weights": _check_weights}
    if action not in handlers:
        print(f"unknown action {action!r}; valid: {sorted(handlers)}", file=sys.stderr)
        return 2
    info = handlers[action](spec)
    info.update(action=action, versions=_versions())
    tmp = os.path.join(spec["output_dir"], "worker.json.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=2)
    os.replace(tmp, os.path.join(spec["output_dir"], "worker.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
