"""The workbench's binary container: `.wbi` files hold an image, `.wbn` files a network.

One self-describing format for every codec, so that a file names the codec, the exact model weights
and the quantizer it needs, and so that a damaged or foreign file is refused with a one-line reason
instead of crashing a decoder. All integers are little-endian; the layout (format version 1) is:

    offset  size  field
    0       4     magic b"WBC\\x1a" ("WorkBench Container"; 0x1a, the DOS end-of-file byte, as in PNG)
    4       2     u16 format version (1)
    6       1     u8 payload kind: 1 = image, 2 = network
    7       1     u8 flags, reserved: must be 0 in version 1
    8       1     u8 length n of the codec id (1..64), then n bytes printable ASCII
    .       32    SHA-256 (or other 32-byte hash) of the model weights, all zeros when there are none
    .       1     u8 length n of the quantizer id (0..64), then n bytes printable ASCII
    .       4     u32 length n of the parameters (0..65536), then n bytes canonical JSON
    .       1     u8 number of shapes (0..64); per shape: u8 ndim (0..8), then ndim × u32 (each ≤ 2**31)
    .       2     u16 number of streams (0..4096); per stream: u32 length n, then n bytes
    end-4   4     u32 CRC-32 (zlib) of every byte before it

Parameters are a flat JSON object serialised canonically (sorted keys, no spaces, UTF-8, no NaN or
infinities) so that equal parameters always give equal bytes; values are int, float, str, bool,
None or flat lists of numbers. An empty object is stored as zero bytes.

For image payloads `shapes[0]` is the decoded image's (height, width) or (height, width, channels)
with 1..4 channels, and height × width must not exceed `max_pixels` (default 2**28, about a
16384 × 16384 image): the check runs before any decoder allocates an image from a hostile header.

Only 64 shapes fit, so a network payload with more tensors keeps its shapes in a stream or in
the parameters; what each stream holds is up to the codec named by the codec id.

Reading validates in this order, never slicing past the data and never trusting a length before
comparing it with the bytes that remain: magic ("not a workbench file"), format version, every
length against the bytes left ("truncated") and every count and rank against its limit
("corrupted header"), the checksum ("corrupted (checksum mismatch)"), then the meaning of the
fields (kind, flags, ids, parameters, shapes, `max_pixels`). Every failure is a `BitstreamError`;
the layout is also described in docs/bitstream.md.
"""

from __future__ import annotations

import enum
import json
import math
import operator
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from workbench.core.atomic import write_bytes_atomic
from workbench.core.errors import BitstreamError
from workbench.core.files import open_regular

MAGIC = b"WBC\x1a"
FORMAT_VERSION = 1
EXTENSIONS = {1: ".wbi", 2: ".wbn"}

MAX_ID_LEN = 64
HASH_LEN = 32
MAX_PARAMS_LEN = 64 * 1024
MAX_SHAPES = 64
MAX_NDIM = 8
MAX_DIM = 1 << 31
MAX_STREAMS = 4096
DEFAULT_MAX_PIXELS = 1 << 28
MAX_FILE_BYTES = 16 << 30     # what `read` reads at most: far above any image, room for large networks

_FIXED_HEAD = struct.Struct("<4sHBB")


class PayloadKind(enum.IntEnum):
    IMAGE = 1
    NETWORK = 2


@dataclass(frozen=True)
class Container:
    """Everything a file holds; constructing one validates it, so an invalid container cannot exist
    and `pack` never writes a file that `unpack` would refuse (apart from the `max_pixels` policy)."""

    kind: PayloadKind
    codec_id: str
    model_hash: bytes = bytes(HASH_LEN)
    quantizer_id: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    shapes: tuple[tuple[int, ...], ...] = ()
    streams: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        try:
            kind = PayloadKind(self.kind)
        except ValueError:
            raise ValueError(f"unknown payload kind {self.kind!r}") from None
        model_hash = bytes(self.model_hash)
        if len(model_hash) != HASH_LEN:
            raise ValueError(f"model hash must be {HASH_LEN} bytes, got {len(model_hash)}")
        streams = tuple(bytes(s) for s in self.streams)
        if len(streams) > MAX_STREAMS:
            raise ValueError(f"{len(streams)} streams (at most {MAX_STREAMS})")
        if any(len(s) > 0xFFFFFFFF for s in streams):
            raise ValueError("a stream is larger than 4 GiB")
        normalised = {
            "kind": kind,
            "codec_id": _check_id(self.codec_id, "codec id", allow_empty=False),
            "model_hash": model_hash,
            "quantizer_id": _check_id(self.quantizer_id, "quantizer id", allow_empty=True),
            "params": _check_params(self.params),
            "shapes": _check_shapes(self.shapes, kind),
            "streams": streams,
        }
        for name, value in normalised.items():
            object.__setattr__(self, name, value)  # frozen: the only way to store normalised values

    @property
    def extension(self) -> str:
        """The file extension this payload kind is saved with."""
        return EXTENSIONS[self.kind]


def pack(c: Container) -> bytes:
    """Serialise `c` in the layout of the module docstring.

    >>> c = Container(PayloadKind.IMAGE, "demo", params={"q": 0.5}, shapes=[(2, 3)], streams=[b"xyz"])
    >>> unpack(pack(c)) == c
    True
    """
    out = bytearray(_FIXED_HEAD.pack(MAGIC, FORMAT_VERSION, int(c.kind), 0))
    out += _short_bytes(c.codec_id.encode("ascii"))
    out += c.model_hash
    out += _short_bytes(c.quantizer_id.encode("ascii"))
    params = _canonical_json(c.params)
    out += struct.pack("<I", len(params)) + params
    out += struct.pack("<B", len(c.shapes))
    for shape in c.shapes:
        out += struct.pack(f"<B{len(shape)}I", len(shape), *shape)
    out += struct.pack("<H", len(c.streams))
    for stream in c.streams:
        out += struct.pack("<I", len(stream)) + stream
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out)


def unpack(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Container:
    """Parse and validate a container; any problem raises BitstreamError with a one-line reason."""
    data = memoryview(bytes(data))
    if len(data) == 0:
        raise BitstreamError("not a workbench file (it is empty)")
    if not MAGIC.startswith(bytes(data[:4])):  # a shorter prefix of the magic is a truncated file
        raise BitstreamError("not a workbench file (unknown signature)")
    reader = _Reader(data, len(data) - 4)
    _, version, kind, flags = _FIXED_HEAD.unpack(reader.take(_FIXED_HEAD.size, "header"))
    if version != FORMAT_VERSION:
        newer = "a newer" if version > FORMAT_VERSION else "an unknown"
        raise BitstreamError(f"file uses {newer} format version {version} (this workbench reads {FORMAT_VERSION})")
    codec_id = reader.take(reader.u8("codec id length"), "codec id")
    model_hash = reader.take(HASH_LEN, "model hash")
    quantizer_id = reader.take(reader.u8("quantizer id length"), "quantizer id")
    params_len = reader.u32("parameter length")
    if params_len > MAX_PARAMS_LEN:
        raise BitstreamError(f"corrupted header: parameters claim {params_len} bytes (max {MAX_PARAMS_LEN})")
    params = reader.take(params_len, "parameters")
    n_shapes = reader.u8("shape count")
    if n_shapes > MAX_SHAPES:
        raise BitstreamError(f"corrupted header: {n_shapes} shapes (at most {MAX_SHAPES})")
    shapes = []
    for i in range(n_shapes):
        ndim = reader.u8(f"shape {i}")
        if ndim > MAX_NDIM:
            raise BitstreamError(f"corrupted header: shape {i} has {ndim} dimensions (at most {MAX_NDIM})")
        shapes.append(struct.unpack(f"<{ndim}I", reader.take(4 * ndim, f"shape {i}")))
    n_streams = reader.u16("stream count")
    if n_streams > MAX_STREAMS:
        raise BitstreamError(f"corrupted header: {n_streams} streams (at most {MAX_STREAMS})")
    streams = [bytes(reader.take(reader.u32(f"stream {i} length"), f"stream {i}")) for i in range(n_streams)]

    (stored_crc,) = struct.unpack("<I", data[len(data) - 4 :])
    if zlib.crc32(data[: len(data) - 4]) != stored_crc:
        raise BitstreamError("file is corrupted (checksum mismatch)")
    if reader.pos != reader.end:
        extra = reader.end - reader.pos
        raise BitstreamError(f"file is corrupted ({extra} unexpected bytes after the last stream)")
    if kind not in {k.value for k in PayloadKind}:
        raise BitstreamError(f"unknown payload kind {kind} (known: 1 = image, 2 = network)")
    if flags:
        raise BitstreamError(f"file uses flags 0x{flags:02x} that this workbench does not support")

    try:
        container = Container(
            kind=PayloadKind(kind),
            codec_id=_ascii(codec_id, "codec id"),
            model_hash=bytes(model_hash),
            quantizer_id=_ascii(quantizer_id, "quantizer id"),
            params=_parse_params(bytes(params)),
            shapes=tuple(shapes),
            streams=tuple(streams),
        )
    except ValueError as exc:
        raise BitstreamError(f"invalid header: {exc}") from None
    if container.kind is PayloadKind.IMAGE:
        height, width = container.shapes[0][:2]
        if height * width > max_pixels:
            raise BitstreamError(
                f"image of {width} x {height} pixels is larger than the allowed {max_pixels} pixels"
            )
    return container


def sniff(head: bytes) -> bool:
    """True when `head` (the first bytes of a file, at least 4) starts like a workbench container."""
    return bytes(head[:4]) == MAGIC


def write(path: str | os.PathLike, c: Container, *, protect: Iterable[str | os.PathLike] = ()) -> Path:
    """Pack `c` and write it atomically; files listed in `protect` (the inputs) are never replaced."""
    return write_bytes_atomic(path, pack(c), protect=protect)


def read(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS, limit: int = MAX_FILE_BYTES) -> Container:
    """Read and unpack a container file; foreign files are refused after reading only 4 bytes, and
    anything but a regular file of at most `limit` bytes before it is opened."""
    with open_regular(path, limit, BitstreamError, what="a workbench file") as fh:
        try:
            head = fh.read(4)
            if head and not MAGIC.startswith(head):
                raise BitstreamError(f"{path} is not a workbench file (unknown signature)")
            data = head + fh.read(limit)
        except OSError as exc:
            raise BitstreamError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise BitstreamError(f"{path} grew past the limit of {limit} bytes while it was read")
    try:
        return unpack(data, max_pixels=max_pixels)
    except BitstreamError as exc:
        raise BitstreamError(f"{path}: {exc}") from None


# --- internals -------------------------------------------------------------------------------------


class _Reader:
    """Cursor over `data[:end]` whose every read is checked against what remains."""

    def __init__(self, data: memoryview, end: int):
        self.data, self.pos, self.end = data, 0, end

    def take(self, n: int, what: str) -> memoryview:
        left = self.end - self.pos
        if n > left:
            raise BitstreamError(f"file is truncated ({what} needs {n} bytes, {max(left, 0)} remain)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return struct.unpack("<H", self.take(2, what))[0]

    def u32(self, what: str) -> int:
        return struct.unpack("<I", self.take(4, what))[0]


def _short_bytes(raw: bytes) -> bytes:
    return struct.pack("<B", len(raw)) + raw


def _check_id(value: Any, what: str, *, allow_empty: bool) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    if not (allow_empty or value) or len(value) > MAX_ID_LEN:
        raise ValueError(f"{what} must have {0 if allow_empty else 1} to {MAX_ID_LEN} characters")
    if not all(" " <= ch <= "~" for ch in value):
        raise ValueError(f"{what} {value!r} must be printable ASCII")
    return value


def _ascii(raw: memoryview, what: str) -> str:
    try:
        return bytes(raw).decode("ascii")
    except UnicodeDecodeError:
        raise ValueError(f"{what} is not ASCII") from None


def _check_params(params: Any) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise ValueError("parameters must be a dict")
    clean = {}
    for key, value in params.items():
        if not isinstance(key, str):
            raise ValueError(f"parameter name {key!r} is not a string")
        if isinstance(value, (list, tuple)):
            if not all(_is_number(v) for v in value):
                raise ValueError(f"parameter {key!r} must be a flat list of finite numbers")
            value = list(value)
        elif not (value is None or isinstance(value, (str, bool)) or _is_number(value)):
            raise ValueError(f"parameter {key!r} has unsupported type {type(value).__name__}")
        clean[key] = value
    if len(_canonical_json(clean)) > MAX_PARAMS_LEN:
        raise ValueError(f"parameters exceed {MAX_PARAMS_LEN} bytes as JSON")
    return clean


def _is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (isinstance(v, float) and math.isfinite(v))


def _canonical_json(params: dict[str, Any]) -> bytes:
    if not params:
        return b""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def _parse_params(raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        params = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError("parameters are not valid JSON") from None
    params = _check_params(params)
    if _canonical_json(params) != raw:
        raise ValueError("parameters are not in canonical form")
    return params


def _check_shapes(shapes: Any, kind: PayloadKind) -> tuple[tuple[int, ...], ...]:
    try:
        shapes = tuple(tuple(operator.index(d) for d in s) for s in shapes)
    except TypeError:
        raise ValueError("shapes must be sequences of integers") from None
    if len(shapes) > MAX_SHAPES:
        raise ValueError(f"{len(shapes)} shapes (at most {MAX_SHAPES})")
    for i, shape in enumerate(shapes):
        if len(shape) > MAX_NDIM:
            raise ValueError(f"shape {i} has {len(shape)} dimensions (at most {MAX_NDIM})")
        if not all(0 <= d <= MAX_DIM for d in shape):
            raise ValueError(f"shape {i} {shape} has a dimension outside 0..2**31")
    if kind is PayloadKind.IMAGE:
        if not shapes or len(shapes[0]) not in (2, 3):
            raise ValueError("an image payload needs shapes[0] = (height, width[, channels])")
        if min(shapes[0][:2]) < 1 or (len(shapes[0]) == 3 and not 1 <= shapes[0][2] <= 4):
            raise ValueError(f"image shape {shapes[0]} is invalid (need height, width >= 1, 1..4 channels)")
    return shapes
