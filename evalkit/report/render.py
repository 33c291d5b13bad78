"""Deterministic writers for report artifacts: Markdown + LaTeX (booktabs) tables from one DataFrame, and PNG + SVG
figures (each with the CSV of its data) whose bytes depend only on their input.

Determinism (matplotlib 3.11.2 is pinned in pyproject): the Agg/SVG backends, fixed rcParams (DejaVu Sans, shipped
with matplotlib; text as paths in SVG; ``svg.hashsalt`` fixed so element ids are stable), no timestamps or software
strings in the PNG/SVG metadata, fixed DPI and size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

RC = {
    "font.family": "DejaVu Sans", "font.size": 9, "svg.fonttype": "path", "svg.hashsalt": "evalkit-report",
    "path.simplify": False, "figure.dpi": 100, "savefig.dpi": 130, "axes.grid": True, "grid.alpha": 0.3,
    "figure.figsize": (7.0, 4.2), "legend.fontsize": 8,
}
PNG_META = {"Software": None}
SVG_META = {"Date": None, "Creator": None, "Format": None, "Type": None}


@dataclass(kw_only=True)
class Artifact:
    """One generated file (or file group sharing a stem) and the runs behind it."""
    stem: str                       # path relative to the report root, without extension
    exts: tuple[str, ...]
    title: str
    runs: tuple[tuple[str, str, str], ...] = ()   # (experiment, run_id, git_sha) from manifests
    sources: tuple[str, ...] = ()   # paper tables/figures used
    notes: list[str] = field(default_factory=list)


def _fmt(v: object, floatfmt: str) -> str:
    if v is None or (not isinstance(v, (str, list, tuple)) and pd.isna(v)):
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return format(v, ".3g") if 0 < abs(v) < 0.1 else format(v, floatfmt)
    return str(v)


def to_markdown(df: pd.DataFrame, floatfmt: str = ".2f") -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(c.replace("|", "\\|") for c in cols) + " |",
             "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v, floatfmt).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in s)


def to_latex(df: pd.DataFrame, floatfmt: str = ".2f", caption: str = "") -> str:
    align = "".join("r" if pd.api.types.is_numeric_dtype(df[c]) else "l" for c in df.columns)
    out = [r"\begin{table}[t]", r"\centering", r"\small"]
    if caption:
        out.append(r"\caption{" + tex_escape(caption) + "}")
    out += [r"\begin{tabular}{" + align + "}", r"\toprule",
            " & ".join(tex_escape(str(c)) for c in df.columns) + r" \\", r"\midrule"]
    for row in df.itertuples(index=False):
        out.append(" & ".join(tex_escape(_fmt(v, floatfmt)) for v in row) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


def write_table(root: Path, stem: str, df: pd.DataFrame, *, title: str, notes: list[str] | tuple[str, ...] = (),
                floatfmt: str = ".2f") -> None:
    """``stem.md`` (title, notes, table) and ``stem.tex`` (booktabs) from the same DataFrame."""
    path = Path(root) / stem
    path.parent.mkdir(parents=True, exist_ok=True)
    md = [f"# {title}", ""] + [f"- {n}" for n in notes] + ([""] if notes else []) + [to_markdown(df, floatfmt)]
    path.with_suffix(".md").write_text("\n".join(md), encoding="utf-8")
    path.with_suffix(".tex").write_text(to_latex(df, floatfmt, caption=title), encoding="utf-8")


def write_csv(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, float_format="%.6g", lineterminator="\n")


def new_figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] | None = None):
    with plt.rc_context(RC):
        return plt.subplots(nrows, ncols, figsize=figsize or RC["figure.figsize"], squeeze=False)


def save_figure(fig, root: Path, stem: str, data: pd.DataFrame) -> None:
    """``stem.png``, ``stem.svg`` and ``stem.csv`` (the plotted data); closes the figure."""
    path = Path(root) / stem
    path.parent.mkdir(parents=True, exist_ok=True)
    with plt.rc_context(RC):
        fig.tight_layout()
        fig.savefig(path.with_suffix(".png"), format="png", metadata=PNG_META)
        fig.savefig(path.with_suffix(".svg"), format="svg", metadata=SVG_META)
    plt.close(fig)
    write_csv(path.with_suffix(".csv"), data)
