"""What every record kind holds, as executable data: one :data:`SCHEMAS` table, one builder, one check.

Not a paper figure: the contract between the verbs that write records and the reports that read them. A record
is one flat JSON object (``evalkit.core.records`` writes and reads them). Kinds: ``cost`` (sweep: FLOPs /
latency / memory / max frames, Fig. 1b / 6 / 20, Table 2), ``vbench`` (Tables 1 / 3 / 4 quality), ``alignment``
and ``train_loss`` (the small trainable suite), ``video`` (one line of a ``generate`` manifest), ``selftest``
(the launcher's check), ``humaneval_vote`` (one effective vote of a human preference study, Figs. 8 / 9 / 12),
``figure_fit`` (the fit of the unstated geometry to the project page's efficiency figure, ``evalkit.figure``).

Each kind lists its fields: the JSON types a field may hold and whether every record of the kind must have it.
:func:`check_record` runs on every append (``records.append``): a record without a required field, or with a
listed field of the wrong type, is refused before it reaches the disk (a programming error: ValueError). Fields
not listed are allowed (a measurement may add its own), typed only where a prefix is listed (``flops_op_*``).
:func:`make_record` is the one builder: it fills ``status`` / ``message`` / ``created`` and checks. The tests
take their field lists from :data:`SCHEMAS`, never their own. :func:`record_problems` adds what a record's fields
imply about each other (its key is built from them; a cost record's FLOPs agreement follows from its numbers,
which its model config re-derives): ``report --publish`` refuses a run with a record that fails it.
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

STATUSES: tuple[str, ...] = ("ok", "flagged", "oom", "skipped", "error")
# statuses that count as done on resume (an error is retried)
FINISHED: tuple[str, ...] = ("ok", "flagged", "oom", "skipped")

NONE = type(None)
STR, INT, NUM, BOOL, LIST, DICT = (str,), (int,), (int, float), (bool,), (list,), (dict,)


@dataclass(frozen=True)
class Field:
    types: tuple[type, ...]
    required: bool = False


def req(*types: type) -> Field:
    return Field(tuple(types), True)


def opt(*types: type) -> Field:
    return Field(tuple(types), False)


BASE = {"key": req(str), "kind": req(str), "status": req(str), "message": opt(str), "created": opt(str),
        "run_id": opt(str), "experiment": opt(str)}

# the point fields every cost record carries (evalkit.measure.point.Point.record_fields)
POINT = {"experiment": req(str), "run_id": req(str), "message": req(str), "created": req(str),
         "measurement": req(str), "measurement_version": req(int), "model": req(str), "flavor": req(str),
         "variant": req(str), "resolution": req(str), "height": req(int), "width": req(int),
         "duration_s": req(int, float, NONE), "fps": req(int), "num_frames": req(int, NONE),
         "latent_frames": req(int, NONE), "num_tokens": req(int, NONE), "params": req(int), "batch": req(int),
         "model_overrides": req(dict), "seconds": opt(int, float), "traceback": opt(str),
         # only in a sweep with variations / with parts / under `sweep --budget-s`
         "variation": opt(str), "variation_axis": opt(str), "variation_value": opt(str), "part": opt(str),
         "part_group": opt(str), "part_index": opt(int), "claim": opt(str), "budget_s": opt(int, float),
         "predicted_s": opt(int, float), "predicted_call_s": opt(int, float), "skip_reason": opt(str)}
# what the measurements add (evalkit/measure/*.py); GPU-only fields typed here too
MEASURED = {
    "steps": opt(int), "cfg_factor": opt(int), "dtype": opt(str), "device": opt(str),
    # flops
    "flops": opt(int), "flops_analytic": opt(int, float), "flops_convention": opt(str), "flops_source": opt(str),
    "flops_method": opt(str), "flops_layer_kinds": opt(int, NONE), "flops_layers_counted": opt(int),
    "flops_rel_diff": opt(int, float), "flops_agree": opt(bool), "flops_rel_tol": opt(int, float),
    "flops_build_seconds": opt(int, float), "flops_count_seconds": opt(int, float),
    "flops_analytic_seconds": opt(int, float), "fvcore_macs": opt(int, NONE), "fvcore_message": opt(str),
    "fvcore_convention": opt(str), "fvcore_unsupported_ops": opt(str), "fvcore_method": opt(str),
    "fvcore_device": opt(str), "fvcore_meta_message": opt(str), "fvcore_seconds": opt(int, float),
    # latency (and the environment of every timed record)
    "scope": opt(str), "timer": opt(str), "kernels": opt(str), "warmup": opt(int), "latency_ms_raw": opt(list),
    "warmup_ms_raw": opt(list), "planned_iterations": opt(int), "iterations": opt(int),
    "stopped_by_max_seconds": opt(bool), "latency_ms_p10": opt(int, float), "latency_ms_p50": opt(int, float),
    "latency_ms_p90": opt(int, float), "latency_ms_mean": opt(int, float), "achieved_tflops": opt(int, float),
    "backend_sdpa": opt(str), "backend_ssd": opt(str), "backend_ssd_selected": opt(str),
    "backend_ssd_reason": opt(str), "backend_tesa": opt(str), "sdpa_enabled": opt(str), "gpu": opt(str, NONE),
    "torch_version": opt(str), "cuda_version": opt(str, NONE), "cudnn_version": opt(int, NONE),
    "triton_version": opt(str), "mamba_ssm_version": opt(str), "sdpa_backend_requested": opt(str),
    "latency_caveats": opt(str), "first_call_timed": opt(bool), "profiled_call": opt(str),
    "latency_ms_min": opt(int, float), "latency_ms_max": opt(int, float), "latency_ms_std": opt(int, float),
    "latency_spread": opt(int, float), "gpu_state_before": opt(dict, NONE), "gpu_state_after": opt(dict, NONE),
    # memory
    "mem_peak_allocated_bytes": opt(int), "mem_peak_reserved_bytes": opt(int), "mem_source": opt(str),
    # max frames
    "max_duration_bound_s": opt(int, float), "max_frames": opt(int), "max_latent_frames": opt(int),
    "max_duration_s": opt(int, float), "probe_steps": opt(int), "max_frames_upper": opt(int, NONE),
    "memory_limit_bytes": opt(int), "gpu_memory_bytes": opt(int), "probes": opt(list)}
COST_PREFIXES = {"flops_op_": (int,), "flops_breakdown_": (int, float)}

SCHEMAS: dict[str, dict[str, Field]] = {
    "cost": {**BASE, **POINT, **MEASURED},
    "vbench": {**BASE, "model": req(str), "mode": req(str), "dimension": req(str), "score": opt(int, float),
               "n_expected": opt(int), "n_evaluated": opt(int), "n_present": opt(int), "n_scored": opt(int),
               "n_shards": opt(int), "suite": opt(str), "protocol": opt(str), "vbench_version": opt(str),
               "raw_json": opt(str), "raw_json_shards": opt(list), "inputs": opt(dict), "inputs_sha256": opt(str),
               # evaluator files (evalkit.vbench.weightcheck.verify) and what differs per mode (evalkit.vbench.modes)
               "weights": opt(list), "weights_official": opt(bool, NONE), "weights_label": opt(str),
               "weights_unverified": opt(list), "weights_differs_from_release": opt(list), "weights_check": opt(dict),
               "static_filter": opt(bool), "notes": opt(list), "n_clips": opt(int), "slow_fast": opt(bool),
               "long_aggregate": opt(str), "video_mean_score": opt(int, float), "long_text": opt(str),
               "n_skipped_by_vbench": opt(int), "skipped_reason": opt(str),
               # long --slow-fast (evalkit.vbench.slowfast.fuse)
               "inclip_score": opt(int, float), "raw_json_inclip": opt(str), "clip2clip_json": opt(str, NONE),
               "clip2clip_extractor": opt(str), "n_clip2clip_videos": opt(int), "w_inclip": opt(int, float),
               "w_clip2clip": opt(int, float), "mapping_table": opt(str), "slow_fast_params": opt(str)},
    "alignment": {**BASE, "label": req(str), "model": req(str), "metric": req(str), "value": req(int, float),
                  "flavor": opt(str), "variant": opt(str), "n_videos": opt(int), "checkpoint": opt(str),
                  "checkpoint_sha256": opt(str, NONE), "alignment_version": opt(int)},
    "train_loss": {**BASE, "label": opt(str), "model": req(str), "step": req(int), "loss": req(int, float),
                   "flavor": opt(str), "variant": opt(str), "lr": opt(int, float), "batch": opt(int),
                   "params": opt(int), "seconds": opt(int, float), "loss_window": opt(int)},
    "video": {**BASE, "file": req(str), "prompt": opt(str), "index": opt(int), "seed": opt(int),
              "inputs_sha256": opt(str), "mp4_sha256": opt(str), "mp4_bytes": opt(int), "frames_sha256": opt(str),
              "checkpoint_sha256": opt(str)},
    "selftest": {**BASE, "x": opt(int), "m": opt(int), "value": opt(int)},   # also the kind the record tests write
    "humaneval_vote": {**BASE, "study": req(str), "rater": req(str), "item": req(str), "question": req(str),
                       "answer": req(str), "winner": req(str), "outcome": req(int), "prompt": opt(str),
                       "index": opt(int), "x": opt(str), "y": opt(str), "left": opt(str), "right": opt(str),
                       "shown_at": opt(str, NONE), "cast_at": opt(str), "client_ms": opt(int, NONE),
                       "revisions": opt(int)},
    # record says which: candidate | family | bound | latency_prediction | summary (evalkit.figure.results)
    "figure_fit": {**BASE, "record": req(str)},
}
KINDS: tuple[str, ...] = tuple(SCHEMAS)
PREFIXES: dict[str, dict[str, tuple[type, ...]]] = {"cost": COST_PREFIXES}


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):          # JSON true/false is a bool, never a number
        return bool in types
    if isinstance(value, tuple):         # written as a JSON list
        value = list(value)
    return isinstance(value, types)


def _names(types: tuple[type, ...]) -> str:
    return " | ".join("null" if t is NONE else t.__name__ for t in types)


def check_record(record: dict[str, Any]) -> None:
    """The record against its kind's schema (ValueError naming the field: a programming error, not a user's)."""
    missing = [f for f in ("key", "kind", "status") if f not in record]
    if missing:
        raise ValueError(f"record without {', '.join(missing)}: {str(record)[:200]}")
    kind = record["kind"]
    if kind not in SCHEMAS:
        raise ValueError(f"record kind {kind!r} is not one of {KINDS} (add new kinds to evalkit.core.schema)")
    if record["status"] not in STATUSES:
        raise ValueError(f"record status {record['status']!r} is not one of {STATUSES}")
    schema = SCHEMAS[kind]
    missing = [name for name, f in schema.items() if f.required and name not in record]
    if missing:
        raise ValueError(f"{kind} record {record['key']!r} lacks {', '.join(missing)} (evalkit.core.schema)")
    for name, value in record.items():
        f = schema.get(name)
        types = f.types if f is not None else next(
            (t for p, t in PREFIXES.get(kind, {}).items() if name.startswith(p)), None)
        if types is not None and not _type_ok(value, types):
            raise ValueError(f"{kind} record {record['key']!r}: {name} must be {_names(types)}, got "
                             f"{type(value).__name__} {value!r:.80}")


def now_iso() -> str:
    """ISO 8601 UTC at one-second resolution: every record's ``created``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_record(kind: str, *, key: str, status: str = "ok", message: str = "", created: str | None = None,
                **fields: Any) -> dict[str, Any]:
    """A record of ``kind``: the fields given, ``status`` / ``message`` / ``created`` filled, checked."""
    rec = {"key": key, "kind": kind, "status": status, "message": message, "created": created or now_iso(),
           **fields}
    check_record(rec)
    return rec


# ---------------------------------------------------------------------------------------------------------------
# key builders
# ---------------------------------------------------------------------------------------------------------------
def point_key(fields: dict[str, Any]) -> str:
    """``[part:]model/flavor[overrides]{variation}/res=HxW/duration@fps/b<batch>`` of a sweep point, from its record
    fields (the ``{variation}`` part only in a sweep with variations, ``part:`` only in a sweep with parts: two of
    them may share a point)."""
    dur = "max" if fields["duration_s"] is None else f"{fields['duration_s']:g}s"
    over = ",".join(f"{k}={v}" for k, v in sorted((fields.get("model_overrides") or {}).items()))
    var = f"{{{fields['variation']}}}" if fields.get("variation") else ""
    part = f"{fields['part']}:" if fields.get("part") else ""
    return (f"{part}{fields['model']}/{fields['flavor']}{'[' + over + ']' if over else ''}{var}/"
            f"{fields['resolution']}={fields['height']}x{fields['width']}/{dur}@{fields['fps']}fps/b{fields['batch']}")


def cost_key(fields: dict[str, Any], measurement: str, version: int) -> str:
    """``<point key>/<measurement>.v<version>``: one record of one measurement at one point."""
    return f"{point_key(fields)}/{measurement}.v{version}"


def alignment_key(label: str, metric: str) -> str:
    return f"alignment/{label}/{metric}"


def train_loss_key(label: str, step: int) -> str:
    return f"train_loss/{label}/{step}"


def humaneval_vote_key(rater: str, item: str, question: str) -> str:
    return f"humaneval/{rater}/{item}/{question}"


# ---------------------------------------------------------------------------------------------------------------
# invariants: what a record's own fields imply about each other (checked before a run is published)
# ---------------------------------------------------------------------------------------------------------------
REL = 1e-9        # relative tolerance of a re-derived number (JSON round trip of a float)


def numbers_close(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= REL * max(abs(a), abs(b), 1.0)


def _cost_problems(rec: dict[str, Any], derive: Callable[[dict[str, Any]], list[str]] | None) -> list[str]:
    out: list[str] = []
    try:
        key = cost_key(rec, rec["measurement"], rec["measurement_version"])
    except (KeyError, TypeError) as exc:
        return [f"key cannot be rebuilt from its fields ({exc!r})"]
    if key != rec["key"]:
        out.append(f"key {rec['key']!r} is not the key of its fields ({key!r})")
    if rec["measurement"] == "flops" and rec["status"] in ("ok", "flagged"):
        flops, analytic, tol = rec.get("flops"), rec.get("flops_analytic"), rec.get("flops_rel_tol")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (flops, analytic, tol)):
            out.append("flops / flops_analytic / flops_rel_tol: a finished flops record holds all three numbers")
        else:
            rel = abs(flops - analytic) / analytic if analytic else float("inf")
            if not numbers_close(rel, rec.get("flops_rel_diff", float("nan"))):
                out.append(f"flops_rel_diff: {rec.get('flops_rel_diff')!r}, but |flops - flops_analytic| / "
                           f"flops_analytic = {rel:.6g}")
            if rec.get("flops_agree") is not (rel <= tol):
                out.append(f"flops_agree: {rec.get('flops_agree')!r}, but flops {flops:.6g} vs flops_analytic "
                           f"{analytic:.6g} differ by {rel:.3%} (flops_rel_tol {tol:g})")
            if rec["status"] != ("ok" if rel <= tol else "flagged"):
                out.append(f"status: {rec['status']!r} for a relative difference of {rel:.3%} "
                           f"(flops_rel_tol {tol:g})")
    if derive is not None:
        out += derive(rec)
    return out


def _key_problem(rec: dict[str, Any], want: str) -> list[str]:
    return [] if rec["key"] == want else [f"key {rec['key']!r} is not the key of its fields ({want!r})"]


def record_problems(record: dict[str, Any], *,
                    derive: Callable[[dict[str, Any]], list[str]] | None = None) -> list[str]:
    """Why ``record`` cannot be trusted as written (empty: none found): the schema (:func:`check_record`), then
    the invariants of its kind. ``cost``: the key is built from the fields; a finished flops record's
    ``flops_rel_diff`` / ``flops_agree`` / status follow from ``flops`` vs ``flops_analytic`` and
    ``flops_rel_tol``; ``derive`` adds the problems of a cost record's fields re-derived from its model config
    (publishing passes :func:`evalkit.report.verify.derived_cost_problems`: the model registry sits above this
    module). ``alignment`` / ``train_loss`` /
    ``humaneval_vote``: the key is built from the fields. Each problem names the field."""
    try:
        check_record(record)
    except ValueError as exc:
        return [str(exc)]
    kind = record["kind"]
    if kind == "cost":
        return _cost_problems(record, derive)
    if kind == "alignment":
        return _key_problem(record, alignment_key(record["label"], record["metric"]))
    if kind == "train_loss" and "label" in record:
        return _key_problem(record, train_loss_key(record["label"], record["step"]))
    if kind == "humaneval_vote":
        return _key_problem(record, humaneval_vote_key(record["rater"], record["item"], record["question"]))
    return []
