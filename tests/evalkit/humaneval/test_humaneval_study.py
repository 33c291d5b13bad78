"""Study files and their video folders: defaults, unknown keys, folders that do not match the prompt list,
unreadable videos, and the CLI's checks before anything is served."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from evalkit.core.errors import ChoiceError, EvalkitError, FieldError
from evalkit.humaneval.cli import main
from evalkit.humaneval.study import load_study, scan_videos


def test_defaults_are_the_paper_questions(make_study):
    study, path = load_study(make_study())
    assert [q.id for q in study.questions] == ["quality", "frame_consistency", "motion_naturalness",
                                               "motion_match", "subject_match", "overall_alignment"]
    assert {q.group for q in study.questions} == {"quality", "alignment"}
    assert study.report.ties == "half" and study.report.bootstrap.unit == "prompt"
    assert study.reference_arm == "lingen" and study.pairs_list() == [("lingen", "dit")]
    inputs = scan_videos(study, path)
    assert len(inputs.videos) == 6 and len({v.sha256 for v in inputs.videos}) == 2   # one clip per arm colour


def test_unknown_keys_and_bad_choices_name_the_field(make_study):
    with pytest.raises(ChoiceError, match=r"study\.questons: unknown key .*Did you mean 'questions'"):
        load_study(make_study(questons="paper"))
    with pytest.raises(ChoiceError, match=r"report\.ties: unknown value 'halves'.*exclude, half, separate"):
        load_study(make_study(report={"ties": "halves"}))
    with pytest.raises(ChoiceError, match=r"reference: unknown arm 'lingn'.*Did you mean 'lingen'"):
        load_study(make_study(reference="lingn"))
    with pytest.raises(ChoiceError, match=r"bootstrap\.unit: unknown value 'vote'"):
        load_study(make_study(report={"bootstrap": {"unit": "vote"}}))
    with pytest.raises(FieldError, match="two or more arms"):
        load_study(make_study(arms=("lingen",)))
    with pytest.raises(ChoiceError, match=r"questions\[0\]\.lable: unknown key"):
        load_study(make_study(questions=[{"id": "q", "lable": "Q", "text": "?", "group": "quality"}]))
    with pytest.raises(ChoiceError, match=r"--set qualiy"):
        load_study(make_study(), sets=["qualiy=1"])


def test_custom_questions_and_all_pairs(make_study):
    qs = [{"id": "sharp", "label": "Sharpness", "text": "Which is sharper?", "group": "quality"}]
    study, _ = load_study(make_study(arms=("lingen", "dit", "mamba"), pairs="all", questions=qs))
    assert study.question_ids() == ["sharp"]
    assert study.pairs_list() == [("lingen", "dit"), ("lingen", "mamba"), ("dit", "mamba")]
    study, _ = load_study(make_study(arms=("lingen", "dit", "mamba"), name="ref", reference="dit"))
    assert study.pairs_list() == [("dit", "lingen"), ("dit", "mamba")]


def test_folders_must_match_the_prompt_list(make_study):
    path = make_study(prompts=("a red fox", "a blue car"), samples=2)
    root = path.parent
    (root / "lingen" / "a blue car-1.mp4").unlink()                  # missing
    (root / "lingen" / "a green boat-0.mp4").write_bytes(b"x")       # extra
    (root / "dit" / "a red fox-2.mp4").write_bytes(b"x")             # extra index
    study, p = load_study(path)
    with pytest.raises(EvalkitError) as exc:
        scan_videos(study, p)
    msg = str(exc.value)
    assert "2 prompts x 2 samples" in msg
    assert "arm 'lingen'" in msg and "1 of 4 videos missing: a blue car-1.mp4" in msg
    assert "a green boat-0.mp4" in msg and "arm 'dit'" in msg and "a red fox-2.mp4" in msg
    # a missing folder and a bad prompt file are named too
    path2 = make_study(name="nofolder", videos=False)
    (path2.parent / "dit").rmdir()
    with pytest.raises(EvalkitError, match=r"arm 'dit': folder .*nofolder/dit does not exist"):
        scan_videos(*load_study(path2))
    (path2.parent / "prompts.txt").write_text("a\n\nb\n")
    with pytest.raises(FieldError, match=r"study\.prompts: .*empty line"):
        scan_videos(*load_study(path2))


def test_unreadable_and_unportable_videos(make_study):
    from conftest import write_clip

    path = make_study(prompts=("p",))
    root = path.parent
    write_clip(root / "dit" / "p-0.mp4", (1, 2, 3), pix_fmt="yuv444p")
    inputs = scan_videos(*load_study(path))
    assert len(inputs.warnings) == 1 and "yuv444p" in inputs.warnings[0] and "Firefox" in inputs.warnings[0]
    data = (root / "lingen" / "p-0.mp4").read_bytes()
    (root / "lingen" / "p-0.mp4").write_bytes(data[: len(data) // 3])  # truncated
    with pytest.raises(FieldError, match=r"lingen/p-0\.mp4: cannot be decoded"):
        scan_videos(*load_study(path))
    assert len(scan_videos(*load_study(path), probe=False).videos) == 2


def test_cli_refuses_before_serving(make_study, capsys):
    path = make_study()
    with pytest.raises(FieldError, match=r"--host: 0\.0\.0\.0 opens the study .*--public"):
        main(["serve", str(path), "--host", "0.0.0.0"])
    with pytest.raises(ChoiceError, match="Did you mean 'serve'"):
        main(["serv", str(path)])
    with pytest.raises(FieldError, match="serve the study first"):
        main(["report", str(path), "--db", str(path.parent / "none.sqlite")])
    db = path.parent / "s.sqlite"
    assert main(["init", str(path), "--db", str(db)]) == 0
    assert main(["token", str(path), "ann", "--db", str(db), "--url", "http://10.1.2.3:9000"]) == 0
    out = capsys.readouterr().out
    assert "link for ann: http://10.1.2.3:9000/?t=" in out
    with pytest.raises(EvalkitError, match="no votes yet"):
        main(["report", str(path), "--db", str(db)])
    assert main(["status", str(path), "--db", str(db)]) == 0
    assert "ann" in capsys.readouterr().out and yaml.safe_load(path.read_text())["name"] == "test_study"


def test_help_is_fast_and_torch_free():
    code = ("import sys, runpy; sys.argv = ['evalkit', 'humaneval', '--help']\n"
            "from evalkit import cli\n"
            "try:\n    cli.main(['humaneval', '--help'])\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in ('torch', 'starlette', 'uvicorn', 'numpy', 'pandas') if m in sys.modules]\n"
            "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "examples:" in r.stdout and "humaneval serve" in r.stdout


def test_example_study_file_is_valid():
    """The example in experiments/humaneval/ (the README's) parses with the defaults: every key is known."""
    from evalkit.core.runs import REPO_ROOT

    study, path = load_study(REPO_ROOT / "experiments" / "humaneval" / "example.yaml")
    assert study.name == "lingen_vs_dit" and study.reference_arm == "lingen" and study.paper_figure == "Fig. 8"
    assert len(study.questions) == 6 and study.pairs_list() == [("lingen", "dit")]
