"""Network weight quantizers, registered by name in `NET_QUANTIZERS`.

Every quantizer turns each weight tensor (viewed as chains = rows = output channels × the rest)
into integer levels plus what the decoder needs to map levels back to values: one step per tensor
or per output channel (scalar quantizers, optionally through the trellis state machine) or a small
codebook (soft-to-hard VQ). Tensors with fewer than 2 dimensions (biases, norms) are not given to
the quantizer: `compress` codes them near-lossless with a fine uniform step, because they are few
and the network is far more sensitive to them than to any single weight.

Steps are chosen, in order of precedence, by `step` (absolute), `qp` (NNR-style, Δ = 2^(qp/4), so
4 qp units halve the step), `bits` (Δ = max|w| / (2^(bits−1) − 1) per tensor, or per output
channel with `per_channel`, which protects channels from one outlier elsewhere in the tensor) or,
by default, `snr` (Δ = σ·√12·10^(−snr/20), σ from the mean |w|: the rounding noise sits snr dB below the weights,
whatever their largest values; transformers' outlier weights made max-based steps a poor default).
Distortion in the RDO quantizers is measured in units of Δ², so λ means the same at every step.

Quantizers are jobs: generators yielding `Progress` events and returning a `QuantOutput`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from workbench.core.adam import Adam
from workbench.core.allocator import release_memory
from workbench.core.jobs import Job, Progress
from workbench.core.options import option
from workbench.core.registry import Registry
from workbench.core import trellis
from workbench.core.network.sensitivity import step_factors
from workbench.core.network.shvq_fit import CentreFit, nearest

NET_QUANTIZERS: Registry = Registry("network quantizer")


@dataclass
class QuantizedTensor:
    """Levels (chains, length) plus the dequantization rule; `values()` is the reconstruction the
    decoder will compute, bit for bit (float32 arithmetic on both sides)."""

    levels: np.ndarray
    steps: np.ndarray | None = None  # float32, (1,) or (rows,)
    states: int = 0  # 0 = independent scalar, 4 or 8 = trellis-coded
    codebook: np.ndarray | None = None  # float32 sorted centers (codebook mode)
    zero_index: int = 0  # level 0 <-> codebook[zero_index]

    def values(self) -> np.ndarray:
        if self.codebook is not None:
            return self.codebook[self.levels + self.zero_index].astype(np.float32)
        # a block of chains at a time (chains are independent): the integer temporaries stay small
        out = np.empty(self.levels.shape, dtype=np.float32)
        steps = np.asarray(self.steps, dtype=np.float32).reshape(-1)
        rows = max(1, SEARCH_CHUNK // max(self.levels.shape[-1], 1)) if self.levels.ndim == 2 else len(out)
        for i in range(0, len(out), rows):
            out[i:i + rows] = trellis.dequantize(self.levels[i:i + rows], steps if steps.size == 1 else
                                                 steps[i:i + rows], trellis.machine(self.states))
        return out

    @property
    def machine(self) -> trellis.StateMachine:
        return trellis.machine(self.states)


@dataclass
class QuantInput:
    """What a quantizer sees: `main` are the ≥2-D float tensors it must quantize (float32), `others`
    the small tensors coded near-lossless afterwards (a finetuning quantizer may update them),
    `importance` optional per-weight F_i (mean 1 per tensor), `task` an optional evaluator with
    `loss(params)` / `accuracy(state)`, `full` rebuilds a complete state dict for the task."""

    main: dict[str, torch.Tensor]
    others: dict[str, torch.Tensor]
    importance: dict[str, torch.Tensor] = field(default_factory=dict)
    task: object | None = None
    delta: bool = False
    sensitivity: dict[str, float] = field(default_factory=dict)
    """Mean task sensitivity per tensor (`sensitivity.sensitivity_job`): scalar quantizers then scale
    each tensor's step by 1/√s around the options' step (rate-distortion optimal allocation)."""
    sink: Callable[[str, "QuantizedTensor"], None] | None = None
    """Takes each tensor as soon as it is quantized (the compression job codes it at once and drops its
    levels); a quantizer that calls it leaves the tensor out of its `QuantOutput`."""

    def emit(self, out: dict, name: str, q: "QuantizedTensor") -> None:
        if self.sink is None:
            out[name] = q
        else:
            self.sink(name, q)


@dataclass
class QuantOutput:
    tensors: dict[str, QuantizedTensor]
    others: dict[str, torch.Tensor]


def as_chains(t: torch.Tensor) -> torch.Tensor:
    """(rows, rest) view: rows are output channels, the axis per-channel steps and chains run along."""
    return t.reshape(t.shape[0], -1) if t.ndim >= 2 else t.reshape(1, -1)


def choose_steps(w2: torch.Tensor, step: float, qp: int, bits: int, per_channel: bool, snr: float = 0.0) -> np.ndarray:
    """One step (or one per chain): `step`, else 2^(qp/4), else max|w| / (2^(bits−1) − 1), else the
    step whose rounding noise (Δ²/12) is `snr` dB below the weights' power. The last depends on the
    typical size, not the maximum, so outlier weights (transformers have many) cannot coarsen a tensor."""
    if step > 0:
        return np.array([step], dtype=np.float32)
    if qp != 0:
        return np.array([2.0 ** (qp / 4.0)], dtype=np.float32)
    if bits > 0:
        top = float(2 ** (bits - 1) - 1)
        amax = w2.abs().amax(1) if per_channel else w2.abs().max().reshape(1)
        s = (amax.double() / top).numpy().astype(np.float32)
    else:
        # the RMS estimated from the mean |w| (exact for a Gaussian): a squared outlier would dominate
        # the RMS itself, its absolute value barely moves the mean
        rows = max(1, SEARCH_CHUNK // max(w2.shape[1], 1))
        total = torch.cat([b.double().abs().sum(1) for b in w2.split(rows)])      # per chain
        mean_abs = total / max(w2.shape[1], 1) if per_channel else (total.sum() / max(w2.numel(), 1)).reshape(1)
        s = (mean_abs * math.sqrt(math.pi / 2 * 12) * 10 ** (-snr / 20)).numpy().astype(np.float32)
    return np.where(s > 0, s, np.float32(1.0)).astype(np.float32)


def snr_db(ref: np.ndarray, rec: np.ndarray, chunk: int = 1 << 20) -> float:
    """In slices of `chunk` values, so a large tensor needs no float64 copies of its own size."""
    a, b = np.asarray(ref).reshape(-1), np.asarray(rec).reshape(-1)
    sig = err = 0.0
    for i in range(0, a.size, chunk):
        x = a[i:i + chunk].astype(np.float64)
        sig += float(np.square(x).sum())          # not np.dot: BLAS threads fight over a busy machine
        x -= b[i:i + chunk]
        err += float(np.square(x).sum())
    if err == 0:
        return float("inf")
    return 10 * math.log10(sig / err) if sig > 0 else float("-inf")


def entropy_bits(levels: np.ndarray, chunk: int = 1 << 18) -> float:
    """Order-0 empirical entropy in bits per element (the progress curve's 'entropy'). Counted in
    slices of `chunk` levels: `levels - min` of a whole tensor was an int64 copy of its levels."""
    lv = np.asarray(levels).ravel()
    if lv.size == 0:
        return 0.0
    lo, hi = int(lv.min()), int(lv.max())
    if hi - lo < 1 << 20:
        cnt = np.zeros(hi - lo + 1, dtype=np.int64)
        for i in range(0, lv.size, chunk):
            cnt += np.bincount(lv[i:i + chunk] - lo, minlength=cnt.size)
    else:
        cnt = np.unique(lv, return_counts=True)[1]
    cnt = cnt[cnt > 0]
    p = cnt / cnt.sum()
    return float(-(p * np.log2(p)).sum()) if cnt.size else 0.0


@dataclass(frozen=True)
class ScalarOptions:
    step: float = option(0.0, "The same fixed quantization step for every weight tensor. "
                         "0 = automatic: the step comes from QP, or from Bits when QP is 0 too.",
                         minimum=0.0, maximum=1e6, label="Step (0 = automatic)")
    qp: int = option(0, "Quantization parameter as in NNR/NNCodec: step = 2^(QP/4), so lowering QP by 4 "
                     "halves the step (-32 gives a step of 1/256). 0 = not used: Bits or SNR sets the step.",
                     minimum=-200, maximum=100, label="QP (0 = off)")
    bits: int = option(0, "Bits for the largest weight of each tensor: step = max|w| / (2^(bits-1) - 1). "
                       "Fewer bits give a smaller file and larger errors. Used when Step and QP are 0. "
                       "0 = not used: SNR sets the step (one outlier weight would coarsen a whole tensor).",
                       minimum=0, maximum=16, label="Bits (0 = off)")
    snr: float = option(28.0, "Target signal-to-noise ratio of each tensor's rounding, in dB: the step is "
                        "set from the weights' typical size (mean |w|), so outliers do not coarsen the rest. Higher = larger file, "
                        "smaller error; +6 dB halves the step. Used when Step, QP and Bits are 0.",
                        minimum=0.0, maximum=200.0, label="SNR dB")
    per_channel: bool = option(False, "With Bits or SNR: one step for each output channel instead of one for "
                               "the whole tensor, so one large weight does not coarsen the whole tensor.",
                               label="Step per output channel")


class _Scalar:
    """Shared per-tensor loop of the scalar quantizers (uniform, RDOQ, TCQ)."""

    name = ""
    label = ""
    description = ""
    Options = ScalarOptions
    states = 0

    def quantize_one(self, w2: torch.Tensor, steps: np.ndarray, opts, f2: torch.Tensor | None) -> np.ndarray:
        raise NotImplementedError

    def run(self, inp: QuantInput, opts) -> Job[QuantOutput]:
        out: dict[str, QuantizedTensor] = {}
        total = len(inp.main)
        bits = n = 0.0
        factor = {}
        if inp.sensitivity:
            base = {k: float(np.mean(np.log(choose_steps(as_chains(t.float()), opts.step, opts.qp, opts.bits,
                                                         opts.per_channel, opts.snr))))
                    for k, t in inp.main.items() if k in inp.sensitivity}
            factor = step_factors({k: inp.sensitivity[k] for k in base}, {k: inp.main[k].numel() for k in base},
                                  base)
        for i, (name, t) in enumerate(inp.main.items()):
            w2 = as_chains(t.float())
            steps = choose_steps(w2, opts.step, opts.qp, opts.bits, opts.per_channel, opts.snr)
            if name in factor:
                steps = (steps * np.float32(factor[name])).astype(np.float32)
            f2 = inp.importance.get(name)
            levels = self.quantize_one(w2, steps, opts, None if f2 is None else as_chains(f2))
            qt = QuantizedTensor(levels=levels.astype(np.int64, copy=False), steps=steps, states=self.states)
            h = entropy_bits(levels)
            bits += h * levels.size
            n += levels.size
            inp.emit(out, name, qt)
            # after the sink has coded the tensor and handed its buffers back: the reconstruction
            # computed before stayed in the heap under the coder's (the word embeddings' peak)
            metrics = {"entropy": h, "total_rate": bits, "bits_per_weight": bits / max(n, 1),
                       "snr_db": snr_db(w2.numpy(), qt.values())}
            del qt, levels
            yield Progress(i + 1, total, f"{self.name}: {name}", metrics=metrics)
        return QuantOutput(out, dict(inp.others))


@NET_QUANTIZERS.register
class UniformQuantizer(_Scalar):
    """Plain rounding to a uniform grid: the baseline every other quantizer is measured against.

    >>> w = torch.tensor([[0.9, -2.2], [0.1, 3.0]])
    >>> opts = ScalarOptions(step=1.0)
    >>> from workbench.core.jobs import run
    >>> q = run(UniformQuantizer().run(QuantInput({"w": w}, {}), opts)).tensors["w"]
    >>> q.levels.tolist(), q.values().tolist()
    ([[1, -2], [0, 3]], [[1.0, -2.0], [0.0, 3.0]])
    """

    name = "uniform"
    label = "Uniform (plain rounding)"
    description = ("Rounds every weight to the nearest multiple of one step: the simple baseline the "
                   "other quantizers are measured against.")

    def quantize_one(self, w2, steps, opts, f2):
        st = torch.from_numpy(steps).double().view(-1, 1)
        out = np.empty(w2.shape, dtype=np.int64)
        rows = max(1, SEARCH_CHUNK // max(w2.shape[1], 1))
        for i in range(0, w2.shape[0], rows):
            out[i:i + rows] = torch.round(w2[i:i + rows].double() / (st if st.shape[0] == 1 else st[i:i + rows]))
        return out


@dataclass(frozen=True)
class RDOQOptions(ScalarOptions):
    lam: float = option(0.1, "How much saving bits counts against the rounding error: 0 = plain rounding; "
                        "larger values move more weights to cheaper levels (often zero), for a smaller file. "
                        "The cost minimised is F·(w − x̂)²/Δ² + λ·bits.",
                        minimum=0.0, maximum=100.0, label="λ (rate weight)")
    passes: int = option(2, "How many times the levels are chosen again, each time with bit costs measured "
                         "on the previous result.", minimum=1, maximum=10, label="Passes")


@NET_QUANTIZERS.register
class RDOQuantizer(_Scalar):
    """DeepCABAC's rate-distortion optimised quantization: each level minimises
    F_i·(w_i − kΔ)² + λ·bits(k), with bits(k) from a context model fitted to the previous pass
    (the previous level of the chain is the context, as in the entropy coder).

    >>> w = torch.tensor([[0.45, 0.55, 2.4, -0.6]])
    >>> from workbench.core.jobs import run
    >>> q = run(RDOQuantizer().run(QuantInput({"w": w}, {}), RDOQOptions(step=1.0, lam=0.5))).tensors["w"]
    >>> q.levels.tolist()  # rounding would give [0, 1, 2, -1]; the rate pulls 0.55 to zero
    [[0, 0, 2, -1]]
    """

    name = "rdoq"
    label = "Rate-optimised rounding (RDOQ)"
    description = ("Rounds like Uniform, but moves a weight to a cheaper level (often zero) when that saves "
                   "more bits than it costs in error, as DeepCABAC does. λ sets the trade-off.")
    Options = RDOQOptions
    states = 0

    def quantize_one(self, w2, steps, opts, f2):
        sm = trellis.machine(self.states)
        u = w2.double() / torch.from_numpy(steps).double().view(-1, 1)
        # The passes before the last only fit the next pass's rate table: they see evenly spaced chains
        # (TABLE_SAMPLE weights), the last pass all of them.
        pick = _table_sample(u.shape)
        us, fs = (u, f2) if pick is None else (u[pick], None if f2 is None else f2[pick])
        levels = _search(us, 0.0, trellis.TableRate.flat(), sm, fs)
        for p in range(opts.passes):
            last = p == opts.passes - 1
            levels = _search(u if last else us, opts.lam, trellis.TableRate.fit(levels, sm), sm, f2 if last else fs)
        return levels


SEARCH_CHUNK = 1 << 16
"""Weights per block of chains (chains are independent: same result) in the search and dequantization.
The compiled search (`trellis._table_viterbi`) holds only one chain's survivors; the torch search it
replaced peaked at ~350 bytes per weight, and blocks still keep the int64/float64 temporaries small."""


TABLE_SAMPLE = 1 << 16
"""Weights (whole chains) the table-fitting passes of RDOQ/TCQ search on a large tensor. A table has 150
entries; on the 29.7 M-parameter test encoder this sample changed the TCQ files by −0.005 … +0.023 % and
their output cosines by +0.0001 … +0.0013, and took TCQ-8's encode from 10.4 to 5.6 CPU s
(docs/benchmarks/network_transformer.md)."""


def _table_sample(shape: tuple[int, int]) -> torch.Tensor | None:
    rows = max(1, TABLE_SAMPLE // max(shape[1], 1))
    return None if rows >= shape[0] else torch.from_numpy(np.linspace(0, shape[0] - 1, rows).astype(np.int64))


def _search(u: torch.Tensor, lam: float, rate, sm: trellis.StateMachine, f2: torch.Tensor | None) -> np.ndarray:
    rows = max(1, SEARCH_CHUNK // max(u.shape[1], 1))
    out = np.empty(u.shape, dtype=np.int64)
    for i in range(0, u.shape[0], rows):
        out[i:i + rows] = trellis.viterbi(u[i:i + rows], lam, rate, sm,
                                          None if f2 is None else f2[i:i + rows]).numpy()
    return out


@dataclass(frozen=True)
class TCQOptions(RDOQOptions):
    states: int = option(8, "Size of the trellis state machine: 8 as in NNR/NNCodec, 4 as in VVC.",
                         choices=(4, 8), label="Trellis states")


@NET_QUANTIZERS.register
class TrellisQuantizer(RDOQuantizer):
    """Dependent (trellis-coded) quantization: Viterbi over each row with the 4- or 8-state machine,
    J = F·D + λ·R with a rate conditioned on the trellis quantizer and the previous level.

    >>> w = torch.tensor([[0.9, 2.1, -3.2, 0.1]])
    >>> from workbench.core.jobs import run
    >>> q = run(TrellisQuantizer().run(QuantInput({"w": w}, {}), TCQOptions(step=1.0, lam=0.0))).tensors["w"]
    >>> q.values().tolist()
    [[2.0, 2.0, -3.0, 0.0]]
    """

    name = "tcq"
    label = "Trellis-coded (TCQ)"
    description = ("Like RDOQ, but each weight's level also depends on the previous one through a 4- or "
                   "8-state trellis, which gives a finer effective grid for the same bits (as in NNR and VVC).")
    Options = TCQOptions

    def run(self, inp, opts):
        self.states = int(opts.states)
        return (yield from super().run(inp, opts))


@dataclass(frozen=True)
class SHVQOptions:
    centers: int = option(16, "How many distinct values each weight tensor may keep (its codebook size).",
                          minimum=2, maximum=256, label="Codebook size")
    lam: float = option(0.02, "How much each bit per weight counts against the task loss (or, without an "
                        "accuracy test, the weight error): larger values give a smaller file.",
                        minimum=0.0, maximum=100.0, label="λ (rate weight)")
    iters: int = option(300, "Optimisation steps; the assignment of weights to codebook values goes from "
                        "soft to hard over them.", minimum=0, maximum=100000, label="Steps")
    sigma0: float = option(2.0, "Hardness σ of the assignment at the first step (in units of 1/std²): "
                           "small means soft, each weight pulled by many codebook values.",
                           minimum=1e-3, maximum=1e6, label="Start σ (hardness)")
    sigma1: float = option(2000.0, "Hardness σ at the last step: large means the soft assignment agrees with "
                           "the final nearest-value one.", minimum=1e-3, maximum=1e9, label="End σ (hardness)")
    lr: float = option(1e-3, "Learning rate of the weights and codebook values.", minimum=1e-7, maximum=1.0,
                       label="Learning rate")
    finetune: bool = option(True, "Also train the weights on the task when the workbench can measure its "
                            "accuracy (the demo network); otherwise only the codebook values move.",
                            label="Finetune weights")
    eval_every: int = option(50, "Measure the accuracy every N steps while optimising (0 = only at the end).",
                             minimum=0, maximum=100000, label="Accuracy every N steps")


@NET_QUANTIZERS.register
class SoftToHardVQ:
    """Soft-to-hard vector quantization (Agustsson et al. 2017) with scalar (d = 1) codewords per
    tensor: soft assignment softmax(−σ‖w − c‖²) for gradients, hard nearest-center values forward,
    σ annealed geometrically from σ0 to σ1, rate = entropy of the soft histogram. With a task
    evaluator the weights are finetuned with the task loss too; otherwise only centers move,
    fitting the fixed weights (entropy-constrained k-means).

    >>> w = torch.tensor([[0.0, 0.1, -0.1, 1.0, 1.1, 0.9]])
    >>> from workbench.core.jobs import run
    >>> q = run(SoftToHardVQ().run(QuantInput({"w": w}, {}), SHVQOptions(centers=2, iters=50))).tensors["w"]
    >>> q.levels.tolist(), [round(v, 2) for v in q.codebook.tolist()]
    ([[0, 0, 0, 1, 1, 1]], [0.0, 1.0])
    """

    name = "shvq"
    label = "Soft-to-hard VQ (learned codebook)"
    description = ("Learns a small set of values for each tensor by gradient descent, trading file size "
                   "against accuracy; on the demo network it also finetunes the weights. Slower.")
    Options = SHVQOptions

    def run(self, inp: QuantInput, opts) -> Job[QuantOutput]:
        if not inp.main:
            return QuantOutput({}, dict(inp.others))
        torch.manual_seed(0)
        task = inp.task if (opts.finetune and inp.task is not None and not inp.delta
                            and hasattr(inp.task, "loss")) else None
        gen = torch.Generator().manual_seed(0)
        imp = {k: (inp.importance[k].float().reshape(-1) if k in inp.importance else None) for k in inp.main}
        if task is not None:
            weights = {k: v.detach().float().clone() for k, v in inp.main.items()}
        else:
            # Only the centres move: each tensor's are fitted on a fixed sample of its weights, so the
            # work and memory per step do not grow with the network (a transformer's 30 M weights).
            weights = {}
            for k, v in inp.main.items():
                flat = v.detach().reshape(-1)
                if flat.numel() > SHVQ_SAMPLE:
                    pick = torch.randint(flat.numel(), (SHVQ_SAMPLE,), generator=gen)
                    flat = flat[pick]
                    imp[k] = None if imp[k] is None else imp[k][pick]
                weights[k] = flat.float()
        counts = {k: v.numel() for k, v in inp.main.items()}
        others = {k: v.detach().float().clone() for k, v in inp.others.items()}
        scale = {k: float(v.std()) if v.numel() > 1 and float(v.std()) > 0 else 1.0 for k, v in weights.items()}
        centers = {k: torch.nn.Parameter(_kmeans_init(v.reshape(-1), opts.centers)) for k, v in weights.items()}
        params = list(centers.values())
        if task is None:
            # one (tensors × centres) table: Adam is elementwise, so its steps are those of separate
            # ones; the gradient comes in closed form from fixed buffers, not from a graph per tensor
            fit = CentreFit([weights[k].numpy() for k in centers], [None if imp[k] is None else imp[k].numpy()
                            for k in centers], [counts[k] for k in centers], [scale[k] for k in centers],
                            opts.lam, opts.centers)
            table = torch.stack(params).detach()
            opt = Adam([table], opts.lr)
            release_memory()        # the initialisation's temporaries: the steps themselves allocate nothing
        else:
            for d in (weights, others):
                for v in d.values():
                    v.requires_grad_(True)
            params += list(weights.values()) + list(others.values())
            opt = torch.optim.Adam(params, lr=opts.lr)
        n_total = sum(counts.values())
        iters = max(int(opts.iters), 0)
        for it in range(iters):
            sigma = opts.sigma0 * (opts.sigma1 / opts.sigma0) ** (it / max(iters - 1, 1))
            qw = {}
            if task is None:
                grad, dist, rate = fit.step(table.numpy(), sigma)
                table.grad = torch.from_numpy(grad).to(table.dtype)
                opt.step()
                loss = dist / n_total + opts.lam * rate
            else:
                opt.zero_grad()
                rate = 0.0
                for k, w in weights.items():
                    flat = w.reshape(-1)
                    c = centers[k]
                    d2 = ((flat[:, None] - c[None, :]) / scale[k]) ** 2
                    phi = torch.softmax(-sigma * d2, 1)
                    soft = phi @ c
                    hist = phi.mean(0)
                    rate = rate + counts[k] * -(hist * torch.log2(hist + 1e-12)).sum()
                    hard = c[d2.argmin(1)]
                    qw[k] = (soft + (hard - soft).detach()).reshape(w.shape)
                rate = rate / n_total
                loss = task.loss({**qw, **others}, generator=gen) + opts.lam * rate
                loss.backward()
                opt.step()
            if (it + 1) % 10 == 0 or it + 1 == iters:
                metrics = {"sigma": sigma, "entropy": float(rate), "loss": float(loss)}
                if task is not None and opts.eval_every and (it + 1) % opts.eval_every == 0:
                    metrics["accuracy"] = task.accuracy({**{k: v.detach() for k, v in qw.items()},
                                                         **{k: v.detach() for k, v in others.items()}})
                yield Progress(it + 1, iters, "soft-to-hard VQ", metrics=metrics)
        if task is None:
            centers = dict(zip(centers, table))
        out = {}
        for k in inp.main:
            w = weights[k] if task is not None else inp.main[k]
            weights[k] = None
            flat = w.detach().reshape(-1).float().numpy()
            c = centers[k].detach().float().numpy()
            idx = np.empty(flat.size, dtype=np.uint8)       # centres ≤ 256
            nearest(flat, c, idx)
            used = np.flatnonzero(np.bincount(idx, minlength=c.size))
            cb = c[used].astype(np.float32)
            order = np.argsort(cb, kind="stable")
            cb = cb[order]
            z = int(np.argmin(np.abs(cb)))
            remap = np.empty(c.size, dtype=np.int64)
            remap[used[order]] = np.arange(cb.size) - z
            levels = remap[idx]                             # one int64 array of the tensor's size, no temporary
            del idx
            inp.emit(out, k, QuantizedTensor(levels=levels.reshape(as_chains(w).shape), codebook=cb, zero_index=z))
            del levels
            release_memory()
        return QuantOutput(out, {k: v.detach() for k, v in others.items()})


SHVQ_SAMPLE = 1 << 16
"""Weights per tensor the centres are fitted on when only they move (no task to finetune with)."""


def _kmeans_init(flat: torch.Tensor, n: int, iters: int = 15) -> torch.Tensor:
    """Lloyd iterations from quantiles, with the center nearest zero snapped to zero: a zero center
    is what lets the rate term make the tensor sparse."""
    flat = flat.detach().float()
    c = torch.quantile(flat[:: max(1, flat.numel() // 200000)], torch.linspace(0, 1, n + 2)[1:-1])
    for _ in range(iters):
        idx = ((flat[:, None] - c[None, :]) ** 2).argmin(1)
        s = torch.zeros(n).index_add_(0, idx, flat)
        cnt = torch.zeros(n).index_add_(0, idx, torch.ones_like(flat))
        c = torch.where(cnt > 0, s / cnt.clamp(min=1), c)
    c[c.abs().argmin()] = 0.0
    return c.clone()
