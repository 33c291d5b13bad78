"""The FLOP counter of the cost sweep: only the ops that carry FLOPs, nothing decomposed, each layer kind once.

Counts what one denoiser forward computes on the ``meta`` device (paper Fig. 1b / Fig. 6 FLOPs curves, the 68 s /
512p ratio), in the convention of ``torch.utils.flop_counter`` (2 FLOPs per multiply-add; matmuls, convolutions,
attention and registered custom ops only; elementwise work, norms, softmax and the scans' exp/cumsum are free).

1. :class:`FlopCounter` is a ``TorchDispatchMode`` that runs every op as is (``FlopCounterMode`` instead
   decomposes each op it has no formula for, so every elementwise op runs through Python prims meta code) and
   looks it up in an explicit table:
   - :data:`FLOP_OPS`: aten ops with a formula (mm, addmm, bmm, baddbmm, mv, dot, conv, the SDPA kernels, ...;
     formulas from ``torch.utils.flop_counter`` where it has one), plus custom (non-aten) ops registered with
     torch's ``register_flop_formula`` (the scans ``lingen::ssd_scan`` / ``lingen::selective_scan`` in
     ``lingen/kernels/ops.py``);
   - FLOP-free: ops tagged ``pointwise`` or ``reduction`` by torch, views, and :data:`ZERO_FLOP_OPS` (copies,
     creation, padding, cat, gather, sort, softmax, layer norm, pooling ...);
   - anything else raises :class:`UnknownFlopOpError` (never a silent 0): a new mixer that uses a new op adds it
     to one of the two tables (:func:`register_flop_op` / :func:`register_zero_flop_op`).
   Composite ops are decomposed by the dispatcher before the mode sees them: ``einsum``, ``matmul``, ``linear``
   and, on ``meta``, ``scaled_dot_product_attention`` (math path) arrive as ``bmm`` / ``mm`` / ``mv`` and are
   counted exactly. Higher-order ops are refused by name unless given a formula (:data:`HOP_FORMULAS`), and so is
   ``flex_attention``: its cost depends on the block mask, which the shapes do not show (torch's
   ``FlopCounterMode`` counts it dense), and it does not run on ``meta`` at all; a mixer that uses it registers a
   formula that reads its mask with :func:`register_flop_op`.
2. :func:`count_model` counts a built model (method ``"full"``). :func:`count_point` counts each distinct layer
   kind once: the mixer config's ``layer_kind(layer)`` (next to each mixer's code: DiT has one kind, LinGen four =
   scan order x TESA shift parity) says which layers compute the same ops on the same shapes;
   a model of the first ``k`` layers (every kind's first occurrence) is built and counted, each block's count is
   multiplied by how many layers share its kind, and everything outside the blocks is counted once (method
   ``"per_layer_kind"``). A mixer whose ``layer_kind`` returns None is counted in full.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils import flop_counter as tfc
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
Formula = Callable[..., int]  # formula(*args, out_val=out, **kwargs) -> FLOPs, as in torch.utils.flop_counter


class UnknownFlopOpError(RuntimeError):
    """An op ran that has no FLOP formula and is not known to be FLOP-free."""


# ---- the op table ------------------------------------------------------------------------------------------------
@tfc.shape_wrapper
def _mv_flop(a_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * a_shape[0] * a_shape[1]


@tfc.shape_wrapper
def _addmv_flop(self_shape, a_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * a_shape[0] * a_shape[1]


@tfc.shape_wrapper
def _dot_flop(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * a_shape[0]


@tfc.shape_wrapper
def _addbmm_flop(self_shape, b1_shape, b2_shape, *args, out_shape=None, **kwargs) -> int:
    b, m, k = b1_shape
    return 2 * b * m * k * b2_shape[-1]


@tfc.shape_wrapper
def _sdpa_cpu_flop(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    return tfc.sdpa_flop_count(q_shape, k_shape, v_shape)  # same kernel math as the CUDA flash/efficient paths


_FROM_TORCH = (  # forward ops whose formula torch.utils.flop_counter already has
    aten.mm, aten.addmm, aten.bmm, aten.baddbmm, aten._scaled_mm, aten.convolution, aten._convolution,
    aten.cudnn_convolution, aten.convolution_overrideable, aten._slow_conv2d_forward,
    aten._scaled_dot_product_efficient_attention, aten._scaled_dot_product_flash_attention,
    aten._scaled_dot_product_cudnn_attention, aten._flash_attention_forward, aten._efficient_attention_forward)
FLOP_OPS: dict[Any, Formula] = {op: tfc.flop_registry[op] for op in _FROM_TORCH}
FLOP_OPS.update({aten.mv: _mv_flop, aten.addmv: _addmv_flop, aten.dot: _dot_flop, aten.vdot: _dot_flop,
                 aten.addbmm: _addbmm_flop, aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flop})

ZERO_FLOP_OPS: set[Any] = {
    # copies, creation, layout
    aten._to_copy, aten.copy_, aten.clone, aten.contiguous, aten._unsafe_view, aten.detach, aten.lift_fresh,
    aten.lift_fresh_copy, aten.empty, aten.empty_like, aten.empty_strided, aten.new_empty, aten.new_empty_strided,
    aten.zeros, aten.zeros_like, aten.new_zeros, aten.ones, aten.ones_like, aten.new_ones, aten.full,
    aten.full_like, aten.new_full, aten.scalar_tensor, aten.arange, aten.linspace, aten.fill_, aten.zero_,
    aten.rand, aten.randn, aten.uniform_, aten.normal_, aten.bernoulli, aten.native_dropout,
    aten._local_scalar_dense,
    # data movement
    aten.cat, aten.stack, aten.constant_pad_nd, aten.reflection_pad1d, aten.replication_pad1d, aten.flip,
    aten.roll, aten.repeat, aten.index_select, aten.index, aten.index_put, aten.index_put_, aten.gather,
    aten.scatter, aten.scatter_, aten.scatter_add, aten.scatter_add_, aten.index_copy, aten.index_copy_,
    aten.index_fill_, aten.masked_fill_, aten.embedding, aten.tril, aten.triu, aten.sort, aten.topk,
    aten.nonzero, aten.index_add, aten.scatter_reduce, aten.scatter_reduce_,  # accumulation (Radial softmax)
    # elementwise-cost ops the 2*MAC convention does not count (as FlopCounterMode and the closed forms)
    aten._softmax, aten._safe_softmax, aten._log_softmax, aten.native_layer_norm, aten.native_group_norm,
    aten._native_batch_norm_legit_no_training, aten.cumsum, aten.cumprod, aten._adaptive_avg_pool2d,
    aten._adaptive_avg_pool3d, aten.avg_pool2d, aten.avg_pool3d, aten.max_pool2d_with_indices,
    # metadata queries (tensor subclasses)
    aten.size, aten.sym_size, aten.stride, aten.sym_stride, aten.numel, aten.sym_numel, aten.dim,
    aten.is_contiguous, aten.storage_offset, aten.sym_storage_offset,
}
HOP_FORMULAS: dict[Any, Formula] = {}  # higher-order ops with a formula; empty: all are refused (see docstring)


def register_flop_op(op: Any, formula: Formula) -> None:
    """Count ``op`` (an OpOverloadPacket such as ``torch.ops.mylib.scan``, or a HigherOrderOperator) with
    ``formula(*args, out_val=out, **kwargs)``; wrap a shape-only formula with ``tfc.shape_wrapper``."""
    if isinstance(op, torch._ops.HigherOrderOperator):
        HOP_FORMULAS[op] = formula
    else:
        FLOP_OPS[op] = formula


def register_zero_flop_op(op: Any) -> None:
    """Declare ``op`` (an OpOverloadPacket) FLOP-free under the 2*MAC convention (no matmul-like work)."""
    ZERO_FLOP_OPS.add(op)


def formula_for(func: Any) -> Formula | None:
    """The formula of an OpOverload: :data:`FLOP_OPS`; for a custom (non-aten) op, also the formula registered with
    torch's ``register_flop_formula``. aten ops are counted from :data:`FLOP_OPS` only, so the table is the whole
    truth about them (an aten op torch knows but the table does not is refused, not silently counted)."""
    packet = func._overloadpacket
    formula = FLOP_OPS.get(packet)
    if formula is None and func.namespace != "aten":
        formula = tfc.flop_registry.get(packet)
    return formula


def is_flop_free(func: Any) -> bool:
    if func._overloadpacket in ZERO_FLOP_OPS or func.is_view:
        return True
    return torch.Tag.pointwise in func.tags or torch.Tag.reduction in func.tags


def _op_name(packet: Any) -> str:
    """``aten.mm`` -> ``mm``, ``lingen.ssd_scan`` -> ``ssd_scan`` (the records' ``flops_op_*`` suffixes)."""
    return str(packet).rpartition(".")[2]


class FlopCounter(TorchDispatchMode):
    """Totals FLOPs (and FLOPs per op) of what runs under it; see the module docstring for the op table."""

    supports_higher_order_operators = True  # so HOPs reach __torch_dispatch__ and are refused by name

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.by_op: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if isinstance(func, torch._ops.HigherOrderOperator):
            formula = HOP_FORMULAS.get(func)
            if formula is None:
                raise UnknownFlopOpError(
                    f"higher-order op {func.name()!r} has no FLOP formula: its cost depends on more than the "
                    "shapes (flex_attention: on the block mask); register one with "
                    "evalkit.measure.flop_counter.register_flop_op")
            out = func(*args, **kwargs)
            self._add(func.name(), formula(*args, out_val=out, **kwargs))
            return out
        out = func(*args, **kwargs)
        formula = formula_for(func)
        if formula is not None:
            self._add(_op_name(func._overloadpacket), formula(*args, out_val=out, **kwargs))
        elif not is_flop_free(func):
            raise UnknownFlopOpError(
                f"op {func} has no FLOP formula and is not known to be FLOP-free; add it to FLOP_OPS (with its "
                "formula) or ZERO_FLOP_OPS in evalkit/measure/flop_counter.py (register_flop_op / "
                "register_zero_flop_op)")
        return out

    def _add(self, name: str, flops: int) -> None:
        flops = int(flops)
        self.total += flops
        self.by_op[name] = self.by_op.get(name, 0) + flops


@contextlib.contextmanager
def no_opt_einsum():
    """Left-to-right einsum contraction regardless of whether opt_einsum is installed (the analytic terms assume
    the order the model's code writes)."""
    backend = getattr(torch.backends, "opt_einsum", None)
    old = backend.enabled if backend is not None else None
    if backend is not None:
        backend.enabled = False
    try:
        yield
    finally:
        if backend is not None:
            backend.enabled = old


# ---- counting a model ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Count:
    """FLOPs of one forward (2 per MAC), per op, how they were counted and how long it took."""

    total: int
    by_op: dict[str, int]
    method: str               # "full" (every layer ran) | "per_layer_kind" (one layer per kind, multiplied)
    layers: int               # layers of the model
    layers_counted: int       # blocks that actually ran under the counter
    kinds: int | None         # distinct layer kinds (None: no layer_kind for this mixer)
    build_seconds: float
    count_seconds: float


def count_model(model: Any, inputs: tuple, *, block_hooks: bool = False,
                blocks_attr: str = "blocks") -> tuple[FlopCounter, list[tuple]]:
    """Run ``model(*inputs)`` under :class:`FlopCounter`; with ``block_hooks``, also (total, by_op) of each entry
    of ``model.<blocks_attr>`` in call order."""
    counter = FlopCounter()
    per_block: list[tuple[int, dict[str, int]]] = []
    start: list[tuple[int, dict[str, int]]] = []
    handles = []
    if block_hooks:
        def pre(_mod, _args):
            start.append((counter.total, dict(counter.by_op)))

        def post(_mod, _args, _out):
            t0, ops0 = start.pop()
            per_block.append((counter.total - t0, {k: v - ops0.get(k, 0) for k, v in counter.by_op.items()
                                                   if v != ops0.get(k, 0)}))

        for blk in getattr(model, blocks_attr):
            handles += [blk.register_forward_pre_hook(pre), blk.register_forward_hook(post)]
    try:
        with no_opt_einsum(), torch.no_grad(), counter:
            out = model(*inputs)
    finally:
        for h in handles:
            h.remove()
    out = output_tensor(out)
    if out.shape != inputs[0].shape:
        raise AssertionError(f"forward returned {tuple(out.shape)} for input {tuple(inputs[0].shape)}")
    return counter, per_block


def output_tensor(out: Any) -> Any:
    """The denoiser's prediction from a forward's return value: the tensor itself (the backbone's models), or the
    first entry of a tuple / ``ModelOutput`` (diffusers' transformers return ``Transformer2DModelOutput(sample)``).
    Every model here predicts in its input's layout ((B, C, T, H, W), CogVideoX's (B, T, C, H, W), LTX's packed
    (B, L, C)), so the shape equals input 0's."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) or hasattr(out, "to_tuple"):
        return out[0]
    raise TypeError(f"forward returned {type(out).__name__}, not a tensor, tuple or ModelOutput")


def layer_kinds(cfg: Any) -> list[Hashable] | None:
    """The kind of each layer of ``cfg``, from the mixer config's own ``layer_kind``; None when it has none."""
    kinds = [cfg.layer_kind(layer) for layer in range(cfg.depth)]
    return None if any(k is None for k in kinds) else kinds


def kind_plan(cfg: Any) -> tuple[int, tuple[int, ...], int] | None:
    """(layers to build k, multiplicity of each of those k layers, number of kinds), or None (count in full).

    Layer i < k stands for every layer whose kind first occurs at i; layers < k that are not a first occurrence
    get multiplicity 0 (they run, but their count is not used)."""
    kinds = layer_kinds(cfg)
    if kinds is None:
        return None
    first: dict[Hashable, int] = {}
    for layer, kind in enumerate(kinds):
        first.setdefault(kind, layer)
    k = max(first.values()) + 1
    mult = [0] * k
    for kind in kinds:
        mult[first[kind]] += 1
    return k, tuple(mult), len(first)


def reduced(cfg: Any) -> tuple[Any, tuple[int, tuple[int, ...], int] | None]:
    """(the config of the first ``k`` layers, :func:`kind_plan`), or (cfg, None) when it has no layer kinds."""
    plan = kind_plan(cfg)
    return (cfg.with_depth(plan[0]), plan) if plan is not None else (cfg, None)


def combine(total: int, blocks: list[int], multiplicity: tuple[int, ...]) -> int:
    """Full-depth total from a ``k``-layer count: outside the blocks once, block i x its multiplicity."""
    return total - sum(blocks) + sum(m * b for m, b in zip(multiplicity, blocks))


def count_point(cfg: Any, point: Any, *, batch: int = 1, build: Callable[[Any], Any],
                method: str = "per_layer_kind") -> Count:
    """FLOPs of one forward of ``cfg`` at ``point`` on meta. ``build(cfg) -> model on meta`` (cached by the
    caller); ``method="full"`` counts every layer of the full model."""
    from evalkit import models

    if method not in ("per_layer_kind", "full"):
        raise ValueError(f"method: unknown {method!r}. Valid choices: full, per_layer_kind")
    sub, plan = reduced(cfg) if method == "per_layer_kind" else (cfg, None)
    t0 = time.perf_counter()
    model = build(sub)
    t1 = time.perf_counter()
    inputs = tuple(models.dummy_inputs(sub, point, batch=batch, device="meta", dtype=torch.float32))
    if plan is None:
        counter, _ = count_model(model, inputs)
        return Count(total=counter.total, by_op=dict(counter.by_op), method="full", layers=cfg.depth,
                     layers_counted=cfg.depth, kinds=None if method == "per_layer_kind" else _n_kinds(cfg),
                     build_seconds=t1 - t0, count_seconds=time.perf_counter() - t1)
    k, mult, n_kinds = plan
    blocks = getattr(model, cfg.blocks_attr, None)
    if not isinstance(blocks, torch.nn.ModuleList) or len(blocks) != k:
        raise RuntimeError(f"per_layer_kind counting needs model.{cfg.blocks_attr} (nn.ModuleList of depth {k}); "
                           f"{type(model).__name__} has {type(blocks).__name__}")
    counter, per_block = count_model(model, inputs, block_hooks=True, blocks_attr=cfg.blocks_attr)
    if len(per_block) != k:
        raise RuntimeError(f"{k} blocks built but {len(per_block)} block calls counted")
    total = combine(counter.total, [t for t, _ in per_block], mult)
    by_op = dict(counter.by_op)
    for m, (_, ops) in zip(mult, per_block):
        for name, n in ops.items():
            by_op[name] += (m - 1) * n                        # block counted once already: m - 1 more times
    return Count(total=total, by_op={n: v for n, v in by_op.items() if v}, method="per_layer_kind",
                 layers=cfg.depth, layers_counted=k, kinds=n_kinds, build_seconds=t1 - t0,
                 count_seconds=time.perf_counter() - t1)


def _n_kinds(cfg: Any) -> int | None:
    plan = kind_plan(cfg)
    return plan[2] if plan else None
