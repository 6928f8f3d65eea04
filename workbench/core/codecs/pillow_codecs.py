"""The classical codecs Pillow carries: JPEG, WebP, JPEG 2000 and AVIF.

All four share one encode/decode path; a subclass only names its Pillow format and turns its options
into Pillow save arguments. Decoding always names that format (`Image.open(..., formats=[...])`), so a
WebP handed to the JPEG decoder is refused instead of being decoded by whichever plugin claims it.

The small helpers at the top (error wrapping, ISO-BMFF brand parsing, Pillow image -> RGB array) are
also used by the other classical adapters (heif, jxl, bpg), so every codec reports failures the same way.
"""

from __future__ import annotations

import io
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError, features

from workbench.core.codecs.base import ImageCodec, register_codec
from workbench.core.errors import BitstreamError, ImageError, WorkbenchError
from workbench.core.images import check_rgb as check_rgb
from workbench.core.options import option

AVIF_BRANDS = frozenset({b"avif", b"avis"})


@contextmanager
def wrap_errors(error: type[WorkbenchError], prefix: str) -> Iterator[None]:
    """Turn a library's own exception into a one-line workbench error.

    Libraries raise anything from OSError to RuntimeError (or SyntaxError, in Pillow's case) for bad
    data; callers should see one error type whose message names the codec.
    """
    try:
        yield
    except WorkbenchError:
        raise
    except Exception as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise error(f"{prefix}: {detail}") from exc


def decode_errors(format_name: str):
    return wrap_errors(BitstreamError, f"corrupt or truncated {format_name} data")


def encode_errors(format_name: str):
    return wrap_errors(ImageError, f"the {format_name} encoder refused the image")


def iso_brands(head: bytes) -> frozenset[bytes]:
    """Major and compatible brands of a leading ISO-BMFF `ftyp` box (empty if there is none).

    HEIF and AVIF share the container, and some writers put the generic `mif1` as the major brand;
    only the full brand list tells an AV1 file from an HEVC one.
    """
    if len(head) < 12 or head[4:8] != b"ftyp":
        return frozenset()
    end = min(int.from_bytes(head[:4], "big"), len(head))
    return frozenset([head[8:12]] + [head[i:i + 4] for i in range(16, end - 3, 4)])


def pil_to_rgb(img: Image.Image) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def decode_with_pillow(data: bytes, pil_format: str) -> np.ndarray:
    """Decode with exactly one Pillow plugin; callers wrap the errors."""
    try:
        img = Image.open(io.BytesIO(data), formats=[pil_format])
    except UnidentifiedImageError:  # its message would only name the BytesIO object
        raise ValueError(f"Pillow's {pil_format} reader does not recognise it") from None
    with img:
        img.load()
        return pil_to_rgb(img)


class PillowCodec(ImageCodec):
    """Shared Pillow path; subclasses set `pil_format`, `feature` and `save_args`."""

    pil_format: ClassVar[str]     # Pillow's format name, e.g. "JPEG"
    feature: ClassVar[str]        # what `PIL.features.check` must report, e.g. "jpg"
    format_name: ClassVar[str]    # how error messages name the format

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        if not features.check(cls.feature):
            return False, f"this Pillow was built without {cls.format_name} support ({cls.feature})"
        return True, ""

    def save_args(self, options: Any) -> dict[str, Any]:
        raise NotImplementedError

    def encode(self, rgb: np.ndarray, options: Any) -> bytes:
        img = Image.fromarray(check_rgb(rgb), "RGB")
        buf = io.BytesIO()
        with encode_errors(self.format_name):
            img.save(buf, self.pil_format, **self.save_args(options))
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        with decode_errors(self.format_name):
            return decode_with_pillow(bytes(data), self.pil_format)


@register_codec
class JpegCodec(PillowCodec):
    """Baseline JPEG, the anchor every other codec is compared with.

    Huffman tables are always optimised (`optimize=True`): it is lossless and free at these sizes, so
    leaving it off would only handicap the anchor.

    >>> rgb = np.full((16, 24, 3), 128, np.uint8)
    >>> data = JpegCodec().encode(rgb, JpegCodec.options(quality=80))
    >>> JpegCodec.sniff(data), JpegCodec().decode(data).shape
    (True, (16, 24, 3))
    """

    name = "jpeg"
    label = "JPEG (libjpeg-turbo)"
    extension = ".jpg"
    pil_format = "JPEG"
    feature = "jpg"
    format_name = "JPEG"
    quality_help = ("libjpeg quality factor 1-95 (higher = better); it scales the standard quantisation "
                    "tables. Above 95 the tables degenerate and only the file grows.")
    sweep = (5, 10, 15, 25, 40, 55, 70, 85)

    @dataclass(frozen=True)
    class Options:
        quality: int = option(75, "libjpeg quality factor; higher keeps more detail", minimum=1, maximum=95)
        subsampling: str = option("4:2:0", "chroma subsampling; 4:2:0 is what cameras and browsers use",
                                  choices=("4:2:0", "4:4:4"))

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head[:3] == b"\xff\xd8\xff"

    def save_args(self, options: Any) -> dict[str, Any]:
        return {"quality": options.quality, "subsampling": options.subsampling, "optimize": True}


@register_codec
class WebpCodec(PillowCodec):
    """Lossy WebP (VP8 intra), always 4:2:0 since the format has no other lossy mode.

    >>> rgb = np.full((16, 24, 3), 128, np.uint8)
    >>> data = WebpCodec().encode(rgb, WebpCodec.options(quality=80))
    >>> WebpCodec.sniff(data), WebpCodec().decode(data).shape
    (True, (16, 24, 3))
    """

    name = "webp"
    label = "WebP (libwebp, lossy)"
    extension = ".webp"
    pil_format = "WEBP"
    feature = "webp"
    format_name = "WebP"
    quality_help = "libwebp quality 0-100 (higher = better); it sets the VP8 quantiser."
    sweep = (0, 5, 15, 30, 50, 65, 80, 90)

    @dataclass(frozen=True)
    class Options:
        quality: int = option(80, "libwebp quality; higher keeps more detail", minimum=0, maximum=100)
        method: int = option(6, "encoder effort; 6 searches hardest and gives the smallest files",
                             minimum=4, maximum=6)

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"

    def save_args(self, options: Any) -> dict[str, Any]:
        return {"quality": options.quality, "method": options.method, "lossless": False}


@register_codec
class Jpeg2000Codec(PillowCodec):
    """JPEG 2000 (OpenJPEG), irreversible 9/7 wavelet, one quality layer.

    The knob is OpenJPEG's target PSNR ("dB" quality mode) because it is the only native JPEG 2000
    knob where higher means better; the reached PSNR lands within a few tenths of a dB of it. The RGB
    to YCbCr transform (MCT) is always on: without it OpenJPEG codes R, G and B independently and
    needs about 2.5x the bits for the same PSNR. Irreversible coding saturates near 51 dB.

    >>> rgb = np.full((16, 24, 3), 128, np.uint8)
    >>> data = Jpeg2000Codec().encode(rgb, Jpeg2000Codec.options(quality=40))
    >>> Jpeg2000Codec.sniff(data), Jpeg2000Codec().decode(data).shape
    (True, (16, 24, 3))
    """

    name = "jpeg2000"
    label = "JPEG 2000 (OpenJPEG)"
    extension = ".jp2"
    pil_format = "JPEG2000"
    feature = "jpg_2000"
    format_name = "JPEG 2000"
    quality_help = ("target PSNR in dB, 15-50 (higher = better); OpenJPEG stops adding wavelet data once "
                    "the image reaches it. The same target gives very different rates on busy and "
                    "smooth images.")
    sweep = (24.0, 26.0, 28.0, 30.0, 32.0, 34.0, 36.0, 38.0)

    @dataclass(frozen=True)
    class Options:
        quality: float = option(35.0, "target PSNR in dB; higher keeps more detail",
                                minimum=15.0, maximum=50.0, step=0.5)

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or head[:4] == b"\xff\x4f\xff\x51"

    def save_args(self, options: Any) -> dict[str, Any]:
        return {"quality_mode": "dB", "quality_layers": [float(options.quality)],
                "irreversible": True, "mct": 1}


@register_codec
class AvifCodec(PillowCodec):
    """AVIF (AV1 intra via libaom) in its HEIF container.

    4:4:4 is the default because benchmarks measure PSNR on RGB, where 4:2:0 throws away chroma
    detail that no rate can buy back.

    >>> rgb = np.full((16, 24, 3), 128, np.uint8)
    >>> data = AvifCodec().encode(rgb, AvifCodec.options(quality=60))
    >>> AvifCodec.sniff(data), AvifCodec().decode(data).shape
    (True, (16, 24, 3))
    """

    name = "avif"
    label = "AVIF (libavif/aom)"
    extension = ".avif"
    pil_format = "AVIF"
    feature = "avif"
    format_name = "AVIF"
    quality_help = "libavif quality 0-100 (higher = better); it maps onto the AV1 quantiser range."
    sweep = (10, 25, 35, 45, 55, 65, 75, 85)

    @dataclass(frozen=True)
    class Options:
        quality: int = option(75, "libavif quality; higher keeps more detail", minimum=0, maximum=100)
        speed: int = option(6, "encoder speed; lower searches harder for slightly smaller files",
                            minimum=0, maximum=10)
        subsampling: str = option("4:4:4", "chroma subsampling", choices=("4:4:4", "4:2:0"))

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        ok, why = super().availability()
        if not ok:
            return ok, why
        from PIL import _avif
        if not any(_avif.encoder_codec_available(c) for c in ("aom", "rav1e", "svt")):
            return False, "Pillow's libavif has no AV1 encoder (aom, rav1e or svt)"
        if not any(_avif.decoder_codec_available(c) for c in ("dav1d", "aom", "libgav1")):
            return False, "Pillow's libavif has no AV1 decoder (dav1d, aom or libgav1)"
        return True, ""

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return bool(iso_brands(head) & AVIF_BRANDS)

    def save_args(self, options: Any) -> dict[str, Any]:
        return {"quality": options.quality, "speed": options.speed, "subsampling": options.subsampling}
