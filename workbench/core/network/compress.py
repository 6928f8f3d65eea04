"""Compressing a checkpoint into a `.wbn` file and decoding it back, as jobs with progress events.

`compress_network_job` quantizes (any registered quantizer), entropy-codes every tensor with CABAC
or per-tensor categorical tables (`coder="auto"` runs, for each tensor, the one whose size estimate
is smaller), packs the container, then decodes the bytes
it produced and checks that the decoder's reconstruction is bit-identical to the encoder's before
reporting anything: sizes and accuracies are always those of the real file.

Delta coding (`base=`): float tensors are coded as the difference to the base checkpoint; the
file stores the base's SHA-256 (`checkpoint.state_hash`) in the container's model-hash field and
decoding refuses any other base.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field, is_dataclass, replace

import numpy as np
import torch

from workbench.core.allocator import release_memory
from workbench.core.container import pack, unpack
from workbench.core.errors import BitstreamError, OptionError
from workbench.core.jobs import Job, Progress
from workbench.core.network import bitstream as bs
from workbench.core.network.checkpoint import CheckpointError, StateDict, state_hash, tensor_bytes
from workbench.core.network.quantizers import (NET_QUANTIZERS, QuantInput, QuantizedTensor, choose_steps,
                                               as_chains, snr_db)
from workbench.core.network.sensitivity import sensitivity_job
from workbench.core.options import build

MAX_LEVEL = (1 << 30) - 1
"""Largest |level| coded: the CABAC decoder refuses levels from 2^31 on, so there is room to spare."""
MAX_BIAS_BITS = 24
"""1-D tensors get step max|w| / (2^(bits-1) - 1); beyond 24 bits the step falls below float32's precision."""


@dataclass(frozen=True)
class TensorSummary:
    name: str
    shape: tuple[int, ...]
    dtype: str
    parameters: int
    mode: str
    coder: str
    bytes: int
    bits_per_weight: float
    snr_db: float


@dataclass
class NetResult:
    data: bytes
    rows: list[TensorSummary]
    quantizer: str
    options: dict
    coder: str
    parameters: int
    accuracy_before: float | None = None
    accuracy_after: float | None = None
    metric: str = "accuracy"     # what accuracy_before/after measure (the task's `metric`)
    encode_s: float = 0.0
    decode_s: float = 0.0
    delta: bool = False
    state: StateDict = field(default_factory=dict, repr=False)

    @property
    def bits_per_weight(self) -> float:
        """Whole file (headers, tables, raw tensors included) over all parameters."""
        return 8 * len(self.data) / max(self.parameters, 1)

    def to_dict(self) -> dict:
        return {
            "quantizer": self.quantizer, "options": self.options, "coder": self.coder, "delta": self.delta,
            "file_bytes": len(self.data), "parameters": self.parameters, "bits_per_weight": self.bits_per_weight,
            "compression_ratio_vs_float32": 32 / self.bits_per_weight if self.data else None,
            "accuracy_before": self.accuracy_before, "accuracy_after": self.accuracy_after, "metric": self.metric,
            "encode_s": self.encode_s, "decode_s": self.decode_s,
            "tensors": [{**asdict(r), "snr_db": _finite(r.snr_db)} for r in self.rows],
        }

    def format_summary(self) -> str:
        # Names are never cut: a transformer's query/key/value tensors differ only in their last part.
        width = max([len("tensor")] + [len(r.name) for r in self.rows])
        lines = [f"{'tensor':<{width}} {'shape':<16} {'mode':<8} {'coder':<11} {'bytes':>8} {'bits/w':>7} {'SNR dB':>7}"]
        for r in self.rows:
            snr = "inf" if math.isinf(r.snr_db) else f"{r.snr_db:.1f}"
            lines.append(f"{r.name:<{width}} {str(list(r.shape)):<16} {r.mode:<8} {r.coder:<11} {r.bytes:>8} "
                         f"{r.bits_per_weight:>7.3f} {snr:>7}")
        ratio = 32 / self.bits_per_weight if self.data else float("nan")
        versus = f"{ratio:.1f}x smaller" if ratio >= 1 else f"{1 / ratio:.1f}x larger"
        lines.append(f"total: {len(self.data)} bytes for {self.parameters} parameters = "
                     f"{self.bits_per_weight:.3f} bits/weight ({versus} than float32)")
        if self.accuracy_before is not None:
            lines.append(f"{self.metric}: {self.accuracy_before:.4f} before, {self.accuracy_after:.4f} after")
        lines.append(f"encode {self.encode_s:.2f} s, decode {self.decode_s:.2f} s")
        return "\n".join(lines)

    def summary_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


def compress_network_job(state: StateDict, quantizer: str = "uniform", options=None, *, coder: str = "auto",
                         base: StateDict | None = None, importance: StateDict | None = None, task=None,
                         bias_bits: int = 16, nonfinite: str = "refuse", keep_state: bool = True,
                         calibration=None) -> Job[NetResult]:
    """Quantize and code `state`; yields quantizer and coding progress, returns a `NetResult`.

    Everything the file format or the quantizers cannot take is refused before any work: dtypes a
    `.wbn` cannot store, too many tensors or elements, NaN or infinite weights. With
    `nonfinite="raw"` a float tensor holding NaN or infinities is stored raw (exactly) instead.

    `calibration`: a task with `probe` (the digits task; random token ids through a BERT folder's
    forward pass) whose measured sensitivities rescale each tensor's step (`sensitivity`).

    The decoded network is returned in `NetResult.state`; with `keep_state=False` (and no task) each
    decoded tensor is checked and dropped, so the job's memory stays near the model's own size.

    >>> from workbench.core.jobs import run
    >>> sd = {"w": torch.randn(4, 6), "b": torch.zeros(4), "n": torch.tensor(3)}
    >>> res = run(compress_network_job(sd, "uniform", {"bits": 8}))
    >>> back = decompress_network(res.data)
    >>> [(k, tuple(v.shape), v.dtype) for k, v in back.items()] == [(k, tuple(v.shape), v.dtype) for k, v in sd.items()]
    True
    """
    if coder not in ("auto", "cabac", "categorical"):
        raise ValueError(f"unknown coder {coder!r} (auto, cabac, categorical)")
    if nonfinite not in ("refuse", "raw"):
        raise OptionError(f"unknown treatment of non-finite weights {nonfinite!r} (refuse, raw)")
    if not 2 <= bias_bits <= MAX_BIAS_BITS:
        raise OptionError(f"bias bits must be 2..{MAX_BIAS_BITS}, not {bias_bits}")
    qcls = NET_QUANTIZERS.get(quantizer)
    opts = options if is_dataclass(options) else build(qcls.Options, options or {})
    t0 = time.perf_counter()
    if base is not None:
        _check_base(state, base)
    quantize = _check_input(state, base, nonfinite)
    main, others, raw = {}, {}, {}
    for name, t in state.items():
        t = t.detach().cpu()
        if name in quantize:
            target = t.float() - base[name].float() if base is not None else t.float()
            (main if t.ndim >= 2 else others)[name] = target
        else:
            raw[name] = t
    imp = _importance(importance, main)
    acc_before = task.accuracy(state) if task is not None else None
    done: dict[str, bs.Entry] = {}
    digests: dict[str, bytes] = {}
    snrs: dict[str, float] = {}

    def code(name: str, q: QuantizedTensor) -> None:
        """Code each tensor as soon as it is quantized and keep only its bytes and a digest of its
        reconstruction: the levels (int64, twice a float32 tensor) and values of one tensor at a
        time are ever held, so the job needs little more memory than the model itself."""
        _check_levels(name, q)
        t = state[name]
        e = bs.Entry(name, tuple(t.shape), t.dtype, delta=base is not None, chains=q.levels.shape[0])
        e.coder, e.data = bs.code_levels(q, coder)
        e.q = q
        rec = _reconstruct(e, base)
        e.q = replace(q, levels=None)
        snrs[name] = snr_db(_as_numpy(t), _as_numpy(rec))
        digests[name] = _digest(rec)
        done[name] = e
        del rec
        release_memory()

    sens = (yield from sensitivity_job(calibration, state, list(main))) if calibration is not None else {}
    out = yield from qcls().run(QuantInput(main, others, imp, task, base is not None, sensitivity=sens, sink=code),
                                opts)
    for name, q in out.tensors.items():      # a quantizer that does not use the sink
        code(name, q)
    for name, t in out.others.items():
        w2 = as_chains(t.float())
        steps = choose_steps(w2, 0.0, 0, bias_bits, False)
        code(name, QuantizedTensor(levels=torch.round(w2.double() / float(steps[0])).long().numpy(),
                                   steps=steps, states=0))
        yield Progress(len(done), len(state), f"coding {name}")
    del main, others
    entries = []
    for name, t in state.items():
        if name not in done:
            done[name] = bs.Entry(name, tuple(t.shape), t.dtype, raw=raw[name])
            digests[name] = _digest(raw[name])
        entries.append(done[name])
    base_hash = state_hash(base) if base is not None else None
    params = {"coder": coder, "bias_bits": bias_bits, **{k: v for k, v in asdict(opts).items()}}
    if calibration is not None:
        params["calibration"] = getattr(calibration, "name", "task")
    data = pack(bs.pack_network(entries, quantizer, params, base_hash))
    sizes = {e.name: len(e.data) if e.q is not None else e.raw.numel() * e.raw.element_size() for e in entries}
    for e in entries:
        e.data = b""                              # the file holds them now
    release_memory()                              # packing's copies, before the check decodes the largest tensor
    encode_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    recon: StateDict = {}
    for name, t in _decoded(data, base):           # what a receiver gets is what is reported and measured
        if _digest(t) != digests[name]:
            raise BitstreamError(f"internal error: decoding {name!r} does not reproduce the encoder's values")
        if keep_state or task is not None:
            recon[name] = t
    decode_s = time.perf_counter() - t1

    rows = []
    for e, (name, t) in zip(entries, state.items()):
        n = max(t.numel(), 1)
        size = sizes[name]
        rows.append(TensorSummary(
            name=e.name, shape=e.shape, dtype=str(e.dtype).replace("torch.", ""), parameters=n,
            mode="raw" if e.q is None else ("codebook" if e.q.codebook is not None else
                                            ("tcq" if e.q.states else "scalar")),
            coder="-" if e.q is None else e.coder, bytes=size, bits_per_weight=8 * size / n,
            snr_db=snrs.get(name, float("inf"))))
    acc_after = task.accuracy(recon) if task is not None else None
    return NetResult(data=data, rows=rows, quantizer=quantizer, options=dict(params), coder=coder,
                     parameters=sum(max(t.numel(), 0) for t in state.values()), accuracy_before=acc_before,
                     accuracy_after=acc_after, metric=getattr(task, "metric", "accuracy"), encode_s=encode_s, decode_s=decode_s, delta=base is not None,
                     state=recon)


def decompress_network(data: bytes, base: StateDict | None = None, *, max_elements: int = bs.MAX_ELEMENTS) -> StateDict:
    """Decode a `.wbn` payload to a state dict with the original keys, shapes and dtypes."""
    return dict(_decoded(data, base, max_elements))


def _decoded(data: bytes, base: StateDict | None, max_elements: int = bs.MAX_ELEMENTS):
    """(name, tensor) pairs of a `.wbn` payload, decoded and dequantized one tensor at a time."""
    c = unpack(data)
    if c.params.get("delta"):
        if base is None:
            raise BitstreamError(f"this file codes a difference to a base checkpoint (SHA-256 "
                                 f"{c.model_hash.hex()[:16]}...); pass the base to decode it")
        h = state_hash(base)
        if h != c.model_hash:
            raise BitstreamError(f"wrong base checkpoint: the file expects SHA-256 {c.model_hash.hex()[:16]}..., "
                                 f"the given base has {h.hex()[:16]}...")
    else:
        base = None
    for e in bs.iter_network(c, max_elements):
        yield e.name, _reconstruct(e, base)


def _reconstruct(e: bs.Entry, base: StateDict | None) -> torch.Tensor:
    if e.q is None:
        return e.raw.reshape(e.shape)
    vals = e.q.values().reshape(e.shape)
    if e.delta:
        if base is None or e.name not in base or tuple(base[e.name].shape) != e.shape:
            raise BitstreamError(f"the base checkpoint has no tensor {e.name!r} of shape {list(e.shape)}")
        vals = base[e.name].detach().cpu().float().numpy().astype(np.float32) + vals
    # `values()` and the sum above are fresh float32 arrays: a copy of the word embeddings' was the
    # top of the calibrated job's peak (its check after packing)
    return torch.from_numpy(np.ascontiguousarray(vals, dtype=np.float32)).reshape(e.shape).to(e.dtype)


def _check_base(state: StateDict, base: StateDict) -> None:
    for name, t in state.items():
        if t.dtype not in bs.QUANTIZABLE:
            continue
        b = base.get(name)
        if b is None or tuple(b.shape) != tuple(t.shape) or b.dtype not in bs.QUANTIZABLE:
            why = "is missing" if b is None else (f"has shape {list(b.shape)}" if tuple(b.shape) != tuple(t.shape)
                                                  else f"has dtype {_dtype_name(b.dtype)}")
            raise CheckpointError(f"the base checkpoint does not match: tensor {name!r} {why} "
                                  f"(finetuned: {list(t.shape)}, {_dtype_name(t.dtype)})")


def _check_input(state: StateDict, base: StateDict | None, nonfinite: str) -> set[str]:
    """The names of the tensors to quantize, once every tensor is known to fit a `.wbn` file: the
    decoder refuses what breaks its limits, so a file that breaks them must never be written, and
    non-finite weights would fail late with messages that blame the file."""
    if not state:
        raise CheckpointError("the checkpoint holds no tensors to compress")
    if len(state) > bs.MAX_TENSORS:
        raise CheckpointError(f"{len(state)} tensors do not fit in one .wbn file (at most {bs.MAX_TENSORS})")
    quantize, total = set(), 0
    for name, t in state.items():
        if t.dtype not in bs.DTYPE_CODES:
            raise CheckpointError(f"tensor {name!r} has dtype {_dtype_name(t.dtype)}, which a .wbn file cannot "
                                  f"store (it stores {', '.join(_dtype_name(d) for d in bs.DTYPE_CODES)})")
        if len(name.encode("utf-8")) > bs.MAX_NAME:
            raise CheckpointError(f"tensor name {name[:40]!r}... is longer than {bs.MAX_NAME} bytes")
        if t.ndim > bs.MAX_RANK or any(d > bs.MAX_DIM for d in t.shape):
            raise CheckpointError(f"tensor {name!r} of shape {list(t.shape)} does not fit a .wbn file "
                                  f"(at most {bs.MAX_RANK} dimensions of at most {bs.MAX_DIM})")
        total += t.numel()
        if total > bs.MAX_ELEMENTS:
            raise CheckpointError(f"the checkpoint has more than the {bs.MAX_ELEMENTS} values a .wbn file holds")
        if t.dtype not in bs.QUANTIZABLE or t.numel() == 0:
            continue
        x = t.detach().float()                     # float64 beyond the float32 range becomes infinite
        if base is not None:
            x = x - base[name].detach().float()
        bad = int((~torch.isfinite(x)).sum())
        if bad and nonfinite == "raw":
            continue                                # stored raw: exact, NaN and all
        if bad:
            nan = int(torch.isnan(x).sum())
            what = "its difference to the base has" if base is not None else "it has"
            raise CheckpointError(
                f"tensor {name!r} cannot be quantized: {what} {nan} NaN and {bad - nan} infinite (or beyond "
                f"float32) values among {t.numel()}; fix the checkpoint, or store such tensors exactly "
                "(uncompressed) with --nonfinite raw")
        quantize.add(name)
    return quantize


def _check_levels(name: str, q: QuantizedTensor) -> None:
    """A step so small that levels overflow the coders (or float32 rounds it to zero) is the option's
    fault, not the file's: say so before coding."""
    if q.steps is not None and not np.all((q.steps > 0) & np.isfinite(q.steps)):
        raise OptionError(f"tensor {name!r}: the quantization step is too small to store (it rounds to 0 "
                          "in float32); use a larger step or QP")
    if q.levels.size and (q.levels.max() > MAX_LEVEL or q.levels.min() < -MAX_LEVEL):
        raise OptionError(f"tensor {name!r}: the quantization step is too small for its values (levels "
                          f"beyond ±{MAX_LEVEL}); use a larger step, QP or fewer bits")


def _digest(t: torch.Tensor) -> bytes:
    """SHA-256 of dtype, shape and bytes: equal digests, bit-identical tensors (NaN included)."""
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    flat = t.detach().contiguous().reshape(-1)
    for i in range(0, max(flat.numel(), 1), 1 << 20):
        h.update(tensor_bytes(flat[i:i + (1 << 20)]))
    return h.digest()


def _as_numpy(t: torch.Tensor) -> np.ndarray:
    """float32 and float64 as they are (no copy); half types widened to float32."""
    t = t.detach()
    return (t if t.dtype in (torch.float32, torch.float64) else t.float()).numpy()


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _importance(importance: StateDict | None, main: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-weight F_i normalised to mean 1 per tensor, so λ keeps its meaning whatever their scale."""
    if not importance:
        return {}
    out = {}
    for name, t in main.items():
        f = importance.get(name)
        if f is None:
            continue
        if tuple(f.shape) != tuple(t.shape):
            raise CheckpointError(f"importance for {name!r} has shape {list(f.shape)}, weights {list(t.shape)}")
        f = f.detach().float().abs()
        m = float(f.mean())
        out[name] = f / m if m > 0 else torch.ones_like(f)
    return out


def _finite(x: float):
    return None if math.isinf(x) or math.isnan(x) else x
