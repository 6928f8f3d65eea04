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
    lv = np.asarray(levels, dtype=np.int64)
    if lv.ndim != 2:
        raise ValueError("levels must be a 2-D array of chains x length")
    egk = best_egk(lv)
    rows, cols = lv.shape
    pa = [_HALF] * _N_CTX
    pb = [_HALF] * _N_CTX
    st = [0, _MASK32, 0, 1]  # low, range, cache, cache_size
    out = bytearray()

    def shift_low() -> None:
        low = st[0]
        if low < 0xFF000000 or low > _MASK32:
            carry = low >> 32
            temp = st[2]
            while True:
                out.append((temp + carry) & 0xFF)
                temp = 0xFF
                st[3] -= 1
                if st[3] == 0:
                    break
            st[2] = (low >> 24) & 0xFF
        st[3] += 1
        st[0] = (low & 0x00FFFFFF) << 8

    def enc(bit: int, c: int) -> None:
        a, b = pa[c], pb[c]
        p1 = (a + b) >> 1
        p0 = 65536 - p1
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
            shift_low()
        st[1] = rng

    def bypass(bit: int) -> None:
        rng = st[1] >> 1
        if bit:
            st[0] += rng
        while rng < _TOP:
            rng <<= 8
            st[1] = rng
            shift_low()
        st[1] = rng

    qsel = np.asarray(sm.quantizer, dtype=np.int64)
    nxt = np.asarray(sm.next_state, dtype=np.int64)
    state = [0] * rows
    prev = [0] * rows
    cols_list = lv.T.tolist()
    dep = sm.dependent
    qlist, nlist = qsel.tolist(), nxt.tolist()
    for col in cols_list:
        for r in range(rows):
            k = col[r]
            pv = prev[r]
            s = state[r]
            q = qlist[s] if dep else 0
            apv = -pv if pv < 0 else pv
            pc = 2 if apv > 2 else apv
            enc(1 if k else 0, q * 3 + pc)
            if k:
                enc(1 if k < 0 else 0, 6 + (0 if pv == 0 else (1 if pv > 0 else 2)))
                a = -k if k < 0 else k
                base = 9 + q * 2 + (1 if apv > 1 else 0)
                i = 1
                while i <= NUM_GT:
                    g = 1 if a > i else 0
                    enc(g, base + (i - 1) * 4)
                    if not g:
                        break
                    i += 1
                if a > NUM_GT:
                    rem = a - NUM_GT - 1
                    kk = egk
                    while rem >= (1 << kk):
                        bypass(1)
                        rem -= 1 << kk
                        kk += 1
                    bypass(0)
                    for bit in range(kk - 1, -1, -1):
                        bypass((rem >> bit) & 1)
            prev[r] = k
            if dep:
                state[r] = nlist[s][k & 1]
    for _ in range(5):
        shift_low()
    return bytes([egk]) + bytes(out)


def decode_levels(data: bytes, shape: tuple[int, int], sm: StateMachine) -> np.ndarray:
    """Inverse of `encode_levels`; damage that makes the decoder run off the data is a BitstreamError."""
    rows, cols = (int(d) for d in shape)
    data = bytes(data)
    if len(data) < 6:
        raise BitstreamError("CABAC stream is truncated")
    egk = data[0]
    if egk > MAX_EGK:
        raise BitstreamError(f"CABAC stream has an invalid Exp-Golomb order {egk}")
    buf = data[1:]
    n = len(buf)
    pa = [_HALF] * _N_CTX
    pb = [_HALF] * _N_CTX
    # st: range, code, position
    st = [_MASK32, int.from_bytes(buf[1:5], "big"), 5]

    def fill() -> None:
        rng, code, pos = st
        while rng < _TOP:
            rng = (rng << 8) & _MASK32
            code = ((code << 8) | (buf[pos] if pos < n else 0)) & _MASK32
            pos += 1
        if pos > n + 8:
            raise BitstreamError("CABAC stream is truncated or corrupted (decoder ran past its end)")
        st[0], st[1], st[2] = rng, code, pos

    def dec(c: int) -> int:
        a, b = pa[c], pb[c]
        p1 = (a + b) >> 1
        p0 = 65536 - p1
        p0 = 1 if p0 < 1 else (65535 if p0 > 65535 else p0)
        rng, code = st[0], st[1]
        bound = (rng >> 16) * p0
        if code < bound:
            st[0] = bound
            pa[c] = a - (a >> 4)
            pb[c] = b - (b >> 7)
            bit = 0
        else:
            st[1] = code - bound
            st[0] = rng - bound
            pa[c] = a + ((65536 - a) >> 4)
            pb[c] = b + ((65536 - b) >> 7)
            bit = 1
        if st[0] < _TOP:
            fill()
        return bit

    def dbypass() -> int:
        rng = st[0] >> 1
        st[0] = rng
        if st[1] >= rng:
            st[1] -= rng
            bit = 1
        else:
            bit = 0
        if rng < _TOP:
            fill()
        return bit

    qlist = list(sm.quantizer)
    nlist = [list(t) for t in sm.next_state]
    dep = sm.dependent
    state = [0] * rows
    prev = [0] * rows
    out = np.zeros((cols, rows), dtype=np.int64)
    for j in range(cols):
        col = [0] * rows
        for r in range(rows):
            pv = prev[r]
            s = state[r]
            q = qlist[s] if dep else 0
            apv = -pv if pv < 0 else pv
            pc = 2 if apv > 2 else apv
            k = 0
            if dec(q * 3 + pc):
                neg = dec(6 + (0 if pv == 0 else (1 if pv > 0 else 2)))
                base = 9 + q * 2 + (1 if apv > 1 else 0)
                a = 1
                while a <= NUM_GT and dec(base + (a - 1) * 4):
                    a += 1
                if a > NUM_GT:
                    kk = egk
                    rem = 0
                    while dbypass():
                        rem += 1 << kk
                        kk += 1
                        if kk > 40:
                            raise BitstreamError("CABAC stream is corrupted (Exp-Golomb prefix too long)")
                    tail = 0
                    for _ in range(kk):
                        tail = (tail << 1) | dbypass()
                    a = NUM_GT + 1 + rem + tail
                    if a >= 1 << 31:
                        raise BitstreamError("CABAC stream is corrupted (level out of range)")
                k = -a if neg else a
            col[r] = k
            prev[r] = k
            if dep:
                state[r] = nlist[s][k & 1]
        out[j] = col
    if st[2] > n + 4:
        raise BitstreamError("CABAC stream is truncated or corrupted (decoder ran past its end)")
    if st[2] < n:       # the encoder's flush ends where the decoder stops reading (or before)
        raise BitstreamError(f"CABAC stream is corrupted ({n - st[2]} bytes left over after the last level)")
    return np.ascontiguousarray(out.T)


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
    so `--coder auto` can ask it for every tensor and run this slow coder only where it wins.

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
