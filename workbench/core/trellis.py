"""Dependent (trellis-coded) quantization and the Viterbi search that picks its levels.

Two scalar quantizers share one step Δ: Q0 reconstructs even multiples 2kΔ, Q1 odd ones
(2k − sgn k)Δ, zero in both. A state machine driven by the parity of each transmitted level picks
the quantizer of the next element, so the decoder needs no side information to know which grid
a level belongs to; the union of both grids is a Δ-lattice while each level only pays for a
2Δ-lattice, which is where the gain over plain rounding comes from.

The search works on a 2-D tensor of independent *chains* × *length* (rows of a weight matrix for
networks; channels or rows of a latent for images) so that every step of the Viterbi recursion is a
handful of batched torch ops over all chains and states, on CPU or GPU. The cost minimised along a
chain is Σ F_i·(u_i − x̂_i)² + λ·R_i with u = w/Δ (distortion in units of Δ², so λ does not depend
on the weight scale), per-element weights F (importance) and a rate function supplied by the caller,
which sees the candidate level, the active quantizer and the survivor's previous level (the same
contexts the entropy coder uses).

The one-state `UNIFORM` machine (x̂ = kΔ) turns the same search into rate-distortion optimised
(independent) quantization with a context-aware rate, which is how RDOQ reuses this module.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from workbench.core.jit import njit


@dataclass(frozen=True)
class StateMachine:
    """`next_state[s][parity]` and `quantizer[s]` (0 = Q0, 1 = Q1); `dependent` False means the
    single plain uniform quantizer x̂ = kΔ."""

    n_states: int
    next_state: tuple[tuple[int, int], ...]
    quantizer: tuple[int, ...]
    dependent: bool = True


UNIFORM = StateMachine(1, ((0, 0),), (0,), dependent=False)
TCQ4 = StateMachine(4, ((0, 2), (2, 0), (1, 3), (3, 1)), (0, 0, 1, 1))
TCQ8 = StateMachine(8, ((0, 2), (7, 5), (1, 3), (6, 4), (2, 0), (5, 7), (3, 1), (4, 6)),
                    (0, 1, 0, 1, 0, 1, 0, 1))
MACHINES = {0: UNIFORM, 1: UNIFORM, 4: TCQ4, 8: TCQ8}

RateFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""rate(levels (C,S,K) int64, quantizer (1,S,1) int64, previous level (C,S,1) int64) -> bits (C,S,K).

A rate that does not depend on the previous level may instead be an object with a method
`bulk(levels (C,L,K), quantizer: int) -> bits (C,L,K)` for whole chains at once (its bits may then
differ along the chain, e.g. with an image latent's predicted scale); the search evaluates it once
per quantizer instead of once per position, which is most of its time."""


def machine(states: int) -> StateMachine:
    try:
        return MACHINES[int(states)]
    except KeyError:
        raise ValueError(f"trellis with {states} states is not defined (use 0 for none, 4 or 8)") from None


def reconstruct(levels: torch.Tensor | np.ndarray, quantizer, sm: StateMachine):
    """Integer multiples of Δ for `levels` coded with quantizer index `quantizer` (same shape).

    >>> reconstruct(np.array([0, 1, -1, 2]), np.array([1, 1, 1, 0]), TCQ8).tolist()
    [0, 1, -1, 4]
    """
    lib = torch if isinstance(levels, torch.Tensor) else np
    if not sm.dependent:
        return levels
    return 2 * levels - lib.sign(levels) * quantizer


def track_states(levels: np.ndarray, sm: StateMachine) -> np.ndarray:
    """State in which each element of each row (chain) is coded, starting every chain in state 0:
    what the decoder computes to know which quantizer a level belongs to.

    >>> track_states(np.array([[1, 0, 3, 2]]), TCQ4).tolist()
    [[0, 2, 1, 0]]
    """
    levels = np.asarray(levels)
    if not sm.dependent or levels.size == 0:
        return np.zeros(levels.shape, dtype=np.int8)         # at most 8 states: a byte per weight
    return _walk_states(np.ascontiguousarray(levels, dtype=np.int64), np.asarray(sm.next_state, dtype=np.int64))


@njit
def _walk_states(levels, table):
    states = np.empty(levels.shape, dtype=np.int8)
    for c in range(levels.shape[0]):
        s = 0
        for j in range(levels.shape[1]):
            states[c, j] = s
            s = table[s, levels[c, j] & 1]
    return states


def dequantize(levels: np.ndarray, steps: np.ndarray, sm: StateMachine) -> np.ndarray:
    """float32 values of a (chains, length) level array with one step per chain (or one for all);
    float32 arithmetic on both sides keeps encoder and decoder reconstructions bit-identical.

    >>> dequantize(np.array([[1, 1, 1]]), np.array([0.5], dtype=np.float32), TCQ8).tolist()
    [[1.0, 1.0, 0.5]]
    """
    q = np.asarray(sm.quantizer)[track_states(levels, sm)] if sm.dependent else 0
    mult = reconstruct(np.asarray(levels, dtype=np.int64), q, sm).astype(np.float32)
    return mult * np.asarray(steps, dtype=np.float32).reshape(-1, 1)


def viterbi(u: torch.Tensor, lam: float, rate: RateFn, sm: StateMachine,
            weights: torch.Tensor | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Levels (chains, length) int64 minimising Σ F·(u − x̂)² + λ·R along each chain.

    `u` is the data divided by the step. Per element and state the candidates are zero and the two
    nearest levels of that state's quantizer; each next state keeps its cheapest arriving survivor.
    Costs are summed in `dtype`: float32 halves the memory traffic of a search over a whole image's
    latents, and only the encoder runs the search (a decoder never repeats its decisions).

    >>> u = torch.tensor([[0.9, 2.1, -3.2, 0.1]], dtype=torch.float64)
    >>> free = lambda k, q, prev: torch.zeros(k.shape, dtype=torch.float64)
    >>> viterbi(u, 0.0, free, UNIFORM).tolist()
    [[1, 2, -3, 0]]
    >>> lv = viterbi(u, 0.0, free, TCQ8)
    >>> x = dequantize(lv.numpy(), np.ones(1, dtype=np.float32), TCQ8)
    >>> x.round(1).tolist()  # each level sits on its state's grid: even, or odd multiples
    [[2.0, 2.0, -3.0, 0.0]]
    """
    if u.ndim != 2:
        raise ValueError("viterbi works on a 2-D tensor of chains x length")
    C, L = u.shape
    dev = u.device
    u = u.to(dtype)
    if L == 0 or C == 0:
        return torch.zeros((C, L), dtype=torch.int64, device=dev)
    if isinstance(rate, TableRate) and dev.type == "cpu" and dtype == torch.float64:
        return _table_search(u, None if weights is None else weights.to(dev, dtype).expand_as(u), lam, rate, sm)
    f = torch.ones_like(u) if weights is None else weights.to(dev, dtype).expand_as(u)
    with _one_thread(dev):
        return _viterbi(u, f, lam, rate, sm)


def _candidates(u: torch.Tensor, q: int, sm: StateMachine) -> tuple[torch.Tensor, torch.Tensor]:
    """Levels tried under quantizer q for every element (..., 3): the two nearest on its grid and zero,
    with their reconstructions in units of the step (in u's dtype). Computed in floating point and
    converted once: integer division and sign on millions of candidates were a third of the search."""
    zero = torch.zeros_like(u)
    if not sm.dependent:
        t = torch.floor(u)
        rec = torch.stack([t, t + 1, zero], -1)
        return rec.long(), rec
    if q == 0:                                       # Q0: x̂ = 2k
        t = torch.floor(u / 2)
        cand = torch.stack([t, t + 1, zero], -1)
        return cand.long(), 2 * cand
    t = torch.floor((u - 1) / 2)                     # Q1: x̂ = 2k − sgn k; 2t + 1 is the odd at or below u
    cand = torch.stack([t + (t >= 0), t + 1 + (t >= -1), zero], -1)
    return cand.long(), torch.stack([2 * t + 1, 2 * t + 3, zero], -1)


def _viterbi(u, f, lam, rate, sm) -> torch.Tensor:
    C, L = u.shape
    dev, dt = u.device, u.dtype
    S = sm.n_states
    quant = torch.tensor(sm.quantizer, device=dev).view(1, S, 1)
    nxt = torch.tensor(sm.next_state, device=dev)  # (S, 2)
    # predecessors of each next state as flat (state * 2 + parity) indices; every state has two.
    preds = [[] for _ in range(S)]
    for s in range(S):
        for p in range(2):
            preds[int(nxt[s, p])].append(s * 2 + p)
    if not sm.dependent:
        preds = [[0, 1]]
    pred = torch.tensor(preds, device=dev)  # (S, 2)
    inf = torch.tensor(float("inf"), dtype=dt, device=dev)
    cost = torch.full((C, S), float("inf"), dtype=dt, device=dev)
    cost[:, 0] = 0.0
    # Candidates and their distortion for whole chains at once, per quantizer.
    qs = (0, 1) if sm.dependent else (0,)
    cands, local = [], []
    for q in qs:
        cand, rec = _candidates(u, q, sm)
        cands.append(cand)
        local.append(f[..., None] * (u[..., None] - rec) ** 2)
    if hasattr(rate, "bulk"):
        # Without context the cheapest candidate of each parity does not depend on the survivor, so it
        # is chosen here for every position; the recursion below only compares survivors.
        nq = len(qs)
        best = torch.empty((L, C, nq * 2), dtype=dt, device=dev)     # position-major: one slice per
        best_level = torch.empty((L, C, nq * 2), dtype=torch.int64, device=dev)   # step, (q, parity)
        for q in qs:
            bits = rate.bulk(cands[q], q).to(dt)
            J = local[q] + (bits if lam == 1 else lam * bits)
            odd = (cands[q] & 1).bool()
            for p, masked in ((0, torch.where(odd, inf, J)), (1, torch.where(odd, J, inf))):
                v, i = masked.min(-1)
                best[:, :, q * 2 + p] = v.T
                best_level[:, :, q * 2 + p] = cands[q].gather(-1, i[..., None])[..., 0].T
        # For each next state, its two arrivals: the source state and the (quantizer, parity) slot. The
        # loop keeps only which arrival won (one byte per chain and state); the levels are looked up
        # along the winning path alone when backtracking.
        src_state = pred // 2
        src_slot = quant.view(S)[src_state] * 2 + pred % 2
        s0, s1, slot0, slot1 = src_state[:, 0], src_state[:, 1], src_slot[:, 0], src_slot[:, 1]
        back_which = torch.empty((L, C, S), dtype=torch.bool, device=dev)
        for j in range(L):
            first = cost.index_select(1, s0) + best[j].index_select(1, slot0)
            second = cost.index_select(1, s1) + best[j].index_select(1, slot1)
            torch.lt(second, first, out=back_which[j])
            cost = torch.minimum(first, second)
        return _backtrack_chosen(cost, back_which, best_level, src_state, src_slot)
    prev = torch.zeros((C, S), dtype=torch.int64, device=dev)
    back_level = torch.empty((L, C, S), dtype=torch.int64, device=dev)
    back_pred = torch.empty((L, C, S), dtype=torch.uint8, device=dev)     # a state: at most 8
    is_q0 = quant == 0
    for j in range(L):
        if sm.dependent:
            cand = torch.where(is_q0, cands[0][:, j, None, :], cands[1][:, j, None, :])   # (C, S, 3)
            J = cost[:, :, None] + torch.where(is_q0, local[0][:, j, None, :], local[1][:, j, None, :])
        else:
            cand = cands[0][:, j, None, :]
            J = cost[:, :, None] + local[0][:, j, None, :]
        J = J + lam * rate(cand, quant, prev[:, :, None]).to(dt)
        par = cand & 1
        J0, i0 = torch.where(par == 0, J, inf).min(-1)
        J1, i1 = torch.where(par == 1, J, inf).min(-1)
        Jsp = torch.stack([J0, J1], -1).reshape(C, S * 2)
        lsp = torch.stack([cand.gather(2, i0[..., None])[..., 0], cand.gather(2, i1[..., None])[..., 0]],
                          -1).reshape(C, S * 2)
        cost, which = Jsp[:, pred].min(-1)   # arrivals (C, S_next, 2)
        src = pred.expand(C, -1, -1).gather(2, which[..., None])[..., 0]  # flat (state, parity)
        prev = lsp.gather(1, src)
        back_level[j] = prev
        back_pred[j] = src // 2
    return _backtrack(cost, back_level, back_pred)


def _table_search(u: torch.Tensor, f: torch.Tensor | None, lam: float, rate: "TableRate",
                  sm: StateMachine) -> torch.Tensor:
    """`_viterbi` for a `TableRate`, compiled: one chain at a time with per-weight loops over states and
    candidates, so it needs no Python per weight and keeps only one chain's survivors (L × states).
    The same float64 operations in the same order, and ties broken the same way (first candidate,
    first arrival, lowest final state), so it picks exactly the torch search's levels."""
    S = sm.n_states
    preds = [[] for _ in range(S)]
    for s in range(S):
        for p in range(2):
            preds[sm.next_state[s][p]].append(s * 2 + p)
    if not sm.dependent:
        preds = [[0, 1]]
    out = _table_viterbi(np.ascontiguousarray(u.numpy()), None if f is None else np.ascontiguousarray(f.numpy()),
                         float(lam), np.ascontiguousarray(rate.bits.cpu().numpy()), int(rate.max_level),
                         np.asarray(sm.quantizer, dtype=np.int64), np.asarray(preds, dtype=np.int64), sm.dependent)
    return torch.from_numpy(out)


@njit
def _table_viterbi(u, f, lam, bits, max_level, quant, pred, dep):
    C, L = u.shape
    S = quant.size
    out = np.empty((C, L), dtype=np.int64)
    back_level = np.empty((L, S), dtype=np.int64)
    back_pred = np.empty((L, S), dtype=np.int64)
    cost = np.empty(S)
    new_cost = np.empty(S)
    prev = np.empty(S, dtype=np.int64)
    jsp = np.empty(2 * S)
    lsp = np.empty(2 * S, dtype=np.int64)
    cand = np.empty((2, 3), dtype=np.int64)
    local = np.empty((2, 3))
    inf = np.inf
    for c in range(C):
        cost[:] = inf
        cost[0] = 0.0
        prev[:] = 0
        for j in range(L):
            x = u[c, j]
            # candidates and their distortion per quantizer (`_candidates`)
            for q in range(2 if dep else 1):
                if not dep:
                    t = np.floor(x)
                    r0, r1 = t, t + 1
                    k0, k1 = int(t), int(t + 1)
                elif q == 0:
                    t = np.floor(x / 2)
                    r0, r1 = 2 * t, 2 * (t + 1)
                    k0, k1 = int(t), int(t + 1)
                else:
                    t = np.floor((x - 1) / 2)
                    r0, r1 = 2 * t + 1, 2 * t + 3
                    k0 = int(t + (1.0 if t >= 0 else 0.0))
                    k1 = int(t + 1 + (1.0 if t >= -1 else 0.0))
                cand[q, 0], cand[q, 1], cand[q, 2] = k0, k1, 0
                d0, d1, d2 = (x - r0) ** 2, (x - r1) ** 2, (x - 0.0) ** 2
                if f is not None:
                    w = f[c, j]
                    d0, d1, d2 = w * d0, w * d1, w * d2
                local[q, 0], local[q, 1], local[q, 2] = d0, d1, d2
            for s in range(S):
                q = quant[s]
                pv = prev[s]
                pc = min(abs(pv), 2)
                b0 = inf
                b1 = inf
                l0 = cand[q, 0]
                l1 = cand[q, 0]
                for i in range(3):
                    k = cand[q, i]
                    a = abs(k)
                    bit = bits[q, pc, min(a, max_level)]
                    extra = a - max_level
                    if extra > 0:
                        bit = bit + (2 * np.floor(np.log2(extra + 1.0)) + 1)
                    jv = (cost[s] + local[q, i]) + lam * bit
                    if k & 1:
                        if jv < b1:
                            b1 = jv
                            l1 = k
                    elif jv < b0:
                        b0 = jv
                        l0 = k
                jsp[2 * s] = b0
                jsp[2 * s + 1] = b1
                lsp[2 * s] = l0
                lsp[2 * s + 1] = l1
            for s in range(S):
                src = pred[s, 0]
                if jsp[pred[s, 1]] < jsp[src]:
                    src = pred[s, 1]
                new_cost[s] = jsp[src]
                back_level[j, s] = lsp[src]
                back_pred[j, s] = src // 2
            for s in range(S):
                cost[s] = new_cost[s]
                prev[s] = back_level[j, s]
        s = 0
        for t in range(1, S):
            if cost[t] < cost[s]:
                s = t
        for j in range(L - 1, -1, -1):
            out[c, j] = back_level[j, s]
            s = back_pred[j, s]
    return out


@contextmanager
def _one_thread(dev: torch.device):
    """One CPU thread: the recursion's ops are tiny, and with anything else running on a 2-core machine
    two threads made even the large vectorised steps 3–4x slower (measured)."""
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _backtrack_chosen(cost, back_which, best_level, src_state, src_slot) -> torch.Tensor:
    """`_backtrack` for the context-free search: arrival `which` into state s came from state
    src_state[s, which] with the level best_level[j, chain, src_slot[s, which]]."""
    L, C, _ = back_which.shape
    out = torch.empty((C, L), dtype=torch.int64, device=cost.device)
    s = cost.argmin(1)
    rows = torch.arange(C, device=cost.device)
    for j in range(L - 1, -1, -1):
        which = back_which[j, rows, s].long()
        out[:, j] = best_level[j, rows, src_slot[s, which]]
        s = src_state[s, which]
    return out


def _backtrack(cost, back_level, back_pred) -> torch.Tensor:
    L, C, _ = back_level.shape
    dev = cost.device
    out = torch.empty((C, L), dtype=torch.int64, device=dev)
    s = cost.argmin(1)
    rows = torch.arange(C, device=dev)
    for j in range(L - 1, -1, -1):
        out[:, j] = back_level[j, rows, s]
        s = back_pred[j, rows, s].long()
    return out


@njit
def _fit_counts(levels, quant, table, dep, max_level):
    """Occurrences of (quantizer of the state, min(|previous level|, 2), min(|level|, max_level)) along
    each chain from state 0: what `TableRate` conditions on, in one pass without temporaries."""
    counts = np.zeros((2, 3, max_level + 1), dtype=np.int64)
    for c in range(levels.shape[0]):
        s = 0
        pc = 0
        for j in range(levels.shape[1]):
            k = levels[c, j]
            a = -k if k < 0 else k
            counts[quant[s] if dep else 0, pc, a if a < max_level else max_level] += 1
            pc = a if a < 2 else 2
            if dep:
                s = table[s, k & 1]
    return counts


class TableRate:
    """Rate model in the entropy coder's image: −log2 p(|k| | quantizer, min(|prev|, 2)) from counts
    of a previous pass, one sign bit for k ≠ 0, and an Exp-Golomb length beyond `max_level`.
    Fitting it to the last solution and searching again is the usual two-pass RDOQ/TCQ loop.

    >>> r = TableRate.fit(np.array([[0, 0, 1, 0]]), UNIFORM)
    >>> bits = r(torch.tensor([[[0, 1]]]), torch.zeros(1, 1, 1, dtype=torch.long), torch.zeros(1, 1, 1, dtype=torch.long))
    >>> bool(bits[0, 0, 0] < bits[0, 0, 1])
    True
    """

    def __init__(self, bits: torch.Tensor, max_level: int):
        self.bits = bits  # (2 quantizers, 3 prev classes, max_level + 1)
        self.max_level = max_level

    @classmethod
    def fit(cls, levels: np.ndarray, sm: StateMachine, max_level: int = 24, device="cpu") -> "TableRate":
        levels = np.asarray(levels, dtype=np.int64).reshape(levels.shape[0], -1) if levels.ndim > 1 else \
            np.asarray(levels, dtype=np.int64).reshape(1, -1)
        counts = _fit_counts(np.ascontiguousarray(levels), np.asarray(sm.quantizer, dtype=np.int64),
                             np.asarray(sm.next_state, dtype=np.int64), sm.dependent, max_level).astype(np.float64)
        # Laplace-like prior so unseen magnitudes stay reachable but expensive.
        prior = 0.5 * np.exp(-0.5 * np.arange(max_level + 1))
        counts = counts + prior
        p = counts / counts.sum(-1, keepdims=True)
        bits = -np.log2(p) + (np.arange(max_level + 1) > 0)
        return cls(torch.tensor(bits, dtype=torch.float64, device=device), max_level)

    @classmethod
    def flat(cls, max_level: int = 24, device="cpu") -> "TableRate":
        """Before any statistics exist: a geometric guess that favours small levels."""
        return cls.fit(np.zeros((1, 0), dtype=np.int64), UNIFORM, max_level, device)

    def __call__(self, k: torch.Tensor, quant: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        a = k.abs()
        m = a.clamp(max=self.max_level)
        qi = quant.expand_as(k)
        pc = prev.abs().clamp(max=2).expand_as(k)
        bits = self.bits[qi, pc, m]
        extra = a - self.max_level
        esc = torch.where(extra > 0, 2 * torch.floor(torch.log2(extra.clamp(min=1).double() + 1)) + 1, 0.0)
        return bits + esc
