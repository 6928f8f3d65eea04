"""The interface every image codec implements, and the codec registry.

A codec turns an RGB uint8 array into the bytes of a file and back. Classical codecs return the
codec's own file format (a .jpg is a real JPEG); learned codecs return the workbench container.
`decode_any` picks the codec from the file's leading bytes, never from its extension, so a file
named `x.bin` still decodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from workbench.core import container, options as opt
from workbench.core.errors import BitstreamError, CodecUnavailableError
from workbench.core.jobs import Job
from workbench.core.registry import Registry


@dataclass(frozen=True)
class Encoded:
    """What an encode produced: the file's bytes and, for a codec with a rate model (the learned
    codecs), the model's own estimate of its size in bits, shown beside the real size, never instead."""
    data: bytes
    estimated_bits: float | None = None


class ImageCodec:
    name: ClassVar[str]                 # registry key and CLI name, e.g. "jpeg"
    label: ClassVar[str]                # shown in the GUI, e.g. "JPEG (libjpeg-turbo)"
    extension: ClassVar[str]            # file extension of the codec's own format, e.g. ".jpg"
    Options: ClassVar[type]             # frozen dataclass; must have a `quality` field
    sweep: ClassVar[tuple] = ()         # default `quality` values for RD sweeps, low rate first
    quality_help: ClassVar[str] = ""    # what the quality knob means in this codec's own terms

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """(available, reason); the reason says what is missing when it is not available."""
        return True, ""

    def default_sweep(self, options: Any) -> tuple:
        """The qualities an RD sweep measures when none are given, with `options` fixed; a codec whose
        options change what its quality knob reaches (the learned codec's model) narrows them."""
        return type(self).sweep

    @classmethod
    def is_available(cls) -> bool:
        return cls.availability()[0]

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        """True when `head` (the first 64 bytes or fewer) starts a file of this codec."""
        return False

    @classmethod
    def options(cls, **values: Any) -> Any:
        return opt.build(cls.Options, values)

    @classmethod
    def file_label(cls, data: bytes) -> str:
        """What made a file of this codec, for messages about decoding it (a codec whose files carry
        more, such as the model, says so)."""
        return cls.label

    def encode(self, rgb: np.ndarray, options: Any) -> bytes:
        raise NotImplementedError

    def encode_job(self, rgb: np.ndarray, options: Any) -> Job[Encoded]:
        """The encode as a job; a codec with long encoder work (learned latent optimization) reports
        progress, the others finish without events."""
        yield from ()
        return Encoded(self.encode(rgb, options))

    def decode(self, data: bytes) -> np.ndarray:
        """Decode to an (H, W, 3) uint8 array; raises BitstreamError for bad data."""
        raise NotImplementedError


CODECS: Registry[ImageCodec] = Registry("codec")
register_codec = CODECS.register


def codec_class(name: str) -> type[ImageCodec]:
    """The registered class (available here or not); OptionError lists the known names."""
    _load_builtin()
    return CODECS.get(name)


def get_codec(name: str) -> ImageCodec:
    """An instance of the named codec, or CodecUnavailableError saying why it cannot run here."""
    cls = codec_class(name)
    ok, why = cls.availability()
    if not ok:
        raise CodecUnavailableError(f"codec {name} is not available on this machine: {why}")
    return cls()


def all_codecs() -> list[type[ImageCodec]]:
    _load_builtin()
    return list(CODECS)


def codec_for_bytes(data: bytes) -> type[ImageCodec]:
    _load_builtin()
    head = bytes(data[:64])
    for cls in CODECS:
        if cls.sniff(head):
            return cls
    if container.sniff(head) and head[6:7] == bytes([container.PayloadKind.NETWORK]):
        raise BitstreamError("this is a compressed network (.wbn), not an image: decode it with "
                             "`workbench decompress-net`")
    raise BitstreamError("not a file any codec here can decode (unknown leading bytes)")


def decode_any(data: bytes) -> tuple[np.ndarray, type[ImageCodec]]:
    """Decode a compressed image whatever its codec; errors are BitstreamError/CodecUnavailableError."""
    cls = codec_for_bytes(data)
    ok, why = cls.availability()
    if not ok:
        raise CodecUnavailableError(f"this is a {cls.label} file, but {cls.name} is not available: {why}")
    return cls().decode(data), cls


@dataclass(frozen=True)
class CodecInfo:
    name: str
    label: str
    available: bool
    reason: str


def describe_codecs() -> list[CodecInfo]:
    out = []
    for cls in all_codecs():
        ok, why = cls.availability()
        out.append(CodecInfo(cls.name, cls.label, ok, why))
    return out


def _load_builtin() -> None:
    """Import the modules whose import registers the built-in codecs."""
    from workbench.core import codecs  # noqa: F401  (package __init__ imports every adapter)
