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
    out = _encode(lv, qsel, nxt, sm.dependent, egk)
    return bytes([egk]) + out.tobytes()


def _machine_arrays(sm: StateMachine) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray(sm.quantizer, dtype=np.int64).reshape(-1),
            np.asarray(sm.next_state, dtype=np.int64).reshape(-1, 2))


# The coder's loops, compiled (`workbench.core.jit`): bins are coded one at a time, each updating its
# context, which no array operation expresses. The integer arithmetic is the same as a reference coder
# in Python would do (the low register needs 33 bits: int64), so the streams are the same bytes.

@njit(inline="always")
def _shift_low(st, out):
    """st = [low, range, cache, cache_size, bytes written]: LZMA's byte output with carry propagation."""
    low = st[0]
    if low < 0xFF000000 or low > _MASK32:
        carry = low >> 32
        temp = st[2]
        while True:
            out[st[4]] = (temp + carry) & 0xFF
            st[4] += 1
            temp = 0xFF
            st[3] -= 1
            if st[3] == 0:
                break
        st[2] = (low >> 24) & 0xFF
    st[3] += 1
    st[0] = (low & 0x00FFFFFF) << 8


@njit(inline="always")
def _enc_bin(st, out, pa, pb, bit, c):
    a = pa[c]
    b = pb[c]
    p0 = 65536 - ((a + b) >> 1)
    p0 = 1 if p0 < 1 else (65535 if p0 > 65535 else p0)
    rng = st[1]
    bound = (rng >> 16) * p0
    if bit:
        st[0] += bound
        rng -= bound
        pa[c] = a + ((65536 - a) >> 4)
        pb[c] = b + ((65536 - b) >> 7)
    else:
        rng = bound
        pa[c] = a - (a >> 4)
        pb[c] = b - (b >> 7)
    while rng < _TOP:
        rng <<= 8
        st[1] = rng
        _shift_low(st, out)
    st[1] = rng


@njit(inline="always")
def _enc_bypass(st, out, bit):
    rng = st[1] >> 1
    if bit:
        st[0] += rng
    while rng < _TOP:
        rng <<= 8
        st[1] = rng
        _shift_low(st, out)
    st[1] = rng


@njit
def _encode(lv, qsel, nxt, dep, egk):
    rows, cols = lv.shape
    pa = np.full(_N_CTX, _HALF, dtype=np.int64)
    pb = np.full(_N_CTX, _HALF, dtype=np.int64)
    st = np.array([0, _MASK32, 0, 1, 0], dtype=np.int64)
    out = np.empty(4096, dtype=np.uint8)
    state = np.zeros(rows, dtype=np.int64)
    prev = np.zeros(rows, dtype=np.int64)
    for j in range(cols):
        for r in range(rows):
            # room for this level's bytes (at most 14: 10 context bins, 83 bypass bins) and pending carries
            if st[4] + st[3] + 64 > out.size:
                grown = np.empty(2 * (out.size + st[3] + 64), dtype=np.uint8)
                grown[:st[4]] = out[:st[4]]
                out = grown
            k = lv[r, j]
            pv = prev[r]
            s = state[r]
            q = qsel[s] if dep else 0
            apv = -pv if pv < 0 else pv
            pc = 2 if apv > 2 else apv
            _enc_bin(st, out, pa, pb, 1 if k != 0 else 0, q * 3 + pc)
            if k != 0:
                _enc_bin(st, out, pa, pb, 1 if k < 0 else 0, 6 + (0 if pv == 0 else (1 if pv > 0 else 2)))
                a = -k if k < 0 else k
                base = 9 + q * 2 + (1 if apv > 1 else 0)
                i = 1
                while i <= NUM_GT:
                    g = 1 if a > i else 0
                    _enc_bin(st, out, pa, pb, g, base + (i - 1) * 4)
                    if g == 0:
                        break
                    i += 1
                if a > NUM_GT:
                    rem = a - NUM_GT - 1
                    kk = egk
                    while rem >= (1 << kk):
                        _enc_bypass(st, out, 1)
                        rem -= 1 << kk
                        kk += 1
                    _enc_bypass(st, out, 0)
                    for bit in range(kk - 1, -1, -1):
                        _enc_bypass(st, out, (rem >> bit) & 1)
            prev[r] = k
            if dep:
                state[r] = nxt[s, k & 1]
    if st[4] + st[3] + 16 > out.size:
        grown = np.empty(st[4] + st[3] + 16, dtype=np.uint8)
        grown[:st[4]] = out[:st[4]]
        out = grown
    for _ in range(5):
        _shift_low(st, out)
    return out[:st[4]].copy()


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


@njit(inline="always")
def _dec_fill(st, buf):
    """st = [range, code, position, error]"""
    n = buf.size
    rng = st[0]
    code = st[1]
    pos = st[2]
    while rng < _TOP:
        rng = (rng << 8) & _MASK32
        code = ((code << 8) | (buf[pos] if pos < n else 0)) & _MASK32
        pos += 1
    if pos > n + 8:
        st[3] = 1
    st[0] = rng
    st[1] = code
    st[2] = pos


@njit(inline="always")
def _dec_bin(st, buf, pa, pb, c):
    a = pa[c]
    b = pb[c]
    p0 = 65536 - ((a + b) >> 1)
    p0 = 1 if p0 < 1 else (65535 if p0 > 65535 else p0)
    rng = st[0]
    bound = (rng >> 16) * p0
    if st[1] < bound:
        st[0] = bound
        pa[c] = a - (a >> 4)
        pb[c] = b - (b >> 7)
        bit = 0
    else:
        st[1] -= bound
        st[0] = rng - bound
        pa[c] = a + ((65536 - a) >> 4)
        pb[c] = b + ((65536 - b) >> 7)
        bit = 1
    if st[0] < _TOP:
        _dec_fill(st, buf)
    return bit


@njit(inline="always")
def _dec_bypass(st, buf):
    rng = st[0] >> 1
    st[0] = rng
    if st[1] >= rng:
        st[1] -= rng
        bit = 1
    else:
        bit = 0
    if rng < _TOP:
        _dec_fill(st, buf)
    return bit


@njit
def _decode(buf, rows, cols, qsel, nxt, dep, egk, code):
    pa = np.full(_N_CTX, _HALF, dtype=np.int64)
    pb = np.full(_N_CTX, _HALF, dtype=np.int64)
    st = np.array([_MASK32, code, 5, 0], dtype=np.int64)
    out = np.zeros((rows, cols), dtype=np.int64)
    state = np.zeros(rows, dtype=np.int64)
    prev = np.zeros(rows, dtype=np.int64)
    for j in range(cols):
        for r in range(rows):
            pv = prev[r]
            s = state[r]
            q = qsel[s] if dep else 0
            apv = -pv if pv < 0 else pv
            pc = 2 if apv > 2 else apv
            k = 0
            if _dec_bin(st, buf, pa, pb, q * 3 + pc):
                neg = _dec_bin(st, buf, pa, pb, 6 + (0 if pv == 0 else (1 if pv > 0 else 2)))
                base = 9 + q * 2 + (1 if apv > 1 else 0)
                a = 1
                while a <= NUM_GT and _dec_bin(st, buf, pa, pb, base + (a - 1) * 4):
                    a += 1
                if a > NUM_GT:
                    kk = egk
                    rem = 0
                    while _dec_bypass(st, buf):
                        rem += 1 << kk
                        kk += 1
                        if kk > 40:
                            return out, st[2], 2
                    tail = 0
                    for _ in range(kk):
                        tail = (tail << 1) | _dec_bypass(st, buf)
                    a = NUM_GT + 1 + rem + tail
                    if a >= 1 << 31:
                        return out, st[2], 3
                k = -a if neg else a
            if st[3]:
                return out, st[2], 1
            out[r, j] = k
            prev[r] = k
            if dep:
                state[r] = nxt[s, k & 1]
    return out, st[2], 0


def max_levels(n_bytes: int) -> int:
    """The most levels a CABAC stream of `n_bytes` can hold, so a header cannot make the decoder
    allocate for more. Every level costs at least its significance bin, and an adapted context
    gives a bin at most p = 1 − 71/65536 (the fast and slow estimates bottom out at 15 and 127 of
    65536, averaged), that is at least 0.00156 bits: at most 5115 levels per byte, read past
    the end by up to 4 bytes of zeros. A 1.25 margin covers the range coder's rounding."""
    return int((max(n_bytes - 1, 0) + 4 + 5) * 8 / -np.log2(1 - 71 / 65536) * 1.25)


def best_egk(levels: np.ndarray) -> int:
    """Exp-Golomb order that minimises the remainder bits of this tensor (bypass bins are not
    adaptive, so the order is the only knob for large levels such as near-lossless biases)."""
    a = np.abs(np.asarray(levels, dtype=np.int64)).ravel()
    rem = a[a > NUM_GT] - NUM_GT - 1
    if rem.size == 0:
        return 0
    best, best_bits = 0, None
    for k in range(0, 24):
        # EG-k length: 2 * floor(log2(rem / 2^k + 1)) + 1 + k
        bits = int(np.sum(2 * np.floor(np.log2(rem / (1 << k) + 1)) + 1 + k))
        if best_bits is None or bits < best_bits:
            best, best_bits = k, bits
    return best


def estimate_bits(levels: np.ndarray, sm: StateMachine) -> float:
    """The bits `encode_levels` will spend, without running it: the same bins and contexts, each
    context's two-rate probability estimate followed with a linear filter over its bins in coding
    order (the coder's integer updates without their rounding), plus the exact bypass bits. Vectorised,
    so `--coder auto` can ask it for every tensor and run this coder only where it wins.

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
    return 8.0 * 6 + _block_bits(pick, sm, egk) * (lv.shape[0] / pick.shape[0])   # 6 bytes: EG order, flush


ESTIMATE_SAMPLE = 1 << 16


def _block_bits(lv: np.ndarray, sm: StateMachine, egk: int) -> float:
    from workbench.core.trellis import track_states

    q = (np.asarray(sm.quantizer, dtype=np.int64)[track_states(lv, sm)] if sm.dependent
         else np.zeros_like(lv))
    prev = np.zeros_like(lv)
    prev[:, 1:] = lv[:, :-1]
    # coding order: element j of every chain, then j + 1
    k, q, prev = lv.T.ravel(), q.T.ravel(), prev.T.ravel()
    apv = np.abs(prev)
    bits = 0.0
    sig_ctx = q * 3 + np.minimum(apv, 2)
    nz = k != 0
    for c in range(6):
        bits += _adaptive_cost(nz[sig_ctx == c])
    k, q, prev, apv = k[nz], q[nz], prev[nz], apv[nz]
    sign_ctx = np.sign(prev) % 3                   # 0, 1 (> 0), 2 (< 0), as 6 + 0/1/2 in the coder
    for c in range(3):
        bits += _adaptive_cost((k < 0)[sign_ctx == c])
    a = np.abs(k)
    gt_ctx = q * 2 + (apv > 1)
    for i in range(1, NUM_GT + 1):
        reached = a >= i
        if not reached.any():
            break
        for c in range(4):
            sel = reached & (gt_ctx == c)
            bits += _adaptive_cost(a[sel] > i)
    rem = a[a > NUM_GT] - NUM_GT - 1
    if rem.size:
        bits += float(np.sum(2 * np.floor(np.log2(rem / (1 << egk) + 1)) + 1 + egk))
    return bits


def _adaptive_cost(bins: np.ndarray) -> float:
    """Bits for coding `bins` (in order) with one context of `encode_levels`."""
    if bins.size == 0:
        return 0.0
    from scipy.signal import lfilter

    x = bins.astype(np.float64) * 65536.0
    p1 = np.zeros(bins.size)
    for shift in (4, 7):
        r = 1.0 / (1 << shift)
        after = lfilter([r], [1.0, r - 1.0], x, zi=[(1.0 - r) * _HALF])[0]
        p1[0] += _HALF
        p1[1:] += after[:-1]
    p0 = np.clip(65536.0 - np.floor(p1 / 2), 1.0, 65535.0) / 65536.0
    return float(-np.sum(np.log2(np.where(bins, 1.0 - p0, p0))))
