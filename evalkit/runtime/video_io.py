"""Video files: write and read mp4 with PyAV (the container VBench reads).

Frames are ``uint8`` arrays of shape (T, H, W, 3), RGB. H.264 in ``yuv420p`` is the default pixel format because
every reader VBench uses (decord, cv2, torchvision) decodes it; ``yuv444p`` keeps full colour resolution for
tiny videos where 4:2:0 chroma subsampling would smear a 32x32 frame. Writes go to a temporary name and are
renamed at the end, so an interrupted run never leaves a truncated ``{prompt}-{i}.mp4`` that a resume would skip.
"""
from __future__ import annotations

import glob
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from evalkit.core.errors import ChoiceError, FieldError

PIX_FMTS = ("yuv420p", "yuv444p")


def write_video(path: str | Path, frames: np.ndarray, fps: int, *, pix_fmt: str = "yuv420p", crf: int = 10) -> Path:
    """Write ``frames`` (T, H, W, 3) uint8 RGB to ``path`` as H.264 mp4 at ``fps``; atomic (tmp + rename)."""
    import av

    if pix_fmt not in PIX_FMTS:
        raise ChoiceError("pix_fmt", pix_fmt, PIX_FMTS)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise FieldError("frames", f"expected uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    t, h, w, _ = frames.shape
    if pix_fmt == "yuv420p" and (h % 2 or w % 2):
        raise FieldError("frames", f"yuv420p needs even height and width, got {h}x{w}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        with av.open(str(tmp), mode="w") as container:
            stream = container.add_stream("libx264", rate=Fraction(int(fps), 1))
            stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
            stream.options = {"crf": str(crf), "preset": "medium"}
            for i in range(t):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[i]), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():  # flush the encoder
                container.mux(packet)
        tmp.replace(path)
    except BaseException:               # an error, Ctrl-C or a SIGTERM turned into SystemExit: no stray temp file
        tmp.unlink(missing_ok=True)
        raise
    return path


def temp_name(path: Path) -> Path:
    """Where :func:`write_video` writes ``path`` before the rename (hidden, with the writer's pid)."""
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp.mp4")


def remove_stale_temps(path: Path) -> int:
    """Remove the temporary files a killed writer of ``path`` left (``kill -9`` runs no cleanup); call it only
    for a file this process owns (its item). Returns how many were removed."""
    n = 0
    for tmp in path.parent.glob(f".{glob.escape(path.stem)}.*.tmp.mp4"):
        tmp.unlink(missing_ok=True)
        n += 1
    return n


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """Decode every frame of ``path``: returns (frames (T, H, W, 3) uint8 RGB, fps)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.base_rate or 0)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    if not frames:
        raise FieldError("video", f"{path}: no frames decoded")
    return np.stack(frames), fps
