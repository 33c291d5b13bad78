"""VBench's and VBench-Long's own code called directly, without evalkit's worker: the references of the ``vbench``
tests (run INSIDE the VBench environment: ``python reference.py SPEC.json``; writes ``SPEC.json.out``).

Actions:
- "evaluate": ``VBench(device, full_info, out).evaluate(videos_path, name, prompt_list, dimension_list,
  local=True, mode=...)`` on the user's folder, as ``vbench/launch/evaluate.py`` does; returns VBench's results JSON.
- "reorganize": ``vbench2_beta_long.utils.reorganize_clips_results`` on clip-level results, given per dimension
  (VBench-Long's per long video mean and final score of each).
- "long_full_info": ``VBenchLong.build_full_info_json`` on a folder whose ``split_clip/`` holds clips
  (``long_vbench_standard`` or ``long_custom_input``); returns the full-info list VBench-Long would score.
- "duration": ``vbench2_beta_long.utils.get_duration_from_json`` for each video (the clip length VBench-Long picks).
- "long_evaluate": ``VBenchLong(device, full_info, out).evaluate(videos_path, ..., mode=long_vbench_standard |
  long_custom_input, **kwargs)`` with the keyword arguments ``eval_long.py`` passes without ``--dev_flag``, on a
  folder holding the long videos and a ``split_clip/`` of clips (VBench-Long then skips its own splitting); returns
  VBench-Long's results JSON (``[final, clip results, per long video]`` per dimension).
- "split": ``vbench2_beta_long.utils.split_video_into_clips(video, out, duration)`` for each video; returns the
  clip files VBench-Long writes, per video.

``"memo": false`` in the spec runs the networks without the test memo (memo.py) even when it is on.
"""
import json
import os
import sys


def main(path):
    spec = json.load(open(path))
    if spec.get("memo", True):   # the networks' forward passes memoised by input (memo.py), unless told not to
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import memo

        memo.install()
    os.environ["VBENCH_CACHE_DIR"] = spec.get("cache_dir", "/nonexistent")
    os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch

    if spec.get("cache_dir"):
        torch.hub.set_dir(os.path.join(spec["cache_dir"], "dino_model"))
    # no autograd graph (VBench's dimensions only run forward passes: same numbers; without it Tag2Text's generate
    # keeps the graph of 16 Swin-B frames, ~23 GB on the CPU)
    torch.set_grad_enabled(False)
    action, out = spec["action"], None
    if action == "evaluate":
        from vbench import VBench

        bench = VBench(torch.device("cpu"), spec["full_info"], spec["output_dir"])
        bench.evaluate(videos_path=spec["videos_path"], name="ref", prompt_list=spec.get("prompts") or [],
                       dimension_list=spec["dimensions"], local=True, mode=spec["mode"])
        out = json.load(open(os.path.join(spec["output_dir"], "ref_eval_results.json")))
    elif action == "reorganize":
        from vbench2_beta_long.utils import reorganize_clips_results

        out = {}
        for dim, results in spec["results"].items():  # one interpreter for every dimension (the import is ~5 s)
            final, _, per_video = reorganize_clips_results(results, dim)
            out[dim] = {"final": final, "per_video": per_video}
    elif action == "long_full_info":
        from vbench2_beta_long import VBenchLong

        # VBench-Long takes the videos' suffix from the first os.listdir entry of the folder, which may be its own
        # split_clip/ folder (no suffix: then no clip matches); list the videos first, as in a folder of videos
        listdir = os.listdir
        os.listdir = lambda p=".": sorted(listdir(p), key=lambda n: (not n.endswith(".mp4"), n))
        try:
            bench = VBenchLong(torch.device("cpu"), spec["full_info"], spec["output_dir"])
            info = bench.build_full_info_json(spec["videos_path"], "ref", spec["dimensions"], mode=spec["mode"],
                                              num_of_samples_per_prompt=spec.get("samples", 5))
        finally:
            os.listdir = listdir
        out = json.load(open(info))
    elif action == "duration":
        from vbench2_beta_long.utils import get_duration_from_json, load_clip_lengths

        lengths = load_clip_lengths(spec["clip_length_config"])
        info = json.load(open(spec["full_info"]))
        out = {v: get_duration_from_json(v, info, lengths) for v in spec["videos"]}
    elif action == "long_evaluate":
        from vbench2_beta_long import VBenchLong

        # eval_long.py without --dev_flag: dino / clip clip-to-clip extractors with weights 1.0 / 0.0, so neither the
        # slow-fast parameters nor the mapping table can change a score (fuse_inclip_clip2clip); both files exist
        # only because the code opens them
        cfg = os.path.join(spec["output_dir"], "slow_fast")
        os.makedirs(cfg, exist_ok=True)
        with open(os.path.join(cfg, "params.yaml"), "w") as fh:
            fh.write("{}\n")
        with open(os.path.join(cfg, "table.yaml"), "w") as fh:
            fh.write("0.0: 0.0\n1.0: 1.0\n")
        kwargs = dict(sb_clip2clip_feat_extractor="dino", bg_clip2clip_feat_extractor="clip",
                      imaging_quality_preprocessing_mode="longer", clip_length_config="clip_length_mix.yaml",
                      w_inclip=1.0, w_clip2clip=0.0, use_semantic_splitting=False,
                      slow_fast_eval_config=os.path.join(cfg, "params.yaml"), dev_flag=False,
                      sb_mapping_file_path=os.path.join(cfg, "table.yaml"),
                      bg_mapping_file_path=os.path.join(cfg, "table.yaml"),
                      num_of_samples_per_prompt=spec.get("samples", 5), static_filter_flag=False)
        listdir = os.listdir  # as in "long_full_info": the videos first, then split_clip/
        os.listdir = lambda p=".": sorted(listdir(p), key=lambda n: (not n.endswith(".mp4"), n))
        try:
            bench = VBenchLong(torch.device("cpu"), spec["full_info"], spec["output_dir"])
            bench.evaluate(videos_path=spec["videos_path"], name="ref", prompt_list=spec.get("prompts") or [],
                           dimension_list=spec["dimensions"], local=True, mode=spec["mode"], **kwargs)
        finally:
            os.listdir = listdir
        out = json.load(open(os.path.join(spec["output_dir"], "ref_eval_results.json")))
    elif action == "split":
        from vbench2_beta_long.utils import split_video_into_clips

        out = {}
        for video in spec["videos"]:
            folder = split_video_into_clips(video, spec["output_dir"], spec["duration"], fps=8)
            out[video] = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    else:
        raise SystemExit(f"unknown action {action!r}")
    with open(path + ".out", "w") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    main(sys.argv[1])
