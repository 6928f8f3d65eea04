"""JPEG XL through imagecodecs' libjxl binding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.core.codecs.base import ImageCodec, register_codec
from workbench.core.codecs.pillow_codecs import check_rgb, decode_errors, encode_errors
from workbench.core.options import option

_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"


@register_codec
class JxlCodec(ImageCodec):
    """JPEG XL (libjxl VarDCT), rate set by cjxl's 0-100 quality.

    imagecodecs passes `level` through libjxl's own quality-to-distance mapping, so `quality` means
    exactly what `cjxl -q` means (90 = distance 1.0, visually lossless). Quality 100 is sent as
    lossless, as cjxl does: libjxl's lossy mode at distance 0 makes files twice the lossless size.

    >>> rgb = np.full((16, 24, 3), 128, np.uint8)
    >>> data = JxlCodec().encode(rgb, JxlCodec.options(quality=80))
    >>> JxlCodec.sniff(data), JxlCodec().decode(data).shape
    (True, (16, 24, 3))
    """

    name = "jxl"
    label = "JPEG XL (libjxl)"
    extension = ".jxl"
    quality_help = ("libjxl quality 0-100 as in cjxl -q (higher = better); 90 is butteraugli distance 1, "
                    "100 is lossless.")
    sweep = (0, 20, 40, 55, 65, 75, 85, 90)

    @dataclass(frozen=True)
    class Options:
        quality: int = option(90, "libjxl quality (cjxl -q); higher keeps more detail, 100 is lossless",
                              minimum=0, maximum=100)
        effort: int = option(7, "encoder effort; higher searches harder and is slower", minimum=1, maximum=9)

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        try:
            import imagecodecs
        except ImportError as exc:
            return False, f"imagecodecs is not installed ({exc})"
        if not imagecodecs.JPEGXL.available:
            return False, "this imagecodecs was built without JPEG XL (libjxl)"
        return True, ""

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head[:2] == b"\xff\x0a" or head[:12] == _CONTAINER

    def encode(self, rgb: np.ndarray, options: Any) -> bytes:
        import imagecodecs

        rgb = check_rgb(rgb)
        rate = {"lossless": True} if options.quality >= 100 else {"level": options.quality}
        with encode_errors("JPEG XL"):
            return bytes(imagecodecs.jpegxl_encode(rgb, effort=options.effort, **rate))

    def decode(self, data: bytes) -> np.ndarray:
        import imagecodecs

        with decode_errors("JPEG XL"):
            return _to_rgb8(imagecodecs.jpegxl_decode(bytes(data), index=0))


def _to_rgb8(a: np.ndarray) -> np.ndarray:
    """Foreign JPEG XL files may be grey, carry alpha, or be 16-bit/float; the workbench wants RGB8."""
    if a.ndim == 2:
        a = a[:, :, None]
    if a.dtype.kind == "f":
        a = np.clip(a, 0.0, 1.0) * 255.0 + 0.5
    elif a.dtype != np.uint8:
        a = a.astype(np.float64) * (255.0 / np.iinfo(a.dtype).max) + 0.5
    a = a.astype(np.uint8)
    a = a[:, :, :3] if a.shape[2] >= 3 else np.repeat(a[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(a)
