"""The learned image codec behind `workbench compress -c learned`: a shipped model + a latent
quantizer on a step Δ (rounding, or trellis-coded: `latent_quantizers.py`) + range coding through the
integer tables stored with the model.

Bitstream (inside the workbench container, codec id "learned"): parameters {model, quality, step}
and, unless it is rounding, the latent quantizer's name,
the model file's SHA-256 as the model hash, shapes[0] = (height, width, 3), and two streams:
0. z: per channel, every z value of that channel under the channel's table (values outside a
   table are clamped by the encoder, which uses the clamped values itself);
1. y (hyperprior): the integers the latent quantizer chose for (y − μ)/Δ, each under the table of
   its predicted scale's grid level (and, for trellis quantizers, of the quantizer its trellis state
   selects), in the order `latent_quantizers.py` describes. Every table has two escape symbols at its
   ends; the excess of every escaped value follows its group under a fixed heavy-tailed table. For
   the factorized model stream 1 holds round(y/Δ) per channel.

Determinism: the entropy parameters (μ, σ → level) are computed from integer data on the CPU in
float64 by both encoder and decoder (`_hyper_params`), and all tables are integers read from the
model file, so the symbols decode identically wherever the file was made. The synthesis runs on the
CPU in float32 with a fixed thread count (`_SYNTH_THREADS`) so the pixels do not depend on the
caller's torch thread setting.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch.nn import functional as F

from workbench.core import container
from workbench.core.jobs import Job
from workbench.core.entropy import CategoricalReader, CategoricalWriter
from workbench.core.errors import BitstreamError, OptionError
from workbench.core.images import check_rgb
from workbench.core.learned.catalog import shipped_models
from workbench.core.learned import densities
from workbench.core.learned.device import pick_device
from workbench.core.learned.latent_quantizers import LATENT_QUANTIZERS
from workbench.core.learned.optimize import model_lambda, refine_latents
from workbench.core.learned.weights import CodecModel, load_codec_model, model_for_file

CODEC_ID = "learned"
_SYNTH_THREADS = 2


def encode_job(rgb: np.ndarray, options) -> Job[tuple[bytes, float | None]]:
    """Returns the container bytes and the model's own rate estimate in bits (None for the factorized
    model). Without `options.optimize` it yields nothing; with it, one progress event per
    optimization step (`optimize.refine_latents`)."""
    rgb = check_rgb(rgb)
    cm = load_codec_model(options.model)
    if getattr(cm.model, "vector_quantized", False):     # SHVQ models: indices under histogram tables
        from workbench.core.learned import coding_shvq
        return coding_shvq.encode_image(rgb, options, cm)
    device = pick_device(options.device)
    h, w = rgb.shape[:2]
    x = _to_tensor(rgb, cm.model.z_stride)
    quality = torch.tensor([float(options.quality)])
    with torch.no_grad():
        model = cm.model.to(device)
        try:
            g, _ = model.gains(quality.to(device))
            y = (model.g_a(x.to(device)) * g).to("cpu", torch.float64)
            if model.has_hyperprior:
                gz, _ = model.gains_z(quality.to(device))
                z = (model.h_a(y.to(device, torch.float32)) * gz).to("cpu", torch.float64)
        finally:
            model.to("cpu")
    if getattr(options, "optimize", 0):
        if not model.has_hyperprior:
            raise OptionError(f"latent optimization needs a hyperprior model; {cm.name} has none")
        y, z = yield from refine_latents(cm, x, y, z, quality, options.optimize, (h, w), device)
    writer_z, writer_y = CategoricalWriter(), CategoricalWriter()
    quantizer = LATENT_QUANTIZERS.get(options.quantizer)(device)
    if model.has_hyperprior:
        z_hat = _code_per_channel(writer_z, torch.round(z)[0], cm.hyper_tables)
        means, scales = _hyper_params(cm, z_hat[None], quality)
        _, bits_y = quantizer.write(writer_y, *latent_chains(cm, y, means, scales, quality, options.quantizer,
                                                             options.step), cm)
        with torch.no_grad():
            bits_z = float(-torch.log2(model.density_z.likelihood(z_hat[None].to(torch.float32))).sum())
        estimate = bits_y + bits_z
    else:
        if options.quantizer != "round":
            raise OptionError(f"the {cm.name} model has no hyperprior; only rounding applies to it")
        k = torch.round(y / options.step)[0]
        _code_per_channel(writer_y, k, cm.hyper_tables)
        estimate = None
    params = {"model": cm.name, "quality": float(options.quality), "step": float(options.step)}
    if options.quantizer != "round":
        params["quantizer"] = options.quantizer
    c = container.Container(container.PayloadKind.IMAGE, CODEC_ID, model_hash=cm.sha256,
                            params=params,
                            shapes=[(h, w, 3)], streams=[writer_z.finish(), writer_y.finish()])
    return container.pack(c), estimate


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
        raise BitstreamError(f"this file needs the learned model {name!r}, which is not installed here")
    return cm


def decode_image(data: bytes) -> np.ndarray:
    c = container.unpack(data)
    cm = file_model(c)
    if getattr(cm.model, "vector_quantized", False):     # a file of a vector-quantized (SHVQ) model
        from workbench.core.learned import coding_shvq
        return coding_shvq.decode(c, cm)
    params = c.params
    try:
        quality, step = float(params["quality"]), float(params["step"])
        quantizer_name = str(params.get("quantizer", "round"))
    except (KeyError, TypeError, ValueError):
        raise BitstreamError("learned-codec parameters are missing or malformed") from None
    if quantizer_name not in LATENT_QUANTIZERS:
        raise BitstreamError(f"unknown latent quantizer {quantizer_name!r} in the file")
    if not (1 <= quality <= 8 and 0.25 <= step <= 8) or len(c.streams) != 2:
        raise BitstreamError("learned-codec parameters are out of range")
    h, w = c.shapes[0][:2]
    hp, wp = _padded(h, cm.model.z_stride), _padded(w, cm.model.z_stride)
    model = cm.model
    q = torch.tensor([quality])
    reader_z, reader_y = CategoricalReader(c.streams[0]), CategoricalReader(c.streams[1])
    if model.has_hyperprior:
        z_hat = _read_per_channel(reader_z, cm.hyper_tables, (hp // model.z_stride, wp // model.z_stride))
        reader_z.finish()
        means, scales = _hyper_params(cm, z_hat[None], q)
        delta = step * step_scale(quantizer_name)
        _, m, hy, wy = means.shape
        levels = densities.scale_indices(scales / delta)[0].reshape(m * hy, wy).numpy()
        mult = LATENT_QUANTIZERS.get(quantizer_name)().read(reader_y, levels, cm)
        y_hat = means + delta * torch.from_numpy(mult).view(1, m, hy, wy)
    else:
        y_hat = step * _read_per_channel(reader_y, cm.hyper_tables, (hp // model.y_stride, wp // model.y_stride))[None]
    reader_y.finish()
    with torch.no_grad(), _threads(_SYNTH_THREADS):
        _, g_inv = model.gains(q)
        x_hat = model.synthesise((y_hat * g_inv.to(torch.float64)).to(torch.float32))
    out = torch.round(x_hat[0, :, :h, :w].clamp(0, 1) * 255).to(torch.uint8)
    return np.ascontiguousarray(out.permute(1, 2, 0).numpy())



# --- helpers ------------------------------------------------------------------------------------------

def _padded(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple


def _to_tensor(rgb: np.ndarray, multiple: int) -> torch.Tensor:
    """(1, 3, H', W') in 0..1, edge-padded to multiples of the model's total stride."""
    h, w = rgb.shape[:2]
    x = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255.0
    hp, wp = _padded(h, multiple), _padded(w, multiple)
    return F.pad(x, (0, wp - w, 0, hp - h), mode="replicate") if (hp, wp) != (h, w) else x


@contextmanager
def _threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _hyper_params(cm: CodecModel, z_hat: torch.Tensor, quality: torch.Tensor):
    """μ and σ (float64, CPU) from integer z: identical on every machine that runs this code."""
    with torch.no_grad(), _threads(1):
        model = cm.model
        _, gz_inv = model.gains_z(quality)
        means, scales = cm.h_s64(z_hat * gz_inv.to(torch.float64)).chunk(2, dim=1)
    return means, torch.clamp_min(scales, model.gaussian.scale_bound)


def _code_per_channel(writer: CategoricalWriter, values: torch.Tensor, tables) -> torch.Tensor:
    """Clamp each channel into its table's alphabet, code it, return the clamped integers."""
    out = torch.empty_like(values)
    for ch, table in enumerate(tables):
        v = values[ch].clamp(table.lo, table.hi)
        out[ch] = v
        writer.write(v.to(torch.int64).numpy().reshape(-1), table)
    return out


def _read_per_channel(reader: CategoricalReader, tables, hw: tuple[int, int]) -> torch.Tensor:
    n = hw[0] * hw[1]
    return torch.stack([torch.from_numpy(reader.read(t, n).astype(np.float64)).view(*hw) for t in tables])


# Trellis quantizers reconstruct on a lattice of Δ but each of their two quantizers steps by 2Δ, so at
# the same Δ they spend fewer bits than rounding; this factor makes a given `step` land near the rate
# of rounding at that step, so quality levels keep their meaning across quantizers.
TRELLIS_STEP_SCALE = 0.75
# The search weighs distortion this much more than the loss formula says: the formula ignores the
# post-filter and the colour transform's cross terms. 2 was the best of 0.5/1/2/4 for TCQ on three
# training images (BD-rate vs rounding −1.5/−4.6/−4.6/−3.4 % at the step factor above); see docs.
RDO_WEIGHT = 2.0


def step_scale(quantizer: str) -> float:
    return TRELLIS_STEP_SCALE if quantizer.startswith("tcq") else 1.0


def latent_chains(cm: CodecModel, y: torch.Tensor, means: torch.Tensor, scales: torch.Tensor,
                  quality: torch.Tensor, quantizer: str, step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a latent quantizer works on, for one image (1, M, H, W): the residuals (y − μ)/Δ as M·H
    chains (rows) of length W, the scale grid level of each, and each chain's distortion weight."""
    delta = step * step_scale(quantizer)
    _, m, hy, wy = y.shape
    u = ((y - means) / delta)[0].reshape(m * hy, wy).numpy()
    levels = densities.scale_indices(scales / delta)[0].reshape(m * hy, wy).numpy()
    return u, levels, np.repeat(distortion_weights(cm, quality, delta), hy)


def distortion_weights(cm: CodecModel, quality: torch.Tensor, delta: float) -> np.ndarray:
    """Per latent channel: what a squared error of one unit (of Δ) in that channel costs in the training
    loss's units (bits + λ·255²·MSE per pixel, times the pixel count): λ·255²/3 · synthesis energy · Δ²/g².
    MS-SSIM models have no MSE λ; the MSE λ of the same quality level stands in for theirs."""
    model = cm.model
    lam, metric = model_lambda(cm, quality)
    if metric != "mse":
        lam, _ = model_lambda(None, quality, model.levels)
    with torch.no_grad():
        _, g_inv = model.gains(quality)
        energy = model.synthesis_energy().to(torch.float64)
    w = lam * 255.0 ** 2 / 3.0 * energy * g_inv.flatten().to(torch.float64) ** 2 * delta ** 2
    return RDO_WEIGHT * w.numpy()
