"""Packing a quantized network into the workbench container (`.wbn`, payload kind NETWORK).

The container's own shape list holds at most 64 shapes, so tensor names, dtypes, shapes and
dequantization parameters live in a manifest (stream 0) that this module defines and validates
itself; stream i (i ≥ 1) holds tensor i's coded levels or raw bytes. The layout is documented in
docs/bitstream.md ("Network payload"). Everything is checked before anything is allocated: counts
and sizes against their limits and against the bytes present, shapes against `max_elements`.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from workbench.core.container import Container, PayloadKind, MAX_STREAMS
from workbench.core.errors import BitstreamError
from workbench.core.network import cabac, catcoder
from workbench.core.network.checkpoint import tensor_bytes
from workbench.core.network.quantizers import NET_QUANTIZERS, QuantizedTensor
from workbench.core.trellis import machine

CODEC_ID = "workbench-net"
FORMAT = 2
"""Written since issue 18's compiled categorical coder (manifest coder 2); format 1 files still decode."""
FORMATS_READ = (1, 2)
MAX_NAME = 1024
MAX_ELEMENTS = 1 << 31
MAX_RANK = 8
MAX_DIM = 0xFFFFFFFF
MAX_TENSORS = MAX_STREAMS - 1

DTYPES = {1: torch.float32, 2: torch.float16, 3: torch.bfloat16, 4: torch.float64, 5: torch.int64,
          6: torch.int32, 7: torch.int16, 8: torch.int8, 9: torch.uint8, 10: torch.bool,
          # stored raw only (bit-exact): unsigned integers, float8 and complex tensors
          11: torch.uint16, 12: torch.uint32, 13: torch.uint64, 14: torch.float8_e4m3fn, 15: torch.float8_e5m2,
          16: torch.float8_e4m3fnuz, 17: torch.float8_e5m2fnuz, 18: torch.float8_e8m0fnu, 19: torch.complex64,
          20: torch.complex128}
DTYPE_CODES = {v: k for k, v in DTYPES.items()}
QUANTIZABLE = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
"""The dtypes whose tensors may be quantized; every other stored dtype is kept raw."""
MODE_RAW, MODE_SCALAR, MODE_CODEBOOK = 0, 1, 2
CODERS = {0: "cabac", 1: "categorical-v1", 2: "categorical"}
"""Coder 1 is the categorical layout of format 1 files (`catcoder.decode_levels_v1`); it is only read."""
CODER_IDS = {v: k for k, v in CODERS.items()}
DECODERS = {"cabac": cabac.decode_levels, "categorical-v1": catcoder.decode_levels_v1,
            "categorical": catcoder.decode_levels}


@dataclass
class Entry:
    """One tensor of the file: either `raw` (stored as is) or `q` (levels + dequantization)."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    q: QuantizedTensor | None = None
    raw: torch.Tensor | None = None
    delta: bool = False
    coder: str = "cabac"
    data: bytes = b""
    chains: int = 0         # rows of the coded levels; the levels themselves may be dropped once coded


AUTO_MARGIN = 0.01
"""`--coder auto` takes CABAC only when its estimate is smaller by at least this share of a tensor's
stream. Once CABAC was compiled (numba) it no longer costs decode time (on the 30 M-parameter encoder
margin 0 decoded in 1.41 CPU s, this margin in 1.57 s), but margin 0 made the files larger (+0.19 %
at the default step, +0.007 % at qp −36): on sub-percent differences the two estimates' errors
decide, not the coders."""


def code_levels(q: QuantizedTensor, coder: str) -> tuple[str, bytes]:
    """Entropy-code `q.levels` with `coder`: 'cabac', 'categorical', or 'auto', which runs only the
    coder (CABAC only when smaller by AUTO_MARGIN) its size estimates (`catcoder.estimate_bytes`,
    `cabac.estimate_bits`, both within a few bytes or 0.3 %) say is smaller."""
    sm = machine(q.states)
    if coder == "categorical" or coder == "auto":
        est = catcoder.estimate_bytes(q.levels, sm)     # None: an alphabet too large for a table
        if est is not None and (coder == "categorical" or est * 8 * (1 - AUTO_MARGIN) <= cabac.estimate_bits(q.levels, sm)):
            return "categorical", catcoder.encode_levels(q.levels, sm)
    return "cabac", cabac.encode_levels(q.levels, sm)


def pack_network(entries: list[Entry], quantizer_id: str, params: dict, base_hash: bytes | None) -> Container:
    if len(entries) > MAX_TENSORS:
        raise BitstreamError(f"{len(entries)} tensors do not fit in one file (at most {MAX_TENSORS})")
    man = bytearray(struct.pack("<I", len(entries)))
    streams = []
    for e in entries:
        name = e.name.encode("utf-8")
        if len(name) > MAX_NAME:
            raise BitstreamError(f"tensor name {e.name[:40]!r}... is longer than {MAX_NAME} bytes")
        man += struct.pack("<H", len(name)) + name
        man += struct.pack(f"<BB{len(e.shape)}I", DTYPE_CODES[e.dtype], len(e.shape), *e.shape)
        if e.q is None:
            man += struct.pack("<BB", MODE_RAW, 0)
            t = e.raw.detach().contiguous().cpu()
            streams.append(tensor_bytes(t))
            continue
        q = e.q
        mode = MODE_CODEBOOK if q.codebook is not None else MODE_SCALAR
        man += struct.pack("<BB", mode, 1 if e.delta else 0)
        man += struct.pack("<IB", e.chains or q.levels.shape[0], CODER_IDS[e.coder])
        if mode == MODE_SCALAR:
            steps = np.asarray(q.steps, dtype="<f4").reshape(-1)
            man += struct.pack("<BI", q.states, steps.size) + steps.tobytes()
        else:
            cb = np.asarray(q.codebook, dtype="<f4").reshape(-1)
            man += struct.pack("<HH", cb.size, q.zero_index) + cb.tobytes()
        streams.append(e.data)
    full = dict(params)
    full.update({"format": FORMAT, "tensors": len(entries), "delta": base_hash is not None})
    return Container(PayloadKind.NETWORK, CODEC_ID, model_hash=base_hash or bytes(32), quantizer_id=quantizer_id,
                     params=full, streams=[bytes(man)] + streams)


def unpack_network(c: Container, max_elements: int = MAX_ELEMENTS) -> list[Entry]:
    """Parse the manifest and decode every tensor's levels (not yet dequantized)."""
    return list(iter_network(c, max_elements))


def iter_network(c: Container, max_elements: int = MAX_ELEMENTS) -> Iterator[Entry]:
    """`unpack_network` one tensor at a time, so a caller that dequantizes each entry as it comes holds
    one tensor's levels (int64, twice a float32 tensor) instead of the whole network's."""
    if c.kind is not PayloadKind.NETWORK or c.codec_id != CODEC_ID:
        raise BitstreamError(f"not a compressed network (payload kind {int(c.kind)}, codec {c.codec_id!r})")
    if c.params.get("format") not in FORMATS_READ:
        raise BitstreamError(f"unsupported network payload format {c.params.get('format')!r}")
    if not c.streams:
        raise BitstreamError("network file has no manifest")
    delta = c.params.get("delta")
    if not isinstance(delta, bool):
        raise BitstreamError("corrupted header: the network parameters do not say whether it is a delta file")
    if not delta and any(c.model_hash):
        raise BitstreamError("corrupted header: a file that is not a delta names a base checkpoint")
    if c.quantizer_id not in NET_QUANTIZERS:
        raise BitstreamError(f"corrupted header: unknown network quantizer {c.quantizer_id!r}")
    if c.params.get("coder") not in ("auto", "cabac", "categorical"):
        raise BitstreamError(f"corrupted header: unknown coder {c.params.get('coder')!r}")
    r = _Reader(c.streams[0])
    n = r.unpack("<I")[0]
    if n != len(c.streams) - 1 or n != c.params.get("tensors"):
        raise BitstreamError(f"manifest lists {n} tensors but the file holds {len(c.streams) - 1} streams")
    total, names = 0, set()
    for i in range(n):
        (ln,) = r.unpack("<H")
        if ln > MAX_NAME:
            raise BitstreamError(f"corrupted manifest: tensor {i} name of {ln} bytes")
        try:
            name = r.take(ln).decode("utf-8")
        except UnicodeDecodeError:
            raise BitstreamError(f"corrupted manifest: tensor {i} name is not UTF-8") from None
        if name in names:
            raise BitstreamError(f"corrupted manifest: tensor name {name!r} appears twice")
        names.add(name)
        code, ndim = r.unpack("<BB")
        if code not in DTYPES or ndim > MAX_RANK:
            raise BitstreamError(f"corrupted manifest: tensor {name!r} has dtype code {code} / rank {ndim}")
        shape = r.unpack(f"<{ndim}I")
        count = math.prod(shape) if shape else 1
        total += count
        if total > max_elements:
            raise BitstreamError(f"network has more than the allowed {max_elements} elements")
        mode, flags = r.unpack("<BB")
        data = c.streams[i + 1]
        e = Entry(name, tuple(shape), DTYPES[code], delta=bool(flags & 1))
        if flags & ~1 or (e.delta and (not delta or mode == MODE_RAW)):
            raise BitstreamError(f"corrupted manifest: tensor {name!r} has flags 0x{flags:02x}")
        if mode == MODE_RAW:
            e.raw = _from_raw(data, e.shape, e.dtype, name)
        elif mode in (MODE_SCALAR, MODE_CODEBOOK):
            rows, coder = r.unpack("<IB")
            if coder not in CODERS or rows < 1 or count % rows or (count == 0) or e.dtype not in QUANTIZABLE:
                raise BitstreamError(f"corrupted manifest: tensor {name!r} layout ({rows} rows, coder {coder}, "
                                     f"{str(e.dtype).replace('torch.', '')})")
            e.coder = CODERS[coder]
            if e.coder == "cabac" and count > cabac.max_levels(len(data)):
                raise BitstreamError(f"corrupted manifest: tensor {name!r} declares {count} values, more than its "
                                     f"{len(data)}-byte stream can hold")
            if mode == MODE_SCALAR:
                states, n_steps = r.unpack("<BI")
                if states not in (0, 4, 8) or n_steps not in (1, rows):
                    raise BitstreamError(f"corrupted manifest: tensor {name!r} has {states} states, {n_steps} steps")
                steps = np.frombuffer(r.take(4 * n_steps), dtype="<f4").astype(np.float32)
                if not np.all(np.isfinite(steps) & (steps > 0)):
                    raise BitstreamError(f"corrupted manifest: tensor {name!r} has a step that is not a positive number")
                cb, z = None, 0
            else:
                size, z = r.unpack("<HH")
                if size < 1 or z >= size:
                    raise BitstreamError(f"corrupted manifest: tensor {name!r} codebook {size}/{z}")
                cb = np.frombuffer(r.take(4 * size), dtype="<f4").astype(np.float32)
                if not np.all(np.isfinite(cb)):
                    raise BitstreamError(f"corrupted manifest: tensor {name!r} has a non-finite codebook value")
                steps, states = None, 0
            layout = (rows, count // rows)
            sm = machine(states)
            levels = DECODERS[e.coder](data, layout, sm)
            if cb is not None and (levels.min() + z < 0 or levels.max() + z >= cb.size):
                raise BitstreamError(f"tensor {name!r} refers to a codebook entry that does not exist")
            e.q = QuantizedTensor(levels=levels, steps=steps, states=states, codebook=cb, zero_index=z)
        else:
            raise BitstreamError(f"corrupted manifest: tensor {name!r} has unknown mode {mode}")
        yield e
    if r.pos != len(r.data):
        raise BitstreamError("corrupted manifest: unexpected bytes after the last tensor")


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise BitstreamError("network manifest is truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))


def _from_raw(data: bytes, shape: tuple[int, ...], dtype: torch.dtype, name: str) -> torch.Tensor:
    item = torch.empty(0, dtype=dtype).element_size()
    count = math.prod(shape) if shape else 1
    if len(data) != count * item:
        raise BitstreamError(f"tensor {name!r}: raw data has {len(data)} bytes, expected {count * item}")
    if dtype == torch.bfloat16:
        return torch.from_numpy(np.frombuffer(data, dtype="<i2").astype(np.int16).copy()).view(torch.bfloat16).reshape(shape)
    if item == 1 and dtype.is_floating_point:       # float8: numpy has no such dtype
        return torch.from_numpy(np.frombuffer(data, dtype=np.uint8).copy()).view(dtype).reshape(shape)
    np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    return torch.from_numpy(np.frombuffer(data, dtype=np_dtype.newbyteorder("<")).astype(np_dtype).copy()).reshape(shape)
