"""Entropy coding of integer symbols with constriction's range coder.

A range coder is a queue: symbols come out of the decoder in the order they went into the encoder,
so a codec can interleave models freely without reversing anything. Streams are the coder's 32-bit
words written little-endian, so their length is always a multiple of 4 bytes.

Two kinds of model are offered:

* `CategoricalTable`, an explicit integer frequency table that travels inside the bitstream. Encoder
  and decoder both build the constriction model from the *integer* table: the probabilities handed
  to constriction are `freq / 2**16`, which are exact in float64, their running sums are exact, and
  constriction's fast quantizer (`perfect=False`) only multiplies those sums by an integer and floors,
  which is exact too. Decoding is therefore bit-exact on any machine.
* Per-symbol quantized Gaussian and Laplace models (`encode_gaussian`, `encode_laplace`). These
  evaluate a CDF in floating point inside constriction, so the decoder must be given *bit-identical*
  float64 means and scales; a learned codec snaps its scales to a fixed grid (and derives means from
  integer data) before calling these. Mass outside `[lo - 0.5, hi + 0.5]` is folded into the end
  symbols, exactly as constriction does, so `ideal_bits_*` matches what the coder spends.

Caller mistakes (symbols outside the alphabet, bad parameters) raise `ValueError` before anything is
coded; undecodable input raises `BitstreamError`. Constriction panics on some invalid parameters
(zero scale, a one-symbol range), which would escape as a BaseException, so every parameter is
checked here first and a one-symbol alphabet is handled without the coder (it costs zero bits).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import constriction
import numpy as np

from workbench.core.errors import BitstreamError

PRECISION = 16
"""Bits of the categorical frequency table: frequencies sum to exactly 2**PRECISION."""

MAX_ALPHABET = 1 << 14
"""Largest categorical alphabet; each symbol needs at least 1/2**16, so bigger ones waste mass."""

MAX_SPAN = 1 << 16
"""Largest `hi - lo + 1` for the parametric models (constriction allows up to 2**24)."""

_INT32 = (-(1 << 31), (1 << 31) - 1)
_MIN_PROB = 2.0**-24  # constriction's leaky floor: every symbol in range keeps at least one 2^-24 slot


@dataclass(frozen=True)
class CategoricalTable:
    """Integer frequencies for the symbols `offset .. offset + len(freqs) - 1`.

    Integers rather than floats so that the table can be stored in a file and rebuilt identically by
    the decoder. Every symbol has a nonzero frequency so that any symbol of the alphabet is codable,
    even one that did not occur in the data the table was estimated from.

    >>> table = CategoricalTable.from_counts([5, 0, 3], offset=-1)
    >>> (table.lo, table.hi, sum(table.freqs) == 2**PRECISION)
    (-1, 1, True)
    >>> CategoricalTable.from_bytes(table.to_bytes()) == table
    True
    """

    offset: int
    freqs: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "offset", int(self.offset))
        object.__setattr__(self, "freqs", tuple(int(f) for f in self.freqs))
        n = len(self.freqs)
        if not 1 <= n <= MAX_ALPHABET:
            raise ValueError(f"a categorical table needs 1 to {MAX_ALPHABET} symbols, got {n}")
        if min(self.freqs) < 1:
            raise ValueError("every symbol of a categorical table needs a frequency of at least 1")
        if sum(self.freqs) != 1 << PRECISION:
            raise ValueError(f"categorical frequencies must sum to 2**{PRECISION}, got {sum(self.freqs)}")
        if self.offset < _INT32[0] or self.offset + n - 1 > _INT32[1]:
            raise ValueError("categorical alphabet must lie within the int32 range")

    @property
    def lo(self) -> int:
        return self.offset

    @property
    def hi(self) -> int:
        return self.offset + len(self.freqs) - 1

    @property
    def probabilities(self) -> np.ndarray:
        """Exact probabilities of the table (dyadic, so float64 holds them without rounding)."""
        return np.asarray(self.freqs, dtype=np.float64) / float(1 << PRECISION)

    @classmethod
    def from_counts(cls, counts: Sequence[int] | np.ndarray, offset: int = 0) -> CategoricalTable:
        """Quantize occurrence counts with integer arithmetic only, so the result never depends on
        the machine: each symbol gets 1, the rest of 2**16 is shared in proportion to the counts
        (largest remainders first, ties by position). All-zero counts give a uniform table."""
        values = np.asarray(counts)
        if values.ndim != 1 or (values.size and not np.issubdtype(values.dtype, np.integer)):
            raise ValueError("counts must be a flat sequence of integers")
        counts = [int(c) for c in values]
        n = len(counts)
        if not 1 <= n <= MAX_ALPHABET:
            raise ValueError(f"a categorical table needs 1 to {MAX_ALPHABET} symbols, got {n}")
        if min(counts) < 0:
            raise ValueError("counts must be non-negative")
        total = sum(counts)
        if total == 0:
            counts, total = [1] * n, n
        free = (1 << PRECISION) - n
        shares = [c * free // total for c in counts]
        left = free - sum(shares)
        by_remainder = sorted(range(n), key=lambda i: (-(counts[i] * free % total), i))
        for i in by_remainder[:left]:
            shares[i] += 1
        return cls(offset, tuple(s + 1 for s in shares))

    @classmethod
    def from_probabilities(
        cls, probabilities: Sequence[float] | np.ndarray, offset: int = 0
    ) -> CategoricalTable:
        """Quantize float weights (they need not sum to one); they become integer counts at 2**-40
        resolution first, so the encoder-side rounding cannot reach the decoder."""
        p = np.asarray(probabilities, dtype=np.float64)
        if p.ndim != 1 or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
            raise ValueError("probabilities must be flat, finite, non-negative and not all zero")
        return cls.from_counts(np.floor(p * (2.0**40 / p.sum())).astype(np.int64), offset)

    @classmethod
    def from_symbols(
        cls, symbols: np.ndarray, lo: int | None = None, hi: int | None = None
    ) -> CategoricalTable:
        """Table fitted to `symbols` over `lo..hi` (default: their own min..max)."""
        flat = np.asarray(symbols).reshape(-1)
        if flat.size == 0 and (lo is None or hi is None):
            raise ValueError("cannot infer an alphabet from no symbols; pass lo and hi")
        lo = int(flat.min()) if lo is None else int(lo)
        hi = int(flat.max()) if hi is None else int(hi)
        flat = _check_symbols(flat, lo, hi)
        counts = np.bincount(flat.astype(np.int64) - lo, minlength=hi - lo + 1)
        return cls.from_counts(counts, lo)

    def to_bytes(self) -> bytes:
        """Compact form: precision byte, zigzag-varint offset, varint size, then varint `freq - 1`
        for all but the last symbol (implied by the total). Rare symbols cost one byte each."""
        out = bytearray([PRECISION])
        out += _varint(_zigzag(self.offset))
        out += _varint(len(self.freqs))
        for f in self.freqs[:-1]:
            out += _varint(f - 1)
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> CategoricalTable:
        """Inverse of `to_bytes`; anything malformed raises BitstreamError."""
        data = bytes(data)
        if not data:
            raise BitstreamError("categorical table is empty")
        if data[0] != PRECISION:
            raise BitstreamError(f"categorical table has precision {data[0]}, expected {PRECISION}")
        pos = 1
        zz, pos = _read_varint(data, pos)
        n, pos = _read_varint(data, pos)
        if not 1 <= n <= MAX_ALPHABET:
            raise BitstreamError(f"categorical table claims {n} symbols (allowed 1 to {MAX_ALPHABET})")
        if n - 1 > len(data) - pos:
            raise BitstreamError("categorical table is truncated")
        freqs = []
        for _ in range(n - 1):
            f, pos = _read_varint(data, pos)
            freqs.append(f + 1)
        if pos != len(data):
            raise BitstreamError(f"categorical table has {len(data) - pos} unexpected trailing bytes")
        freqs.append((1 << PRECISION) - sum(freqs))
        try:
            return cls(_unzigzag(zz), tuple(freqs))
        except ValueError as exc:
            raise BitstreamError(f"categorical table is invalid: {exc}") from None


def encode_categorical(symbols: np.ndarray, table: CategoricalTable) -> bytes:
    """Code `symbols` (any shape, C order) i.i.d. under `table`.

    >>> table = CategoricalTable.from_counts([1, 6, 3], offset=-1)
    >>> data = encode_categorical(np.array([0, 1, 0, -1]), table)
    >>> decode_categorical(data, table, 4).tolist()
    [0, 1, 0, -1]
    """
    flat = _check_symbols(symbols, table.lo, table.hi)
    if len(table.freqs) == 1:
        return b""
    return _encode(flat - table.offset, _categorical_model(table))


def decode_categorical(data: bytes, table: CategoricalTable, shape: int | tuple[int, ...]) -> np.ndarray:
    """Decode an int32 array of `shape` written by `encode_categorical` with the same table."""
    count, shape = _check_shape(shape)
    if len(table.freqs) == 1:
        _expect_empty(data)
        return np.full(shape, table.offset, dtype=np.int32)
    out = _decode(data, _categorical_model(table), count)
    return (out + table.offset).astype(np.int32).reshape(shape)


def ideal_bits_categorical(symbols: np.ndarray, table: CategoricalTable) -> float:
    """−Σ log2 p of `symbols` under `table`: what an ideal coder would spend, for size estimates."""
    flat = _check_symbols(symbols, table.lo, table.hi)
    hist = np.bincount(flat.astype(np.int64) - table.offset, minlength=len(table.freqs))
    return float(np.dot(hist, PRECISION - np.log2(np.asarray(table.freqs, dtype=np.float64))))



class CategoricalWriter:
    """One range-coded stream holding many groups of symbols, each group with its own table.

    A learned codec codes thousands of latents under a few dozen tables; one stream avoids paying a
    padded word and a length prefix per table.

    >>> a, b = CategoricalTable.from_counts([1, 3]), CategoricalTable.from_counts([2, 1, 1], offset=-1)
    >>> w = CategoricalWriter(); w.write(np.array([1, 1, 0]), a); w.write(np.array([-1, 1]), b)
    >>> r = CategoricalReader(w.finish()); [r.read(a, 3).tolist(), r.read(b, 2).tolist()]; r.finish()
    [[1, 1, 0], [-1, 1]]
    """

    def __init__(self) -> None:
        self._encoder = constriction.stream.queue.RangeEncoder()

    def write(self, symbols: np.ndarray, table: CategoricalTable) -> None:
        flat = _check_symbols(symbols, table.lo, table.hi)
        if flat.size and len(table.freqs) > 1:
            self._encoder.encode(flat - table.offset, _categorical_model(table))

    def finish(self) -> bytes:
        return self._encoder.get_compressed().astype("<u4").tobytes()


class CategoricalReader:
    """Reads the groups of a `CategoricalWriter` stream back in the same order with the same tables."""

    def __init__(self, data: bytes) -> None:
        data = bytes(data)
        if len(data) % 4:
            raise BitstreamError(f"entropy-coded stream is truncated ({len(data)} bytes, not a multiple of 4)")
        try:
            self._decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
        except Exception:
            raise BitstreamError("entropy-coded stream is corrupted (the decoder rejected it)") from None

    def read(self, table: CategoricalTable, count: int) -> np.ndarray:
        if count == 0 or len(table.freqs) == 1:
            return np.full(count, table.offset, dtype=np.int32)
        try:
            out = self._decoder.decode(_categorical_model(table), int(count))
        except Exception:
            raise BitstreamError("entropy-coded stream is corrupted (the decoder rejected it)") from None
        return (np.asarray(out, dtype=np.int64) + table.offset).astype(np.int32)

    def finish(self) -> None:
        if not self._decoder.maybe_exhausted():
            raise BitstreamError("entropy-coded stream is corrupted (data left over after the last symbol)")

def encode_gaussian(symbols: np.ndarray, means, scales, lo: int, hi: int) -> bytes:
    """Code each symbol under its own Gaussian (mean, std) quantized to integer bins on `lo..hi`.

    `means` and `scales` broadcast to the shape of `symbols`; the decoder needs bit-identical values.

    >>> means = np.array([0.0, 2.5, -1.0])
    >>> scales = np.array([1.0, 0.5, 4.0])
    >>> data = encode_gaussian(np.array([0, 3, -5]), means, scales, -8, 8)
    >>> decode_gaussian(data, means, scales, -8, 8).tolist()
    [0, 3, -5]
    """
    return _encode_parametric(_gaussian_family, symbols, means, scales, lo, hi)


def decode_gaussian(data: bytes, means, scales, lo: int, hi: int) -> np.ndarray:
    """Inverse of `encode_gaussian`; the output has the broadcast shape of `means` and `scales`."""
    return _decode_parametric(_gaussian_family, data, means, scales, lo, hi)


def ideal_bits_gaussian(symbols: np.ndarray, means, scales, lo: int, hi: int) -> float:
    """−Σ log2 p under the quantized Gaussians (tails folded into `lo`/`hi`, floor 2**-24)."""
    from scipy.special import ndtr

    return _ideal_bits_parametric(ndtr, symbols, means, scales, lo, hi)


def encode_laplace(symbols: np.ndarray, means, scales, lo: int, hi: int) -> bytes:
    """Like `encode_gaussian` with Laplace distributions; `scales` is b (variance 2·b²).

    >>> data = encode_laplace(np.array([1, -2]), 0.0, np.array([1.0, 3.0]), -10, 10)
    >>> decode_laplace(data, np.zeros(2), np.array([1.0, 3.0]), -10, 10).tolist()
    [1, -2]
    """
    return _encode_parametric(_laplace_family, symbols, means, scales, lo, hi)


def decode_laplace(data: bytes, means, scales, lo: int, hi: int) -> np.ndarray:
    """Inverse of `encode_laplace`; the output has the broadcast shape of `means` and `scales`."""
    return _decode_parametric(_laplace_family, data, means, scales, lo, hi)


def ideal_bits_laplace(symbols: np.ndarray, means, scales, lo: int, hi: int) -> float:
    """−Σ log2 p under the quantized Laplace models (tails folded into `lo`/`hi`, floor 2**-24)."""
    return _ideal_bits_parametric(_laplace_cdf, symbols, means, scales, lo, hi)


# --- internals -------------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _categorical_model(table: CategoricalTable):
    # cached: a trellis-coded latent writes thousands of small groups under the same few hundred tables
    return constriction.stream.model.Categorical(table.probabilities, perfect=False)


def _gaussian_family(lo: int, hi: int):
    return constriction.stream.model.QuantizedGaussian(lo, hi)


def _laplace_family(lo: int, hi: int):
    return constriction.stream.model.QuantizedLaplace(lo, hi)


def _laplace_cdf(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.where(z < 0, 0.5 * np.exp(np.minimum(z, 0)), 1.0 - 0.5 * np.exp(-np.maximum(z, 0)))


def _encode_parametric(family, symbols, means, scales, lo, hi) -> bytes:
    lo, hi = _check_range(lo, hi)
    flat = _check_symbols(symbols, lo, hi)
    mu, sigma = _check_params(means, scales, np.shape(symbols))
    if lo == hi:
        return b""
    return _encode(flat, family(lo, hi), mu, sigma)


def _decode_parametric(family, data, means, scales, lo, hi) -> np.ndarray:
    lo, hi = _check_range(lo, hi)
    mu, sigma = _check_params(means, scales, None)
    shape = np.broadcast_shapes(np.shape(means), np.shape(scales))
    if lo == hi:
        _expect_empty(data)
        return np.full(shape, lo, dtype=np.int32)
    return _decode(data, family(lo, hi), mu.size, mu, sigma).astype(np.int32).reshape(shape)


def _ideal_bits_parametric(cdf, symbols, means, scales, lo, hi) -> float:
    lo, hi = _check_range(lo, hi)
    flat = _check_symbols(symbols, lo, hi).astype(np.float64)
    mu, sigma = _check_params(means, scales, np.shape(symbols))
    upper = np.where(flat == hi, np.inf, (flat + 0.5 - mu) / sigma)
    lower = np.where(flat == lo, -np.inf, (flat - 0.5 - mu) / sigma)
    # Subtract upper tails when the bin lies right of the mean: avoids 1 - 1 cancellation.
    right = lower > 0
    p = np.where(right, cdf(-lower) - cdf(-upper), cdf(upper) - cdf(lower))
    return float(-np.sum(np.log2(np.maximum(p, _MIN_PROB))))


def _check_range(lo, hi) -> tuple[int, int]:
    lo, hi = operator.index(lo), operator.index(hi)
    if not (_INT32[0] <= lo <= hi <= _INT32[1]) or hi - lo + 1 > MAX_SPAN:
        raise ValueError(f"symbol range {lo}..{hi} is invalid (need lo <= hi in int32, at most {MAX_SPAN} symbols)")
    return lo, hi


def _check_symbols(symbols, lo: int, hi: int) -> np.ndarray:
    arr = np.asarray(symbols)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"symbols must be integers, got dtype {arr.dtype}")
    flat = arr.reshape(-1)
    if flat.size:
        smin, smax = int(flat.min()), int(flat.max())
        if smin < lo or smax > hi:
            bad = smin if smin < lo else smax
            raise ValueError(f"symbol {bad} is outside the alphabet {lo}..{hi}")
    return np.ascontiguousarray(flat, dtype=np.int32)


def _check_params(means, scales, shape) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(means, dtype=np.float64)
    sigma = np.asarray(scales, dtype=np.float64)
    try:
        target = np.broadcast_shapes(mu.shape, sigma.shape) if shape is None else shape
        mu, sigma = np.broadcast_to(mu, target), np.broadcast_to(sigma, target)
    except ValueError:
        raise ValueError(
            f"means {mu.shape} and scales {sigma.shape} do not broadcast to the symbols' shape {shape}"
        ) from None
    if not np.all(np.isfinite(mu)):
        raise ValueError("means must be finite")
    if not np.all(np.isfinite(sigma) & (sigma > 0)):
        raise ValueError("scales must be finite and strictly positive")
    return np.ascontiguousarray(mu).reshape(-1), np.ascontiguousarray(sigma).reshape(-1)


def _check_shape(shape) -> tuple[int, tuple[int, ...]]:
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    shape = tuple(operator.index(d) for d in shape)
    if any(d < 0 for d in shape):
        raise ValueError(f"shape {shape} has a negative dimension")
    return int(np.prod(shape, dtype=np.int64)), shape


def _encode(symbols: np.ndarray, model, *params) -> bytes:
    encoder = constriction.stream.queue.RangeEncoder()
    if symbols.size:
        encoder.encode(symbols, model, *params)
    return encoder.get_compressed().astype("<u4").tobytes()


def _decode(data: bytes, model, count: int, *params) -> np.ndarray:
    """Decode `count` symbols; with `params` they are per-symbol model parameters (one per symbol)."""
    data = bytes(data)
    if len(data) % 4:
        raise BitstreamError(f"entropy-coded stream is truncated ({len(data)} bytes, not a multiple of 4)")
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    try:
        decoder = constriction.stream.queue.RangeDecoder(words)
        if count == 0:
            out = np.zeros(0, dtype=np.int32)
        else:
            out = decoder.decode(model, *params) if params else decoder.decode(model, count)
        exhausted = decoder.maybe_exhausted()
    except Exception:
        raise BitstreamError("entropy-coded stream is corrupted (the decoder rejected it)") from None
    if not exhausted:
        # A correct stream is used up exactly by its last symbol; leftovers mean damage or a wrong model.
        raise BitstreamError("entropy-coded stream is corrupted (data left over after the last symbol)")
    return np.asarray(out)


def _expect_empty(data: bytes) -> None:
    if len(data):
        raise BitstreamError("entropy-coded stream is corrupted (a one-symbol alphabet needs no data)")


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def _unzigzag(z: int) -> int:
    return z >> 1 if z % 2 == 0 else -((z + 1) >> 1)


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        byte, v = v & 0x7F, v >> 7
        out.append(byte | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 35, 7):
        if pos >= len(data):
            raise BitstreamError("categorical table is truncated")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise BitstreamError("categorical table has an over-long number")
