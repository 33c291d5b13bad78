"""Test harness: each VBench evaluator network runs once per distinct input across a test session (run INSIDE the
VBench environment; never imported by evalkit).

The ``vbench`` tests compare ``evalkit vbench run`` with VBench's own entry points on the same files, in four modes,
so without this the same network would run on the same frames up to eight times (a 2 s clip's frames are its
source video's frames: evalkit's clips are lossless). On a 2-core CPU that is hours. This module wraps the forward
methods of the evaluator networks VBench 0.1.5 builds (:data:`TARGETS`) with a disk memo keyed by

- the network's class and method, and a digest of every parameter and buffer (so other weights: another key);
- the exact bytes, dtype and shape of every tensor argument, and the value of every other argument;
- the torch state that can change the arithmetic (grad mode, autocast, default dtype, thread count, train/eval).

A hit returns what the same network computed on bit-identical inputs under the same state, in an earlier process
(CPU forward passes are deterministic at a fixed thread count; test_vbench_real.py checks one dimension against a
reference run without the memo). Everything around the networks runs in full on both sides: decoding, frame
sampling, resizing, prompts and labels, per-video and aggregate arithmetic. A call nested in a memoised call is not
memoised again; a call with an argument the key cannot describe runs as usual.

``EVALKIT_TEST_VBENCH_MEMO=DIR`` turns it on (DIR holds one ``.pt`` file per distinct call; hit and miss counts are
appended to ``DIR/stats.jsonl``). ``python memo.py SCRIPT ARG...`` installs it and runs SCRIPT as ``__main__``
(the tests run evalkit's ``_worker.py`` this way, through evalkit's worker-command hook).
"""
import atexit
import hashlib
import importlib.abc
import json
import os
import runpy
import sys
import threading

# (module, class, methods): the networks VBench's dimensions call (vbench/<dimension>.py, 0.1.5)
TARGETS = (
    ("vbench.third_party.RAFT.core.raft", "RAFT", ("forward",)),                       # dynamic_degree
    ("networks.AMT-S", "Model", ("forward",)),       # motion_smoothness (VBench puts third_party/amt on sys.path)
    ("vbench.third_party.amt.networks.AMT-S", "Model", ("forward",)),
    ("pyiqa.archs.musiq_arch", "MUSIQ", ("forward",)),                                 # imaging_quality
    ("clip.model", "CLIP", ("forward", "encode_image", "encode_text")),                # background, aesthetic, style
    ("dreamsim.feature_extraction.vision_transformer", "VisionTransformer", ("forward",)),   # DINO fixture
    ("vbench.third_party.umt.models.modeling_finetune", "VisionTransformer", ("forward",)),  # human_action
    ("vbench.third_party.ViCLIP.viclip", "ViCLIP", ("encode_vision", "encode_text")),  # temporal_style, overall
    ("vbench.third_party.tag2Text.tag2text", "Tag2Text_Caption", ("generate",)),       # scene
)
_local = threading.local()
_stats = {"hit": 0, "miss": 0, "uncached": 0}


class _Unkeyable(Exception):
    pass


def _feed(h, obj):
    import torch

    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif obj is None or isinstance(obj, (bool, int, float, str)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}[{len(obj)}".encode())
        for x in obj:
            _feed(h, x)
        h.update(b"]")
    elif isinstance(obj, dict):
        h.update(f"dict{{{len(obj)}".encode())
        for k in sorted(obj, key=repr):
            _feed(h, k)
            _feed(h, obj[k])
        h.update(b"}")
    else:
        raise _Unkeyable(type(obj).__name__)


def _weights_digest(module) -> str:
    """Digest of the module's parameters and buffers (once per instance and state; recomputed after a load)."""
    import torch

    tensors = list(module.state_dict().items())
    stamp = tuple((k, v.data_ptr(), v._version) for k, v in tensors)
    cached = getattr(module, "_memo_weights", None)
    if cached and cached[0] == stamp:
        return cached[1]
    h = hashlib.blake2b(digest_size=20)
    for k, v in tensors:
        h.update(k.encode())
        _feed(h, v if isinstance(v, torch.Tensor) else torch.as_tensor(v))
    value = h.hexdigest()
    module._memo_weights = (stamp, value)
    return value


def _key(cls_name: str, method: str, module, args, kwargs) -> str:
    import torch

    h = hashlib.blake2b(digest_size=20)
    state = (cls_name, method, _weights_digest(module), torch.is_grad_enabled(), torch.is_autocast_enabled(),
             str(torch.get_default_dtype()), torch.get_num_threads(), bool(getattr(module, "training", False)))
    h.update(repr(state).encode())
    _feed(h, list(args))
    _feed(h, dict(kwargs))
    return h.hexdigest()


def _wrap(cls_name: str, method: str, fn, root: str):
    import functools

    @functools.wraps(fn)
    def memoised(self, *args, **kwargs):
        import torch

        if getattr(_local, "depth", 0):            # inside another memoised call: run as usual
            return fn(self, *args, **kwargs)
        try:
            key = _key(cls_name, method, self, args, kwargs)
        except _Unkeyable:
            _stats["uncached"] += 1
            return fn(self, *args, **kwargs)
        path = os.path.join(root, f"{cls_name}.{method}.{key}.pt")
        if os.path.exists(path):
            _stats["hit"] += 1
            return torch.load(path, map_location="cpu", weights_only=False)
        _local.depth = getattr(_local, "depth", 0) + 1
        try:
            out = fn(self, *args, **kwargs)
        finally:
            _local.depth -= 1
        _stats["miss"] += 1
        tmp = f"{path}.{os.getpid()}.tmp"
        torch.save(out, tmp)
        os.replace(tmp, path)
        return out

    return memoised


def _patch(module, root: str) -> None:
    for mod_name, cls_name, methods in TARGETS:
        if module.__name__ != mod_name:
            continue
        cls = getattr(module, cls_name)
        for m in methods:
            if not getattr(getattr(cls, m), "_memo", False):
                wrapped = _wrap(f"{mod_name}.{cls_name}", m, getattr(cls, m), root)
                wrapped._memo = True
                setattr(cls, m, wrapped)


class _Finder(importlib.abc.MetaPathFinder):
    """Patches a target module right after it is executed (the modules are imported lazily by VBench)."""

    def __init__(self, root: str):
        self.root = root
        self.names = {t[0] for t in TARGETS}

    def find_spec(self, name, path=None, target=None):
        if name not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                break
        else:
            return None
        loader, root = spec.loader, self.root
        exec_module = loader.exec_module

        class _Loader(importlib.abc.Loader):
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                exec_module(module)
                _patch(module, root)

        spec.loader = _Loader()
        return spec


def install() -> bool:
    """Turn the memo on when ``EVALKIT_TEST_VBENCH_MEMO`` names a folder; returns whether it is on."""
    root = os.environ.get("EVALKIT_TEST_VBENCH_MEMO")
    if not root:
        return False
    os.makedirs(root, exist_ok=True)
    for name in {t[0] for t in TARGETS} & set(sys.modules):   # already imported: patch now
        _patch(sys.modules[name], root)
    sys.meta_path.insert(0, _Finder(root))

    def _report():
        with open(os.path.join(root, "stats.jsonl"), "a") as fh:
            fh.write(json.dumps({"pid": os.getpid(), "argv": sys.argv[-1:], **_stats}) + "\n")

    atexit.register(_report)
    return True


if __name__ == "__main__":
    install()
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
