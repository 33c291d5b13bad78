"""``python -m evalkit report``: render, check or publish the report (tables, figures, index) from records.

Renders the Fig. 1b / 6 / 20 analogues, the Table 2 analogue, VBench tables, the paper's tables with their
integrity check and a paper-vs-measured table (see evalkit/report/build.py). ``--check`` is what CI runs.
"""
from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from evalkit.core.errors import EvalkitError, FieldError
from evalkit.core.runs import REPO_ROOT

# the renderers (pandas, matplotlib: ~1-2 s to import) are imported where they run, so --help stays instant

EPILOG = """examples:
  python -m evalkit report                         # render from every run under reports/data/ + experiments/paper/
  python -m evalkit report --check                 # CI: fail listing stale/missing/extra files
  python -m evalkit report runs/scaling/<run_id> --out /tmp/preview   # preview a run (<run_id>: see runs/)
  python -m evalkit report --publish runs/scaling/<run_id>
  python -m evalkit report --rehash-data           # after removing a published run by hand: re-verify, re-digest
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evalkit report", description=__doc__,
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dirs", nargs="*", type=Path,
                   help="run folders (manifest.json + results*.jsonl); default: every reports/data/<exp>/<run_id>/")
    p.add_argument("--reports-dir", type=Path, default=REPO_ROOT / "reports",
                   help="the committed report tree (default: reports/)")
    p.add_argument("--out", type=Path, default=None, help="render here instead of --reports-dir")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=False,
                   help="regenerate into a temp folder and fail if --reports-dir differs (excluding data/)")
    p.add_argument("--publish", type=Path, default=None, metavar="RUN_DIR",
                   help="copy a run (manifests + records) into reports/data/<experiment>/<run_id>/")
    p.add_argument("--rehash-data", action="store_true",
                   help="verify every run under reports/data/ as --publish does, then rewrite reports/data/SHA256SUMS")
    p.add_argument("--allow-smoke", action=argparse.BooleanOptionalAction, default=False,
                   help="with --publish: accept a run made with --smoke")
    return p


def publish(run_dir: Path, reports_dir: Path, allow_smoke: bool = False) -> Path:
    """Copy manifest*.json and results*.jsonl and add their digests to ``data/SHA256SUMS``; refuse a run whose
    records do not all parse (a torn line after a crash: resume the run first) or that fails verification
    (``evalkit.report.verify``: records that contradict their own fields or their model, a manifest whose
    config does not hash to its ``config_hash`` or whose ``git_sha`` is no commit), refuse when the published
    data no longer matches its digests, refuse to overwrite a different existing copy, and refuse a ``--smoke``
    run (a fast partial config) unless ``allow_smoke``."""
    from evalkit.core.records import read_records
    from evalkit.report import verify
    from evalkit.report.runs import load_run

    run = load_run(run_dir)
    read_records([run_dir], strict=True)
    verify.verify_run(Path(run_dir))
    data_dir = Path(reports_dir) / "data"
    verify.check_sums(data_dir)
    if run.manifest.get("smoke") and not allow_smoke:
        raise FieldError("publish", f"{run_dir} is a --smoke run (manifest smoke: true); publish a full run, or "
                                    "pass --allow-smoke")
    dest = Path(reports_dir) / "data" / run.experiment / run.run_id
    files = sorted(list(Path(run_dir).glob("manifest*.json")) + list(Path(run_dir).glob("results*.jsonl")))
    if dest.exists():
        existing = sorted(p.name for p in dest.iterdir())
        same = existing == [f.name for f in files] and all(filecmp.cmp(f, dest / f.name, shallow=False) for f in files)
        if not same:
            raise FieldError("publish", f"{dest} already holds a different copy of run {run.run_id}; "
                                        "remove it by hand if you mean to replace it")
        return dest
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        for f in files:
            shutil.copy2(f, tmp / f.name)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        verify.add_to_sums(data_dir, dest)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)    # a run without its digests would fail every later report
        raise
    return dest


def _tree(root: Path) -> set[Path]:
    if not root.exists():
        return set()
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "data"}


def _render_in_place(out: Path, run_dirs: list[Path]) -> list[Path]:
    """Render into a temporary folder first, then replace the artifacts of ``out`` (``data/`` kept): a render
    that fails leaves the committed reports untouched; artifacts that are no longer produced are removed."""
    from evalkit.report.build import build

    with tempfile.TemporaryDirectory(prefix="evalkit-report-") as tmp:
        fresh = Path(tmp)
        build(fresh, run_dirs)
        new = _tree(fresh)
        for p in sorted(_tree(out) - new):
            (out / p).unlink()
        for p in sorted(new):
            (out / p).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(fresh / p, out / p)
    return [out / p for p in sorted(new)]


def check(reports_dir: Path, run_dirs: list[Path]) -> list[str]:
    """Problems between a fresh render and ``reports_dir`` (empty list = up to date)."""
    from evalkit.report.build import build

    with tempfile.TemporaryDirectory(prefix="evalkit-report-") as tmp:
        fresh = Path(tmp)
        build(fresh, run_dirs)
        new, old = _tree(fresh), _tree(reports_dir)
        problems = [f"missing: reports/{p.as_posix()}" for p in sorted(new - old)]
        problems += [f"extra: reports/{p.as_posix()}" for p in sorted(old - new)]
        problems += [f"stale: reports/{p.as_posix()}" for p in sorted(new & old)
                     if (fresh / p).read_bytes() != (reports_dir / p).read_bytes()]
    return problems


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    reports_dir = args.reports_dir.resolve()
    if args.publish is not None:
        if args.check or args.run_dirs:
            raise EvalkitError("--publish takes one RUN_DIR and no other run folders or --check")
        dest = publish(args.publish, reports_dir, args.allow_smoke)
        print(f"published {args.publish} -> {dest}")
        print("now run: python -m evalkit report   (and commit reports/)")
        return 0
    from evalkit.report import verify
    from evalkit.report.build import build, published_runs

    data_dir = reports_dir / "data"
    if args.rehash_data:
        path, n = verify.rehash(data_dir)
        print(f"verified every run under {data_dir} and wrote {path} ({n} files)")
        return 0
    run_dirs = args.run_dirs or published_runs(reports_dir)
    if not args.run_dirs or any(verify.is_published(d, data_dir) for d in run_dirs):
        verify.check_sums(data_dir)     # an edited published file is named before anything is rendered
    if args.check:
        problems = check(reports_dir, run_dirs)
        if problems:
            print("reports/ is out of date with the data and code (run `python -m evalkit report` and commit):",
                  file=sys.stderr)
            for p in problems:
                print("  " + p, file=sys.stderr)
            return 1
        print(f"reports/ is up to date ({len(run_dirs)} published run(s))")
        return 0
    out = (args.out or reports_dir).resolve()
    if out == reports_dir:
        files = _render_in_place(out, run_dirs)
    else:
        files = build(out, run_dirs)
    print(f"wrote {len(files)} files to {out} from {len(run_dirs)} run(s); see {out / 'index.md'}")
    return 0
