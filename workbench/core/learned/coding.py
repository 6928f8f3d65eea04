"""The learned codec's front door: which model a file or an option names, and handing the work to that
model's kind (`kinds/`), which owns how its latents are coded.

Every learned file is a workbench container with codec id "learned", parameters naming the model (by
name) and the model file's SHA-256 as the model hash; the kinds' modules document their streams.
A file is decoded only by the model file it names — a different or missing one is refused with the
reason, never decoded into a wrong image.
"""

from __future__ import annotations

import numpy as np

from workbench.core import container
from workbench.core.errors import BitstreamError
from workbench.core.jobs import Job
from workbench.core.learned.catalog import shipped_models
from workbench.core.learned.kinds import CODEC_ID, Encoded
from workbench.core.learned.weights import CodecModel, load_codec_model, model_for_file


def encode_job(rgb: np.ndarray, options) -> Job[Encoded]:
    """Yields progress only for long encoder work (latent optimization)."""
    return load_codec_model(options.model).compress(rgb, options)


def file_model(c: container.Container) -> CodecModel:
    """The model a learned-codec file names (by name and SHA-256), or a BitstreamError saying why not."""
    if c.codec_id != CODEC_ID or c.kind != container.PayloadKind.IMAGE:
        raise BitstreamError(f"not a learned-codec image (codec {c.codec_id!r})")
    name = c.params.get("model")
    if not isinstance(name, str):
        raise BitstreamError("learned-codec parameters are missing or malformed")
    cm = model_for_file(name, c.model_hash)
    if cm is None:
        if name in shipped_models():
            raise BitstreamError(f"this file was made with different weights for model {name!r} "
                                 "(model hash mismatch); decoding it would give a wrong image")
        raise BitstreamError(f"this file needs the learned model {name!r}, which is not installed or remembered "
                             "here (give its file with --model, or open it in the app)")
    return cm


def decode_image(data: bytes) -> np.ndarray:
    c = container.unpack(data)
    return file_model(c).decompress(c)
