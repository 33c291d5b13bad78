"""``python -m evalkit vbench {setup,prefetch,run}``: VBench / VBench-Long / custom prompts on generated videos.

The quality path of the LinGen evaluation (paper Tables 1, 3, 4 use VBench scores). See runner.py for the run
steps, env.py for the dedicated environment and weights.py for the evaluator weights.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from evalkit.core.runs import REPO_ROOT
from evalkit.launch.config import add_launch_args, strip_launch_flags
from evalkit.vbench.dimensions import DIMENSIONS, QUALITY_DIMENSIONS, SEMANTIC_DIMENSIONS

ENV_HELP = ("VBench venv (default $EVALKIT_VBENCH_ENV, else <cache>/vbench-env with <cache> = $EVALKIT_CACHE_DIR, "
            "else $XDG_CACHE_HOME/lingen-evalkit, else ~/.cache/lingen-evalkit)")

CACHE_LAYOUT = """evaluator weights (--cache-dir, default $VBENCH_CACHE_DIR or ~/.cache/vbench; VBench's own
load_ckpt_from_local layout, one folder per evaluator):
  clip_model/ViT-B-32.pt, clip_model/ViT-L-14.pt           background, appearance_style / aesthetic_quality
  aesthetic_model/emb_reader/sa_0_4_vit_l_14_linear.pth     aesthetic_quality (LAION head)
  dino_model/facebookresearch_dino_main/                    subject_consistency (DINO's torch.hub repository)
  dino_model/checkpoints/dino_vitbase16_pretrain.pth        subject_consistency (the file DINO's hubconf reads;
                                                              dino_model/dino_vitbase16_pretrain.pth links to it)
  amt_model/amt-s.pth  raft_model/models/raft-things.pth    motion_smoothness, dynamic_degree
  pyiqa_model/musiq_spaq_ckpt-358bb6af.pth                  imaging_quality
  umt_model/l16_ptk710_ftk710_ftk400_f16_res224.pth         human_action
  caption_model/tag2text_swin_14m.pth                       scene (+ bert-base-uncased in the Hugging Face cache)
  grit_model/grit_b_densecap_objectdet.pth                  object_class, multiple_objects, color,
                                                              spatial_relationship (+ detectron2, see README)
  ViCLIP/ViClip-InternVid-10M-FLT.pth, ViCLIP/bpe_simple_vocab_16e6.txt.gz   temporal_style, overall_consistency
Weights already in VBench's default (non-local) layout are used in place through links, not downloaded again:
~/.cache/clip/ViT-*.pt and the torch.hub cache's facebookresearch_dino_main/ and
checkpoints/dino_vitbase16_pretrain.pth ($TORCH_HOME/hub, default ~/.cache/torch/hub). `vbench weights` lists
every file with its published sha256 (or "unverified") and what the cache holds.
evalkit's own cache (--env, hashes, weight checks): $EVALKIT_CACHE_DIR, else $XDG_CACHE_HOME/lingen-evalkit,
else ~/.cache/lingen-evalkit. Run folder (--out): raw/ (VBench's JSON per dimension and shard), clips/ (long
mode), results.jsonl (one record per dimension).
"""

EXAMPLES = """examples:
  python -m evalkit vbench setup --profile long
  python -m evalkit vbench prefetch --dimensions subject_consistency aesthetic_quality
  python -m evalkit vbench weights --cache-dir ~/.cache/vbench
  python -m evalkit vbench run --videos videos/lingen --mode standard --name lingen --dimensions all
  python -m evalkit vbench run --videos videos/lingen --mode custom --prompt-file experiments/prompts/smoke.txt \\
      --name lingen --dimensions temporal_flickering
  python -m evalkit vbench run --videos videos/lingen-17s --mode long --prompt-file experiments/prompts/smoke.txt \\
      --name lingen-17s --dimensions temporal_flickering temporal_style --long-text prompt
  python -m evalkit vbench prefetch --dimensions subject_consistency background_consistency --slow-fast
  python -m evalkit vbench run --videos videos/lingen-17s --mode long --prompt-file experiments/prompts/smoke.txt \\
      --name lingen-17s --dimensions subject_consistency background_consistency --slow-fast \\
      --vbench-repo ~/src/VBench
"""


def _dims(values: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for v in values:
        for part in v.replace(",", " ").split():
            out += {"all": DIMENSIONS, "quality": QUALITY_DIMENSIONS, "semantic": SEMANTIC_DIMENSIONS}.get(part, [part])
    return tuple(dict.fromkeys(out))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evalkit vbench", epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Score videos with the real vbench package in its own environment.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{setup,prefetch,weights,run}")
    s = sub.add_parser("setup", help="create and verify the VBench environment (reused when valid)", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--env", type=Path, default=None, help=ENV_HELP + "; the install log goes next to it, "
                                                          "<env>-install.log")
    s.add_argument("--profile", default="minimal", help="minimal (temporal_flickering, offline) | full (all "
                                                        "declared vbench dependencies: the learned dimensions) | long "
                                                        "(full + VBench-Long's scenedetect, moviepy<2, dreamsim; what "
                                                        "the vbench test group uses)")
    s.add_argument("--force", action=argparse.BooleanOptionalAction, default=False, help="rebuild from scratch")
    f = sub.add_parser("prefetch", help="download evaluator weights into the cache (needs internet)",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("--dimensions", nargs="+", default=["all"], help="dimension keys, or all/quality/semantic")
    f.add_argument("--cache-dir", type=Path, default=None, help="default $VBENCH_CACHE_DIR or ~/.cache/vbench")
    f.add_argument("--slow-fast", action=argparse.BooleanOptionalAction, default=False,
                   help="also fetch the long-mode clip-to-clip extractors (DINOv2 ViT-B/14, DreamSim)")
    w = sub.add_parser("weights", help="list every evaluator file: published sha256, what the cache holds",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    w.add_argument("--cache-dir", type=Path, default=None, help="default $VBENCH_CACHE_DIR or ~/.cache/vbench")
    r = sub.add_parser("run", help="evaluate a folder of videos", epilog=CACHE_LAYOUT + "\n" + EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--videos", type=Path, required=True, help="folder of {prompt}-{index}.mp4 files")
    r.add_argument("--mode", default="standard", help="standard | custom | long")
    r.add_argument("--dimensions", nargs="+", required=True, help="dimension keys, or all/quality/semantic")
    r.add_argument("--name", required=True, help="name of the video set (model) in the records; a plain file "
                                                 "name (it names the run folder)")
    r.add_argument("--prompt-file", type=Path, default=None,
                   help="custom/long: .txt (one prompt a line) or .json (list, or {file name: prompt})")
    r.add_argument("--samples-per-prompt", type=int, default=5, help="custom suites from a prompt list")
    r.add_argument("--out", type=Path, default=None, help="run folder (default runs/vbench/<name>-<mode>)")
    r.add_argument("--shard-size", type=int, default=0, help="videos (clips) per worker process; 0: one per "
                                                              "dimension (VBench's exact single-process numbers)")
    r.add_argument("--cache-dir", type=Path, default=None, help="VBENCH_CACHE_DIR (weights)")
    r.add_argument("--env", type=Path, default=None, help=ENV_HELP)
    r.add_argument("--full-info", type=Path, default=None,
                   help="standard suite: a VBench full-info JSON instead of the installed package's "
                        "VBench_full_info.json (e.g. a subset); records carry its sha256")
    r.add_argument("--allow-unofficial-weights", action=argparse.BooleanOptionalAction, default=False,
                   help="score with evaluator files whose sha256 differs from the released file's (known for the "
                        "CLIP models); records say weights_official: false")
    r.add_argument("--long-text", default="prompt", help="long mode, custom prompts: the text temporal_style and "
                   "overall_consistency compare with: prompt (the video's prompt, as VBench's custom_input does) | "
                   "folder-name (VBench-Long's long_custom_input: the clip folder name '{prompt}-{i}')")
    r.add_argument("--device", default="auto", help="auto | cpu | cuda (inside the VBench env)")
    r.add_argument("--allow-missing", action=argparse.BooleanOptionalAction, default=False,
                   help="score what is present; records are flagged partial")
    r.add_argument("--slow-fast", action=argparse.BooleanOptionalAction, default=False,
                   help="long mode: VBench-Long's slow-fast term for subject_consistency and "
                        "background_consistency (eval_long.py --dev_flag, as the leaderboard runs): the clips' "
                        "first frames scored with DINOv2 / DreamSim, mapped by VBench's quantile tables and fused "
                        "0.5/0.5 with the in-clip score; needs --vbench-repo or --slow-fast-config and the "
                        "weights of `prefetch --slow-fast`")
    r.add_argument("--vbench-repo", type=Path, default=None,
                   help="--slow-fast: a VBench git checkout (reads vbench2_beta_long/configs/slow_fast_params.yaml "
                        "and {subject,background}_mapping_table.yaml; not in the 0.1.5 wheel)")
    r.add_argument("--slow-fast-config", type=Path, default=None,
                   help="--slow-fast: a folder holding those three YAML files instead of --vbench-repo")
    r.add_argument("--jobs", type=int, default=1, help="split the (dimension, shard) units over this many "
                                                       "launcher jobs (job j runs units j::jobs); then merge")
    r.add_argument("--set", dest="sets", action="append", default=[], metavar="launch.KEY=VALUE",
                   help="launch option, e.g. --set launch.partition=gpu (README: SLURM)")
    add_launch_args(r)
    return p


def _summary(records: list[dict]) -> dict | None:
    """Print the per-dimension table and the group scores; a group score only from its complete dimension set."""
    from evalkit.vbench.aggregate import aggregate_records

    if not records:
        return None
    print(f"\n{'dimension':<24} {'score':>9} {'videos':>9}  status")
    for r in records:
        print(f"{r['dimension']:<24} {r['score']:>9.4f} {r['n_evaluated']:>4}/{r['n_expected']:<4}  {r['status']}"
              + (f" ({r['message']})" if r.get("message") else "")
              + (f"  [{r['weights_label']}]" if r.get("weights_label") else ""))
    agg = aggregate_records(records)

    def fmt(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.2f}%"
    why = []
    if agg["missing"]:
        why.append(f"not scored: {', '.join(agg['missing'])}")
    if agg["incomplete"]:
        why.append(f"incomplete videos: {', '.join(agg['incomplete'])}")
    print(f"quality {fmt(agg['quality_score'])}  semantic {fmt(agg['semantic_score'])}  "
          f"total {fmt(agg['total_score'])}" + (f"  (a group score needs every dimension of the group "
                                               f"complete; {'; '.join(why)})" if why else ""))
    if any(r.get("weights_official") is False for r in records):
        print("*** UNOFFICIAL WEIGHTS: some evaluator files are not the released ones (weights_official: false; "
              "a sha256 that differs from the published one, or a network whose size differs from release): these "
              "scores are not comparable with published VBench numbers ***")
    unverified = sorted({f for r in records for f in r.get("weights_unverified", ())})
    if unverified:
        print(f"note: unverified weights: no published sha256 is known for {', '.join(unverified)}; records keep "
              "the sha256 seen (python -m evalkit vbench weights lists what is verified)")
    return agg


def _weights_table(cache_dir: Path | None) -> int:
    """Every evaluator file: dimensions, published sha256 and its source, and the file in the cache (sha256 seen,
    whether it matches)."""
    from evalkit.vbench import weights
    from evalkit.vbench.inputs import sha256_cached

    cache = cache_dir or weights.default_cache_dir()
    weights.adopt_native(DIMENSIONS, cache, slow_fast=True)
    print(f"evaluator files VBench reads (cache {cache}); published = sha256 of the released file\n")
    by_rel = {w.rel: w for t in (weights.WEIGHTS, weights.SLOW_FAST_WEIGHTS) for ws in t.values() for w in ws}
    for row in weights.table():
        w = by_rel[row["file"]]
        found = [p for p in weights.resolve(w, cache) if p.is_file()]
        seen = [sha256_cached(p) for p in found]
        state = "absent" if not weights.resolve(w, cache) else ("code folder (digest recorded per run)" if not found
                                                              else ", ".join(
            {True: "matches release", False: "UNOFFICIAL (differs from release)", None: "unverified"}[
                weights.matches(w, s)] + f" (sha256 {s})" for s in seen))
        print(f"{row['file']}  [{row['role']}: {' '.join(row['dimensions'])}]\n    published: "
              f"{row['published_sha256']}  ({row['source']})\n    here: {state}")
    return 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "setup":
        from evalkit.vbench.env import setup

        setup(args.env, profile=args.profile, force=args.force)
        return 0
    if args.cmd == "prefetch":
        from evalkit.core.errors import ChoiceError
        from evalkit.vbench import weights

        dims = _dims(args.dimensions)
        for d in dims:
            if d not in DIMENSIONS:
                raise ChoiceError("dimensions", d, DIMENSIONS, what="VBench dimension")
        cache = args.cache_dir or weights.default_cache_dir()
        got = weights.prefetch(dims, cache, slow_fast=args.slow_fast)
        print(f"{len(got)} file(s) fetched; every weight of {', '.join(dims)} is in {cache}")
        return 0
    if args.cmd == "weights":
        return _weights_table(args.cache_dir)
    from evalkit.vbench import weights
    from evalkit.core.typed import plain_name
    from evalkit.vbench.runner import RunConfig, validate

    plain_name("name", args.name)  # it becomes the default run folder's name
    cfg = RunConfig(videos=args.videos, mode=args.mode, dimensions=_dims(args.dimensions), name=args.name,
                    out=args.out or REPO_ROOT / "runs" / "vbench" / f"{args.name}-{args.mode}",
                    prompt_file=args.prompt_file, samples_per_prompt=args.samples_per_prompt,
                    shard_size=args.shard_size, cache_dir=args.cache_dir or weights.default_cache_dir(),
                    env=args.env, full_info=args.full_info, allow_missing=args.allow_missing,
                    allow_unofficial_weights=args.allow_unofficial_weights, long_text=args.long_text,
                    slow_fast=args.slow_fast, vbench_repo=args.vbench_repo, slow_fast_config=args.slow_fast_config,
                    device=args.device)
    validate(cfg)  # arguments, prompts and the videos folder, before the VBench environment or any job
    from evalkit.vbench.worker_proc import interrupts_raise

    with interrupts_raise():   # SIGTERM as Ctrl-C: workers stopped, finished shards and records kept
        return _run(args, argv, cfg)


def _run(args: argparse.Namespace, argv: list[str], cfg) -> int:
    from evalkit.vbench.runner import run
    from evalkit.launch.config import resolve_launch
    from evalkit.launch.torchrun import barrier, dist_info, init_process_group

    launch, info = resolve_launch(None, args.sets, launcher=args.launcher), dist_info()
    if launch.launcher != "inline" or args.jobs > 1:      # jobs run units, this process merges after
        from evalkit.launch import cli_shard_items, run_items

        out = run_items(cli_shard_items(["vbench", *strip_launch_flags(argv, "--jobs")], args.jobs),
                        "evalkit.launch:cli_shard_item", launch=launch, run_dir=cfg.out, skip_done=set(),
                        dry_run=args.dry_run, name=f"evalkit-vbench-{cfg.name}")   # each job resumes from the
        # run's records (its units already scored are not scored again), never from job files
        if args.dry_run or out["errors"] or out["unknown"]:
            print(json.dumps({k: out[k] for k in ("submitted", "done", "errors", "unknown", "job_ids")}))
            return 1 if out["errors"] else 0
    elif info.is_distributed:                                   # a torchrun rank or one cluster job
        run(cfg, rank=info.rank, world_size=info.world_size, merge=False)
        if "MASTER_ADDR" not in os.environ:                     # a cluster job: the submitter merges
            return 0
        init_process_group(info, "gloo", timeout_s=7 * 24 * 3600)
        barrier()                                              # every rank's units are done
        if not info.is_main:
            return 0
    records = run(cfg)
    from evalkit.core.records import read_records
    from evalkit.vbench.runner import slow_fast_dims

    sf = slow_fast_dims(cfg)
    shown = [r for r in read_records([cfg.out]) if r.get("kind") == "vbench" and r.get("mode") == cfg.mode
             and r.get("model") == cfg.name and r.get("dimension") in cfg.dimensions
             and bool(r.get("slow_fast")) == (r.get("dimension") in sf)] or records
    _summary(shown)
    print(f"records: {cfg.out / 'results.jsonl'}")
    return 1 if any(r.get("status") == "error" for r in shown) else 0
