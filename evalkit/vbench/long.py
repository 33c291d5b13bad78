"""VBench-Long clip splitting with PyAV (VBench++ / VBench-Long protocol, VBench's vbench2_beta_long/README.md).

VBench-Long (``vbench2_beta_long``) cuts each long video into fixed-length clips and scores every clip with the
standard VBench dimension; its ``reorganize_clips_results`` means to average the clip scores per long video and
then over videos, but groups the clips by their own path (``video_path.split("filtered_clips")[0]`` is the whole
path unless the static filter copied the clip), so its final score is the mean over clips (modes.LongMode). This module does
the splitting, re-implemented after ``vbench2_beta_long/utils.py:split_video_into_clips`` (0.1.5 wheel):

1. frames per clip = int(video fps) x clip seconds;
2. ``n // per_clip`` full clips, taken back to back from frame 0;
3. a remainder is padded with the frames just before it into one more full clip (the last ``per_clip`` frames);
4. a video shorter than one clip is kept whole as ``{video}_full.mp4``.

Clip names are ``{video}_{000..}.mp4`` in ``{out}/{video}/``. Unlike VBench (torchvision ``write_video``, lossy
libx264), clips are re-encoded losslessly (libx264 ``qp=0`` on the decoded YUV frames), so a clip's decoded frames
equal the source's decoded frames for that range and a clip score is the score of that frame range of the source.

Clip lengths per dimension follow ``vbench2_beta_long/configs/clip_length_mix.yaml`` (git repo only, not in the
wheel): 10 s for human_action, temporal_style and overall_consistency, 2 s for every other dimension.

Slow-fast (``eval_long.py --dev_flag``, §5.3) for subject_consistency and background_consistency, after
``vbench2_beta_long/utils.py`` (0.1.5 wheel): the "fast" video of a long video is the first frame of each of its
clips, in clip order (``create_video_from_first_frames``; videos with a single clip get none), written here
losslessly like the clips (:func:`first_frames_video`). Its clip-to-clip score (the same consistency formula with
DINOv2 / DreamSim features, computed by the worker in the VBench env) is mapped to the in-clip scale by
:func:`interpolate` over a quantile mapping table and fused with each clip's in-clip score (:func:`fuse`, after
``fuse_inclip_clip2clip``). Tables and weights are read from the user's VBench checkout (:func:`load_slow_fast`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from bisect import bisect_left
from fractions import Fraction
from pathlib import Path

from evalkit.core.errors import EvalkitError

# vbench2_beta_long/configs/clip_length_mix.yaml (Vchitect/VBench@45e79ec): seconds per clip.
LONG_CLIP_SECONDS: dict[str, float] = {"human_action": 10.0, "temporal_style": 10.0, "overall_consistency": 10.0}
DEFAULT_CLIP_SECONDS = 2.0  # every other dimension in clip_length_mix.yaml; long_custom_input always uses 2 s
# VBench rule (VBench README-FAQ.md, leaderboard submission): videos of 5.0 s or more go to VBench-Long.
LONG_THRESHOLD_S = 5.0


class VideoError(EvalkitError):
    """A video that cannot be opened or fully decoded; the message names its path."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class VideoInfo:
    path: str
    frames: int      # frames actually decoded
    fps: float       # stream average rate
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps if self.fps else 0.0


def probe(path: Path | str, decode: bool = True) -> VideoInfo:
    """Open ``path`` with PyAV and decode every frame (``decode=True``); any failure is a :class:`VideoError`.

    VBench itself skips unreadable videos silently (an AssertionError inside the dimension); here a truncated or
    corrupt file stops the run before scoring, naming the file.
    """
    import av

    path = str(path)
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.base_rate
            fps = float(rate) if rate else 0.0
            width, height = stream.codec_context.width, stream.codec_context.height
            declared = stream.frames
            n = 0
            if decode:
                for _ in container.decode(stream):
                    n += 1
            else:
                n = declared
    except VideoError:
        raise
    except Exception as exc:  # PyAV raises many error types (InvalidDataError, EOFError, ...)
        raise VideoError(f"{path}: unreadable video ({type(exc).__name__}: {exc})") from exc
    if decode and n == 0:
        raise VideoError(f"{path}: no decodable frame (empty or truncated file)")
    if decode and declared and n < declared:
        raise VideoError(f"{path}: truncated video: container declares {declared} frames, only {n} decode")
    if fps <= 0:
        raise VideoError(f"{path}: no frame rate in the video stream")
    return VideoInfo(path=path, frames=n, fps=fps, width=width, height=height)


def clip_seconds(dimension: str, suite: str = "standard", prompt_dimensions: tuple[str, ...] = ()) -> float:
    """Clip length for ``dimension``.

    ``suite="custom"``: VBench-Long's ``long_custom_input`` always uses 2 s. ``suite="standard"``: a prompt's
    videos are split once with the longest clip any of the prompt's full-info dimensions needs (VBench-Long's
    ``get_duration_from_json``), so ``prompt_dimensions`` (the entry's ``dimension`` list) matters; without it
    the dimension's own length is used.
    """
    if suite == "custom":
        return DEFAULT_CLIP_SECONDS
    dims = tuple(prompt_dimensions) or (dimension,)
    return max(LONG_CLIP_SECONDS.get(d, DEFAULT_CLIP_SECONDS) for d in dims)


def plan_clips(n_frames: int, fps: float, seconds: float) -> list[tuple[int, int]]:
    """Frame ranges ``[start, stop)`` of the clips of a video with ``n_frames`` frames (module docstring steps)."""
    per_clip = int(fps) * seconds
    per_clip = int(round(per_clip))
    if per_clip <= 0:
        raise ValueError(f"clip of {seconds} s at {fps} fps has no frame")
    if n_frames < per_clip:  # 4. shorter than one clip: kept whole
        return [(0, n_frames)]
    full, rem = divmod(n_frames, per_clip)
    ranges = [(i * per_clip, (i + 1) * per_clip) for i in range(full)]  # 2.
    if rem:  # 3. pad the remainder with the frames before it
        ranges.append((max(0, full * per_clip - (per_clip - rem)), n_frames))
    return ranges


def clip_names(video_stem: str, n_frames: int, fps: float, seconds: float) -> list[str]:
    ranges = plan_clips(n_frames, fps, seconds)
    if len(ranges) == 1 and ranges[0][1] - ranges[0][0] < int(round(int(fps) * seconds)):
        return [f"{video_stem}_full.mp4"]
    return [f"{video_stem}_{i:03d}.mp4" for i in range(len(ranges))]


def split_video(path: Path | str, out_dir: Path | str, seconds: float, source_sha256: str = "") -> list[Path]:
    """Split ``path`` into clips under ``out_dir/{stem}/``; returns the clip paths in order.

    Idempotent: when every expected clip is already there and the ``.done`` marker (written after the last clip)
    names the same source content (``source_sha256``, the video's sha256) and clip length, nothing is re-encoded,
    so an interrupted long run resumes; a changed source video is split again (its old clips are removed).
    """
    from filelock import FileLock

    path = Path(path)
    dest = Path(out_dir) / path.stem
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):  # torchrun ranks split the same videos: one writer at a time
        return _split_locked(path, dest, seconds, source_sha256)


def _split_locked(path: Path, dest: Path, seconds: float, source_sha256: str) -> list[Path]:
    import av

    info = probe(path)
    ranges = plan_clips(info.frames, info.fps, seconds)
    names = clip_names(path.stem, info.frames, info.fps, seconds)
    marker = dest / ".done"
    clips = [dest / n for n in names]
    stamp = {"source_sha256": source_sha256, "seconds": seconds, "frames": info.frames, "fps": info.fps,
             "clips": names}
    try:
        same = json.loads(marker.read_text()) == stamp
    except (OSError, ValueError):
        same = False
    if same and all(c.exists() for c in clips):
        return clips
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with av.open(str(path)) as container:
        frames = list(container.decode(container.streams.video[0]))
    rate = Fraction(int(info.fps), 1) if float(int(info.fps)) == info.fps else Fraction(info.fps).limit_denominator(1001)
    for clip, (start, stop) in zip(clips, ranges):
        # fresh YUV planes per frame (a frame may go into two clips: the padded last clip)
        _write_yuv_lossless(clip, [fr.to_ndarray(format="yuv420p") for fr in frames[start:stop]], rate,
                            (info.width, info.height))
    marker.write_text(json.dumps(stamp))
    return clips


def expected_clip_count(duration_s: float, fps: float, seconds: float) -> int:
    """Number of clips for a video of ``duration_s`` at ``fps`` (ceil of frames / frames-per-clip, at least 1)."""
    n = int(round(duration_s * fps))
    return max(1, math.ceil(n / (int(fps) * seconds)))


def first_frames_video(clips: list[Path], dest: Path | str) -> Path:
    """The "fast" video of one long video: frame k is the first decoded frame of ``clips[k]``; written losslessly
    (libx264 qp=0 on the decoded YUV) at the first clip's integer fps, as VBench-Long's
    ``create_video_from_first_frames`` does with ``save_segment`` (there lossy). Idempotent: an existing ``dest``
    is kept (written atomically, so it is complete)."""
    import av

    dest = Path(dest)
    if dest.exists():
        return dest
    if len(clips) < 2:
        raise ValueError(f"{dest.name}: a first-frames video needs at least 2 clips, got {len(clips)}")
    firsts, fps, size = [], 0, (0, 0)
    for clip in clips:
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            if not fps:
                rate = stream.average_rate or stream.base_rate
                fps = int(float(rate))  # VBench: int(decord get_avg_fps()) of the first clip
                size = (stream.codec_context.width, stream.codec_context.height)
            frame = next(container.decode(stream), None)
        if frame is None:
            raise VideoError(f"{clip}: no decodable frame")
        firsts.append(frame.to_ndarray(format="yuv420p"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    return _write_yuv_lossless(dest, firsts, Fraction(max(fps, 1), 1), size)


def _write_yuv_lossless(dest: Path, planes: list, rate: Fraction, size: tuple[int, int]) -> Path:
    """Write yuv420p frames (as ``VideoFrame.to_ndarray(format="yuv420p")`` gives them) losslessly (libx264
    qp=0) at ``rate``; atomic: a ``.partial-<pid>.mp4`` renamed when complete."""
    import av

    tmp = dest.with_name(f"{dest.stem}.partial-{os.getpid()}.mp4")  # per process: ranks may write the same file
    with av.open(str(tmp), mode="w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"qp": "0", "preset": "ultrafast"}  # lossless in YUV
        for j, plane in enumerate(planes):
            f = av.VideoFrame.from_ndarray(plane, format="yuv420p")
            f.pts = j
            f.time_base = Fraction(1, 1) / rate
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(dest)
    return dest


# --- slow-fast fusion (eval_long.py --dev_flag) -----------------------------------------------------------------

SLOW_FAST_DIMENSIONS = ("subject_consistency", "background_consistency")
# eval_long.py --dev_flag: sb_clip2clip_feat_extractor dinov2, bg_clip2clip_feat_extractor dreamsim (defaults)
CLIP2CLIP_EXTRACTOR = {"subject_consistency": "dinov2", "background_consistency": "dreamsim"}
_POSTFIX = {"subject_consistency": "sb", "background_consistency": "bg"}  # keys of slow_fast_params.yaml
# files of the VBench git repo (Vchitect/VBench@45e79ec), not shipped in the 0.1.5 wheel
CONFIG_SUBDIR = "vbench2_beta_long/configs"
PARAMS_FILE = "slow_fast_params.yaml"
TABLE_FILES = {"subject_consistency": "subject_mapping_table.yaml",
               "background_consistency": "background_mapping_table.yaml"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class SlowFast:
    """Weights and mapping table of one dimension (read from the VBench checkout)."""
    dimension: str
    w_inclip: float
    w_clip2clip: float
    table: tuple[tuple[float, float], ...]   # (clip-to-clip score, mapped in-clip-scale score), sorted
    params_file: str
    table_file: str


def load_slow_fast(dimension: str, vbench_repo: Path | None = None, config_dir: Path | None = None) -> SlowFast:
    """Read ``slow_fast_params.yaml`` and the dimension's mapping table from ``config_dir`` or
    ``vbench_repo/vbench2_beta_long/configs``; a missing or malformed file is an error naming it."""
    import yaml

    from evalkit.core.errors import FieldError

    if dimension not in _POSTFIX:
        raise ValueError(f"slow-fast applies to {SLOW_FAST_DIMENSIONS}, not {dimension}")
    if config_dir is None and vbench_repo is None:
        raise FieldError("slow_fast", f"--slow-fast needs VBench-Long's {PARAMS_FILE} and {TABLE_FILES[dimension]}"
                                      f", which are in the VBench git repo (github.com/Vchitect/VBench, folder "
                                      f"{CONFIG_SUBDIR}/), not in the vbench {'0.1.5'} wheel: pass --vbench-repo "
                                      "PATH (a git clone) or --slow-fast-config DIR (a folder holding them)")
    folder = Path(config_dir) if config_dir is not None else Path(vbench_repo) / CONFIG_SUBDIR
    flag = "slow_fast_config" if config_dir is not None else "vbench_repo"
    files = {}
    for name in (PARAMS_FILE, TABLE_FILES[dimension]):
        path = folder / name
        if not path.is_file():
            raise FieldError(flag, f"{path} not found: --slow-fast for {dimension} needs {name} (VBench git repo, "
                                   f"{CONFIG_SUBDIR}/{name}; not in the 0.1.5 wheel)")
        try:
            files[name] = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise FieldError(flag, f"{path}: not valid YAML ({exc})") from exc
    params, raw = files[PARAMS_FILE], files[TABLE_FILES[dimension]]
    post = _POSTFIX[dimension]
    keys = (f"w_inclip_{post}", f"w_clip2clip_{post}")
    if not isinstance(params, dict) or any(not isinstance(params.get(k), (int, float)) for k in keys):
        raise FieldError(flag, f"{folder / PARAMS_FILE}: needs numeric {keys[0]} and {keys[1]}")
    if not isinstance(raw, dict) or not raw or not all(isinstance(k, (int, float)) and isinstance(v, (int, float))
                                                       for k, v in raw.items()):
        raise FieldError(flag, f"{folder / TABLE_FILES[dimension]}: needs a non-empty map of number: number")
    return SlowFast(dimension=dimension, w_inclip=float(params[keys[0]]), w_clip2clip=float(params[keys[1]]),
                    table=tuple(sorted((float(k), float(v)) for k, v in raw.items())),
                    params_file=str(folder / PARAMS_FILE), table_file=str(folder / TABLE_FILES[dimension]))


def interpolate(table: tuple[tuple[float, float], ...], x: float) -> float:
    """Piecewise-linear map of ``x`` over the sorted ``(key, value)`` table, clamped to the end values; exactly
    ``fuse_inclip_clip2clip``'s lookup (bisect_left: a key equal to ``x`` at index 0 returns its value; an interior
    exact hit interpolates from the key before, which gives the same value)."""
    keys = [k for k, _ in table]
    idx = bisect_left(keys, x)
    if idx == 0:
        return table[0][1]
    if idx == len(keys):
        return table[-1][1]
    (k0, v0), (k1, v1) = table[idx - 1], table[idx]
    return v0 + (v1 - v0) * (x - k0) / (k1 - k0)


def fuse(clips: list[tuple[str, float]], clip2clip: dict[str, float], sf: SlowFast) -> tuple[float, list[dict]]:
    """Fused score per clip and their mean (``fuse_inclip_clip2clip`` with --dev_flag, as VBench-Long computes it).

    ``clips``: (long video file name, in-clip score) per clip; ``clip2clip``: per long video, the score of its
    first-frames video (absent for a single-clip video, which VBench looks up as 0). VBench-Long's "per video"
    in-clip list is in fact one entry per clip (``reorganize_clips_results`` groups by the clip's own path), and
    the lookup by the long video's file name gives every clip of a video that video's clip-to-clip score; so
    fused = w_inclip*clip + w_clip2clip*mapped per clip, except mapped == 0 (VBench's tables map 0 to 0: a
    single-clip video) where fused = clip, and the final score is the mean over clips."""
    rows = []
    for video, s_in in clips:
        raw = clip2clip.get(video)
        mapped = interpolate(sf.table, 0.0 if raw is None else raw)
        fused = s_in * sf.w_inclip + mapped * sf.w_clip2clip if mapped != 0.0 else s_in
        rows.append({"video_path": video, "inclip_score": s_in, "clip2clip_score": raw,
                     "mapped_clip2clip_score": mapped, "w_inclip": sf.w_inclip, "w_clip2clip": sf.w_clip2clip,
                     "video_results": fused})
    if not rows:
        raise ValueError("no clip to fuse")
    return sum(r["video_results"] for r in rows) / len(rows), rows
