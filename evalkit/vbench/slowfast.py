"""VBench-Long's slow-fast term (``eval_long.py --dev_flag``) as a unit of a long-mode run: the first-frames videos,
their clip-to-clip score in the VBench environment, and its fusion with the in-clip per-video means (long.py has
the formulas: :func:`long.first_frames_video`, :func:`long.load_slow_fast`, :func:`long.fuse`).
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from evalkit.core.errors import EvalkitError
from evalkit.vbench import long as longmod
from evalkit.vbench.inputs import digest
from evalkit.vbench.modes import Merged, Unit


def fast_videos(out: Path, units: list[Unit]) -> dict[str, Path]:
    """First-frames video of every long video with 2 or more clips (VBench skips single-clip ones), keyed by the
    long video's file name; under ``firstframes/{clip length}/{content}/`` so a changed video gets a new one."""
    clips: dict[str, list[Unit]] = defaultdict(list)
    for u in units:
        clips[u.video].append(u)
    return {video: longmod.first_frames_video([u.path for u in us], out / "firstframes" / us[0].path.parent.parent.name
                                              / digest(us[0].content)[:12] / video)
            for video, us in clips.items() if len(us) > 1}


def clip2clip_dir(out: Path, dim: str, fast: dict[str, Path], weights_digest: str) -> Path:
    return out / "raw" / dim / f"clip2clip-{digest([sorted(map(str, fast.values())), weights_digest])[:12]}"


def run_clip2clip(cfg: Any, dim: str, fast: dict[str, Path], folder: Path,
                  call: Callable[[dict, Path, str], Path]) -> Path:
    """Score the first-frames videos with VBench-Long's dev-flag extractor in the VBench env, unless done."""
    final = folder / "clip2clip.json"
    if final.exists() or not fast:
        return final
    spec = {"action": "clip2clip", "dimension": dim, "extractor": longmod.CLIP2CLIP_EXTRACTOR[dim],
            "videos": [str(p.resolve()) for p in fast.values()], "cache_dir": str(cfg.cache_dir),
            "device": cfg.device}
    return call(spec, folder, "clip2clip.json")


def fuse(cfg: Any, dim: str, merged: Merged, raw_inclip: Path, fast: dict[str, Path], c2c_file: Path) -> dict:
    """Fuse the in-clip per-video means with the mapped clip-to-clip scores; writes the slow-fast raw JSON and
    returns the record fields."""
    sf = longmod.load_slow_fast(dim, cfg.vbench_repo, cfg.slow_fast_config)
    by_path = json.loads(c2c_file.read_text())["video_results"] if fast else {}
    c2c = {Path(p).name: float(v) for p, v in by_path.items()}
    if set(c2c) != set(fast):
        raise EvalkitError(f"{c2c_file}: clip-to-clip scores for {sorted(c2c)}, expected {sorted(fast)}")
    final, rows = longmod.fuse(list(merged.unit_scores), c2c, sf)
    path = raw_inclip.with_name(f"{cfg.name}_eval_results_slowfast.json")
    path.write_text(json.dumps({dim: [final, merged.raw[1], rows]}, indent=2))
    return {"score": final, "inclip_score": merged.score, "raw_json": str(path), "raw_json_inclip": str(raw_inclip),
            "clip2clip_json": str(c2c_file) if fast else None, "slow_fast": True,
            "clip2clip_extractor": longmod.CLIP2CLIP_EXTRACTOR[dim], "n_clip2clip_videos": len(fast),
            "w_inclip": sf.w_inclip, "w_clip2clip": sf.w_clip2clip, "mapping_table": sf.table_file,
            "slow_fast_params": sf.params_file,
            "protocol": "vbench-long slow-fast (eval_long.py --dev_flag): in-clip fused with mapped clip-to-clip"}
