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
    held across a `yield`: autocast is the thread's state, and the caller's code would run under it."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if _native_bf16() else contextlib.nullcontext()


def sensitivity_job(task, state: StateDict, names: list[str], probes: int = PROBES) -> Job[dict[str, float]]:
    """Mean diag(JᵀJ) per tensor in `names`, over the rows the calibration inputs reached."""
    params = {k: v.detach().float().requires_grad_(k in names) for k, v in state.items()}
    wanted = [params[k] for k in names]
    rows = {k: torch.zeros(params[k].shape[0], dtype=torch.float64) for k in names}
    gen = torch.Generator().manual_seed(12345)
    # a task whose inputs do not change between probes offers `probes`: one forward pass for all of them
    values = task.probes(params, gen, probes) if hasattr(task, "probes") else (task.probe(params, gen)
                                                                               for _ in range(probes))
    for p, value in enumerate(values):
        grads = torch.autograd.grad(value, wanted, allow_unused=True, retain_graph=p + 1 < probes)
        for k, g in zip(names, grads):
            if g is not None:
                rows[k] += g.reshape(g.shape[0], -1).square().sum(1, dtype=torch.float64)
        del grads
        yield Progress(p + 1, probes, "measuring sensitivity")
    out = {}
    for k in names:
        per_row = params[k][0].numel()
        touched = rows[k] > 0
        out[k] = float(rows[k][touched].sum()) / (probes * per_row * max(int(touched.sum()), 1))
    return out


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
