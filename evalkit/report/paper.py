"""The paper's published numbers (experiments/paper/*.yaml) as tidy DataFrames for the report.

Tables 1, 3, 4 (VBench, quality and semantic halves), Table 2 (ablation latencies), the headline ratios of Fig. 1b /
Fig. 6 (15x FLOPs, 11.5x latency at 68 s / 512p) and the "Max. Raw Frames" column. The YAML files carry the source
of every number; this module only checks their shape and reshapes them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from evalkit.core.errors import FieldError
from evalkit.core.runs import REPO_ROOT
from evalkit.vbench.dimensions import QUALITY_DIMENSIONS, SEMANTIC_DIMENSIONS

PAPER_DIR = REPO_ROOT / "experiments" / "paper"
QUALITY_COLUMNS = (*QUALITY_DIMENSIONS, "quality_score", "total_score", "max_raw_frames")
SEMANTIC_COLUMNS = (*SEMANTIC_DIMENSIONS, "semantic_score")


def _load(path: Path) -> dict[str, Any]:
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FieldError("paper_dir", f"{path} not found (the paper's numbers live in experiments/paper/)") from exc


def vbench_rows(paper_dir: Path = PAPER_DIR) -> pd.DataFrame:
    """One row per (table, model): every dimension, the three scores and max_raw_frames, in percent as printed."""
    data = _load(Path(paper_dir) / "vbench_tables.yaml")
    if tuple(data["quality_columns"]) != QUALITY_COLUMNS or tuple(data["semantic_columns"]) != SEMANTIC_COLUMNS:
        raise FieldError("vbench_tables.yaml", "column lists differ from evalkit.vbench.dimensions order")
    rows = []
    for table_id, table in data["tables"].items():
        for i, row in enumerate(table["rows"]):
            where = f"vbench_tables.yaml:{table_id}.rows[{i}]"
            if len(row["quality"]) != len(QUALITY_COLUMNS) or len(row["semantic"]) != len(SEMANTIC_COLUMNS):
                raise FieldError(where, f"expected {len(QUALITY_COLUMNS)} quality and {len(SEMANTIC_COLUMNS)} "
                                        "semantic values")
            rec = {"table": table_id, "protocol": table["protocol"], "model": row["model"], "ref": row["ref"],
                   "source": f"{table['source_quality']}; {table['source_semantic']}"}
            rec.update({c: float(v) for c, v in zip(QUALITY_COLUMNS, row["quality"])})
            rec.update({c: float(v) for c, v in zip(SEMANTIC_COLUMNS, row["semantic"])})
            rec["max_raw_frames"] = int(rec["max_raw_frames"])
            rows.append(rec)
    return pd.DataFrame(rows)


def table_titles(paper_dir: Path = PAPER_DIR) -> dict[str, str]:
    data = _load(Path(paper_dir) / "vbench_tables.yaml")
    return {k: v["title"] for k, v in data["tables"].items()}


def cost(paper_dir: Path = PAPER_DIR) -> dict[str, Any]:
    """The raw cost.yaml mapping (table2, headline, max_raw_frames)."""
    return _load(Path(paper_dir) / "cost.yaml")


def table2(paper_dir: Path = PAPER_DIR) -> pd.DataFrame:
    """Table 2: variant, label, latency_s, delta_s (as printed) and delta_pct (derived: delta / default)."""
    t2 = cost(paper_dir)["table2"]
    df = pd.DataFrame(t2["rows"])
    default = float(df.loc[df["variant"] == "default", "latency_s"].iloc[0])
    df["delta_pct"] = 100.0 * df["delta_s"] / default
    df["source"] = "Table 2"
    return df


def headline(paper_dir: Path = PAPER_DIR) -> list[dict[str, Any]]:
    return list(cost(paper_dir)["headline"])


def max_raw_frames(paper_dir: Path = PAPER_DIR) -> dict[str, Any]:
    return dict(cost(paper_dir)["max_raw_frames"])


def mixer_claims(paper_dir: Path = PAPER_DIR) -> list[dict[str, Any]]:
    """Published efficiency claims of the field's mixers (experiments/paper/mixer_claims.yaml), quoted."""
    claims = list(_load(Path(paper_dir) / "mixer_claims.yaml")["claims"])
    for i, c in enumerate(claims):
        missing = [k for k in ("model", "design", "claim", "versus", "setting", "source") if not c.get(k)]
        if missing:
            raise FieldError(f"mixer_claims.yaml:claims[{i}]", f"missing {missing}")
    return claims


def efficiency_figure(paper_dir: Path = PAPER_DIR) -> dict[str, Any]:
    """The digitized efficiency figure of the project page (efficiency_figure_values.yaml, written by ``python -m
    evalkit figure digitize``) and its source (efficiency_figure.yaml): ``markers`` and ``labels`` as DataFrames,
    ``panels`` (calibration per panel) and ``source`` as loaded."""
    values = _load(Path(paper_dir) / "efficiency_figure_values.yaml")
    spec = _load(Path(paper_dir) / "efficiency_figure.yaml")
    markers = pd.DataFrame(values["markers"])
    need = {"panel", "quantity", "model", "category", "height", "width", "duration_s", "value", "u_value", "u_px"}
    if markers.empty or not need <= set(markers.columns):
        raise FieldError("efficiency_figure_values.yaml", f"markers need the fields {sorted(need)}")
    return {"markers": markers, "labels": pd.DataFrame(values["labels"]), "panels": values["panels"],
            "source": spec["source"], "series": spec["series"], "sha256": values["sha256"]}
