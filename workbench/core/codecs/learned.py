"""The learned codec as a registered image codec. Torch is imported only when an image is actually
coded, so listing codecs stays instant."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from workbench.core import container
from workbench.core.codecs.base import Encoded, ImageCodec, register_codec
from workbench.core.errors import BitstreamError, ImageError
from workbench.core.jobs import Job, run
from workbench.core.learned.catalog import DEFAULT_MODEL, model_for_quality, model_sweep, shipped_models
from workbench.core.options import option

CODEC_ID = "learned"


@dataclass(frozen=True)
class LearnedOptions:
    quality: float = option(4.0, "rate point of the model: 1 (smallest file) .. 8 (best quality); "
                            "fractions interpolate", minimum=1.0, maximum=8.0, step=0.25)
    model: str = option(DEFAULT_MODEL, "shipped model name (dct-checkerboard-mse, or an earlier release such as "
                        "dct-context-mse-v2, for PSNR; dct-checkerboard-msssim for MS-SSIM), a .safetensors path, a "
                        "CompressAI checkpoint (.pth.tar, .pth, .pt: one rate point, quality does not apply) or a "
                        "folder of CompressAI zoo checkpoints (quality picks the file)")
    step: float = option(1.0, "quantization step Δ: above 1 lowers the rate of any quality point",
                         minimum=0.25, maximum=8.0, step=0.05, label="Step Δ")
    quantizer: str = option("round", "how latents become integers: rounding; rounding with rate-distortion "
                            "decisions (rdoq); or trellis-coded quantization with 4 or 8 states (slower "
                            "encoding, smaller files)",
                            choices=("round", "rdoq", "tcq4", "tcq8"),
                            choice_labels=("Plain rounding (fastest)", "Rounding that weighs size against quality",
                                           "Trellis search, 4 states (smaller files, slower)",
                                           "Trellis search, 8 states (smallest files, slowest)"))
    optimize: int = option(0, "steps of per-image latent optimization before quantizing (0: off). More "
                           "steps save more: 60 saved 3.3 % and 300 saved 6.1 % of the rate at equal PSNR "
                           "on Kodak; a step takes 0.3-0.7 s for a 768x512 image on 2 CPU cores",
                           minimum=0, maximum=5000)
    device: str = option("auto", "where the encoder's transforms run: auto (CUDA when present), cpu or cuda",
                         choices=("auto", "cpu", "cuda"),
                         choice_labels=("Automatic (graphics card when present)", "Processor (CPU)",
                                        "Graphics card (CUDA)"))


@register_codec
class LearnedCodec(ImageCodec):
    """A learned transform codec with shipped weights (`workbench/core/learned/coding.py`).

    >>> rgb = (np.indices((64, 64, 3)).sum(0) * 3 % 256).astype(np.uint8)
    >>> codec = LearnedCodec()
    >>> data = codec.encode(rgb, codec.options(quality=4))
    >>> codec.decode(data).shape
    (64, 64, 3)
    """

    name = "learned"
    label = "Learned (DCT hyperprior with context), tuned for PSNR"
    extension = ".wbi"
    Options = LearnedOptions
    sweep = (1, 2, 3, 4, 5, 6, 7, 8)
    quality_help = "Quality 1..8 picks the model's rate point; one model was trained for all of them."

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        model = cls.Options().model
        if model not in shipped_models():
            return False, f"model weights resources/models/{model}.safetensors are missing"
        return True, ""

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        head, n = bytes(head), len(CODEC_ID)
        return container.sniff(head) and head[8:9 + n] == bytes([n]) + CODEC_ID.encode()

    @classmethod
    def file_label(cls, data: bytes) -> str:
        """Files of every learned model share the codec id; the model the file names tells them apart."""
        try:
            model = container.unpack(data).params.get("model")
        except BitstreamError:
            return "the learned codec"
        return f"the learned codec, model {model}"

    def default_sweep(self, options: LearnedOptions) -> tuple:
        """A single CompressAI checkpoint has one rate point (eight qualities would code the same file
        eight times); a folder of zoo checkpoints has the qualities of its files."""
        return model_sweep(options.model)

    def encode(self, rgb: np.ndarray, options: LearnedOptions) -> bytes:
        return run(self.encode_job(rgb, options)).data

    def encode_job(self, rgb: np.ndarray, options: LearnedOptions) -> Job[Encoded]:
        """Progress events while the latents are optimized (`options.optimize` steps), else none."""
        from workbench.core.learned.coding import encode_job
        from workbench.core.learned.weights import load_codec_model
        model = model_for_quality(options.model, options.quality)      # a folder of zoo checkpoints
        if model != options.model:
            options = replace(options, model=model)
        _refuse_wasteful_padding(rgb, load_codec_model(options.model).model.z_stride)
        return (yield from encode_job(rgb, options))

    def decode(self, data: bytes) -> np.ndarray:
        from workbench.core.learned.coding import decode_image
        return decode_image(data)


MAX_PADDING = 16
"""The most times its own area an image may grow by padding before the learned codec refuses it."""


def _refuse_wasteful_padding(rgb: np.ndarray, stride: int) -> None:
    """The model codes whole blocks of `stride` x `stride` pixels, so a thin image is coded padded to
    many times its area (a 1 x 10000 strip of a photo took 14 bits per pixel at quality 4, 60 % of
    raw RGB): refused, with the reason, rather than written."""
    h, w = rgb.shape[:2]
    ph, pw = -(-h // stride) * stride, -(-w // stride) * stride
    if ph * pw > MAX_PADDING * h * w:
        raise ImageError(f"the learned codec codes images in blocks of {stride} x {stride} pixels, so this "
                         f"{w} x {h} image would be coded as {pw} x {ph} ({ph * pw / (h * w):.0f} times its area) and "
                         "most of the file would code padding; use a classical codec for it")


@dataclass(frozen=True)
class LearnedMSSSIMOptions(LearnedOptions):
    model: str = option("dct-checkerboard-msssim", "shipped model name (dct-checkerboard-msssim, or an earlier release "
                        "such as dct-context-msssim-v3, dct-context-msssim-v2, dct-context-msssim or dct-hyperprior-msssim) "
                        "or a model file")


@register_codec
class LearnedMSSSIMCodec(LearnedCodec):
    """The same codec with the weights trained for MS-SSIM; its files decode through `learned`.

    >>> rgb = (np.indices((64, 64, 3)).sum(0) * 3 % 256).astype(np.uint8)
    >>> codec = LearnedMSSSIMCodec()
    >>> codec.decode(codec.encode(rgb, codec.options(quality=2))).shape
    (64, 64, 3)
    """

    name = "learned-msssim"
    label = "Learned (DCT hyperprior with context), tuned for MS-SSIM"
    Options = LearnedMSSSIMOptions

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return False
