"""Script run INSIDE the dedicated VBench environment (``python _worker.py SPEC.json``); never imported by evalkit.

It imports the real ``vbench`` package and runs one (dimension, shard) through ``VBench.evaluate`` exactly as the
package's own ``vbench/launch/evaluate.py`` does (single process, so no ``dist_init``: WORLD_SIZE=1 and
single-GPU aggregation, vbench.md §4.8), then writes ``worker.json`` next to VBench's
``{name}_eval_results.json`` with the versions used. Exit code 0 only when the results file exists.

Spec keys: ``action`` ("evaluate" | "selfcheck" | "flicker_reference"), ``dimension``, ``vbench_mode``
("vbench_standard" | "custom_input"), ``videos_dir``, ``full_info`` (standard mode), ``prompts``
({file name: prompt}, custom mode), ``output_dir``, ``name``, ``cache_dir`` (VBENCH_CACHE_DIR), ``local``
(VBench's load_ckpt_from_local), ``device`` ("auto" | "cpu" | "cuda"), ``imaging_quality_preprocessing_mode``.
"clip2clip" scores the first-frames videos ``videos`` of a long-mode ``dimension`` with VBench-Long's own
dev-flag functions (``vbench2_beta_long.subject_consistency.subject_consistency_dinov2`` on DINOv2 ViT-B/14,
``vbench2_beta_long.background_consistency.background_consistency_dreamsim`` on DreamSim), the models loaded from
``cache_dir`` (``dinov2_model/``: torch hub dir; ``dreamsim_model/``: DreamSim's cache_dir) instead of VBench's
network/``~/.cache`` defaults; writes ``clip2clip.json``.
"flicker_reference" calls ``vbench.temporal_flickering.cal_score`` on each of ``videos`` (for the tests).
"""
import json
import os
import sys


def _versions():
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for pkg in ("vbench", "torch", "torchvision", "numpy", "decord", "opencv-python-headless", "opencv-python",
                "transformers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


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

    device = spec.get("device", "auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    full_info = spec.get("full_info")
    if not full_info:  # custom_input never reads it, but VBench's constructor takes one: the packaged file
        import vbench

        full_info = os.path.join(os.path.dirname(vbench.__file__), "VBench_full_info.json")
    bench = VBench(torch.device(device), full_info, spec["output_dir"])
    kwargs = {"imaging_quality_preprocessing_mode": spec.get("imaging_quality_preprocessing_mode", "longer")}
    bench.evaluate(videos_path=spec["videos_dir"], name=spec["name"], prompt_list=spec.get("prompts") or [],
                   dimension_list=[spec["dimension"]], local=bool(spec.get("local", True)), read_frame=False,
                   mode=spec["vbench_mode"], **kwargs)
    result = os.path.join(spec["output_dir"], spec["name"] + "_eval_results.json")
    if not os.path.isfile(result):
        raise SystemExit(f"VBench wrote no results file {result}")
    return {"device": device, "results": result}


def _clip2clip(spec):
    import torch

    device = spec.get("device", "auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    cache = spec["cache_dir"]
    videos = list(spec["videos"])
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
    if spec.get("cache_dir"):  # read by vbench.utils at import time (vbench.md §3.1)
        os.environ["VBENCH_CACHE_DIR"] = spec["cache_dir"]
    action = spec.get("action", "evaluate")
    handlers = {"evaluate": _evaluate, "selfcheck": _selfcheck, "flicker_reference": _flicker_reference,
                "clip2clip": _clip2clip}
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
