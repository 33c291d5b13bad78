"""Run the real VBench package on a folder of videos, one subprocess per (dimension, shard) (paper Tables 1, 3, 4
use VBench scores; modes.py has what differs between standard, custom and long mode).

Steps, all checks before any scoring: (1) arguments, the output name, the prompt file (prompts.py) and the
videos folder; (2) the VBench environment; (3) the expected videos (the standard suite's full-info JSON, or the
user's prompts) by name, and the weight files present; (4) the run folder's writer lock, before any video is
opened; (5) each present video decoded and hashed, the evaluator weights hashed and checked against the networks
VBench builds (weightcheck.py); (6) per dimension, per shard: symlink the shard's files into a clean folder, run
``_worker.py`` in the VBench venv, check its exit code, keep VBench's results JSON verbatim under
``raw/{dim}/shard_NNNN-{content digest}/`` (workers: worker_proc.py); (7) merge the shards, write one record per (video set, dimension).

Resume is keyed by content (inputs.py): a dimension whose newest record has the same ``inputs_sha256`` (the videos'
size + sha256, the weight files' sha256, the score-changing settings) is skipped; any change re-scores it. A
shard folder's name carries the digest of its own inputs, so a finished shard is reused only for the same files.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
import shutil
import time
from pathlib import Path

from evalkit.core.errors import ChoiceError, EvalkitError, FieldError
from evalkit.core.hashing import file_sha256
from evalkit.core.records import append as append_record, read_records
from evalkit.core.runs import WriterLock, command_line, write_manifest
from evalkit.core.schema import make_record
from evalkit.core.typed import plain_name
from evalkit.vbench import completeness as comp
from evalkit.vbench import env as venv
from evalkit.vbench import long as longmod
from evalkit.vbench import slowfast, weightcheck, weights
from evalkit.vbench.dimensions import DIMENSIONS
from evalkit.vbench.inputs import changed, digest, videos_entry
from evalkit.vbench.modes import LONG_TEXTS, MAY_SKIP, MEAN_OF_VIDEOS, MODES, Mode, Unit
from evalkit.vbench.prompts import check_clip_names
from evalkit.vbench.worker_proc import run_worker

WORKER_ENV_VAR = "EVALKIT_VBENCH_WORKER"  # test hook: a command replacing "<venv python> _worker.py"
RUN_PATHS = ("raw_json", "raw_json_inclip", "clip2clip_json")  # record paths, relative to the run folder
__all__ = ["RunConfig", "run", "validate", "worker_command", "slow_fast_dims", "MEAN_OF_VIDEOS"]


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
    allow_unofficial_weights: bool = False   # score with weight files whose sha256 differs from the release's
    long_text: str = "prompt"                # long custom suite: text of temporal_style/overall_consistency
    slow_fast: bool = False                  # long mode: VBench-Long --dev_flag clip-to-clip term
    vbench_repo: Path | None = None          # slow-fast: a VBench git checkout (vbench2_beta_long/configs/)
    slow_fast_config: Path | None = None     # slow-fast: a folder with slow_fast_params.yaml and the mapping tables
    device: str = "auto"
    worker_cmd: tuple[str, ...] | None = None


def validate(cfg: RunConfig) -> None:
    """Every argument check that needs neither the VBench environment nor a video decode."""
    if cfg.mode not in MODES:
        raise ChoiceError("mode", cfg.mode, MODES)
    plain_name("name", cfg.name)   # it names the run's raw files
    if not cfg.dimensions:
        raise FieldError("dimensions", "give at least one dimension")
    for d in cfg.dimensions:
        if d not in DIMENSIONS:
            raise ChoiceError("dimensions", d, DIMENSIONS, what="VBench dimension")
    if cfg.long_text not in LONG_TEXTS:
        raise ChoiceError("long_text", cfg.long_text, LONG_TEXTS)
    if cfg.mode == "custom" or (cfg.mode == "long" and cfg.prompt_file is not None):
        comp.check_custom_dimensions(cfg.dimensions)
    if cfg.mode == "standard" and cfg.prompt_file is not None:
        raise FieldError("prompt_file", "standard mode uses VBench's own suite; use --mode custom for a prompt file")
    if cfg.samples_per_prompt < 1:
        raise FieldError("samples_per_prompt", f"must be >= 1, got {cfg.samples_per_prompt}")
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
    if cfg.prompt_file is not None:
        comp.load_prompt_file(cfg.prompt_file)          # unreadable / empty / malformed: error now
    if cfg.full_info is not None:
        comp.load_full_info(Path(cfg.full_info))
    if not Path(cfg.videos).is_dir():
        raise FieldError("videos", f"no such folder: {cfg.videos}")


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


def expected_videos(cfg: RunConfig) -> tuple[list[comp.Expected], list[dict] | None, Path | None]:
    if cfg.mode == "standard" or (cfg.mode == "long" and cfg.prompt_file is None):
        path = installed_full_info(cfg)
        info = comp.load_full_info(path)
        return comp.expected_standard(info, cfg.dimensions, cfg.samples_per_prompt), info, path
    prompts = comp.load_prompt_file(cfg.prompt_file) if cfg.prompt_file else None
    return comp.expected_custom(prompts, cfg.dimensions, cfg.videos, cfg.samples_per_prompt), None, None


def _call_worker(cmd: list[str], spec: dict, folder: Path, produced: str, what: str) -> Path:
    """Run one worker unit in ``folder/work``; on success move ``produced`` to ``folder`` (atomically, last)."""
    work = folder / "work"
    work.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "output_dir": str(work)}
    (work / "spec.json").write_text(json.dumps(spec, indent=1))
    proc = run_worker(cmd + [str(work / "spec.json")])
    (work / "worker.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    out = work / produced
    if proc.returncode != 0 or not out.is_file():
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise EvalkitError(f"VBench worker failed for {what} (exit {proc.returncode}"
                           f"{'' if proc.returncode else ', no ' + produced}); log {work / 'worker.log'}; "
                           f"stderr tail:\n{tail}")
    for f in ("spec.json", "worker.json", f"{spec.get('name', '')}_full_info.json"):
        if (work / f).is_file():
            shutil.copy(work / f, folder / f)
    final = folder / ("eval_results.json" if produced.endswith("_eval_results.json") else produced)
    os.replace(out, final)
    return final


def _run_shard(cfg: RunConfig, mode: Mode, dim: str, folder: Path, k: int, shard: list[Unit], cmd: list[str]) -> Path:
    """Run one (dimension, shard) unless its results file exists; returns that file."""
    final = folder / "eval_results.json"
    if final.exists():
        return final
    work = folder / "work"
    if work.exists():
        shutil.rmtree(work)
    vids = work / "videos"
    vids.mkdir(parents=True)
    for u in shard:
        (vids / u.name).symlink_to(u.path.resolve())
    name = f"{cfg.name}_{dim}_shard{k:04d}"
    spec = {"action": "evaluate", "dimension": dim, "videos_dir": str(vids), "name": name,
            "cache_dir": str(cfg.cache_dir), "local": True, "device": cfg.device,
            **mode.worker_spec(dim, shard, work)}
    return _call_worker(cmd, spec, folder, f"{name}_eval_results.json", f"{dim} shard {k}")


def _record(cfg: RunConfig, mode: Mode, dim: str, key: str, n_exp: int, n_present: int, merged, files: list[Path],
            raw_json: Path, inputs: dict, wrep: dict, sf_fields: dict | None) -> dict:
    versions = [json.loads(f.with_name("worker.json").read_text()).get("versions", {}).get("vbench")
                for f in files if f.with_name("worker.json").exists()]
    n_scored = len(merged.evaluated)
    skipped = n_present - n_scored
    problems = []
    if n_present < n_exp:
        problems.append(f"partial: {n_present} of {n_exp} expected videos present")
    if skipped and dim not in MAY_SKIP:
        problems.append(f"VBench returned results for {n_scored} of {n_present} videos")
    finite = math.isfinite(merged.score)

    def rel(path: Path | str) -> str:  # records name files of the run by their path inside the run folder
        return str(Path(path).relative_to(cfg.out))

    if not finite:  # an error row: never aggregated, scored again on the next run
        problems.insert(0, f"VBench returned a non-finite score ({merged.score}); per-video results in "
                           f"{rel(raw_json)}")
    fields = {"experiment": "vbench", "run_id": cfg.out.name, "model": cfg.name, "dimension": dim,
              "score": merged.score, "n_expected": n_exp, "n_present": n_present,
              "n_evaluated": n_present if dim in MAY_SKIP else n_scored, "n_scored": n_scored,
              "vbench_version": versions[0] if versions else "unknown", "mode": cfg.mode, "raw_json": rel(raw_json),
              "raw_json_shards": [rel(f) for f in files], "n_shards": len(files),
              "inputs_sha256": digest(inputs), "inputs": inputs, **wrep, **mode.record_fields(dim, merged)}
    if dim in MAY_SKIP and skipped:
        fields.update(n_skipped_by_vbench=skipped, skipped_reason=MAY_SKIP[dim])
    if sf_fields:
        fields.update({k: rel(v) if k in RUN_PATHS and v is not None else v for k, v in sf_fields.items()})
    return make_record("vbench", key=key, status="error" if not finite else ("flagged" if problems else "ok"),
                       message="; ".join(problems), **fields)


def run(cfg: RunConfig, *, rank: int = 0, world_size: int = 1, merge: bool = True) -> list[dict]:
    """Evaluate ``cfg.dimensions`` on ``cfg.videos``; returns the new records (also appended to results.jsonl).

    ``rank``/``world_size``: run only the (dimension, shard) units ``[rank::world_size]`` of the run (torchrun
    ranks or cluster jobs); ``merge=False``: run units only, write no record (the merge runs once every unit's
    results file exists: a later ``run(cfg)`` finds them and only merges)."""
    validate(cfg)
    cmd = worker_command(cfg)
    expected, full_info, info_path = expected_videos(cfg)
    if cfg.mode == "long":
        check_clip_names(e.filename for e in expected)
    # one writer per run folder, taken before any video is decoded: a second `vbench run` on it refuses at once
    # (torchrun ranks / launcher jobs lock their own)
    found = comp.presence(cfg.videos, expected, cfg.dimensions, cfg.allow_missing)   # names only: no decode
    sf_dims = slow_fast_dims(cfg)
    weights.adopt_native(cfg.dimensions, cfg.cache_dir, slow_fast=sf_dims)
    weights.require(cfg.dimensions, cfg.cache_dir, slow_fast=sf_dims)
    new_folder = not cfg.out.exists()
    with WriterLock(cfg.out, f"rank{rank}of{world_size}" if world_size > 1 else None) as lock:
        try:
            print(f"checking {len(found.present)} videos in {cfg.videos} (decoding each with PyAV)", flush=True)
            check = comp.decode_all(cfg.videos, found)
        except EvalkitError:
            if new_folder and [p.name for p in cfg.out.iterdir()] == [lock.path.name]:
                lock.path.unlink()          # a refused run leaves no empty run folder behind
                cfg.out.rmdir()
            raise
        return _run_locked(cfg, cmd, check, full_info, info_path, rank=rank, world_size=world_size, merge=merge)


def _run_locked(cfg: RunConfig, cmd: list[str], check: comp.Completeness, full_info: list[dict] | None,
                info_path: Path | None, *, rank: int, world_size: int, merge: bool) -> list[dict]:
    sf_dims = slow_fast_dims(cfg)
    shas = {e.filename: file_sha256(cfg.videos / e.filename) for e in check.present}
    wreps = weightcheck.verify(cfg.dimensions, cfg.cache_dir, cmd, cfg.out / "weights_check",
                               allow_unofficial=cfg.allow_unofficial_weights, slow_fast=sf_dims)
    mode = MODES[cfg.mode](cfg, full_info, check.present, shas, file_sha256(info_path) if info_path else None)
    write_manifest(cfg.out, experiment="vbench", run_id=cfg.out.name, command=command_line(),
                   config={k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(cfg).items()})
    newest = {r["key"]: r for r in read_records([cfg.out]) if "key" in r}  # the last record of each key
    records, n_units = [], 0
    for i, dim in enumerate(cfg.dimensions, 1):
        sf = dim in sf_dims
        key = f"vbench/{cfg.name}/{cfg.mode}{'+slowfast' if sf else ''}/{dim}"
        head = f"[{i}/{len(cfg.dimensions)}] {dim}"
        present = {e.filename: cfg.videos / e.filename for e in check.present if dim in e.dimensions}
        vids = videos_entry(present, shas)  # per file size + sha256, and their digest
        inputs = {"videos": {"n": vids["n"], "sha256": vids["sha256"]},
                  "weights": {f["file"]: f["sha256"] for f in wreps[dim]["weights"]},
                  "settings": mode.settings(dim) | ({"slow_fast": True} if sf else {})}
        old = newest.get(key)
        if old and old.get("inputs_sha256") == digest(inputs) and old.get("status") in ("ok", "flagged"):
            print(f"{head}: done in an earlier run with the same videos, weights and settings; kept", flush=True)
            continue
        if old:
            what = changed(old.get("inputs"), inputs, ("videos", "weights", "settings"))
            print(f"{head}: inputs changed since the earlier record ({', '.join(what) or 'status'}); scoring again",
                  flush=True)
        units = mode.units(dim)
        shards = mode.shards(units)
        wdig = digest({f["file"]: f["sha256"] for f in wreps[dim]["weights"] if f["role"] == "evaluator"})
        files = []
        for k, shard in enumerate(shards):
            unit, n_units = n_units, n_units + 1
            if unit % world_size != rank:  # another rank's or job's unit
                continue
            folder = cfg.out / "raw" / dim / (f"shard_{k:04d}-" + digest(
                [[u.name, u.content] for u in shard] + [wdig, mode.settings(dim)])[:12])
            t0, was = time.perf_counter(), (folder / "eval_results.json").exists()
            files.append(_run_shard(cfg, mode, dim, folder, k, shard, cmd))
            what = "resumed (kept)" if was else f"{time.perf_counter() - t0:.1f} s"
            print(f"{head}: shard {k + 1}/{len(shards)} ({len(shard)} {'clips' if cfg.mode == 'long' else 'videos'})"
                  f" {what}", flush=True)
        fast, c2c = {}, None
        if sf:  # the clip-to-clip unit: first-frames videos scored in the VBench env
            unit, n_units = n_units, n_units + 1
            fast = slowfast.fast_videos(cfg.out, units)
            if unit % world_size == rank or merge:
                folder = slowfast.clip2clip_dir(cfg.out, dim, fast, digest(
                    {f["file"]: f["sha256"] for f in wreps[dim]["weights"] if f["role"] == "slow-fast"}))
                was = (folder / "clip2clip.json").exists() or not fast
                c2c = slowfast.run_clip2clip(cfg, dim, fast, folder, lambda spec, f, p: _call_worker(
                    cmd, spec, f, p, f"the {dim} clip-to-clip (slow-fast) unit"))
                print(f"{head}: slow-fast clip-to-clip unit ({len(fast)} first-frames videos) "
                      f"{'resumed (kept)' if was else 'done'}", flush=True)
        if not merge:
            continue
        n_exp, n_present = check.counts(dim)
        merged = mode.merge(dim, files, {u.name: u for u in units})
        if merged.score is None:
            raise EvalkitError(f"{dim}: VBench scored no video (shard results {[str(f) for f in files]})")
        raw_json = cfg.out / "raw" / dim / f"{cfg.name}_eval_results.json"
        raw_json.write_text(json.dumps({dim: merged.raw}, indent=2))
        (cfg.out / "raw" / dim / "inputs.json").write_text(json.dumps({**inputs, "video_files": vids["files"]},
                                                                      indent=1))
        sf_fields = slowfast.fuse(cfg, dim, merged, raw_json, fast, c2c) if sf else None
        rec = _record(cfg, mode, dim, key, n_exp, n_present, merged, files, raw_json, inputs, wreps[dim], sf_fields)
        append_record(cfg.out / "results.jsonl", rec)
        records.append(rec)
        print(f"{head}: score {rec['score']:.6f} ({rec['n_scored']}/{n_exp} videos scored)"
              + (f" [{rec['status']}: {rec['message']}]" if rec["message"] else ""), flush=True)
    return records
