"""One encode/decode of an image with metrics measured on the real decoded file.

Sizes and bpp always come from the length of the bytes that would be written to disk, and the
reconstruction is what the decoder returns from those bytes, never the encoder's own guess.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any

import numpy as np

from workbench.core import metrics
from workbench.core.codecs import get_codec
from workbench.core.errors import ImageError
from workbench.core.jobs import Job, run


@dataclass(frozen=True)
class Quality:
    psnr: float
    ms_ssim: float | None        # None when the image is too small for 5 MS-SSIM scales
    ms_ssim_db: float | None

    @classmethod
    def measure(cls, original: np.ndarray, decoded: np.ndarray) -> "Quality":
        p = metrics.psnr(original, decoded)
        try:
            m = metrics.ms_ssim(original, decoded)
        except ImageError:
            return cls(p, None, None)
        return cls(p, m, metrics.ms_ssim_db(m))


@dataclass(frozen=True)
class CompressResult:
    codec: str
    options: dict[str, Any]
    data: bytes
    reconstruction: np.ndarray
    quality: Quality
    encode_s: float
    decode_s: float
    estimated_bits: float | None = None   # a learned model's own rate estimate, shown beside the real size

    @property
    def size_bytes(self) -> int:
        return len(self.data)

    @property
    def bpp(self) -> float:
        h, w = self.reconstruction.shape[:2]
        return 8.0 * len(self.data) / (h * w)

    @property
    def estimated_bpp(self) -> float | None:
        if self.estimated_bits is None:
            return None
        h, w = self.reconstruction.shape[:2]
        return self.estimated_bits / (h * w)


def compress_image(rgb: np.ndarray, codec: str, options: Any = None, **values: Any) -> CompressResult:
    """Encode `rgb` with `codec`, decode the bytes back, and measure what the decoder produced.

    `options` is the codec's options dataclass; alternatively pass loose `values` (e.g. quality=50).
    """
    return run(compress_job(rgb, codec, options, **values))


def compress_job(rgb: np.ndarray, codec: str, options: Any = None, **values: Any) -> Job[CompressResult]:
    """`compress_image` as a job: the learned codec reports progress while it optimizes the latents per
    image; every other codec encodes without events."""
    impl = get_codec(codec)
    opts = options if options is not None else impl.options(**values)
    t0 = time.perf_counter()
    encoded = yield from impl.encode_job(rgb, opts)
    data = encoded.data
    t1 = time.perf_counter()
    decoded = impl.decode(data)
    t2 = time.perf_counter()
    if decoded.shape != rgb.shape:
        raise ImageError(f"{codec} decoded a {decoded.shape[1]}x{decoded.shape[0]} image from a "
                         f"{rgb.shape[1]}x{rgb.shape[0]} input")
    return CompressResult(codec=codec, options=plain_options(opts), data=data, reconstruction=decoded,
                          quality=Quality.measure(rgb, decoded), encode_s=t1 - t0, decode_s=t2 - t1,
                          estimated_bits=encoded.estimated_bits)


def plain_options(opts: Any) -> dict[str, Any]:
    """Options as plain values: what a result records and what a child process is sent."""
    return asdict(opts) if is_dataclass(opts) else dict(opts or {})
