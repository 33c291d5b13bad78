"""VBench's 16 dimensions: keys, Quality/Semantic groups, normalisation bounds and weights (paper Tables 1, 3, 4).

Every constant is copied from VBench's ``scripts/constant.py`` (``NORMALIZE_DIC``, ``DIM_WEIGHT``, ``QUALITY_LIST``,
``SEMANTIC_LIST``, ``QUALITY_WEIGHT``, ``SEMANTIC_WEIGHT``) at commit 45e79ec14e69a2187202c675d2dbce1a71843d53
(github.com/Vchitect/VBench). Keys are VBench's code keys (``--dimension``); the score
files and the leaderboard use the same key with ``_`` replaced by a space (:func:`code_key` reads either).
"""
from __future__ import annotations

# Quality group, in the column order of the paper's Tables 1/3/4 (VBench constant.py QUALITY_LIST).
QUALITY_DIMENSIONS: tuple[str, ...] = (
    "subject_consistency",
    "background_consistency",
    "temporal_flickering",
    "motion_smoothness",
    "aesthetic_quality",
    "imaging_quality",
    "dynamic_degree",
)
# Semantic group, in the column order of the paper's semantic tables (VBench constant.py SEMANTIC_LIST).
SEMANTIC_DIMENSIONS: tuple[str, ...] = (
    "object_class",
    "multiple_objects",
    "human_action",
    "color",
    "spatial_relationship",
    "scene",
    "appearance_style",
    "temporal_style",
    "overall_consistency",
)
DIMENSIONS: tuple[str, ...] = QUALITY_DIMENSIONS + SEMANTIC_DIMENSIONS

# (Min, Max) of each raw score, VBench scripts/constant.py NORMALIZE_DIC.
NORMALIZE: dict[str, tuple[float, float]] = {
    "subject_consistency": (0.1462, 1.0),
    "background_consistency": (0.2615, 1.0),
    "temporal_flickering": (0.6293, 1.0),
    "motion_smoothness": (0.706, 0.9975),
    "dynamic_degree": (0.0, 1.0),
    "aesthetic_quality": (0.0, 1.0),
    "imaging_quality": (0.0, 1.0),
    "object_class": (0.0, 1.0),
    "multiple_objects": (0.0, 1.0),
    "human_action": (0.0, 1.0),
    "color": (0.0, 1.0),
    "spatial_relationship": (0.0, 1.0),
    "scene": (0.0, 0.8222),
    "appearance_style": (0.0009, 0.2855),
    "temporal_style": (0.0, 0.364),
    "overall_consistency": (0.0, 0.364),
}

# Per-dimension weight, VBench scripts/constant.py DIM_WEIGHT: 1 everywhere except dynamic_degree 0.5.
WEIGHTS: dict[str, float] = {d: 1.0 for d in DIMENSIONS}
WEIGHTS["dynamic_degree"] = 0.5

# Group weights of the total, VBench scripts/constant.py QUALITY_WEIGHT / SEMANTIC_WEIGHT: Total = (4Q + S) / 5.
QUALITY_WEIGHT: float = 4.0
SEMANTIC_WEIGHT: float = 1.0

# Short column labels used in the paper's tables (Tables 1, 3, 4 headers), for rendering in the paper's layout.
PAPER_LABELS: dict[str, str] = {
    "subject_consistency": "Subject Consist.",
    "background_consistency": "BG. Consis.",
    "temporal_flickering": "Temp. Flick.",
    "motion_smoothness": "Motion Smooth.",
    "aesthetic_quality": "Aesthe. Quality",
    "imaging_quality": "Imag. Quality",
    "dynamic_degree": "Dyna. Degree",
    "object_class": "Object Class",
    "multiple_objects": "Multiple Objects",
    "human_action": "Human Action",
    "color": "Color",
    "spatial_relationship": "Spatial Relatio.",
    "scene": "Scene",
    "appearance_style": "Appear. Style",
    "temporal_style": "Temp. Style",
    "overall_consistency": "Overall Consist.",
}


def code_key(name: str) -> str:
    """VBench's code key of a dimension named by its code key or its display key (score files, leaderboard: the
    code key with ``_`` replaced by a space)."""
    return name.strip().replace(" ", "_")


assert set(NORMALIZE) == set(DIMENSIONS) and set(WEIGHTS) == set(DIMENSIONS)
assert sum(WEIGHTS[d] for d in QUALITY_DIMENSIONS) == 6.5 and sum(WEIGHTS[d] for d in SEMANTIC_DIMENSIONS) == 9.0
