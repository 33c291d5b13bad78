"""`python -m evalkit ls` and every `--help` (each verb, each sub-command) never import torch: they must stay
instant on any machine (their wall time is measured by benchmarks/cli_startup.py, not here)."""
from __future__ import annotations

import subprocess
import sys

# runs every help text in one fresh interpreter, then checks what was imported
CODE = r"""
import contextlib, io, re, sys
from evalkit.cli import VERBS, main

def run(argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            rc = main(argv)
        except SystemExit as exc:   # argparse exits after --help
            rc = exc.code
    assert rc in (0, None), (argv, rc)
    return out.getvalue()

ran = [["ls"], ["--help"]]
run(["ls"]); run(["--help"])
for verb in VERBS:
    text = run([verb, "--help"])
    ran.append([verb, "--help"])
    usage = text.split("\n\n")[0]
    subs = re.search(r"\{([\w,-]+)\} \.\.\.", usage)   # sub-commands, not an option's choices
    for sub in (subs.group(1).split(",") if subs else []):
        run([verb, sub, "--help"])
        ran.append([verb, sub, "--help"])
heavy = sorted(m for m in ("torch", "pandas", "matplotlib") if m in sys.modules)
print(len(ran), " ".join("/".join(a) for a in ran))
assert not heavy, f"imported {heavy}"
"""


def test_ls_and_every_help_do_not_import_torch() -> None:
    res = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    n, names = res.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(n) >= 2 + 7 + 3 and "vbench/run/--help" in names and "report/--help" in names


def test_registry_metadata_is_torch_free() -> None:
    """The measurement registry (names, versions, settings sections, requires_gpu) and planning a sweep import no
    torch."""
    code = ("import sys; from evalkit import measure; from evalkit.sweep.config import load_experiment; "
            "from evalkit.sweep.plan import plan_points; "
            "assert all(isinstance(e.meta['version'], int) and e.meta['settings'] for e in measure.MEASUREMENTS); "
            "assert measure.version('flops') >= 1 and measure.requires_gpu('memory'); "
            "assert plan_points(load_experiment('scaling')); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
