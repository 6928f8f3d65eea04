"""How a hyperprior model's latents become integers at inference, and how those integers are coded.

Every quantizer here sees the same thing: residuals u = (y − μ)/Δ arranged as independent *chains*
(one per latent channel and row), the grid level of each latent's predicted scale, and a distortion
weight per chain (how much a unit of latent error costs in the training loss's pixel units). It
writes integers into a `CategoricalWriter` and returns the reconstruction in multiples of Δ; its
reader does the inverse from the levels alone.

* `round`: k = round(u), coded grouped by scale level (all latents of level 0, then 1, ...).
* `tcq4`, `tcq8`: trellis-coded quantization (DESIGN §3.4). A Viterbi search over every chain picks
  the levels minimising Σ w·(u − x̂)² + bits, where the bits come from the entropy model conditioned
  on the trellis state (through the quantizer the state selects: `densities.trellis_tables`). The
  stream is written column by column (position j of every chain), grouped within a column by
  (scale level, quantizer), because the decoder learns a chain's next state only from the level it
  just decoded.

A model file may carry *reconstruction offsets* for a quantizer (learned by `workbench finetune` with
the decoder): every nonzero x̂ is moved by sgn(x̂)·o[quantizer, scale level, min(|x̂|, 3)] before
synthesis. The search and the symbols ignore them; only the decoded latents change. A cell's best
reconstruction is not its nominal centre (the density is skewed inside it, and the search pushes
values towards cheaper levels), and what is best for the image is not the latent-space centroid
either: with the shipped decoder the centroids lowered PSNR, so the offsets are learned through the
decoder on the image loss.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import ClassVar

import numpy as np
import torch

from workbench.core import trellis
from workbench.core.entropy import CategoricalReader, CategoricalTable, CategoricalWriter
from workbench.core.errors import OptionError
from workbench.core.learned.densities import SCALE_LEVELS
from workbench.core.registry import Registry

ESCAPE_MAX = (1 << 14) - 1
OFFSET_MAGNITUDES = 3                       # |x̂| = 1, 2 and ≥ 3 (in Δ) have offsets of their own
OFFSET_SHAPE = (2, SCALE_LEVELS, OFFSET_MAGNITUDES)     # (quantizer, scale level, magnitude)
_ESCAPE_NORM_BITS = math.log2(sum(1.0 / (e + 1) ** 2 for e in range(ESCAPE_MAX + 1)))


@lru_cache(maxsize=1)
def escape_table() -> CategoricalTable:
    """Excess magnitudes 0..2^14−1 with P(e) ∝ 1/(e+1)², from integers only (machine-independent)."""
    counts = [(1 << 40) // ((e + 1) * (e + 1)) for e in range(ESCAPE_MAX + 1)]
    return CategoricalTable.from_counts(counts)


def write_group(writer: CategoricalWriter, values: np.ndarray, table: CategoricalTable) -> None:
    """Integers under a table whose two end symbols are escapes; the excess of escaped values follows."""
    if not values.size:
        return
    r = -table.lo - 1
    magnitude = np.abs(values)
    if magnitude.max() <= r:            # the usual case: no escapes
        writer.write(values, table)
        return
    writer.write(np.clip(values, -r - 1, r + 1), table)
    excess = magnitude[magnitude > r] - r - 1
    if excess.size:
        if excess.max() > ESCAPE_MAX:
            raise OptionError("a latent is too large to code (the image drives the model far outside "
                              "what it was trained on)")
        writer.write(excess, escape_table())


def read_group(reader: CategoricalReader, count: int, table: CategoricalTable) -> np.ndarray:
    sym = reader.read(table, count).astype(np.int64)
    r = -table.lo - 1
    esc = np.abs(sym) == r + 1
    if esc.any():
        excess = reader.read(escape_table(), int(esc.sum())).astype(np.int64)
        sym[esc] = np.sign(sym[esc]) * (r + 1 + excess)
    return sym


class LatentQuantizer:
    name: ClassVar[str]
    label: ClassVar[str]

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)      # where a search runs (the trellis search runs on CUDA too)

    def decide(self, u: np.ndarray, levels: np.ndarray, weights: np.ndarray, cm) -> tuple[np.ndarray, np.ndarray]:
        """The nominal reconstruction (C, L) in multiples of Δ that `write` would code, and the
        quantizer (0/1) of each element, without coding (finetuning trains the decoder on these)."""
        raise NotImplementedError

    def reconstruct(self, u: np.ndarray, levels: np.ndarray, weights: np.ndarray, cm) -> np.ndarray:
        """What a decoder of `write`'s output reconstructs, reconstruction offsets included."""
        return self.shifted(*self.decide(u, levels, weights, cm), levels, cm)

    def write(self, writer: CategoricalWriter, u: np.ndarray, levels: np.ndarray, weights: np.ndarray,
              cm) -> tuple[np.ndarray, float]:
        """Code chains u (C, L) float64 whose scales sit on grid `levels` (C, L); returns the
        reconstruction in multiples of Δ (C, L), offsets included, and the ideal bits of what was written."""
        nominal, quant, bits = self.write_nominal(writer, u, levels, weights, cm)
        return self.shifted(nominal, quant, levels, cm), bits

    def read(self, reader: CategoricalReader, levels: np.ndarray, cm) -> np.ndarray:
        return self.shifted(*self.read_nominal(reader, levels, cm), levels, cm)

    def write_nominal(self, writer: CategoricalWriter, u: np.ndarray, levels: np.ndarray, weights: np.ndarray,
                      cm) -> tuple[np.ndarray, np.ndarray, float]:
        """What `write` codes, before the reconstruction offsets: (nominal x̂ in multiples of Δ, quantizer of
        each element, ideal bits). A context model sees the nominal values, so what it predicts does not
        depend on offsets that `workbench finetune` learns after the encoder is frozen."""
        raise NotImplementedError

    def read_nominal(self, reader: CategoricalReader, levels: np.ndarray, cm) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def shifted(self, xhat: np.ndarray, quant: np.ndarray, levels: np.ndarray, cm) -> np.ndarray:
        """x̂ moved by the model file's reconstruction offsets for this quantizer, if it has any."""
        table = getattr(cm, "offsets", {}).get(self.name)
        if table is None:
            return xhat
        return apply_offsets(xhat, offset_slots(xhat, quant, levels), table)


def offset_slots(xhat, quant, levels):
    """Index of each element's offset in the flattened `OFFSET_SHAPE` table; −1 where x̂ = 0 (zero, the
    predicted mean, stays where it is). Works on numpy arrays and torch tensors alike."""
    lib = torch if isinstance(xhat, torch.Tensor) else np
    magnitude = lib.clip(lib.abs(xhat), 0, OFFSET_MAGNITUDES)
    magnitude = magnitude.long() if lib is torch else magnitude.astype(np.int64)
    slots = (quant * SCALE_LEVELS + levels) * OFFSET_MAGNITUDES + magnitude - 1
    return lib.where(magnitude == 0, -1, slots)


def apply_offsets(xhat, slots, table):
    """x̂ + sgn(x̂)·offset at `slots`: numpy (decoding, float64) or torch (finetuning, differentiable)."""
    lib = torch if isinstance(xhat, torch.Tensor) else np
    flat = table.reshape(-1)
    return xhat + lib.sign(xhat) * flat[lib.clip(slots, 0, None)] * (slots >= 0)


LATENT_QUANTIZERS: Registry[LatentQuantizer] = Registry("latent quantizer")


@LATENT_QUANTIZERS.register
class Rounding(LatentQuantizer):
    """Plain rounding on the step: what every model was trained to expect.

    >>> from workbench.core.learned.densities import gaussian_tables
    >>> class M: gaussian = tuple(gaussian_tables())
    >>> u, lv = np.array([[0.4, -2.6, 30.0]]), np.array([[0, 20, 20]])
    >>> w = CategoricalWriter(); x, _ = Rounding().write(w, u, lv, np.ones(1), M)
    >>> Rounding().read(CategoricalReader(w.finish()), lv, M).tolist() == x.tolist() == [[0, -3, 30]]
    True
    """

    name = "round"
    label = "Rounding"

    def decide(self, u, levels, weights, cm):
        return np.round(u), np.zeros(u.shape, dtype=np.int64)

    def write_nominal(self, writer, u, levels, weights, cm):
        k = np.round(u).astype(np.int64)
        flat_k, flat_l = k.reshape(-1), levels.reshape(-1)
        bits = 0.0
        for level, table in enumerate(cm.gaussian):
            sel = flat_k[flat_l == level]
            write_group(writer, sel, table)
            bits += _ideal_bits(sel, table)
        return k.astype(np.float64), np.zeros(k.shape, dtype=np.int64), bits

    def read_nominal(self, reader, levels, cm):
        flat_l = levels.reshape(-1)
        k = np.zeros(flat_l.size, dtype=np.int64)
        for level, table in enumerate(cm.gaussian):
            where = np.nonzero(flat_l == level)[0]
            if where.size:
                k[where] = read_group(reader, where.size, table)
        return k.reshape(levels.shape).astype(np.float64), np.zeros(levels.shape, dtype=np.int64)


class _Trellis(LatentQuantizer):
    """Dependent quantization with a rate-distortion Viterbi search (see the module docstring)."""

    machine: ClassVar[trellis.StateMachine]

    def tables(self, cm):
        if getattr(cm, "trellis", None) is None:
            raise OptionError("this model file has no trellis tables (exported before trellis-coded "
                              "quantization existed); re-export it with `workbench export-model`")
        return cm.trellis

    def search(self, u, levels, weights, cm) -> tuple[np.ndarray, np.ndarray]:
        """Levels k (C, L) of the cheapest path, and the quantizer each one is coded with."""
        costs = _bit_costs(self.tables(cm), self.device)
        dev = self.device
        k = trellis.viterbi(torch.from_numpy(u).to(dev), 1.0, _ChainRate(costs, torch.from_numpy(levels).to(dev)),
                            self.machine, torch.from_numpy(np.asarray(weights, dtype=np.float64)).view(-1, 1).to(dev),
                            dtype=torch.float32)
        k = k.cpu().numpy()
        return k, np.asarray(self.machine.quantizer)[trellis.track_states(k, self.machine)]

    def decide(self, u, levels, weights, cm):
        k, quant = self.search(u, levels, weights, cm)
        return trellis.reconstruct(k, quant, self.machine).astype(np.float64), quant

    def write_nominal(self, writer, u, levels, weights, cm):
        tables = self.tables(cm)
        k, quant = self.search(u, levels, weights, cm)
        by_column = k.T.reshape(-1)
        for q, level, where in _stream_groups(quant, levels):
            write_group(writer, by_column[where], tables[q][level])
        bits = float(_bit_costs(tables, torch.device("cpu"))(torch.from_numpy(k), torch.from_numpy(quant),
                                                             torch.from_numpy(levels)).sum(dtype=torch.float64))
        return trellis.reconstruct(k, quant, self.machine).astype(np.float64), quant, bits

    def read_nominal(self, reader, levels, cm):
        tables = self.tables(cm)
        sm = self.machine
        nxt = np.asarray(sm.next_state, dtype=np.int64)
        qof = np.asarray(sm.quantizer, dtype=np.int64)
        k = np.zeros(levels.shape, dtype=np.int64)
        quant = np.zeros(levels.shape, dtype=np.int64)
        state = np.zeros(levels.shape[0], dtype=np.int64)
        for j in range(levels.shape[1]):
            quant[:, j] = qof[state]
            for q, level, rows in _groups(quant[:, j], levels[:, j]):
                k[rows, j] = read_group(reader, rows.size, tables[q][level])
            state = nxt[state, k[:, j] & 1]
        return trellis.reconstruct(k, quant, self.machine).astype(np.float64), quant


@LATENT_QUANTIZERS.register
class RDOQ(_Trellis):
    """Rounding's grid with rate-distortion decisions: the one-state trellis, so it isolates what the
    search gains from what the two interleaved quantizers gain.

    >>> from workbench.core.learned.densities import gaussian_tables
    >>> class M: gaussian = tuple(gaussian_tables())
    >>> u, lv = np.array([[0.4, -2.6, 3.2, 30.0]]), np.array([[10, 20, 20, 20]])
    >>> w = CategoricalWriter(); x, _ = RDOQ().write(w, u, lv, np.full(1, 4.0), M)
    >>> RDOQ().read(CategoricalReader(w.finish()), lv, M).tolist() == x.tolist()
    True
    """

    name = "rdoq"
    label = "Rounding grid, rate-distortion optimised"
    machine = trellis.UNIFORM

    def tables(self, cm):
        return (cm.gaussian, cm.gaussian)


@LATENT_QUANTIZERS.register
class Trellis4(_Trellis):
    """4-state trellis (VVC dependent quantization).

    >>> class M: trellis = _example_tables()
    >>> u, lv = np.array([[0.4, -2.6, 3.2, 30.0]]), np.array([[10, 20, 20, 20]])
    >>> w = CategoricalWriter(); x, _ = Trellis4().write(w, u, lv, np.full(1, 4.0), M)
    >>> Trellis4().read(CategoricalReader(w.finish()), lv, M).tolist() == x.tolist()
    True
    >>> bool(np.abs(x - u).max() <= 1.0)
    True
    """

    name = "tcq4"
    label = "Trellis-coded, 4 states"
    machine = trellis.TCQ4


@LATENT_QUANTIZERS.register
class Trellis8(_Trellis):
    """8-state trellis (the NNR standard's dependent quantization).

    >>> class M: trellis = _example_tables()
    >>> u, lv = np.array([[0.4, -2.6, 3.2, 30.0]]), np.array([[10, 20, 20, 20]])
    >>> w = CategoricalWriter(); x, _ = Trellis8().write(w, u, lv, np.full(1, 4.0), M)
    >>> Trellis8().read(CategoricalReader(w.finish()), lv, M).tolist() == x.tolist()
    True
    """

    name = "tcq8"
    label = "Trellis-coded, 8 states"
    machine = trellis.TCQ8


def _example_tables():
    from workbench.core.learned.densities import trellis_tables
    return tuple(tuple(t) for t in trellis_tables())


def _stream_groups(quant: np.ndarray, levels: np.ndarray):
    """The writer's order for all columns at once: `_groups` of column 0, then of column 1, ..., with
    indices into the column-major flattening (the reader, which learns the quantizers column by
    column, calls `_groups` per column)."""
    n_cols = quant.shape[1]
    per_column = 2 * SCALE_LEVELS
    key = (np.arange(n_cols)[:, None] * per_column + levels.T * 2 + quant.T).reshape(-1)
    order = np.argsort(key, kind="stable")
    for where in np.split(order, np.flatnonzero(np.diff(key[order])) + 1):
        kk = int(key[where[0]]) % per_column
        yield kk & 1, kk >> 1, where


def _groups(quant: np.ndarray, levels: np.ndarray):
    """(quantizer, level, chain indices) for one column, in a fixed order both sides reproduce."""
    key = levels * 2 + quant
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    for rows in np.split(order, bounds):
        if rows.size:
            kk = int(key[rows[0]])
            yield kk & 1, kk >> 1, rows


class _BitCosts:
    """Bits of level k under (quantizer, scale level) in the tables' image, escapes included.

    One flat lookup per candidate: the dense table covers |k| ≤ the widest table's range, escape costs
    included for the narrower tables, and only levels beyond it (rare) are computed on the side. The
    search evaluates this for millions of candidates per image, so it is most of its time."""

    def __init__(self, tables, device: torch.device):
        self.rmax = rmax = max(-t.lo - 1 for qt in tables for t in qt)
        self.n_levels, self.width = len(tables[0]), 2 * rmax + 1
        ks = np.arange(-rmax, rmax + 1)
        dense = np.empty((2, self.n_levels, self.width))
        esc = np.empty((2, self.n_levels, 2))
        r_of = np.empty((2, self.n_levels), dtype=np.int64)
        for q, qt in enumerate(tables):
            for lv, t in enumerate(qt):
                bits = -np.log2(t.probabilities)
                r = r_of[q, lv] = -t.lo - 1
                esc[q, lv] = bits[0], bits[-1]
                excess_bits = 2 * np.log2(np.maximum(np.abs(ks) - r, 1)) + _ESCAPE_NORM_BITS
                dense[q, lv] = np.where(np.abs(ks) <= r, bits[np.clip(ks, -r, r) + r + 1],
                                        np.where(ks < 0, bits[0], bits[-1]) + excess_bits)
        self.flat = torch.from_numpy(dense.reshape(-1)).to(device, torch.float32)    # what the search sums
        self.esc = torch.from_numpy(esc).to(device)
        self.r = torch.from_numpy(r_of).to(device)

    def row_start(self, q: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """Flat index of level 0 in the table of (q, level)."""
        return (q * self.n_levels + level) * self.width + self.rmax

    def __call__(self, k: torch.Tensor, q: torch.Tensor, level: torch.Tensor,
                 rows: torch.Tensor | None = None) -> torch.Tensor:
        rmax = self.rmax
        rows = self.row_start(q, level) if rows is None else rows
        bits = self.flat[rows + k.clamp(-rmax, rmax)]
        far = k.abs() > rmax
        if bool(far.any()):
            k, q, level = torch.broadcast_tensors(k, q, level)
            kf, qf, lf = k[far], q[far], level[far]
            far_bits = self.esc[qf, lf, (kf > 0).long()] + 2 * torch.log2((kf.abs() - self.r[qf, lf]).double())
            bits[far] = (far_bits + _ESCAPE_NORM_BITS).to(bits.dtype)
        return bits


class _ChainRate:
    """The search's rate: bits of each candidate under its own latent's scale level (no context)."""

    def __init__(self, costs: _BitCosts, levels: torch.Tensor):
        self.costs, self.levels = costs, levels[..., None]
        self._rows: dict[int, torch.Tensor] = {}

    def bulk(self, cand: torch.Tensor, q: int) -> torch.Tensor:
        if q not in self._rows:     # where each latent's table starts in the flat lookup, per quantizer
            self._rows[q] = self.costs.row_start(torch.tensor(q, device=cand.device), self.levels)
        return self.costs(cand, torch.tensor(q, device=cand.device), self.levels, self._rows[q])


@lru_cache(maxsize=4)
def _bit_costs(tables, device: torch.device) -> _BitCosts:
    return _BitCosts(tables, device)


def _ideal_bits(values: np.ndarray, table: CategoricalTable) -> float:
    if not values.size:
        return 0.0
    r = -table.lo - 1
    p = table.probabilities
    bits = -np.log2(p[np.clip(values, -r - 1, r + 1) - table.lo]).sum()
    excess = np.abs(values[np.abs(values) > r]) - r - 1
    return float(bits + (2 * np.log2(excess + 1) + _ESCAPE_NORM_BITS).sum())
