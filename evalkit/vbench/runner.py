"""Run the real VBench package on a folder of videos, one subprocess per (dimension, shard) (issue 5; vbench.md §4-5).

Steps: (1) validate dimensions and mode before any work; (2) list the expected videos (standard suite from the
package's full-info JSON, or the user's prompt file) and check completeness and decodability; (3) check the
evaluator weights; (4) per dimension, per shard: symlink the shard's videos into a clean folder, run ``_worker.py``
in the VBench venv, check its exit code, keep VBench's results JSON verbatim under ``raw/{dim}/shard_NNNN/``;
(5) merge shards, write one record per (video set, dimension). A shard whose results file exists is not re-run,
a dimension whose record exists is skipped, so an interrupted run resumes where it stopped.

Long mode (VBench-Long, §5): each video is split into clips (long.py), clips are scored with the standard
dimension, clip scores are averaged per long video and then over videos (imaging_quality / 100), as
``vbench2_beta_long/utils.py:reorganize_clips_results`` does: ``eval_long.py`` without ``--dev_flag``. With
``slow_fast`` (``--dev_flag``, what the leaderboard batch script passes) subject_consistency and
background_consistency also get VBench-Long's clip-to-clip term: one more worker unit per dimension scores the
first-frames videos (long.first_frames_video) with DINOv2 / DreamSim, and evalkit maps and fuses it with the
in-clip per-video means (long.fuse; tables from the user's VBench checkout). The in-clip shards are shared with a
run without slow-fast. The static filter (``--static_filter_flag``) is not run by evalkit: asking for it is an error.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from evalkit.errors import ChoiceError, EvalkitError, FieldError
from evalkit.records import append as append_record, done_keys
from evalkit.runs import now_iso, write_manifest
from evalkit.vbench import completeness as comp
from evalkit.vbench import env as venv
from evalkit.vbench import long as longmod
from evalkit.vbench import weights
from evalkit.vbench.dimensions import DIMENSIONS

MODES = ("standard", "custom", "long")
# Dimensions whose single-process aggregate is the plain mean of per-video ``video_results`` (read from each
# vbench/<dim>.py, 0.1.5), so shards can be merged exactly; the others are frame-weighted (vbench.md §3.3, §4.8).
MEAN_OF_VIDEOS = ("temporal_flickering", "aesthetic_quality", "imaging_quality", "motion_smoothness",
                  "dynamic_degree", "temporal_style", "overall_consistency", "human_action")
PERCENT_SCALE = ("imaging_quality",)  # per-video results in 0-100, aggregate / 100 (vbench/imaging_quality.py)
WORKER_ENV_VAR = "EVALKIT_VBENCH_WORKER"  # test hook: a command replacing "<venv python> _worker.py"


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunConfig:
    videos: Path
    mode: str
    dimensions: tuple[str, ...]
    name: str
    out: Path
    prompt_file: Path | None = None
    samples_per_prompt: int = comp.SAMPLES_PER_PROMPT
    shard_size: int = 0                      # videos (clips in long mode) per shard; 0: one shard per dimension
    cache_dir: Path = dataclasses.field(default_factory=weights.default_cache_dir)
    env: Path | None = None
    full_info: Path | None = None            # default: the venv's installed vbench/VBench_full_info.json
    allow_missing: bool = False
    slow_fast: bool = False                  # long mode: VBench-Long --dev_flag clip-to-clip term
    vbench_repo: Path | None = None          # slow-fast: a VBench git checkout (vbench2_beta_long/configs/)
    slow_fast_config: Path | None = None     # slow-fast: a folder with slow_fast_params.yaml and the mapping tables
    static_filter: bool = False
    device: str = "auto"
    worker_cmd: tuple[str, ...] | None = None


def validate(cfg: RunConfig) -> None:
    if cfg.mode not in MODES:
        raise ChoiceError("mode", cfg.mode, MODES)
    if not cfg.dimensions:
        raise FieldError("dimensions", "give at least one dimension")
    for d in cfg.dimensions:
        if d not in DIMENSIONS:
            raise ChoiceError("dimensions", d, DIMENSIONS, what="VBench dimension")
    custom_suite = cfg.mode == "custom" or (cfg.mode == "long" and cfg.prompt_file is not None)
    if custom_suite:
        comp.check_custom_dimensions(cfg.dimensions)
    if cfg.mode == "standard" and cfg.prompt_file is not None:
        raise FieldError("prompt_file", "standard mode uses VBench's own suite; use --mode custom for a prompt file")
    if cfg.shard_size < 0:
        raise FieldError("shard_size", f"must be >= 0, got {cfg.shard_size}")
    if cfg.shard_size and cfg.mode != "long":
        bad = [d for d in cfg.dimensions if d not in MEAN_OF_VIDEOS]
        if bad:
            raise FieldError("shard_size", f"{bad} aggregate frame-weighted in VBench, so shards cannot be merged "
                                           "exactly; use --shard-size 0 (one process per dimension) for them")
    if cfg.slow_fast and cfg.mode != "long":
        raise FieldError("slow_fast", f"--slow-fast is VBench-Long's clip-to-clip term: --mode long only, got "
                                      f"--mode {cfg.mode}")
    for d in slow_fast_dims(cfg):
        longmod.load_slow_fast(d, cfg.vbench_repo, cfg.slow_fast_config)  # missing/malformed files: error now
    if cfg.static_filter:
        raise FieldError("static_filter", "the RAFT static filter is not run by evalkit; filter the videos with "
                                          "`vbench static_filter` first, or score flicker without it (custom mode "
                                          "semantics)")


def slow_fast_dims(cfg: RunConfig) -> tuple[str, ...]:
    """The requested dimensions that get the slow-fast term (subject/background consistency, long mode)."""
    if not cfg.slow_fast or cfg.mode != "long":
        return ()
    return tuple(d for d in cfg.dimensions if d in longmod.SLOW_FAST_DIMENSIONS)


def worker_command(cfg: RunConfig) -> list[str]:
    if cfg.worker_cmd:
        return list(cfg.worker_cmd)
    if os.environ.get(WORKER_ENV_VAR):
        return shlex.split(os.environ[WORKER_ENV_VAR])
    env = venv.require(cfg.env)
    return [str(env.python), str(venv.WORKER)]


def installed_full_info(cfg: RunConfig) -> Path:
    if cfg.full_info:
        return Path(cfg.full_info)
    env = venv.require(cfg.env)
    hits = sorted(env.path.glob("lib/python*/site-packages/vbench/VBench_full_info.json"))
    if not hits:
        raise EvalkitError(f"VBench_full_info.json not found in the VBench environment {env.path}; "
                           "rebuild it: python -m evalkit vbench setup --force")
    return hits[0]


def expected_videos(cfg: RunConfig) -> tuple[list[comp.Expected], list[dict] | None]:
    if cfg.mode == "standard" or (cfg.mode == "long" and cfg.prompt_file is None):
        info = comp.load_full_info(installed_full_info(cfg))
        return comp.expected_standard(info, cfg.dimensions, cfg.samples_per_prompt), info
    prompts = comp.load_prompt_file(cfg.prompt_file) if cfg.prompt_file else None
    return comp.expected_custom(prompts, cfg.dimensions, cfg.videos, cfg.samples_per_prompt), None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Unit:
    """One file VBench scores: a video, or a clip of one (long mode)."""
    path: Path          # file on disk
    name: str           # file name VBench sees (symlink name)
    prompt: str
    video: str          # the evaluated video's file name (what n_evaluated counts)
    entry: int = -1


def _units(cfg: RunConfig, dim: str, present: list[comp.Expected], full_info: list[dict] | None) -> list[Unit]:
    units = []
    lookup = {(x["prompt_en"], d): k for k, x in enumerate(full_info or []) for d in x["dimension"]}
    for e in present:
        if dim not in e.dimensions:
            continue
        src = cfg.videos / e.filename
        e = dataclasses.replace(e, entry=lookup.get((e.prompt, dim), e.entry))  # the entry that lists this dim
        if cfg.mode != "long":
            units.append(Unit(path=src, name=e.filename, prompt=e.prompt, video=e.filename, entry=e.entry))
            continue
        suite = "custom" if full_info is None else "standard"
        prompt_dims = tuple(full_info[e.entry]["dimension"]) if full_info is not None else ()
        secs = longmod.clip_seconds(dim, suite, prompt_dims)
        for clip in longmod.split_video(src, cfg.out / "clips" / f"{secs:g}s", secs):
            units.append(Unit(path=clip, name=clip.name, prompt=e.prompt, video=e.filename, entry=e.entry))
    return units


def _shards(units: list[Unit], size: int, by_prompt: bool) -> list[list[Unit]]:
    if not size:
        return [units] if units else []
    if not by_prompt:
        return [units[i:i + size] for i in range(0, len(units), size)]
    groups: dict[int, list[Unit]] = defaultdict(list)  # keep a standard prompt's samples in one shard
    for u in units:
        groups[u.entry].append(u)
    shards, cur = [], []
    for g in groups.values():
        if cur and len(cur) + len(g) > size:
            shards.append(cur)
            cur = []
        cur += g
    return shards + ([cur] if cur else [])


def _shard_dir(cfg: RunConfig, dim: str, k: int, shard: list[Unit]) -> Path:
    """``raw/{dim}/shard_NNNN-{hash of its file names}``: a shard whose videos change is a new shard."""
    digest = hashlib.sha1("\n".join(sorted(u.name for u in shard)).encode()).hexdigest()[:8]
    return cfg.out / "raw" / dim / f"shard_{k:04d}-{digest}"


def _run_shard(cfg: RunConfig, dim: str, k: int, shard: list[Unit], full_info: list[dict] | None,
               cmd: list[str]) -> Path:
    """Run one (dimension, shard) unless its results file exists; returns that file."""
    shard_dir = _shard_dir(cfg, dim, k, shard)
    final = shard_dir / "eval_results.json"
    if final.exists():
        return final
    work = shard_dir / "work"
    if work.exists():
        shutil.rmtree(work)
    vids = work / "videos"
    vids.mkdir(parents=True)
    for u in shard:
        (vids / u.name).symlink_to(u.path.resolve())
    name = f"{cfg.name}_{dim}_shard{k:04d}"
    spec = {"action": "evaluate", "dimension": dim, "videos_dir": str(vids), "output_dir": str(work),
            "name": name, "cache_dir": str(cfg.cache_dir), "local": True, "device": cfg.device}
    if cfg.mode == "standard":
        entries = sorted({u.entry for u in shard})
        sub = [dict(full_info[i]) for i in entries]
        (work / "full_info.json").write_text(json.dumps(sub, indent=1))
        spec.update(vbench_mode="vbench_standard", full_info=str(work / "full_info.json"))
    else:
        spec.update(vbench_mode="custom_input", prompts={u.name: u.prompt for u in shard})
    (work / "spec.json").write_text(json.dumps(spec, indent=1))
    proc = subprocess.run(cmd + [str(work / "spec.json")], capture_output=True, text=True)
    (work / "worker.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise EvalkitError(f"VBench worker failed for {dim} shard {k} (exit {proc.returncode}); log "
                           f"{work / 'worker.log'}; stderr tail:\n{tail}")
    produced = work / f"{name}_eval_results.json"
    if not produced.is_file():
        raise EvalkitError(f"VBench worker exited 0 but wrote no {produced}; log {work / 'worker.log'}")
    meta = work / "worker.json"
    if meta.exists():
        shutil.copy(meta, shard_dir / "worker.json")
    shutil.copy(work / "spec.json", shard_dir / "spec.json")
    os.replace(produced, final)  # the marker of a finished shard: written last, atomically
    return final


def _fast_videos(cfg: RunConfig, units: list[Unit]) -> dict[str, Path]:
    """First-frames video of every long video with 2 or more clips (VBench skips single-clip ones), keyed by the
    long video's file name; written under ``firstframes/{clip length}/`` (idempotent)."""
    clips: dict[str, list[Path]] = defaultdict(list)
    for u in units:
        clips[u.video].append(u.path)
    return {video: longmod.first_frames_video(paths, cfg.out / "firstframes" / paths[0].parent.parent.name / video)
            for video, paths in clips.items() if len(paths) > 1}


def _clip2clip_dir(cfg: RunConfig, dim: str, fast: dict[str, Path]) -> Path:
    digest = hashlib.sha1("\n".join(sorted(str(p) for p in fast.values())).encode()).hexdigest()[:8]
    return cfg.out / "raw" / dim / f"clip2clip-{digest}"


def _run_clip2clip(cfg: RunConfig, dim: str, fast: dict[str, Path], cmd: list[str]) -> Path:
    """Score the first-frames videos with VBench-Long's dev-flag extractor in the VBench env, unless done."""
    out = _clip2clip_dir(cfg, dim, fast)
    final = out / "clip2clip.json"
    if final.exists() or not fast:
        return final
    work = out / "work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    spec = {"action": "clip2clip", "dimension": dim, "extractor": longmod.CLIP2CLIP_EXTRACTOR[dim],
            "videos": [str(p.resolve()) for p in fast.values()], "output_dir": str(work),
            "cache_dir": str(cfg.cache_dir), "device": cfg.device}
    (work / "spec.json").write_text(json.dumps(spec, indent=1))
    proc = subprocess.run(cmd + [str(work / "spec.json")], capture_output=True, text=True)
    (work / "worker.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    produced = work / "clip2clip.json"
    if proc.returncode != 0 or not produced.is_file():
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise EvalkitError(f"VBench worker failed for the {dim} clip-to-clip (slow-fast) unit (exit "
                           f"{proc.returncode}); log {work / 'worker.log'}; stderr tail:\n{tail}")
    for f in ("spec.json", "worker.json"):
        if (work / f).exists():
            shutil.copy(work / f, out / f)
    os.replace(produced, final)
    return final


def _slow_fast(cfg: RunConfig, dim: str, merged: dict, fast: dict[str, Path], c2c_file: Path) -> dict:
    """Fuse the in-clip per-video means with the mapped clip-to-clip scores; writes the slow-fast raw JSON."""
    sf = longmod.load_slow_fast(dim, cfg.vbench_repo, cfg.slow_fast_config)
    by_path = json.loads(c2c_file.read_text())["video_results"] if fast else {}
    c2c = {Path(p).name: float(v) for p, v in by_path.items()}
    if set(c2c) != set(fast):
        raise EvalkitError(f"{c2c_file}: clip-to-clip scores for {sorted(c2c)}, expected {sorted(fast)}")
    final, rows = longmod.fuse(merged["video_means"], c2c, sf)
    path = cfg.out / "raw" / dim / f"{cfg.name}_eval_results_slowfast.json"
    inclip_raw = json.loads(Path(merged["raw_json"]).read_text())[dim]
    path.write_text(json.dumps({dim: [final, inclip_raw[1], rows]}, indent=2))
    return {"score": final, "inclip_score": merged["score"], "raw_json": str(path),
            "raw_json_inclip": merged["raw_json"], "clip2clip_json": str(c2c_file) if fast else None,
            "clip2clip_extractor": longmod.CLIP2CLIP_EXTRACTOR[dim], "n_clip2clip_videos": len(fast),
            "w_inclip": sf.w_inclip, "w_clip2clip": sf.w_clip2clip, "mapping_table": sf.table_file,
            "slow_fast_params": sf.params_file}


def _merge(cfg: RunConfig, dim: str, shards: list[list[Unit]], files: list[Path]) -> dict:
    """Score of one dimension from its shard files, with per-video results keyed by the evaluated video."""
    by_name = {u.name: u for s in shards for u in s}
    per_unit: list[tuple[Unit, float]] = []
    raws = []
    for f in files:
        data = json.loads(f.read_text())
        if dim not in data:
            raise EvalkitError(f"{f}: VBench results hold no {dim!r} (keys {sorted(data)})")
        raws.append(data[dim])
        for item in data[dim][1]:
            if not isinstance(item, dict) or "video_path" not in item:
                continue
            u = by_name.get(Path(item["video_path"]).name)
            if u is None:
                raise EvalkitError(f"{f}: result for an unknown video {item['video_path']}")
            per_unit.append((u, float(item["video_results"])))
    scale = 100.0 if dim in PERCENT_SCALE else 1.0
    if cfg.mode == "long":  # clip scores -> mean per long video -> mean over videos (reorganize_clips_results)
        per_video: dict[str, list[float]] = defaultdict(list)
        for u, v in per_unit:
            per_video[u.video].append(v)
        video_means = {k: sum(v) / len(v) for k, v in per_video.items()}
        extra = {"video_means": video_means}
        score = sum(video_means.values()) / len(video_means) / scale if video_means else None
        merged = [score, [{"video_path": str(u.path), "video_results": v} for u, v in per_unit],
                  [{"video_path": k, "video_results": m} for k, m in video_means.items()]]
        evaluated = set(video_means)
    elif len(files) == 1:
        score = float(raws[0][0])  # VBench's own aggregate, verbatim
        merged = raws[0]
        evaluated = {u.video for u, _ in per_unit}
    else:
        vals = [v for _, v in per_unit]
        score = sum(vals) / len(vals) / scale if vals else None
        merged = [score, [item for r in raws for item in r[1]]]
        evaluated = {u.video for u, _ in per_unit}
    if cfg.mode != "long":
        extra = {}
    path = cfg.out / "raw" / dim / f"{cfg.name}_eval_results.json"
    if len(files) == 1 and cfg.mode != "long":
        shutil.copy(files[0], path)
    else:
        path.write_text(json.dumps({dim: merged}, indent=2))
    return {"score": score, "n_evaluated": len(evaluated), "raw_json": str(path),
            "raw_json_shards": [str(f) for f in files], "n_units": len(per_unit), **extra}


def run(cfg: RunConfig, *, rank: int = 0, world_size: int = 1, merge: bool = True) -> list[dict]:
    """Evaluate ``cfg.dimensions`` on ``cfg.videos``; returns the records (also appended to results.jsonl).

    ``rank``/``world_size``: run only the (dimension, shard) units ``[rank::world_size]`` of the run (torchrun
    ranks or cluster jobs); ``merge=False``: run units only, write no record (the merge runs once every unit's
    results file exists: a later ``run(cfg)`` finds them and only merges)."""
    validate(cfg)
    cmd = worker_command(cfg)
    expected, full_info = expected_videos(cfg)
    print(f"checking {len(expected)} expected videos in {cfg.videos} (decoding each with PyAV)", flush=True)
    check = comp.check(cfg.videos, expected, cfg.dimensions, cfg.allow_missing)
    weights.require(cfg.dimensions, cfg.cache_dir, cfg.static_filter, slow_fast=slow_fast_dims(cfg))
    cfg.out.mkdir(parents=True, exist_ok=True)
    run_id = cfg.out.name
    write_manifest(cfg.out, experiment="vbench", run_id=run_id, command=" ".join(sys.argv),
                   config={k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(cfg).items()})
    results = cfg.out / "results.jsonl"
    done = done_keys(cfg.out, statuses=("ok",))  # a flagged (partial) dimension is re-merged: videos may have come
    records, n_units = [], 0
    for i, dim in enumerate(cfg.dimensions, 1):
        sf = dim in slow_fast_dims(cfg)
        key = f"vbench/{cfg.name}/{cfg.mode}{'+slowfast' if sf else ''}/{dim}"
        head = f"[{i}/{len(cfg.dimensions)}] {dim}"
        if key in done:
            print(f"{head}: done in an earlier run, skipped", flush=True)
            continue
        units = _units(cfg, dim, list(check.present), full_info)
        shards = _shards(units, cfg.shard_size, by_prompt=cfg.mode == "standard")
        files = []
        for k, shard in enumerate(shards):
            unit, n_units = n_units, n_units + 1
            if unit % world_size != rank:  # another rank's or job's unit
                continue
            t0 = time.perf_counter()
            was = (_shard_dir(cfg, dim, k, shard) / "eval_results.json").exists()
            files.append(_run_shard(cfg, dim, k, shard, full_info, cmd))
            what = "resumed (kept)" if was else f"{time.perf_counter() - t0:.1f} s"
            print(f"{head}: shard {k + 1}/{len(shards)} ({len(shard)} {'clips' if cfg.mode == 'long' else 'videos'})"
                  f" {what}", flush=True)
        fast, c2c_file = {}, None
        if sf:  # the clip-to-clip unit: first-frames videos scored in the VBench env
            unit, n_units = n_units, n_units + 1
            fast = _fast_videos(cfg, units)
            if unit % world_size == rank or merge:
                t0 = time.perf_counter()
                was = (_clip2clip_dir(cfg, dim, fast) / "clip2clip.json").exists() or not fast
                c2c_file = _run_clip2clip(cfg, dim, fast, cmd)
                what = "resumed (kept)" if was else f"{time.perf_counter() - t0:.1f} s"
                print(f"{head}: slow-fast clip-to-clip unit ({len(fast)} first-frames videos) {what}", flush=True)
        if not merge:
            continue
        n_exp, _ = check.counts(dim)
        merged = _merge(cfg, dim, shards, files)
        if sf:
            merged.update(_slow_fast(cfg, dim, merged, fast, c2c_file))
        versions = [json.loads(f.with_name("worker.json").read_text()).get("versions", {}).get("vbench")
                    for f in files if f.with_name("worker.json").exists()]
        partial = merged["n_evaluated"] < n_exp
        if merged["score"] is None:
            raise EvalkitError(f"{dim}: VBench scored no video (raw results {merged['raw_json']})")
        rec = {"key": key, "kind": "vbench", "experiment": "vbench", "run_id": run_id,
               "status": "flagged" if partial else "ok",
               "message": f"partial: {merged['n_evaluated']} of {n_exp} videos evaluated" if partial else "",
               "created": now_iso(), "model": cfg.name, "dimension": dim, "score": merged["score"],
               "n_expected": n_exp, "n_evaluated": merged["n_evaluated"],
               "vbench_version": versions[0] if versions else "unknown", "mode": cfg.mode,
               "raw_json": merged["raw_json"], "raw_json_shards": merged["raw_json_shards"],
               "suite": "custom" if full_info is None else "standard", "n_shards": len(files),
               "protocol": ("vbench-long slow-fast (eval_long.py --dev_flag): in-clip fused with mapped "
                            "clip-to-clip" if sf else "vbench-long in-clip (eval_long.py without --dev_flag); "
                            "no static filter" if cfg.mode == "long" else "vbench single process per shard")}
        if cfg.mode == "long":
            rec["n_clips"] = merged["n_units"]
            rec["slow_fast"] = sf
            if sf:
                rec.update({k: merged[k] for k in ("inclip_score", "raw_json_inclip", "clip2clip_json",
                                                   "clip2clip_extractor", "n_clip2clip_videos", "w_inclip",
                                                   "w_clip2clip", "mapping_table", "slow_fast_params")})
        append_record(results, rec)
        records.append(rec)
        shown = "none" if merged["score"] is None else f"{merged['score']:.6f}"
        print(f"{head}: score {shown} ({merged['n_evaluated']}/{n_exp} videos)", flush=True)
    return records
