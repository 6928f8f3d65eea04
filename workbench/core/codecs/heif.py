"""HEVC intra coding in a HEIF file, through pillow-heif (libheif + x265 to encode, libde265 to decode).

This is the coding BPG does (x265 intra at a fixed QP), in a container that phones and browsers can
open, and it needs no external binary.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.core.codecs.base import ImageCodec, register_codec
from workbench.core.codecs.pillow_codecs import (
    AVIF_BRANDS, check_rgb, decode_errors, encode_errors, iso_brands, pil_to_rgb,
)
from workbench.core.options import option

HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})

# What BPG's x265 settings amount to: optimise for PSNR, no psycho-visual rate shifting, no adaptive
# quantisation (so one QP really is one QP over the whole image).
_TUNE_PSNR = {"tune": "psnr", "x265:psy-rd": "0", "x265:psy-rdoq": "0", "x265:aq-mode": "0"}


@register_codec
class HevcCodec(ImageCodec):
    """HEVC intra (x265) in HEIF, rate set by a fixed x265 QP like BPG's `-q`.

    The QP goes to x265 as `enc_params={"x265:qp": ...}`, which overrides libheif's own 0-100
    quality (that one is mapped to a CRF and is not what BPG comparisons use). With a single intra
    frame `x265:crf` gives bit-identical files, so QP is the honest name. `tune="psnr"` is passed
    as libheif's plain `tune` parameter: this pillow-heif refuses `x265:tune`.

    >>> rgb = np.full((16, 24, 3), 128, np.uint8)
    >>> data = HevcCodec().encode(rgb, HevcCodec.options(quality=30))
    >>> HevcCodec.sniff(data), HevcCodec().decode(data).shape
    (True, (16, 24, 3))
    """

    name = "hevc"
    label = "HEVC intra in HEIF (x265)"
    extension = ".heic"
    quality_help = ("x265 quantisation parameter 0-51 (lower = better), the same scale as BPG's -q; "
                    "every 6 steps roughly halves or doubles the quantiser step.")
    sweep = (45, 42, 39, 36, 33, 30, 27, 24)

    @dataclass(frozen=True)
    class Options:
        quality: int = option(28, "x265 QP; lower keeps more detail (BPG's -q scale)", minimum=0, maximum=51)
        subsampling: str = option("4:4:4", "chroma subsampling", choices=("4:4:4", "4:2:0"))
        tune: str = option("psnr", "psnr: BPG-like, no psycho-visual tuning or adaptive quantisation; "
                           "default: x265's own defaults", choices=("psnr", "default"))

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        try:
            import pillow_heif
        except ImportError as exc:
            return False, f"pillow-heif is not installed ({exc})"
        info = pillow_heif.libheif_info()
        if "x265" not in info.get("encoders", {}):
            return False, "this pillow-heif was built without the x265 HEVC encoder"
        if not any("HEVC" in str(desc) for desc in info.get("decoders", {}).values()):
            return False, "this pillow-heif was built without an HEVC decoder (libde265)"
        return True, ""

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        brands = iso_brands(head)
        return bool(brands & HEIF_BRANDS) and not brands & AVIF_BRANDS

    def encode(self, rgb: np.ndarray, options: Any) -> bytes:
        import pillow_heif

        rgb = check_rgb(rgb)
        params = {"x265:qp": str(options.quality), **(_TUNE_PSNR if options.tune == "psnr" else {})}
        buf = io.BytesIO()
        with encode_errors("HEVC/HEIF"):
            heif = pillow_heif.from_bytes(mode="RGB", size=(rgb.shape[1], rgb.shape[0]), data=rgb.tobytes())
            # pillow-heif adds keys to enc_params, hence the fresh dict built above on every call.
            heif.save(buf, chroma=int(options.subsampling.replace(":", "")), enc_params=params)
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        import pillow_heif

        with decode_errors("HEVC/HEIF"):
            heif = pillow_heif.open_heif(io.BytesIO(bytes(data)), convert_hdr_to_8bit=True)
            return pil_to_rgb(heif.to_pillow())
