"""Typed config of a small training experiment (``experiments/train_tiny.yaml``), loaded with typed.from_dict."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from evalkit.core.errors import FieldError
from evalkit.core.experiments import read_experiment
from evalkit.runtime.text import TextEncoderSpec
from evalkit.train.data import DataConfig
from evalkit.core.runs import config_hash as runs_config_hash
from evalkit.core.typed import apply_overrides, deep_merge, defaults_dict, from_dict, plain_name


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelEntry:
    name: str                                   # registry name: lingen, dit, lingen-no-tesa, ...
    flavor: str = "tiny"
    label: str = ""                             # folder / report name; default = name
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)   # on top of the common overrides

    @property
    def key(self) -> str:
        return self.label or self.name


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainSpec:
    steps: int = 300
    batch: int = 16
    lr: float = 1e-3
    min_lr_ratio: float = 0.1                   # cosine decay to lr * min_lr_ratio
    warmup: int = 20
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    cfg_dropout: float = 0.1                    # caption -> "" with this probability (trains the CFG null branch)
    log_every: int = 10
    seed: int = 0
    threads: int = 0                            # torch.set_num_threads; 0 = leave as is


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalSpec:
    samples_per_prompt: int = 1
    max_prompts: int = 0                        # 0 = every (colour, shape, direction) caption
    steps: int = 50
    schedule: Literal["linear-quadratic", "linear"] = "linear-quadratic"
    cfg_scale: float = 4.0
    seed: int = 1000
    batch_size: int = 24
    pix_fmt: Literal["yuv420p", "yuv444p"] = "yuv444p"
    min_travel: float = 2.0                     # px; below it the direction is "static"


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainExperiment:
    kind: Literal["train"]
    experiment: str
    description: str = ""
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)   # applied to every model
    models: tuple[ModelEntry, ...] = ()
    text_encoder: TextEncoderSpec = dataclasses.field(default_factory=TextEncoderSpec)
    train: TrainSpec = dataclasses.field(default_factory=TrainSpec)
    eval: EvalSpec = dataclasses.field(default_factory=EvalSpec)

    def __post_init__(self) -> None:
        plain_name("experiment", self.experiment)           # becomes runs/<experiment>/
        for i, m in enumerate(self.models):
            plain_name(f"models[{i}].label" if m.label else f"models[{i}].name", m.key)   # checkpoints/<label>/
        if not self.models:
            raise FieldError("models", "list at least one model")
        keys = [m.key for m in self.models]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise FieldError("models", f"duplicate labels {dup}; give each entry a distinct 'label'")
        if self.text_encoder.kind != "builtin":
            raise FieldError("text_encoder.kind", "training uses the builtin encoder (a T5 would need local weights)")

    @property
    def duration_s(self) -> float:
        return self.data.num_frames / self.data.fps

    def model_overrides(self, entry: ModelEntry) -> dict[str, Any]:
        return {**self.overrides, **entry.overrides}


def load_train(path: str | Path, sets: list[str] | None = None) -> TrainExperiment:
    """``train_tiny`` or a YAML path -> the typed experiment; the same file lookup and YAML errors as the sweep's
    experiments (``evalkit.core.experiments``). ``--set`` reaches every key, the ones at their default too."""
    path, raw = read_experiment(path, kind="train")
    if sets:
        raw = apply_overrides(deep_merge(defaults_dict(TrainExperiment), raw), sets)
    return from_dict(TrainExperiment, raw, where=path.name)


def config_hash(exp: TrainExperiment) -> str:
    """The hash a train run folder is resumed by (``evalkit.core.runs.config_hash``: defaults left out)."""
    return runs_config_hash(exp)
