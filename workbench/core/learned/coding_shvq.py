"""Coding for the vector-quantized models (`dct-shvq`): center indices under integer histograms.

Bitstream (workbench container, codec id "learned" like every learned model, parameters {model,
quality, step}, the model file's SHA-256, shapes[0] = (height, width, 3)): one range-coded stream
holding, per latent channel in order, the center index of every vector of that channel (vectors in
raster order) under that (level, channel)'s integer table from the model file.

Why this is bit-exact everywhere: the only decision the encoder makes is which index to send
(nearest center, in float64 on the CPU), and the decoder never recomputes it — it looks the
centers up. The tables are integers stored at export. What is left in floating point is the
synthesis, which runs on the CPU in float32 with a fixed thread count, as for the other models.

Quality levels are integers: each level has its own histograms and codebooks, so there is nothing
to interpolate. There is no step Δ either (a codebook has no step), so only Δ = 1 is accepted.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from workbench.core import container
from workbench.core.entropy import CategoricalReader, CategoricalWriter
from workbench.core.errors import BitstreamError, OptionError
from workbench.core.images import check_rgb
from workbench.core.learned import coding
from workbench.core.learned.device import pick_device
from workbench.core.learned.models_shvq import from_vectors, to_vectors
from workbench.core.learned.weights import CodecModel


def _level(quality: float, levels: int) -> int:
    if quality != int(quality) or not 1 <= quality <= levels:
        raise OptionError(f"this vector-quantized model has integer qualities 1..{levels} only (one set of "
                          f"histograms per level), got {quality:g}")
    return int(quality) - 1


def encode_image(rgb: np.ndarray, options, cm: CodecModel) -> tuple[bytes, float]:
    """The container bytes and the ideal code length of the indices under the stored tables (bits)."""
    rgb = check_rgb(rgb)
    model = cm.model
    level = _level(float(options.quality), model.levels)
    if float(options.step) != 1.0:
        raise OptionError("a vector-quantized model has no quantization step; use step 1")
    h, w = rgb.shape[:2]
    device = pick_device(options.device)
    x = coding._to_tensor(rgb, model.z_stride)
    sel = torch.tensor([level])
    with torch.no_grad():
        model.to(device)
        try:
            coeffs = model.g_a(x.to(device)).to("cpu", torch.float64)
        finally:
            model.to("cpu")
        g = torch.exp(model.log_gain[level].to(torch.float64))[None, :, None, None]
        indices = model.vq.nearest(to_vectors(coeffs * g, model.dim), sel)[0]     # (C, V)
    tables = _tables(cm, level)
    writer = CategoricalWriter()
    bits = 0.0
    for ch, table in enumerate(tables):
        sym = indices[ch].numpy()
        writer.write(sym, table)
        bits -= float(np.log2(table.probabilities[sym]).sum())
    c = container.Container(container.PayloadKind.IMAGE, coding.CODEC_ID, model_hash=cm.sha256,
                            params={"model": cm.name, "quality": float(level + 1), "step": 1.0},
                            shapes=[(h, w, 3)], streams=[writer.finish()])
    return container.pack(c), bits


def decode(c: container.Container, cm: CodecModel) -> np.ndarray:
    """Pixels of a file whose model (`coding.file_model`) is vector-quantized."""
    try:
        quality, step = float(c.params["quality"]), float(c.params["step"])
    except (KeyError, TypeError, ValueError):
        raise BitstreamError("learned-codec parameters are missing or malformed") from None
    model = cm.model
    if not (math.isfinite(quality) and quality == int(quality) and 1 <= quality <= model.levels) \
            or step != 1.0 or len(c.streams) != 1 or not c.shapes or len(c.shapes[0]) != 3:
        raise BitstreamError("learned-codec parameters are out of range for a vector-quantized model")
    level = int(quality) - 1
    h, w = c.shapes[0][:2]
    hp, wp = coding._padded(h, model.z_stride) // model.y_stride, coding._padded(w, model.z_stride) // model.y_stride
    vectors = hp * wp // model.dim
    reader = CategoricalReader(c.streams[0])
    indices = torch.from_numpy(np.stack([reader.read(t, vectors).astype(np.int64) for t in _tables(cm, level)]))
    reader.finish()
    sel = torch.tensor([level])
    with torch.no_grad(), coding._threads(coding._SYNTH_THREADS):
        y_hat = from_vectors(model.vq.lookup(indices[None], sel), model.dim, hp, wp).to(torch.float64)
        g_inv = torch.exp(model.log_inv_gain[level].to(torch.float64))[None, :, None, None]
        x_hat = model.synthesise((y_hat * g_inv).to(torch.float32))
    out = torch.round(x_hat[0, :, :h, :w].clamp(0, 1) * 255).to(torch.uint8)
    return np.ascontiguousarray(out.permute(1, 2, 0).numpy())


def _tables(cm: CodecModel, level: int):
    channels = cm.model.m
    if len(cm.hyper_tables) != cm.model.levels * channels:
        raise BitstreamError("the model file's index tables do not match its architecture")
    return cm.hyper_tables[level * channels:(level + 1) * channels]
