"""DeepCABAC-style coding of integer weight levels: binarization plus an adaptive binary coder.

Why a binary coder next to the categorical one: each bin's probability adapts as it is coded, so
no table travels in the file (that matters for the many small tensors of a network), and contexts
are cheap to add — the significance flag depends on the previous level of the same chain and on
the trellis state, exactly the dependencies dependent quantization creates.

Binarization of a level k, coded chain-interleaved (element j of every chain, then j + 1):

* sig  (k ≠ 0): context = quantizer of the current trellis state × min(|previous level|, 2);
* sign (k < 0): context = sign of the previous level;
* gt_i (|k| > i) for i = 1..NUM_GT: context = i × quantizer × (|previous| > 1);
* remainder |k| − NUM_GT − 1 as Exp-Golomb of order `egk` in bypass bins (egk chosen per tensor by
  the encoder and stored in the stream's first byte).

The arithmetic coder is the LZMA range coder (32-bit range, byte-wise carry propagation) with 16-bit
probabilities; each context mixes a fast (1/16) and a slow (1/128) adaptation rate, as VVC does, so it
learns quickly on small tensors and settles on large ones. Everything is integer arithmetic, so
encoder and decoder agree on any machine.
"""

from __future__ import annotations

import numpy as np

from workbench.core.errors import BitstreamError
from workbench.core.jit import njit
from workbench.core.trellis import StateMachine

NUM_GT = 8
_N_CTX = 6 + 3 + NUM_GT * 4
_HALF = 1 << 15
_TOP = 1 << 24
_MASK32 = 0xFFFFFFFF
MAX_EGK = 30


def encode_levels(levels: np.ndarray, sm: StateMachine) -> bytes:
    """Code a (chains, length) int array; the decoder needs its shape and the same state machine.

    >>> from workbench.core.trellis import TCQ8
    >>> lv = np.array([[0, 1, -2, 0, 7], [3, 0, 0, -40, 1]])
    >>> data = encode_levels(lv, TCQ8)
    >>> decode_levels(data, lv.shape, TCQ8).tolist() == lv.tolist()
    True
    """
    lv = np.ascontiguousarray(levels, dtype=np.int64)
    if lv.ndim != 2:
        raise ValueError("levels must be a 2-D array of chains x length")
    egk = best_egk(lv)
    qsel, nxt = _machine_arrays(sm)
    out, _ = _encode(lv, qsel, nxt, sm.dependent, egk, False)
    return bytes([egk]) + out.tobytes()


def _machine_arrays(sm: StateMachine) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray(sm.quantizer, dtype=np.int64).reshape(-1),
            np.asarray(sm.next_state, dtype=np.int64).reshape(-1, 2))


# The coder's loops, compiled (`workbench.core.jit`): bins are coded one at a time, each updating its
# context, which no array operation expresses. The integer arithmetic is the pure-Python coder's that
# this replaced (the low register needs 33 bits: int64), so the streams are the same bytes. The coder's
# registers are local variables of one function (numba keeps them in CPU registers): per-bin helper
# functions that shared them through an array were several times slower, and inlining those made
# numba's compilation take ~50 s.

@njit
def _room(out, n, need):
    """`out` with room for `need` bytes: when it has not, its first `n` bytes in a buffer twice that size.
    (Called in the coders' loops only when the room has run out: a call per symbol cost ~10 %.)"""
    if need <= out.size:
        return out
    grown = np.empty(2 * need, dtype=np.uint8)
    grown[:n] = out[:n]
    return grown


@njit
def _shift_low(low, cache, cache_size, n, out):
    """LZMA's byte output: a byte of `low`, with carry propagation into the pending run of 0xFF bytes."""
    if low < 0xFF000000 or low > _MASK32:
        carry = low >> 32
        temp = cache
        while True:
            out[n] = (temp + carry) & 0xFF
            n += 1
            temp = 0xFF
            cache_size -= 1
            if cache_size == 0:
                break
        cache = (low >> 24) & 0xFF
    return (low & 0x00FFFFFF) << 8, cache, cache_size + 1, n


@njit
def _encode(lv, qsel, nxt, dep, egk, count):
    """The stream's bytes; with `count`, no bytes but the bits an ideal arithmetic coder would spend on
    the same bins with the same adaptive probabilities (`estimate_bits`)."""
    rows, cols = lv.shape
    bits = 0.0
    pa = np.full(_N_CTX, _HALF, dtype=np.int64)
    pb = np.full(_N_CTX, _HALF, dtype=np.int64)
    low, rng, cache, cache_size, n = 0, _MASK32, 0, 1, 0
    out = np.empty(4096, dtype=np.uint8)
    ctxs = np.empty(2 + NUM_GT + 2 * 64, dtype=np.int64)     # one level's bins: context (-1: bypass), bit
    bins = np.empty(ctxs.size, dtype=np.int64)
    state = np.zeros(rows, dtype=np.int64)
    prev = np.zeros(rows, dtype=np.int64)
    for j in range(cols):                 # element j of every chain, then j + 1
        for r in range(rows):
            k = lv[r, j]
            pv = prev[r]
            s = state[r]
            q = qsel[s] if dep else 0
            apv = -pv if pv < 0 else pv
            ctxs[0] = q * 3 + (2 if apv > 2 else apv)
            bins[0] = 1 if k != 0 else 0
            nb = 1
            if k != 0:
                ctxs[1] = 6 + (0 if pv == 0 else (1 if pv > 0 else 2))
                bins[1] = 1 if k < 0 else 0
                nb = 2
                a = -k if k < 0 else k
                base = 9 + q * 2 + (1 if apv > 1 else 0)
                for i in range(1, NUM_GT + 1):
                    ctxs[nb] = base + (i - 1) * 4
                    bins[nb] = 1 if a > i else 0
                    nb += 1
                    if a <= i:
                        break
                if a > NUM_GT:
                    rem = a - NUM_GT - 1
                    kk = egk
                    while rem >= (1 << kk):
                        ctxs[nb] = -1
                        bins[nb] = 1
                        nb += 1
                        rem -= 1 << kk
                        kk += 1
                    ctxs[nb] = -1
                    bins[nb] = 0
                    nb += 1
                    for bit in range(kk - 1, -1, -1):
                        ctxs[nb] = -1
                        bins[nb] = (rem >> bit) & 1
                        nb += 1
            prev[r] = k
            if dep:
                state[r] = nxt[s, k & 1]
            if n + cache_size + 2 * nb + 16 > out.size:     # room for these bins' bytes and pending carries
                out = _room(out, n, n + cache_size + 2 * nb + 16)
            for b in range(nb):
                c = ctxs[b]
                bit = bins[b]
                if c < 0:
                    if count:
                        bits += 1.0
                    else:
                        rng >>= 1
                        if bit:
                            low += rng
                else:
                    pc0 = pa[c]
                    pc1 = pb[c]
                    p0 = 65536 - ((pc0 + pc1) >> 1)
                    p0 = 1 if p0 < 1 else (65535 if p0 > 65535 else p0)
                    if count:
                        bits -= np.log2((65536 - p0 if bit else p0) / 65536.0)
                    else:
                        bound = (rng >> 16) * p0
                        if bit:
                            low += bound
                            rng -= bound
                        else:
                            rng = bound
                    if bit:
                        pa[c] = pc0 + ((65536 - pc0) >> 4)
                        pb[c] = pc1 + ((65536 - pc1) >> 7)
                    else:
                        pa[c] = pc0 - (pc0 >> 4)
                        pb[c] = pc1 - (pc1 >> 7)
                while rng < _TOP:
                    rng <<= 8
                    low, cache, cache_size, n = _shift_low(low, cache, cache_size, n, out)
    out = _room(out, n, n + cache_size + 16)
    for _ in range(5 if not count else 0):
        low, cache, cache_size, n = _shift_low(low, cache, cache_size, n, out)
    return out[:n].copy(), bits


_ERRORS = {1: "CABAC stream is truncated or corrupted (decoder ran past its end)",
           2: "CABAC stream is corrupted (Exp-Golomb prefix too long)",
           3: "CABAC stream is corrupted (level out of range)"}


def decode_levels(data: bytes, shape: tuple[int, int], sm: StateMachine) -> np.ndarray:
    """Inverse of `encode_levels`; damage that makes the decoder run off the data is a BitstreamError."""
    rows, cols = (int(d) for d in shape)
    data = bytes(data)
    if len(data) < 6:
        raise BitstreamError("CABAC stream is truncated")
    egk = data[0]
    if egk > MAX_EGK:
        raise BitstreamError(f"CABAC stream has an invalid Exp-Golomb order {egk}")
    buf = np.frombuffer(data, dtype=np.uint8)[1:]
    n = len(buf)
    qsel, nxt = _machine_arrays(sm)
    out, pos, err = _decode(buf, rows, cols, qsel, nxt, sm.dependent, egk, int.from_bytes(data[2:6], "big"))
    if err:
        raise BitstreamError(_ERRORS[err])
    if pos > n + 4:
        raise BitstreamError("CABAC stream is truncated or corrupted (decoder ran past its end)")
    if pos < n:       # the encoder's flush ends where the decoder stops reading (or before)
        raise BitstreamError(f"CABAC stream is corrupted ({n - pos} bytes left over after the last level)")
    return out


@njit
def _fill(rng, code, pos, buf):
    """Renormalise: shift in bytes (zeros past the end) until the range is back above 2^24."""
    while rng < _TOP:
        rng = (rng << 8) & _MASK32
        code = ((code << 8) | (buf[pos] if pos < buf.size else 0)) & _MASK32
        pos += 1
    return rng, code, pos


@njit
def _decode(buf, rows, cols, qsel, nxt, dep, egk, code):
    """Levels (rows, cols), the bytes read and an error code (`_ERRORS`). Each level's bins are decoded by
    one loop that steps through sig, sign, gt_1..gt_8, Exp-Golomb prefix and suffix (`phase` 0..4)."""
    pa = np.full(_N_CTX, _HALF, dtype=np.int64)
    pb = np.full(_N_CTX, _HALF, dtype=np.int64)
    rng, pos = _MASK32, 5
    n = buf.size
    out = np.zeros((rows, cols), dtype=np.int64)
    state = np.zeros(rows, dtype=np.int64)
    prev = np.zeros(rows, dtype=np.int64)
    for j in range(cols):
        for r in range(rows):
            pv = prev[r]
            s = state[r]
            q = qsel[s] if dep else 0
            apv = -pv if pv < 0 else pv
            base = 9 + q * 2 + (1 if apv > 1 else 0)
            phase, neg, a, kk, rem, left, k = 0, 0, 1, egk, 0, 0, 0
            while True:
                if phase >= 3:                       # bypass bin
                    rng >>= 1
                    if code >= rng:
                        code -= rng
                        bit = 1
                    else:
                        bit = 0
                else:
                    if phase == 0:
                        c = q * 3 + (2 if apv > 2 else apv)
                    elif phase == 1:
                        c = 6 + (0 if pv == 0 else (1 if pv > 0 else 2))
                    else:
                        c = base + (a - 1) * 4
                    pc0 = pa[c]
                    pc1 = pb[c]
                    p0 = 65536 - ((pc0 + pc1) >> 1)
                    p0 = 1 if p0 < 1 else (65535 if p0 > 65535 else p0)
                    bound = (rng >> 16) * p0
                    if code < bound:
                        rng = bound
                        pa[c] = pc0 - (pc0 >> 4)
                        pb[c] = pc1 - (pc1 >> 7)
                        bit = 0
                    else:
                        code -= bound
                        rng -= bound
                        pa[c] = pc0 + ((65536 - pc0) >> 4)
                        pb[c] = pc1 + ((65536 - pc1) >> 7)
                        bit = 1
                if rng < _TOP:
                    rng, code, pos = _fill(rng, code, pos, buf)
                    if pos > n + 8:
                        return out, pos, 1
                if phase == 0:                       # significance
                    if bit == 0:
                        break
                    phase = 1
                elif phase == 1:                     # sign
                    neg = bit
                    phase = 2
                elif phase == 2:                     # |k| > a ?
                    if bit == 0:
                        k = a
                        break
                    a += 1
                    if a > NUM_GT:
                        phase = 3
                elif phase == 3:                     # Exp-Golomb prefix
                    if bit:
                        rem += 1 << kk
                        kk += 1
                        if kk > 40:
                            return out, pos, 2
                    elif kk == 0:
                        k = NUM_GT + 1 + rem
                        break
                    else:
                        phase, left = 4, kk
                else:                                # Exp-Golomb suffix, kk bits
                    rem += bit << (left - 1)
                    left -= 1
                    if left == 0:
                        k = NUM_GT + 1 + rem
                        break
            if k >= 1 << 31:
                return out, pos, 3
            if neg:
                k = -k
            out[r, j] = k
            prev[r] = k
            if dep:
                state[r] = nxt[s, k & 1]
    return out, pos, 0


def max_levels(n_bytes: int) -> int:
    """The most levels a CABAC stream of `n_bytes` can hold, so a header cannot make the decoder
    allocate for more. Every level costs at least its significance bin, and an adapted context
    gives a bin at most p = 1 − 71/65536 (the fast and slow estimates bottom out at 15 and 127 of
    65536, averaged), that is at least 0.00156 bits: at most 5115 levels per byte, read past
    the end by up to 4 bytes of zeros. A 1.25 margin covers the range coder's rounding."""
    return int((max(n_bytes - 1, 0) + 4 + 5) * 8 / -np.log2(1 - 71 / 65536) * 1.25)


def best_egk(levels: np.ndarray) -> int:
    """Exp-Golomb order that minimises the remainder bits of this tensor (bypass bins are not
    adaptive, so the order is the only knob for large levels such as near-lossless biases).
    In slices of `_EGK_SLICE` levels: the |levels| of a whole tensor were an int64 copy of it (on
    the 29.7 M encoder's word embeddings the peak of the calibrated job). Each slice's sum is an
    integer, so the totals do not depend on the slicing."""
    flat = np.asarray(levels, dtype=np.int64).reshape(-1)
    totals = np.zeros(24, dtype=np.int64)
    buf = np.empty(min(flat.size, _EGK_SLICE), dtype=np.int64)
    for i in range(0, flat.size, _EGK_SLICE):
        part = flat[i:i + _EGK_SLICE]
        a = np.abs(part, out=buf[:part.size])
        rem = a[a > NUM_GT] - NUM_GT - 1
        for k in range(0, 24):
            # EG-k length: 2 * floor(log2(rem / 2^k + 1)) + 1 + k
            totals[k] += int(np.sum(2 * np.floor(np.log2(rem / (1 << k) + 1)) + 1 + k))
    # the first order of least bits, as the whole-tensor loop chose; 0 when no level needs a remainder
    return int(np.argmin(totals)) if totals[0] else 0


_EGK_SLICE = 1 << 18


def estimate_bits(levels: np.ndarray, sm: StateMachine) -> float:
    """The bits `encode_levels` will spend, without writing them: the same bins, contexts and integer
    probability updates, each bin counted at −log2 of its probability (an ideal arithmetic coder; the
    range coder adds a few bytes), so `--coder auto` can ask for every tensor and run the coder that wins.

    >>> from workbench.core.trellis import TCQ4
    >>> lv = np.random.default_rng(0).laplace(0, 1.5, (30, 400)).round().astype(np.int64)
    >>> abs(estimate_bits(lv, TCQ4) / (8 * len(encode_levels(lv, TCQ4))) - 1) < 0.01
    True
    """
    lv = np.asarray(levels, dtype=np.int64)
    if lv.size == 0:
        return 8.0 * 6
    # A large tensor is estimated on evenly spaced chains (contexts only look along a chain) and
    # scaled to its size: the estimate then costs the same for any tensor.
    rows = max(1, ESTIMATE_SAMPLE // max(lv.shape[1], 1))
    egk = best_egk(lv)
    pick = lv if rows >= lv.shape[0] else lv[np.linspace(0, lv.shape[0] - 1, rows).astype(np.int64)]
    qsel, nxt = _machine_arrays(sm)
    _, bits = _encode(np.ascontiguousarray(pick), qsel, nxt, sm.dependent, egk, True)
    return 8.0 * 6 + bits * (lv.shape[0] / pick.shape[0])   # 6 bytes: EG order, flush


ESTIMATE_SAMPLE = 1 << 16
