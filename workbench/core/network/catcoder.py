"""Per-tensor categorical coding of weight levels through constriction, with a few contexts.

The alternative to `cabac`: one static integer frequency table per context travels in the stream
and the range coder spends almost exactly the table's ideal bits. Contexts are the quantizer of the
current trellis state and whether the previous level of the chain was zero (2 or 4 tables), the
same dependencies `cabac` models, so the two can be compared fairly. Tables cost bytes, so this
wins on large tensors with small alphabets and loses on small ones; `--coder auto` picks, per
tensor, the coder whose estimated stream is smaller.

Symbols are coded chain-interleaved (element j of all chains, grouped by context, then j + 1), so
the decoder decodes a whole column per context with one call instead of one call per weight.

Stream layout: u8 number of contexts, per context u32 length + `CategoricalTable.to_bytes()`, then
the range coder's little-endian 32-bit words.
"""

from __future__ import annotations

import struct

import constriction
import numpy as np

from workbench.core.entropy import CategoricalTable, _categorical_model
from workbench.core.errors import BitstreamError
from workbench.core.trellis import StateMachine, track_states

MAX_SPAN = 4096
"""Largest alphabet per context; beyond it the table would cost more than it saves (use CABAC)."""


def _contexts(levels: np.ndarray, sm: StateMachine) -> np.ndarray:
    ctx = np.zeros(levels.shape, dtype=np.int8)
    ctx[:, 1:] = levels[:, :-1] != 0
    if sm.dependent:
        ctx += 2 * np.asarray(sm.quantizer, dtype=np.int8)[track_states(levels, sm)]
    return ctx


def encode_levels(levels: np.ndarray, sm: StateMachine) -> bytes:
    """Code a (chains, length) int array; raises ValueError when an alphabet exceeds MAX_SPAN.

    >>> from workbench.core.trellis import TCQ4
    >>> lv = np.array([[0, 1, -2, 0, 7], [3, 0, 0, -40, 1]])
    >>> decode_levels(encode_levels(lv, TCQ4), lv.shape, TCQ4).tolist() == lv.tolist()
    True
    """
    lv = np.asarray(levels, dtype=np.int64)
    n_ctx = 4 if sm.dependent else 2
    ctx = _contexts(lv, sm)
    tables = [_table(lv[ctx == c]) for c in range(n_ctx)]
    head = _header(tables)
    models = [_categorical_model(t) if len(t.freqs) > 1 else None for t in tables]
    enc = constriction.stream.queue.RangeEncoder()
    lt, ct = lv.T, ctx.T
    for j in range(lt.shape[0]):
        col, cc = lt[j], ct[j]
        for c in range(n_ctx):
            if models[c] is None:
                continue
            sym = col[cc == c]
            if sym.size:
                enc.encode((sym - tables[c].offset).astype(np.int32), models[c])
    return bytes(head) + enc.get_compressed().astype("<u4").tobytes()


def estimate_bytes(levels: np.ndarray, sm: StateMachine) -> int | None:
    """The size `encode_levels` will produce, from the tables alone (their header bytes plus each
    symbol's −log2 of its table probability; the range coder's rounding adds at most a word or two),
    so `--coder auto` can compare without coding. None when a table cannot hold an alphabet.

    >>> from workbench.core.trellis import UNIFORM
    >>> lv = np.random.default_rng(0).integers(-3, 4, (20, 300))
    >>> abs(estimate_bytes(lv, UNIFORM) - len(encode_levels(lv, UNIFORM))) <= 8
    True
    """
    lv = np.asarray(levels, dtype=np.int64)
    n_ctx = 4 if sm.dependent else 2
    if lv.size == 0:
        return len(_header([_table(lv)] * n_ctx)) + 4
    lo, hi = int(lv.min()), int(lv.max())
    span = hi - lo + 1
    if span > n_ctx * MAX_SPAN:          # some context's alphabet is larger than a table takes
        return None
    # counts per context, a block of chains at a time (contexts only look along a chain)
    counts = np.zeros(n_ctx * span, dtype=np.int64)
    rows = max(1, (1 << 18) // max(lv.shape[1], 1))
    for i in range(0, lv.shape[0], rows):
        block = lv[i:i + rows]
        counts += np.bincount((_contexts(block, sm).astype(np.int64) * span + (block - lo)).ravel(),
                              minlength=counts.size)
    counts = counts.reshape(n_ctx, span)
    bits, tables = 0.0, []
    for c in range(n_ctx):
        used = np.nonzero(counts[c])[0]
        if used.size == 0:
            tables.append(_table(np.zeros(0, dtype=np.int64)))
            continue
        a, b = int(used[0]), int(used[-1])
        if b - a + 1 > MAX_SPAN:
            return None
        t = CategoricalTable.from_counts(counts[c, a:b + 1], lo + a)
        tables.append(t)
        if len(t.freqs) > 1:
            bits += float(np.sum(counts[c, a:b + 1] * (16.0 - np.log2(np.asarray(t.freqs, dtype=np.float64)))))
    return len(_header(tables)) + 4 * (int(np.ceil(bits / 32)) + 1)


def _table(sym: np.ndarray) -> CategoricalTable:
    if sym.size == 0:
        return CategoricalTable(0, (1 << 16,))
    if int(sym.max()) - int(sym.min()) + 1 > MAX_SPAN:
        raise ValueError(f"alphabet of {int(sym.max()) - int(sym.min()) + 1} levels is too large for a table")
    return CategoricalTable.from_symbols(sym)


def _header(tables: list[CategoricalTable]) -> bytearray:
    head = bytearray([len(tables)])
    for t in tables:
        raw = t.to_bytes()
        head += struct.pack("<I", len(raw)) + raw
    return head


def decode_levels(data: bytes, shape: tuple[int, int], sm: StateMachine) -> np.ndarray:
    """Inverse of `encode_levels`; any damage is a BitstreamError."""
    rows, cols = (int(d) for d in shape)
    data = bytes(data)
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
