"""Run folders: ``runs/<experiment>/<run_id>/`` with ``manifest.json`` (provenance) and its records.

Not a paper figure: where every verb (``sweep``, ``train``, ``generate``, ``vbench``) puts its outputs.

* **Provenance.** ``manifest.json`` holds the resolved config and its hash, the git sha (``-dirty`` with
  uncommitted changes), package versions and the hardware. Concurrent jobs of one run each get their own
  ``manifest.<n>.json`` (claimed with ``os.link``, which fails if the name exists), none overwritten.
* **Resume or start.** :func:`open_run` reuses the newest run folder of the experiment whose manifest has the same
  config hash (so an interrupted command resumes by running it again), starts a new one when the config changed
  (a changed input never mixes into an old run), and refuses an explicit ``--run-dir`` that holds another config.
* **One writer.** :class:`WriterLock` is an exclusive ``flock`` on ``<folder>/.writer[.<shard>].lock``: a second
  command on the same folder refuses at once, naming the holder (pid, host, command, start time). The kernel drops
  the lock when its process dies, ``kill -9`` included, so a crashed run never leaves a stale lock.
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import platform
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from evalkit.core.errors import EvalkitError, FieldError
from evalkit.core.experiments import REPO_ROOT
from evalkit.core.hashing import json_sha256
from evalkit.core.schema import now_iso

DEFAULT_RUNS_ROOT = REPO_ROOT / "runs"


def config_hash(config: Any, exclude: tuple[str, ...] = ()) -> str:
    """The hash a run folder is resumed by: sha256 of the typed config's non-default values (``typed.non_defaults``;
    top-level sections in ``exclude`` left out), 12 hex digits. A setting added to the schema later, at a default
    that keeps the old behaviour, leaves every existing hash as it was; a changed default is caught when resuming
    (:func:`open_run` compares the stored resolved config)."""
    from evalkit.core.typed import non_defaults

    data = non_defaults(config)
    for key in exclude:
        data.pop(key, None)
    return json_sha256(data)[:12]


def first_difference(stored: Any, current: Any, path: str = "") -> str | None:
    """The first key (dotted) whose value differs between two resolved configs, looking only at keys both have
    (a key only one of them has is a setting added or removed since: its default rules); None when they agree."""
    if isinstance(stored, dict) and isinstance(current, dict):
        for key in sorted(stored.keys() & current.keys()):
            diff = first_difference(stored[key], current[key], f"{path}.{key}" if path else key)
            if diff is not None:
                return diff
        return None
    return None if stored == current else path or "<config>"


def git_sha(root: Path = REPO_ROOT) -> str:
    """The commit of the working tree, with ``-dirty`` when it has uncommitted changes. Outside git: the
    ``EVALKIT_GIT_SHA`` environment variable (a copy of a checkout shipped without ``.git``, e.g. to the GPU
    machine by benchmarks/gpu/run.sh, which sets it from the commit recorded when its wheels were gathered), else
    ``unknown``."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("EVALKIT_GIT_SHA", "").strip() or "unknown"


def versions() -> dict[str, str]:
    """Versions of the packages that change numbers (absent ones are 'absent')."""
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for pkg in ("torch", "numpy", "triton", "mamba-ssm", "flash-attn", "fvcore", "matplotlib", "av", "submitit"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def hardware() -> dict[str, Any]:
    """CPU/GPU description of this machine; imports torch only if it is already imported."""
    info: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(),
                            "cpu_count": os.cpu_count(), "hostname": platform.node()}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_count=torch.cuda.device_count(),
                    gpu_memory_bytes=props.total_memory, cuda=torch.version.cuda)
    else:
        info.update(gpu=None, gpu_count=0)
    return info


def new_run_id(prefix: str = "") -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{prefix}{stamp}-{os.getpid()}"


def new_run_dir(root: Path | str, prefix: str = "") -> Path:
    """Create and return a fresh ``root/<run_id>`` folder. Run ids have one-second resolution, so a second run
    started by the same process within that second gets a ``-2``, ``-3`` suffix; the folder is claimed with an
    exclusive mkdir, so no two runs ever share it."""
    base = Path(root) / new_run_id(prefix)
    base.parent.mkdir(parents=True, exist_ok=True)
    run_dir, n = base, 1
    while True:
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            n += 1
            run_dir = base.with_name(f"{base.name}-{n}")


def command_line(argv: list[str] | None = None) -> str:
    """The command as a user would type it again: ``python -m evalkit <verb> <args>`` (no interpreter path)."""
    import shlex

    return " ".join(["python -m evalkit", *(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))])


def portable(value: Any) -> Any:
    """``value`` with every path inside the repository written relative to it (manifests are published: they must
    not carry the machine's checkout path)."""
    root = str(REPO_ROOT) + os.sep
    if isinstance(value, str):
        return value.replace(root, "")
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v) for v in value]
    return value


def write_manifest(run_dir: Path, **fields: Any) -> Path:
    """Write ``manifest.json`` (git sha, versions, hardware, plus ``fields``, repository paths made relative); an
    existing manifest is kept and a ``manifest.<n>.json`` is added for the new job."""
    run_dir.mkdir(parents=True, exist_ok=True)
    data = {"created": now_iso(), "git_sha": git_sha(), "versions": versions(), "hardware": hardware(),
            **portable(fields)}
    # written to a private temp file, then claimed with os.link (fails if the name exists): concurrent jobs
    # (torchrun ranks, array tasks) each get their own manifest, none overwritten, no shared temp file
    tmp = run_dir / f".manifest.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        try:
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        except OSError as exc:     # name the manifest, not its temporary (which the finally removes)
            raise OSError(exc.errno, exc.strerror, str(run_dir / "manifest.json")) from exc
        n = 0
        while True:
            path = run_dir / ("manifest.json" if n == 0 else f"manifest.{n}.json")
            try:
                os.link(tmp, path)
                return path
            except FileExistsError:
                n += 1
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def read_manifest(run_dir: Path | str) -> dict[str, Any] | None:
    """The first manifest of a run folder; a malformed one is an error naming the file."""
    path = Path(run_dir) / "manifest.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FieldError(str(path), f"not valid JSON ({exc})") from None


# ---------------------------------------------------------------------------------------------------------------
# resume or start
# ---------------------------------------------------------------------------------------------------------------
def _without(config: Any, ignore: tuple[str, ...]) -> Any:
    return {k: v for k, v in config.items() if k not in ignore} if isinstance(config, dict) else config


def matching_runs(root: Path, config_hash: str, config: Any = None, ignore: tuple[str, ...] = ()) -> list[Path]:
    """Run folders under ``root`` whose manifest has ``config_hash`` (and, when ``config`` is given, whose stored
    resolved config agrees with it on every key both have but the top-level sections in ``ignore``:
    :func:`first_difference`), oldest first."""
    if not Path(root).is_dir():
        return []
    found = []
    for d in Path(root).iterdir():
        m = read_manifest(d) if d.is_dir() else None
        if m is not None and m.get("config_hash") == config_hash:
            if config is not None and first_difference(_without(m.get("config"), ignore),
                                                       _without(config, ignore)) is not None:
                continue
            found.append((str(m.get("created", "")), d.name, d))
    return [d for _, _, d in sorted(found)]


def open_run(root: Path, config_hash: str, *, run_dir: Path | None = None, new_run: bool = False,
             manifest: dict[str, Any], ignore: tuple[str, ...] = ()) -> tuple[Path, bool]:
    """(run folder, resumed?): ``run_dir`` if given (refused if it holds another config), else the newest folder
    under ``root`` with this config (unless ``new_run``), else a new one; a new folder gets its manifest
    (``manifest`` fields plus ``run_id`` and ``config_hash``). "This config": the same hash and, where the manifest
    stores its resolved ``config``, the same value for every key both configs have (a default changed since the
    run was made is a different config) but the sections in ``ignore`` (those the hash leaves out too)."""
    config = manifest.get("config")
    if run_dir is not None:
        run_dir = Path(run_dir)
        existing = read_manifest(run_dir)
        if existing is not None:
            if existing.get("config_hash") != config_hash:
                raise FieldError("--run-dir", f"{run_dir} holds config {existing.get('config_hash')}, this command "
                                              f"resolves to {config_hash}: use another --run-dir or --new-run")
            diff = (first_difference(_without(existing.get("config"), ignore), _without(config, ignore))
                    if config is not None else None)
            if diff is not None:
                raise FieldError("--run-dir", f"{run_dir} was made with another value of {diff} (a default changed "
                                              "since): use another --run-dir or --new-run")
            return run_dir, True
        if run_dir.exists() and any(run_dir.iterdir()):
            raise FieldError("--run-dir", f"{run_dir} exists, is not empty and has no manifest.json: not a run "
                                          "folder of this tool")
    elif not new_run:
        found = matching_runs(root, config_hash, config, ignore)
        if found:
            return found[-1], True
    created = run_dir is None or not run_dir.exists()
    if run_dir is None:
        run_dir = new_run_dir(root)
    try:
        write_manifest(run_dir, run_id=run_dir.name, config_hash=config_hash, **manifest)
    except OSError:
        if created:                # a full or read-only disk: leave no empty run folder behind
            try:
                run_dir.rmdir()
            except OSError:
                pass
        raise
    return run_dir, False


# ---------------------------------------------------------------------------------------------------------------
# one writer per folder
# ---------------------------------------------------------------------------------------------------------------
class LockedError(EvalkitError):
    """Another command is writing into the same folder."""


class WriterLock:
    """``with WriterLock(folder, shard=None): ...`` holds ``folder/.writer[.<shard>].lock`` exclusively.

    ``shard`` names one of several cooperating writers (a torchrun rank), which lock their own file; two commands
    with the same shard in the same folder exclude each other."""

    def __init__(self, folder: Path | str, shard: str | None = None, *, what: str = "") -> None:
        self.folder = Path(folder)
        self.path = self.folder / (f".writer.{shard}.lock" if shard else ".writer.lock")
        self.what = what or command_line()
        self._fd: int | None = None

    def __enter__(self) -> WriterLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.filename is None:
                raise OSError(exc.errno, exc.strerror, str(self.path)) from exc
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            try:
                info = json.loads(holder)
                who = (f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')} "
                       f"({info.get('command')})")
            except json.JSONDecodeError:
                who = "another process"
            raise LockedError(f"{self.folder} is being written by {who}: wait for it to finish (it resumes from "
                              "there), or write elsewhere (--new-run / another --run-dir or --out)") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": platform.node(), "since": now_iso(),
                                      "command": self.what}).encode(), 0)
        except OSError as exc:     # a full disk: release the lock and name the file
            os.close(fd)
            raise OSError(exc.errno, exc.strerror, str(self.path)) from exc
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)      # releases the lock; the file stays (removing it would race a new holder)
            self._fd = None
