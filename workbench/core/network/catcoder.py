"""Per-tensor categorical coding of weight levels, with a few contexts.

The alternative to `cabac`: one static integer frequency table per context travels in the stream
and the range coder spends almost exactly the table's ideal bits. Contexts are the quantizer of the
current trellis state and whether the previous level of the chain was zero (2 or 4 tables), the
same dependencies `cabac` models, so the two can be compared fairly. Tables cost bytes, so this
wins on large tensors with small alphabets and loses on small ones; `--coder auto` picks, per
tensor, the coder whose estimated stream is smaller.

Stream layout (manifest coder 2, format 2): u8 number of contexts, per context u32 length +
`CategoricalTable.to_bytes()`, then (unless every table has one symbol, which costs no bits) the
bytes of an LZMA-style multi-symbol range coder (`cabac`'s 32-bit range and carry handling; a
symbol with cumulative frequencies F..F' of 2^16 narrows [low, low + range) to
[low + (range·F >> 16), low + (range·F' >> 16)), exact to a unit of the range, so the stream is within
bytes of the tables' ideal bits; `range >> 16` times the frequency lost ~0.01 %). Levels are coded in
chain-interleaved order (element j of every chain, then j + 1), each under its own context. The
coder is compiled (`workbench.core.jit`) and integer-only, so any machine decodes the same levels.

Layout 1 (manifest coder 1, written before issue 18's compiled coders; decoded by
`decode_levels_v1`): the same tables, then constriction range-coder words, with each column's
symbols grouped by context so that a column cost one constriction call per context. Those Python
calls (a few per column) were most of a transformer's decode time, hence the new layout.
"""

from __future__ import annotations

import struct

import constriction
import numpy as np

from workbench.core.entropy import PRECISION, CategoricalTable, _categorical_model
from workbench.core.errors import BitstreamError
from workbench.core.jit import njit
from workbench.core.network.cabac import _TOP, _fill, _machine_arrays, _room, _shift_low, _MASK32
from workbench.core.trellis import StateMachine

MAX_SPAN = 4096
"""Largest alphabet per context; beyond it the table would cost more than it saves (use CABAC)."""
_FLUSH = 5
"""Bytes of range coder beyond the symbols' bits: the leading byte of LZMA's carry cache and the flush."""


def encode_levels(levels: np.ndarray, sm: StateMachine) -> bytes:
    """Code a (chains, length) int array; raises ValueError when an alphabet exceeds MAX_SPAN.

    >>> from workbench.core.trellis import TCQ4
    >>> lv = np.array([[0, 1, -2, 0, 7], [3, 0, 0, -40, 1]])
    >>> decode_levels(encode_levels(lv, TCQ4), lv.shape, TCQ4).tolist() == lv.tolist()
    True
    """
    lv = np.ascontiguousarray(levels, dtype=np.int64)
    tables = _fitted_tables(lv, sm)
    if tables is None:
        raise ValueError(f"an alphabet of more than {MAX_SPAN} levels is too large for a table")
    head = bytes(_header(tables))
    if all(len(t.freqs) == 1 for t in tables):
        return head                                  # every level is known from its context: no bits
    qsel, nxt = _machine_arrays(sm)
    offs, cum, freq, _ = _coder_arrays(tables, lookup=False)
    return head + _rc_encode(lv, qsel, nxt, sm.dependent, offs, cum, freq).tobytes()


def estimate_bytes(levels: np.ndarray, sm: StateMachine) -> int | None:
    """The size `encode_levels` will produce, from the tables alone (their header bytes plus each
    symbol's −log2 of its table probability; the range coder's rounding adds a byte or two),
    so `--coder auto` can compare without coding. None when a table cannot hold an alphabet.

    >>> from workbench.core.trellis import UNIFORM
    >>> lv = np.random.default_rng(0).integers(-3, 4, (20, 300))
    >>> abs(estimate_bytes(lv, UNIFORM) - len(encode_levels(lv, UNIFORM))) <= 8
    True
    """
    lv = np.ascontiguousarray(levels, dtype=np.int64)
    counts, lo = _context_counts(lv, sm)
    tables = None if counts is None else _tables(counts, lo)
    if tables is None:
        return None
    bits = 0.0
    for c, t in enumerate(tables):
        if len(t.freqs) > 1:
            a = t.offset - lo
            used = counts[c, a:a + len(t.freqs)]
            bits += float(np.sum(used * (PRECISION - np.log2(np.asarray(t.freqs, dtype=np.float64)))))
    coded = any(len(t.freqs) > 1 for t in tables)
    return len(_header(tables)) + (int(np.ceil(bits / 8)) + _FLUSH if coded else 0)


def _context_counts(lv: np.ndarray, sm: StateMachine) -> tuple[np.ndarray | None, int]:
    """Counts (contexts, levels lo..hi) and lo; None when the levels span more than the tables could take."""
    n_ctx = 4 if sm.dependent else 2
    if lv.size == 0:
        return np.zeros((n_ctx, 1), dtype=np.int64), 0
    lo, hi = int(lv.min()), int(lv.max())
    if hi - lo + 1 > n_ctx * MAX_SPAN:               # some context's alphabet is larger than a table takes
        return None, lo
    qsel, nxt = _machine_arrays(sm)
    return _count(lv, qsel, nxt, sm.dependent, lo, hi - lo + 1, n_ctx), lo


def _tables(counts: np.ndarray, lo: int) -> list[CategoricalTable] | None:
    tables = []
    for row in counts:
        used = np.nonzero(row)[0]
        if used.size == 0:
            tables.append(CategoricalTable(0, (1 << PRECISION,)))
            continue
        a, b = int(used[0]), int(used[-1])
        if b - a + 1 > MAX_SPAN:
            return None
        tables.append(CategoricalTable.from_counts(row[a:b + 1], lo + a))
    return tables


def _fitted_tables(lv: np.ndarray, sm: StateMachine) -> list[CategoricalTable] | None:
    counts, lo = _context_counts(lv, sm)
    return None if counts is None else _tables(counts, lo)


def _coder_arrays(tables: list[CategoricalTable], lookup: bool):
    """Per context: offset, cumulative and single frequencies (a one-symbol table gets frequency 0:
    not coded), and for the decoder the symbol index of every 16-bit slot."""
    n = len(tables)
    offs = np.array([t.offset for t in tables], dtype=np.int64)
    cum = np.zeros((n, MAX_SPAN + 1), dtype=np.int64)
    freq = np.zeros((n, MAX_SPAN), dtype=np.int64)
    slots = np.zeros((n, 1 << PRECISION), dtype=np.int32) if lookup else None
    for c, t in enumerate(tables):
        if len(t.freqs) == 1:
            continue
        f = np.asarray(t.freqs, dtype=np.int64)
        freq[c, :f.size] = f
        cum[c, 1:f.size + 1] = np.cumsum(f)
        if lookup:
            slots[c] = np.repeat(np.arange(f.size, dtype=np.int32), f)
    return offs, cum, freq, slots


def _header(tables: list[CategoricalTable]) -> bytearray:
    head = bytearray([len(tables)])
    for t in tables:
        raw = t.to_bytes()
        head += struct.pack("<I", len(raw)) + raw
    return head


def _read_tables(data: bytes, sm: StateMachine) -> tuple[list[CategoricalTable], int]:
    if not data:
        raise BitstreamError("categorical level stream is empty")
    n_ctx = data[0]
    if n_ctx != (4 if sm.dependent else 2):
        raise BitstreamError(f"categorical level stream has {n_ctx} contexts, expected {4 if sm.dependent else 2}")
    pos, tables = 1, []
    for _ in range(n_ctx):
        if pos + 4 > len(data):
            raise BitstreamError("categorical level stream is truncated")
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if n > len(data) - pos:
            raise BitstreamError("categorical level stream is truncated")
        tables.append(CategoricalTable.from_bytes(data[pos:pos + n]))
        pos += n
    return tables, pos


_ERRORS = {1: "categorical level stream is truncated or corrupted (decoder ran past its end)",
           2: "categorical level stream is corrupted (a value outside its table)"}


def decode_levels(data: bytes, shape: tuple[int, int], sm: StateMachine) -> np.ndarray:
    """Inverse of `encode_levels`; any damage is a BitstreamError."""
    rows, cols = (int(d) for d in shape)
    data = bytes(data)
    tables, pos = _read_tables(data, sm)
    buf = np.frombuffer(data, dtype=np.uint8)[pos:]
    offs, cum, freq, slots = _coder_arrays(tables, lookup=True)
    qsel, nxt = _machine_arrays(sm)
    if all(len(t.freqs) == 1 for t in tables):
        if buf.size:
            raise BitstreamError("categorical level stream is corrupted (data left over)")
        out, _, _ = _rc_decode(np.zeros(8, dtype=np.uint8), rows, cols, qsel, nxt, sm.dependent, offs, cum, freq,
                               slots, 0)
        return out
    if buf.size < _FLUSH:
        raise BitstreamError("categorical level stream is truncated")
    out, end, err = _rc_decode(buf, rows, cols, qsel, nxt, sm.dependent, offs, cum, freq, slots,
                               int.from_bytes(buf[1:5].tobytes(), "big"))
    if err:
        raise BitstreamError(_ERRORS[err])
    if end > buf.size + 4:
        raise BitstreamError(_ERRORS[1])
    if end < buf.size:       # the encoder's flush ends where the decoder stops reading (or before)
        raise BitstreamError(f"categorical level stream is corrupted ({buf.size - end} bytes left over)")
    return out


# The coder's loops, compiled: each level's context depends on the previous level of its chain, so a
# column can only be coded after the one before it, which in Python cost a call per column and context.

@njit
def _context(prev, s, qsel, dep):
    """A level's context: whether the previous level of its chain is non-zero, and (dependent quantization)
    which quantizer its trellis state uses."""
    return (1 if prev != 0 else 0) + (2 * qsel[s] if dep else 0)


@njit
def _count(lv, qsel, nxt, dep, lo, span, n_ctx):
    counts = np.zeros((n_ctx, span), dtype=np.int64)
    for r in range(lv.shape[0]):
        s = 0
        pv = 0
        for j in range(lv.shape[1]):
            k = lv[r, j]
            c = _context(pv, s, qsel, dep)
            counts[c, k - lo] += 1
            pv = k
            if dep:
                s = nxt[s, k & 1]
    return counts


@njit
def _rc_encode(lv, qsel, nxt, dep, offs, cum, freq):
    rows, cols = lv.shape
    low, rng, cache, cache_size, n = 0, _MASK32, 0, 1, 0
    out = np.empty(4096, dtype=np.uint8)
    state = np.zeros(rows, dtype=np.int64)
    prev = np.zeros(rows, dtype=np.int64)
    for j in range(cols):                 # element j of every chain, then j + 1
        for r in range(rows):
            k = lv[r, j]
            s = state[r]
            c = _context(prev[r], s, qsel, dep)
            prev[r] = k
            if dep:
                state[r] = nxt[s, k & 1]
            i = k - offs[c]
            f = freq[c, i]
            if f == 0:                    # a one-symbol table: nothing to code
                continue
            if n + cache_size + 16 > out.size:     # room for this symbol's bytes and pending carries
                out = _room(out, n, n + cache_size + 16)
            lo_ = (rng * cum[c, i]) >> 16
            low += lo_
            rng = ((rng * cum[c, i + 1]) >> 16) - lo_
            while rng < _TOP:
                rng <<= 8
                low, cache, cache_size, n = _shift_low(low, cache, cache_size, n, out)
    out = _room(out, n, n + cache_size + 16)
    for _ in range(5):
        low, cache, cache_size, n = _shift_low(low, cache, cache_size, n, out)
    return out[:n].copy()


@njit
def _rc_decode(buf, rows, cols, qsel, nxt, dep, offs, cum, freq, slots, code):
    """Levels (rows, cols), the bytes read and an error code (`_ERRORS`)."""
    rng, pos = _MASK32, 5
    n = buf.size
    out = np.empty((rows, cols), dtype=np.int64)
    state = np.zeros(rows, dtype=np.int64)
    prev = np.zeros(rows, dtype=np.int64)
    for j in range(cols):
        for r in range(rows):
            s = state[r]
            c = _context(prev[r], s, qsel, dep)
            if freq[c, 0] == 0:           # a one-symbol table
                k = offs[c]
            else:
                v = (((code + 1) << 16) - 1) // rng      # the largest F with (range·F) >> 16 ≤ code
                if v >= 1 << 16:
                    return out, pos, 2
                i = slots[c, v]
                lo_ = (rng * cum[c, i]) >> 16
                code -= lo_
                rng = ((rng * cum[c, i + 1]) >> 16) - lo_
                if rng < _TOP:
                    rng, code, pos = _fill(rng, code, pos, buf)
                    if pos > n + 8:
                        return out, pos, 1
                k = offs[c] + i
            out[r, j] = k
            prev[r] = k
            if dep:
                state[r] = nxt[s, k & 1]
    return out, pos, 0


def decode_levels_v1(data: bytes, shape: tuple[int, int], sm: StateMachine) -> np.ndarray:
    """Layout 1 (manifest coder 1): constriction words, each column's symbols grouped by context."""
    rows, cols = (int(d) for d in shape)
    data = bytes(data)
    tables, pos = _read_tables(data, sm)
    n_ctx = len(tables)
    words = data[pos:]
    if len(words) % 4:
        raise BitstreamError("categorical level stream is truncated (not whole 32-bit words)")
    models = [_categorical_model(t) if len(t.freqs) > 1 else None for t in tables]
    dec = constriction.stream.queue.RangeDecoder(np.frombuffer(words, dtype="<u4").astype(np.uint32))
    out = np.zeros((cols, rows), dtype=np.int64)
    prev = np.zeros(rows, dtype=np.int64)
    state = np.zeros(rows, dtype=np.int64)
    qsel = np.asarray(sm.quantizer, dtype=np.int64)
    nxt = np.asarray(sm.next_state, dtype=np.int64)
    try:
        for j in range(cols):
            cc = (prev != 0).astype(np.int64)
            if sm.dependent:
                cc += 2 * qsel[state]
            col = out[j]
            for c in range(n_ctx):
                sel = np.nonzero(cc == c)[0]
                if sel.size == 0:
                    continue
                if models[c] is None:
                    col[sel] = tables[c].offset
                else:
                    col[sel] = np.asarray(dec.decode(models[c], int(sel.size)), dtype=np.int64) + tables[c].offset
            prev = col
            if sm.dependent:
                state = nxt[state, col & 1]
        exhausted = dec.maybe_exhausted()
    except BitstreamError:
        raise
    except Exception:
        raise BitstreamError("categorical level stream is corrupted (the decoder rejected it)") from None
    if not exhausted:
        raise BitstreamError("categorical level stream is corrupted (data left over)")
    return np.ascontiguousarray(out.T)
