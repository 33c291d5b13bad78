"""Study files of a human preference study (the paper's Figs. 8, 9, 10b, 12, 19) and the videos they name.

A study is two or more *arms* (a name and a folder of ``{prompt}-{index}.mp4`` files, the layout ``generate``
writes), one prompt list, the sample indices ``0..samples-1``, the questions raters answer and the report
settings. Keys a study file leaves out come from ``experiments/humaneval/defaults.yaml`` (the paper's questions,
the tie rule, the bootstrap); unknown keys are errors with a did-you-mean (``evalkit.core.typed``).

``load_study(path)`` validates the file; ``scan_videos(study)`` checks every arm's folder against the prompt list
(what is missing and what is extra, per arm, all at once) and hashes every video, before any server starts. Every
video must be a regular MP4 file inside its arm's folder: a symlink that leads out of the folder, or a file that
does not start with an ISO media box (``ftyp`` ...), is an error with or without ``--no-probe`` (the server would
otherwise hand that file to every rater's browser). The
*identity* of a study (``Inputs.study_hash``) covers what the votes depend on: prompts, samples, arms, pairs,
questions, seed and the sha256 of every video. The report settings are not part of it: they change the analysis,
not what was asked.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from evalkit.core.errors import ChoiceError, EvalkitError, FieldError
from evalkit.core.experiments import read_yaml
from evalkit.core.runs import REPO_ROOT
from evalkit.core.hashing import file_sha256, json_sha256
from evalkit.core.typed import STRICT_NAME, apply_overrides, deep_merge, from_dict, plain_name, to_dict

DEFAULTS = REPO_ROOT / "experiments" / "humaneval" / "defaults.yaml"
BROWSER_PIX_FMTS = ("yuv420p", "yuvj420p")   # what every browser's H.264 decoder plays (4:4:4 is Chromium-only)
# the box types an MP4 (ISO/IEC 14496-12 base media file) may start with; bytes 4..8 of the file
MP4_FIRST_BOXES = (b"ftyp", b"styp", b"moov", b"mdat", b"free", b"skip", b"wide")


@dataclass(frozen=True, kw_only=True)
class Question:
    id: str
    label: str
    text: str
    group: Literal["quality", "alignment"]


@dataclass(frozen=True, kw_only=True)
class Bootstrap:
    unit: Literal["prompt", "item", "rater"]
    resamples: int
    confidence: float
    seed: int


@dataclass(frozen=True, kw_only=True)
class ReportSettings:
    ties: Literal["half", "exclude", "separate"]
    bootstrap: Bootstrap


@dataclass(frozen=True, kw_only=True)
class Study:
    name: str
    prompts: str                     # prompt file (one prompt per line), relative to the study file
    arms: dict[str, str]             # arm name -> folder of {prompt}-{index}.mp4, relative to the study file
    questions: tuple[Question, ...]
    seed: int
    pairs: Literal["reference", "all"]
    report: ReportSettings
    samples: int = 1                 # sample indices 0..samples-1 of every prompt
    reference: str | None = None     # the arm whose win rate is reported; default: the first arm
    paper_figure: str | None = None  # the paper figure this study mirrors, e.g. "Fig. 8" (shown in the report)
    description: str = ""

    @property
    def reference_arm(self) -> str:
        return self.reference or next(iter(self.arms))

    def pairs_list(self) -> list[tuple[str, str]]:
        """(x, y) arm pairs compared; x is the reference side whose wins the report counts."""
        names = list(self.arms)
        if self.pairs == "reference":
            ref = self.reference_arm
            return [(ref, other) for other in names if other != ref]
        return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]

    def question_ids(self) -> list[str]:
        return [q.id for q in self.questions]


@dataclass(frozen=True, kw_only=True)
class Video:
    arm: str
    prompt: str
    index: int
    path: Path
    sha256: str


@dataclass(frozen=True, kw_only=True)
class Inputs:
    """A validated study with its resolved paths and every video it shows."""
    study: Study
    path: Path                       # the study file
    prompts: tuple[str, ...]
    folders: dict[str, Path]         # arm -> resolved folder
    videos: tuple[Video, ...]
    warnings: tuple[str, ...] = ()

    @property
    def study_hash(self) -> str:
        s = self.study
        ident = {"name": s.name, "prompts": list(self.prompts), "samples": s.samples, "arms": list(s.arms),
                 "pairs": s.pairs_list(), "questions": to_dict(s.questions), "seed": s.seed,
                 "videos": sorted([v.arm, v.prompt, v.index, v.sha256] for v in self.videos)}
        return json_sha256(ident)


def _check(study: Study, where: str) -> None:
    plain_name(f"{where}.name", study.name, strict=True)
    if len(study.arms) < 2:
        raise FieldError(f"{where}.arms", f"a study compares two or more arms, got {len(study.arms)}")
    for arm in study.arms:
        plain_name(f"{where}.arms.{arm}", arm, strict=True)
    if study.reference is not None and study.reference not in study.arms:
        raise ChoiceError(f"{where}.reference", study.reference, study.arms, what="arm")
    if study.samples < 1:
        raise FieldError(f"{where}.samples", f"must be >= 1, got {study.samples}")
    if not study.questions:
        raise FieldError(f"{where}.questions", "needs at least one question")
    ids = [q.id for q in study.questions]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise FieldError(f"{where}.questions", f"question ids must be unique, repeated: {dup}")
    for i, q in enumerate(study.questions):
        if not STRICT_NAME.fullmatch(q.id) or not q.label.strip() or not q.text.strip():
            raise FieldError(f"{where}.questions[{i}]", f"needs an id (letters, digits, '_'), a label and a text: {q}")
    b = study.report.bootstrap
    if b.resamples < 100:
        raise FieldError(f"{where}.report.bootstrap.resamples", f"must be >= 100 for an interval, got {b.resamples}")
    if not 0.5 < b.confidence < 1:
        raise FieldError(f"{where}.report.bootstrap.confidence", f"must be in (0.5, 1), got {b.confidence}")


def parse_study(raw: Any, *, where: str, sets: Sequence[str] = (), defaults: Path = DEFAULTS) -> Study:
    """A study mapping merged over the defaults file, ``--set`` applied, validated."""
    if not isinstance(raw, Mapping):
        raise FieldError(where, f"expected a mapping at the top level, got {type(raw).__name__}")
    base = read_yaml(defaults)
    data = deep_merge(base, raw)
    if data.get("questions") == "paper":              # explicit request for the defaults file's questions
        data["questions"] = base["questions"]
    study = from_dict(Study, data, where)
    if sets:
        study = from_dict(Study, apply_overrides(to_dict(study), list(sets)), "--set")
    _check(study, where)
    return study


def load_study(path: str | Path, sets: Sequence[str] = ()) -> tuple[Study, Path]:
    path = Path(path)
    if not path.is_file():
        raise FieldError("study", f"file not found: {path} (a study YAML, e.g. experiments/humaneval/example.yaml)")
    return parse_study(read_yaml(path) or {}, where=path.stem, sets=sets), path.resolve()


def _read_prompts(path: Path, where: str) -> list[str]:
    from evalkit.generate.prompts import read_prompt_file

    try:
        return read_prompt_file(path)
    except FieldError as exc:   # same checks as `generate --prompts`, reported under the study's field
        raise FieldError(where, str(exc).split(": ", 1)[-1]) from exc


def check_file(path: Path, folder: Path) -> None:
    """``path`` (named by the study in ``folder``, resolved) is a regular file inside ``folder``, links followed,
    and starts like an MP4; else a FieldError naming it."""
    real = path.resolve()
    if not real.is_relative_to(folder):
        raise FieldError("video", f"{path} is a symlink to {real}, outside the arm folder {folder}: copy the file "
                                  "into the folder (the rating page serves no file from elsewhere)")
    if not real.is_file():
        raise FieldError("video", f"{path}: not a regular file")
    with open(real, "rb") as fh:
        head = fh.read(8)
    if len(head) < 8 or head[4:8] not in MP4_FIRST_BOXES:
        raise FieldError("video", f"{path}: not an MP4 file (bytes 4-8 are {head[4:8]!r}, not an ISO media box "
                                  "such as b'ftyp'): the rating page serves .mp4 videos only")


def probe_video(path: Path) -> str | None:
    """Open ``path`` with PyAV and decode its first frame; returns a playability warning or None. An unreadable
    file is an error naming it (a rater would see a blank player and vote anyway)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise FieldError("video", f"{path}: no video stream")
            stream = container.streams.video[0]
            codec, pix = stream.codec_context.name, stream.codec_context.pix_fmt
            next(container.decode(stream))
    except (av.error.FFmpegError, StopIteration, OSError) as exc:
        raise FieldError("video", f"{path}: cannot be decoded ({exc.__class__.__name__}: {exc})") from exc
    if codec == "h264" and pix not in BROWSER_PIX_FMTS:
        return f"{path.name}: H.264 {pix} plays in Chromium but not in Firefox/Safari (write yuv420p)"
    return None


def scan_videos(study: Study, study_path: Path, *, probe: bool = True) -> Inputs:
    """Check every arm folder against the prompt list and hash every video. Missing and extra files are one
    error listing both, per arm."""
    from evalkit.vbench.completeness import video_name

    root = Path(study_path).parent
    prompts = _read_prompts(root / study.prompts, f"{study_path.stem}.prompts")
    expected = {video_name(p, i): (p, i) for p in prompts for i in range(study.samples)}
    problems, videos, folders, warnings = [], [], {}, []
    for arm, folder in study.arms.items():
        d = (root / folder).resolve()
        folders[arm] = d
        if not d.is_dir():
            problems.append(f"arm {arm!r}: folder {d} does not exist")
            continue
        present = {p.name for p in d.glob("*.mp4") if not p.name.startswith(".")}
        missing = sorted(set(expected) - present)
        extra = sorted(present - set(expected))
        if missing:
            problems.append(f"arm {arm!r} ({d}): {len(missing)} of {len(expected)} videos missing: "
                            + ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
        if extra:
            problems.append(f"arm {arm!r} ({d}): {len(extra)} videos not in the prompt list x samples "
                            f"0..{study.samples - 1}: " + ", ".join(extra[:10]) + (" ..." if len(extra) > 10 else ""))
        if missing or extra:
            continue
        for name, (prompt, index) in expected.items():
            path = d / name
            check_file(path, d)
            if probe and (w := probe_video(path)):
                warnings.append(f"arm {arm!r}: {w}")
            videos.append(Video(arm=arm, prompt=prompt, index=index, path=path, sha256=file_sha256(path)))
    if problems:
        raise EvalkitError(f"study {study.name!r}: the video folders do not match {study.prompts} "
                           f"({len(prompts)} prompts x {study.samples} samples, names '{{prompt}}-{{index}}.mp4'):\n  "
                           + "\n  ".join(problems))
    return Inputs(study=study, path=Path(study_path), prompts=tuple(prompts), folders=folders,
                  videos=tuple(videos), warnings=tuple(warnings))
