"""How much each weight tensor matters to a network's task, measured on a few calibration inputs,
and the per-tensor quantization steps that follow from it.

Why: one step for all tensors (NNCodec's QP) spends the same precision on a layer the outputs barely
notice as on one they depend on. For a small weight error δ the output error is ‖J δ‖², whose
expectation under independent rounding noise is Σ_i diag(JᵀJ)_i·E[δ_i²]; with uniform noise
(Δ_t²/12 in tensor t) and the high-rate rate n_t·(h_t − log2 Δ_t), minimising distortion + λ·rate
gives Δ_t ∝ 1/√s_t, s_t the mean of diag(JᵀJ) over the tensor: the importance weighting of
DeepCABAC's paper, applied to step sizes.

diag(JᵀJ) is estimated without forming J: for a random vector v (a Gaussian over the outputs of a
regression-like task, random signs over per-sample losses for a classifier), E[(∂(v·f)/∂w)²] =
diag(JᵀJ), so each probe is one backward pass. A task offers `probe(params, generator)` returning
v·f (or Σ ±loss_i) as a scalar, and may offer `probes(params, generator, n)` yielding n of them from
one forward pass when its inputs are the same for every probe.

Where the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), a task runs its calibration
forward pass under bfloat16 autocast (`fast_probes`), and the backward passes follow it: on the
29.7 M-parameter test encoder 8 probes took 2.1 instead of 5.1 CPU s, and the per-tensor
sensitivities moved by 0.4 % RMS (1.5 % at most), a thirtieth of what the 8 probes' own randomness
leaves in them (14 % RMS against a 32-probe reference; `benchmarks/calibration_probes.py`). Fewer
probes were measured and not taken: the estimate is far from converged (one probe 56 % RMS), and
at 4 probes the calibrated TCQ-4 file lost output cosine (0.980 -> 0.970 at the same size).

Rows that no calibration input touched (embedding rows of tokens that did not occur) have zero
sensitivity and are left out of the mean, so a tensor is judged by the rows the inputs reached.
"""

from __future__ import annotations

import contextlib
import functools
import math

import numpy as np
import torch

from workbench.core.allocator import release_memory
from workbench.core.jobs import Job, Progress
from workbench.core.network.checkpoint import StateDict

PROBES = 8


@functools.lru_cache(maxsize=1)
def _native_bf16() -> bool:
    cpu = torch.cpu
    return any(getattr(cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def fast_probes() -> contextlib.AbstractContextManager:
    """The context a task's calibration forward pass runs in: bfloat16 autocast where the CPU has
    bfloat16 arithmetic (elsewhere it is emulated and need not be faster than float32), else nothing. Never
    held across a `yield`: autocast is the thread's state, and the caller's code would run under it.
    The graph keeps weights as float32 leaves and casts them again when backward needs them
    (`_pack_cast`): a graph that the probes' backward passes share kept a bfloat16 copy of every
    weight for all of them."""
    if not _native_bf16():
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False))
    stack.enter_context(torch.autograd.graph.saved_tensors_hooks(_pack_cast, _unpack_cast))
    return stack


def _pack_cast(t: torch.Tensor):
    """A saved tensor that is a cast of a leaf (or a view of one: a linear layer saves its weight
    transposed) as the leaf and how to cast and view it again; anything else as itself."""
    base = t._base if t._is_view() else t
    fn = base.grad_fn
    if fn is None or type(fn).__name__ != "ToCopyBackward0":
        return t
    leaf = fn.next_functions[0][0]
    if leaf is None or not hasattr(leaf, "variable") or leaf.variable.shape != base.shape:
        return t
    return leaf.variable, base.dtype, t.shape, t.stride(), t.storage_offset()


def _unpack_cast(packed):
    if isinstance(packed, torch.Tensor):
        return packed
    leaf, dtype, shape, stride, offset = packed
    return leaf.detach().to(dtype).as_strided(shape, stride, offset)


def sensitivity_job(task, state: StateDict, names: list[str], probes: int = PROBES) -> Job[dict[str, float]]:
    """Mean diag(JᵀJ) per tensor in `names`, over the rows the calibration inputs reached. No more
    than one tensor's gradient is alive at a time (`_take_square`): on the 29.7 M-parameter encoder
    the calibration peaked at 4.2x the float32 size over the imports with all of them, 2.7-2.9x with
    one, 2.4x since the heap is also handed back before each backward pass."""
    release_memory()            # what the caller freed (a task's reference pass) would stay resident
    params = {k: v.detach().float().requires_grad_(k in names) for k, v in state.items()}
    rows = {k: torch.zeros(params[k].shape[0], dtype=torch.float64) for k in names}
    gen = torch.Generator().manual_seed(12345)
    # a task whose inputs do not change between probes offers `probes`: one forward pass for all of them
    shared = hasattr(task, "probes")
    values = task.probes(params, gen, probes) if shared else (task.probe(params, gen) for _ in range(probes))
    wanted = [params[k] for k in names]
    handles = [t.register_post_accumulate_grad_hook(functools.partial(_take_square, rows[k]))
               for k, t in zip(names, wanted)]
    try:
        for p, value in enumerate(values):
            # the heap the forward pass's temporaries (first probe) or the previous backward pass's
            # buffers left: kept, the first backward pass started 50 MB higher and later ones ~16 MB higher each
            release_memory()
            value.backward(inputs=wanted, retain_graph=shared and p + 1 < probes)
            del value
            yield Progress(p + 1, probes, "measuring sensitivity")
    finally:
        for h in handles:
            h.remove()
    del values                  # the last probe's graph (a task's `probes` holds its output)
    release_memory()
    out = {}
    for k in names:
        per_row = params[k][0].numel()
        touched = rows[k] > 0
        out[k] = float(rows[k][touched].sum()) / (probes * per_row * max(int(touched.sum()), 1))
    return out


_CHUNK = 1 << 18
"""Weights squared and summed at a time: their float32 squares and the float64 copy `sum` makes
stay 3 MB (for the word embeddings' whole gradient 17 + 34 MB, whose holes the heap kept)."""


def _take_square(row: torch.Tensor, param: torch.Tensor) -> None:
    """Adds a tensor's squared gradient to its rows the moment backward has it, and drops it: held
    until the whole backward pass ends, every tensor's gradient at once cost the model's float32
    size again. Each row's sum is the same computation whether its rows come in chunks or at once."""
    g, param.grad = param.grad, None
    g = g.reshape(g.shape[0], -1)
    step = max(1, _CHUNK // g.shape[1])
    for i in range(0, g.shape[0], step):
        row[i:i + step] += g[i:i + step].square().sum(1, dtype=torch.float64)


def step_factors(sens: dict[str, float], counts: dict[str, int], base_log_step: dict[str, float]) -> dict[str, float]:
    """Multipliers of each tensor's step that make Δ_t ∝ 1/√s_t while keeping the count-weighted mean
    log-step of the steps the options chose, so QP/SNR keep setting the overall quality.

    >>> f = step_factors({"a": 4.0, "b": 1.0}, {"a": 1, "b": 1}, {"a": 0.0, "b": 0.0})
    >>> round(f["b"] / f["a"], 6)
    2.0
    """
    pos = [v for v in sens.values() if v > 0]
    if not pos:
        return {k: 1.0 for k in sens}
    floor = 1e-6 * max(pos)                       # an untouched tensor gets a coarse step, not an infinite one
    n = sum(counts[k] for k in sens)
    target = {k: -0.5 * math.log(max(sens[k], floor)) for k in sens}
    shift = sum(counts[k] * (base_log_step[k] - target[k]) for k in sens) / n
    return {k: float(np.exp(target[k] + shift - base_log_step[k])) for k in sens}
