"""The dedicated Python environment that holds the real ``vbench`` package.

VBench's pins (``transformers==4.33.2``, ``numpy<2``, its own torch/torchvision) clash with evalkit's, so it lives
in its own venv (5-7 GB), by default in the user cache folder (XDG base directory convention):
``$XDG_CACHE_HOME/lingen-evalkit/vbench-env``, i.e. ``~/.cache/lingen-evalkit/vbench-env``; ``$EVALKIT_CACHE_DIR``
moves the whole evalkit cache folder, ``$EVALKIT_VBENCH_ENV`` (or ``--env``) the environment alone. evalkit only
ever runs ``_worker.py`` with that venv's python. ``setup`` creates it, installs the pinned packages while printing
pip's progress (every line also goes to ``<env>-install.log`` next to the env), and verifies it (import vbench,
score a 4-frame video with the package's flicker function); a valid env whose stamp matches the pins is reused
without touching the network.

Profiles:
- ``minimal`` (default): vbench 0.1.5 without its declared dependencies, plus exactly what ``import vbench`` and
  the pixel-only ``temporal_flickering`` need (torch, torchvision, numpy<2, decord, OpenCV, tqdm). Runs offline.
- ``full``: vbench 0.1.5 with every declared dependency (transformers 4.33.2, pyiqa, openai-clip, timm, ...), for
  the learned dimensions on a machine with their weights (see weights.py). detectron2 (the four GRiT dimensions)
  is not on PyPI: install it by hand from git into the env (VBench README, "Installation": detectron2 from
  github.com/facebookresearch/detectron2).
- ``long``: ``full`` plus dreamsim, scenedetect, moviepy<2 and PyAV, which ``vbench2_beta_long`` imports or writes
  its clips with: needed by ``run --mode long --slow-fast`` (the clip-to-clip extractors run VBench-Long's own
  functions) and by the tests' VBench-Long references.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from evalkit.core.errors import ChoiceError, EvalkitError

VBENCH_VERSION = "0.1.5"  # newest on PyPI (2025-01-16, tag v0.1.5 = 1039fe6) on github.com/Vchitect/VBench
# torch < 2.6: 0.1.5's motion_smoothness loads AMT relying on torch.load's old weights_only=False default (torch 2.6
# made it True); PyPI's torch is the CUDA build (runs on CPU); torchvision 0.20.1 is the matching release.
TORCH_PINS = ("torch==2.5.1", "torchvision==0.20.1")
# vbench 0.1.5 declares pyiqa unpinned but imports its internals (pyiqa.archs.musiq_arch.MUSIQ) and evalkit's weight
# check builds MUSIQ with that version's defaults: pinned to the release pip resolves for vbench 0.1.5 + torch 2.5.1.
_FULL = TORCH_PINS + (f"vbench=={VBENCH_VERSION}", "pyiqa==0.1.10")
PROFILES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # profile -> (installed with dependencies, installed with --no-deps)
    "minimal": (TORCH_PINS + ("numpy<2", "decord==0.6.0", "opencv-python-headless==4.10.0.84", "tqdm"),
                (f"vbench=={VBENCH_VERSION}",)),
    "full": (_FULL, ()),
    # full + the undeclared imports of vbench2_beta_long (its utils.py imports scenedetect and moviepy.editor, which
    # moviepy 2 removed) and dreamsim for the --slow-fast background extractor; peft pinned to a release that still
    # imports with vbench's transformers 4.33.2 (dreamsim pulls peft unpinned); PyAV for torchvision.io.write_video,
    # with which VBench-Long's split_video_into_clips and save_segment write clips (av 14 dropped the string
    # pict_type that torchvision 0.20's writer sets).
    "long": (_FULL + ("dreamsim==0.2.1", "peft==0.5.0", "scenedetect==0.6.4", "moviepy<2", "av==13.1.0"), ()),
}
STAMP = "evalkit-vbench-env.json"
WORKER = Path(__file__).with_name("_worker.py")


@dataclasses.dataclass(frozen=True, kw_only=True)
class VBenchEnv:
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def stamp(self) -> Path:
        return self.path / STAMP

    def read_stamp(self) -> dict | None:
        try:
            return json.loads(self.stamp.read_text())
        except (OSError, json.JSONDecodeError):
            return None


def user_cache_dir() -> Path:
    """evalkit's user cache folder: ``$EVALKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/lingen-evalkit``, else
    ``~/.cache/lingen-evalkit`` (XDG base directory specification: a relative ``$XDG_CACHE_HOME`` is ignored)."""
    if os.environ.get("EVALKIT_CACHE_DIR"):
        return Path(os.environ["EVALKIT_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "lingen-evalkit"


def default_env_path() -> Path:
    """``$EVALKIT_VBENCH_ENV``, else ``<user cache folder>/vbench-env`` (see :func:`user_cache_dir`)."""
    if os.environ.get("EVALKIT_VBENCH_ENV"):
        return Path(os.environ["EVALKIT_VBENCH_ENV"]).expanduser()
    return user_cache_dir() / "vbench-env"


# pip lines worth showing while an install runs (the rest only goes to the log)
_PROGRESS = ("Collecting", "Downloading", "Installing collected", "Successfully", "Building wheel", "ERROR",
             "Using cached")
HEARTBEAT_S = 20.0


def _run(cmd: list[str], log: Path | None, what: str, heartbeat_s: float = HEARTBEAT_S) -> None:
    """Run ``cmd``; with a ``log``, every output line is appended to it and pip's progress lines are printed as
    they come (with the elapsed time), plus a line every ``heartbeat_s`` of silence (a long download prints
    nothing: pip shows no progress bar when its output is not a terminal)."""
    print(f"  $ {' '.join(cmd)}", flush=True)
    if log is None:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        out = proc.stdout + proc.stderr
        if proc.returncode != 0:
            tail = "\n".join(out.splitlines()[-25:])
            raise EvalkitError(f"{what} failed (exit {proc.returncode}); last lines:\n{tail}")
        return
    t0 = time.perf_counter()
    last = {"t": t0, "line": ""}
    lines: list[str] = []
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        done = threading.Event()

        def beat() -> None:
            while not done.wait(heartbeat_s / 4):
                now = time.perf_counter()
                if now - last["t"] >= heartbeat_s:
                    print(f"  [{now - t0:6.0f} s] ... still working (last: {last['line'][:90] or 'starting'})",
                          flush=True)
                    last["t"] = now

        ticker = threading.Thread(target=beat, daemon=True)
        ticker.start()
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            fh.flush()
            line = line.rstrip()
            lines = (lines + [line])[-25:]
            if line.lstrip().startswith(_PROGRESS):
                last["line"] = line.strip()
                last["t"] = time.perf_counter()
                print(f"  [{last['t'] - t0:6.0f} s] {last['line'][:150]}", flush=True)
        proc.wait()
        done.set()
        ticker.join()
    if proc.returncode != 0:
        raise EvalkitError(f"{what} failed (exit {proc.returncode}); last lines:\n" + "\n".join(lines)
                           + f"\nfull log: {log}")


def verify(env: VBenchEnv) -> dict:
    """Run the worker's selfcheck in ``env``; returns its report (versions, flicker score of a constant video)."""
    if not env.python.exists():
        raise EvalkitError(f"no VBench environment at {env.path}; run: python -m evalkit vbench setup")
    out = env.path / "selfcheck"
    out.mkdir(exist_ok=True)
    spec = out / "spec.json"
    spec.write_text(json.dumps({"action": "selfcheck", "output_dir": str(out)}))
    proc = subprocess.run([str(env.python), str(WORKER), str(spec)], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise EvalkitError(f"VBench environment {env.path} failed its check (exit {proc.returncode}):\n{tail}\n"
                           "rebuild it with: python -m evalkit vbench setup --force")
    info = json.loads((out / "worker.json").read_text())
    if info["versions"].get("vbench") != VBENCH_VERSION:
        raise EvalkitError(f"VBench environment {env.path} has vbench {info['versions'].get('vbench')}, "
                           f"evalkit pins {VBENCH_VERSION}; rebuild with: python -m evalkit vbench setup --force")
    return info


def setup(path: Path | None = None, profile: str = "minimal", force: bool = False,
          base_python: str | None = None) -> dict:
    """Create (or reuse) and verify the VBench environment; returns the stamp written into it."""
    if profile not in PROFILES:
        raise ChoiceError("profile", profile, PROFILES, what="VBench environment profile")
    env = VBenchEnv(path=Path(path) if path else default_env_path())
    with_deps, no_deps = PROFILES[profile]
    wanted = {"vbench_version": VBENCH_VERSION, "profile": profile, "with_deps": list(with_deps),
              "no_deps": list(no_deps)}
    stamp = env.read_stamp()
    if not force and stamp and all(stamp.get(k) == v for k, v in wanted.items()):
        try:
            info = verify(env)
            print(f"VBench environment {env.path} is ready (vbench {info['versions']['vbench']}, "
                  f"torch {info['versions'].get('torch')}, profile {profile}); reused")
            return stamp
        except EvalkitError as exc:
            print(f"existing environment failed its check, reinstalling: {exc}", flush=True)
    t0 = time.perf_counter()
    env.path.parent.mkdir(parents=True, exist_ok=True)
    log = env.path.parent / f"{env.path.name}-install.log"
    log.write_text("")
    print(f"building VBench environment at {env.path} (profile {profile}; log {log}); "
          "the CUDA build of torch is several GB", flush=True)
    if not env.python.exists() or force:
        _run([base_python or sys.executable, "-m", "venv", "--clear", str(env.path)], log, "creating the venv")
    pip = [str(env.python), "-m", "pip", "install", "--disable-pip-version-check"]
    _run(pip + list(with_deps), log, "pip install " + " ".join(with_deps))
    if no_deps:
        _run(pip + ["--no-deps"] + list(no_deps), log, "pip install --no-deps " + " ".join(no_deps))
    info = verify(env)
    size = sum(f.stat().st_size for f in env.path.rglob("*") if f.is_file() and not f.is_symlink())
    stamp = {**wanted, "versions": info["versions"], "install_seconds": round(time.perf_counter() - t0, 1),
             "size_bytes": size, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    env.stamp.write_text(json.dumps(stamp, indent=2) + "\n")
    print(f"VBench environment ready at {env.path}: vbench {info['versions']['vbench']}, "
          f"{stamp['install_seconds']} s, {size / 2**30:.2f} GiB", flush=True)
    return stamp


def require(path: Path | None = None) -> VBenchEnv:
    """The environment for a run: it must exist and carry a stamp (setup finished); else a clear error."""
    env = VBenchEnv(path=Path(path) if path else default_env_path())
    if not env.python.exists() or env.read_stamp() is None:
        raise EvalkitError(f"no ready VBench environment at {env.path} (set $EVALKIT_VBENCH_ENV or --env to use "
                           "another); create it with: python -m evalkit vbench setup")
    return env
