"""The mean-scale hyperprior kind (mbt2018-mean style) and how its latents are coded.

Bitstream (container codec id "learned"): parameters {model, quality, step} and, unless it is
rounding, the latent quantizer's name; the model file's SHA-256 as the model hash; shapes[0] =
(height, width, 3); two streams:
0. z: per channel, every z value of that channel under the channel's table (values outside a table
   are clamped by the encoder, which uses the clamped values itself);
1. y: the integers the latent quantizer chose for (y − μ)/Δ, each under the table of its predicted
   scale's grid level (and, for trellis quantizers, of the quantizer its trellis state selects), in
   the order `latent_quantizers.py` describes. Every table has two escape symbols at its ends; the
   excess of every escaped value follows its group under a fixed heavy-tailed table.

Determinism: the entropy parameters (μ, σ → level) are computed from integer data on the CPU in
float64 by encoder and decoder alike (`hyper_params`, through the float64 copies in
`CodecModel.exact`), and all tables are integers read from the model file, so the symbols decode
identically wherever the file was made. The synthesis runs on the CPU in float32 with a fixed thread
count.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from workbench.core.entropy import CategoricalReader, CategoricalWriter
from workbench.core.errors import BitstreamError
from workbench.core.images import check_rgb
from workbench.core.learned import densities, layers
from workbench.core.learned.densities import FactorizedDensity, GaussianScales
from workbench.core.learned.device import pick_device
from workbench.core.learned.kinds.base import (MODELS, Encoded, ForwardResult, QuantizedLatents, TransformCodingModel,
                                               code_per_channel, file_parameters, pack_image, padded, read_per_channel,
                                               synthesise_pixels, threads, to_tensor)
from workbench.core.learned.latent_quantizers import LATENT_QUANTIZERS
from workbench.core.learned.optimize import model_lambda, refine_latents

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


class HyperpriorCoding:
    """How a hyperprior kind's latents become streams and come back (the bitstream of the module
    docstring). A kind that mixes this in provides `analyse`, `synthesise`, `gains`, `gains_z`, `h_a`,
    `entropy_params`, `density_z`, `gaussian`, `levels`, and may override the hooks below: what the
    hyper-analysis sees, the offsets z is rounded around, and how y is written (the context kind)."""

    latent_quantizers = ("round", "rdoq", "tcq4", "tcq8")
    symbol_modules = ("h_s",)
    stored_tables = ("tables.hyper", "tables.gaussian")      # the trellis tables are optional (older files)

    def hyper_analyse(self, y: torch.Tensor) -> torch.Tensor:
        return self.h_a(y)

    def z_offsets(self) -> torch.Tensor | None:
        """Per-channel values z is rounded around (z ≈ offset + integer); None for 0."""
        return None

    def latent_terms(self, y, z, quality, quantizer, step) -> tuple[torch.Tensor, torch.Tensor]:
        """Bits and x̂ of given (gained) latents under a rounding surrogate whose gradient reaches the
        latents themselves: what per-image optimization descends (`optimize.refine_latents`)."""
        _, gz_inv = self.gains_z(quality)
        _, g_inv = self.gains(quality)
        offsets = self.z_offsets()
        z_t = quantizer(z, step) if offsets is None else \
            offsets.to(z).view(1, -1, 1, 1) + quantizer(z - offsets.to(z).view(1, -1, 1, 1), step)
        bits_z = -torch.log2(self.density_z.likelihood(z_t)).sum()
        means, scales = self.entropy_params(z_t * gz_inv)
        residual = quantizer(y - means, step)
        bits_y = -torch.log2(self.gaussian.likelihood(residual, scales)).sum()
        return bits_y + bits_z, self.synthesise((means + residual) * g_inv)

    def coding_tables(self):
        q0, q1 = densities.trellis_tables()
        return {"tables.hyper": self.density_z.tables(), "tables.gaussian": densities.gaussian_tables(),
                "tables.tcq0": q0, "tables.tcq1": q1}

    # --- coding --------------------------------------------------------------------------------
    def compress(self, cm, rgb, options):
        """Without `options.optimize` this yields nothing; with it, one progress event per step."""
        self.check_tools(options)
        rgb = check_rgb(rgb)
        h, w = rgb.shape[:2]
        device = pick_device(options.device)
        x = to_tensor(rgb, self.z_stride)
        quality = torch.tensor([self.rate_point(options.quality)])
        with torch.no_grad():
            try:
                self.to(device)
                g, _ = self.gains(quality.to(device))
                y = (self.analyse(x.to(device)) * g).to("cpu", torch.float64)
                gz, _ = self.gains_z(quality.to(device))
                z = (self.hyper_analyse(y.to(device, torch.float32)) * gz).to("cpu", torch.float64)
            finally:
                self.to("cpu")
        if options.optimize:
            y, z = yield from refine_latents(cm, x, y, z, quality, options.optimize, (h, w), device)
        writer_z, writer_y = CategoricalWriter(), CategoricalWriter()
        offsets = self.z_offsets()
        offsets = torch.zeros(z.shape[1], 1, 1, dtype=torch.float64) if offsets is None else \
            offsets.to(torch.float64).view(-1, 1, 1)
        z_int = code_per_channel(writer_z, torch.round(z[0] - offsets), cm.hyper_tables)
        z_hat = z_int + offsets
        means, scales = self.hyper_params(cm, z_hat[None], quality)
        quantizer = LATENT_QUANTIZERS.get(options.quantizer)(device)
        _, bits_y = self.write_latents(cm, writer_y, y, means, scales, quality, quantizer, float(options.step))
        with torch.no_grad():
            bits_z = float(-torch.log2(self.density_z.likelihood(z_hat[None].to(torch.float32))).sum())
        params = {"model": cm.name, "quality": float(quality[0]), "step": float(options.step)}
        if options.quantizer != "round":
            params["quantizer"] = options.quantizer
        return Encoded(pack_image(cm, params, (h, w), [writer_z.finish(), writer_y.finish()]), bits_y + bits_z)

    def decompress(self, cm, c):
        quality, step, quantizer_name = file_parameters(c, streams=2)
        if quantizer_name not in LATENT_QUANTIZERS:
            raise BitstreamError(f"unknown latent quantizer {quantizer_name!r} in the file")
        if not (1 <= quality <= self.levels and 0.25 <= step <= 8):
            raise BitstreamError("learned-codec parameters are out of range")
        h, w = c.shapes[0][:2]
        q = torch.tensor([quality])
        reader_z, reader_y = CategoricalReader(c.streams[0]), CategoricalReader(c.streams[1])
        z_hat = read_per_channel(reader_z, cm.hyper_tables,
                                 (padded(h, self.z_stride) // self.z_stride, padded(w, self.z_stride) // self.z_stride))
        reader_z.finish()
        offsets = self.z_offsets()
        if offsets is not None:
            z_hat = z_hat + offsets.to(torch.float64).view(-1, 1, 1)
        means, scales = self.hyper_params(cm, z_hat[None], q)
        y_hat = self.read_latents(cm, reader_y, means, scales, q, LATENT_QUANTIZERS.get(quantizer_name)(), step)
        reader_y.finish()
        _, g_inv = self.gains(q)
        return synthesise_pixels(self, y_hat, g_inv, (h, w))

    def hyper_params(self, cm, z_hat: torch.Tensor, quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """μ and σ (float64, CPU) from integer z: identical on every machine that runs this code."""
        with torch.no_grad(), threads(1):
            _, gz_inv = self.gains_z(quality)
            means, scales = self.entropy_params(z_hat * gz_inv.to(torch.float64), cm.exact.h_s)
        return means, torch.clamp_min(scales, self.gaussian.scale_bound)

    def write_latents(self, cm, writer: CategoricalWriter, y, means, scales, quality, quantizer, step: float
                      ) -> tuple[torch.Tensor, float]:
        """Quantize and code y (float64, gained) given its entropy parameters; returns ŷ as the decoder
        will see it and the ideal bits of what was written. The context kind overrides this."""
        delta = step * step_scale(quantizer.name)
        recon, bits = quantizer.write(writer, *self.latent_chains(cm, y, means, scales, quality, quantizer.name,
                                                                  step), cm)
        return means + delta * torch.from_numpy(recon).view(means.shape), bits

    def decide_latents(self, cm, y, means, scales, quality, quantizer, step: float
                       ) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]:
        """What `write_latents` would code for one image, without coding: (μ, nominal x̂ in multiples of Δ,
        quantizer, scale level), each shaped like y. The context kind overrides this."""
        u, levels, weights = self.latent_chains(cm, y, means, scales, quality, quantizer.name, step)
        nominal, quant = quantizer.decide(u, levels, weights, cm)
        return means, nominal.reshape(y.shape), quant.reshape(y.shape), levels.reshape(y.shape)

    @torch.no_grad()
    def quantized_latents(self, cm, x, quality, quantizer) -> QuantizedLatents:
        g, _ = self.gains(quality)
        y = (self.analyse(x) * g).double()
        gz, _ = self.gains_z(quality)
        z = (self.hyper_analyse(y.float()) * gz).double()
        offsets = self.z_offsets()
        offsets = 0.0 if offsets is None else offsets.to(torch.float64).view(1, -1, 1, 1)
        lo, hi = (torch.tensor([getattr(t, end) for t in cm.hyper_tables], dtype=torch.float64).view(1, -1, 1, 1)
                  for end in ("lo", "hi"))
        z_hat = torch.maximum(torch.minimum(torch.round(z - offsets), hi), lo) + offsets    # as `compress` codes it
        out = [torch.empty(y.shape, dtype=dt) for dt in (torch.float32, torch.float32, torch.int64, torch.int64)]
        for i in range(x.shape[0]):
            q = quality[i:i + 1]
            means, scales = self.hyper_params(cm, z_hat[i:i + 1], q)
            for t, v in zip(out, self.decide_latents(cm, y[i:i + 1], means, scales, q, quantizer, 1.0)):
                t[i] = torch.as_tensor(v)[0]
        return QuantizedLatents(*out, delta=step_scale(quantizer.name))

    def read_latents(self, cm, reader: CategoricalReader, means, scales, quality, quantizer, step: float
                     ) -> torch.Tensor:
        delta = step * step_scale(quantizer.name)
        _, m, hy, wy = means.shape
        levels = densities.scale_indices(scales / delta)[0].reshape(m * hy, wy).numpy()
        return means + delta * torch.from_numpy(quantizer.read(reader, levels, cm)).view(1, m, hy, wy)

    def latent_chains(self, cm, y: torch.Tensor, means: torch.Tensor, scales: torch.Tensor,
                      quality: torch.Tensor, quantizer: str, step: float, channels: list[int] | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What a latent quantizer works on, for one image (1, C, H, W): the residuals (y − μ)/Δ as C·H
        chains (rows) of length W, the scale grid level of each, and each chain's distortion weight.
        `channels` says which latent channels y holds when it is not all of them."""
        delta = step * step_scale(quantizer)
        _, m, hy, wy = y.shape
        u = ((y - means) / delta)[0].reshape(m * hy, wy).numpy()
        levels = densities.scale_indices(scales / delta)[0].reshape(m * hy, wy).numpy()
        weights = self.distortion_weights(cm, quality, delta)
        return u, levels, np.repeat(weights if channels is None else weights[channels], hy)

    def distortion_weights(self, cm, quality: torch.Tensor, delta: float) -> np.ndarray:
        """Per latent channel: what a squared error of one unit (of Δ) in that channel costs in the training
        loss's units (bits + λ·255²·MSE per pixel, times the pixel count): λ·255²/3 · synthesis energy · Δ²/g².
        MS-SSIM models have no MSE λ; the MSE λ of the same quality level stands in for theirs."""
        lam, metric = model_lambda(cm, quality)
        if metric != "mse":
            lam, _ = model_lambda(None, quality, self.levels)
        with torch.no_grad():
            _, g_inv = self.gains(quality)
            energy = self.synthesis_energy().to(torch.float64)
        w = lam * 255.0 ** 2 / 3.0 * energy * g_inv.flatten().to(torch.float64) ** 2 * delta ** 2
        return RDO_WEIGHT * w.numpy()


def surrogate_residual(y, means, surrogate, step: int, zero_center: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(ỹ, ỹ − μ) through a training surrogate.

    Zero-center quantization: the surrogate acts on the residual y − μ, so its offset (what rounding
    adds) depends on μ, but the offset is gradient-free and the reconstruction is y + offset. That is
    the partial stop-gradient: μ gets its gradient from the rate alone, as at inference, where
    μ + round(y − μ) lands next to y whatever μ is. (Letting the reconstruction's gradient reach μ as
    well — ŷ = μ + Q(y − sg(μ)) — made training diverge within 40 steps here: the surrogate then
    claims μ moves ŷ, which rounding undoes.)"""
    if zero_center:
        offset = (surrogate(y - means, step) - (y - means)).detach()
        return y + offset, y - means + offset
    y_tilde = surrogate(y, step)
    return y_tilde, y_tilde - means


@MODELS.register
class MeanScaleHyperprior(HyperpriorCoding, TransformCodingModel):
    """mbt2018-mean style: a hyperprior z predicts a mean and a scale per latent; z has its own
    factorized density. Gain units act on y and (with their own gains) on z."""

    name = "hyperprior"
    label = "Mean-scale hyperprior (Minnen 2018)"
    supports_optimize = True
    supports_finetune = True
    decoder_parameters = ("g_s", "log_inv_gain")

    def __init__(self, n: int = 64, m: int = 128, levels: int = 8, scale_bound: float = 0.11):
        super().__init__(n, m, levels, scale_bound)
        self.h_a, self.h_s = self.build_hyper(n, m)
        self.density_z = FactorizedDensity(n)
        self.gaussian = GaussianScales(scale_bound)
        ramp = torch.linspace(-0.3, 0.3, levels).view(levels, 1) if levels > 1 else torch.zeros(1, 1)
        self.log_gain_z = nn.Parameter(ramp.repeat(1, n))
        self.log_inv_gain_z = nn.Parameter(-ramp.repeat(1, n))

    def build_transforms(self, n: int, m: int) -> tuple[nn.Module, nn.Module]:
        return layers.analysis(n, m), layers.synthesis(n, m)

    def build_hyper(self, n: int, m: int) -> tuple[nn.Module, nn.Module]:
        act = lambda: nn.LeakyReLU(inplace=True)
        h_a = nn.Sequential(layers.conv(m, n, 3, 1), act(), layers.conv(n, n), act(), layers.conv(n, n))
        h_s = nn.Sequential(layers.deconv(n, m), act(), layers.deconv(m, m * 3 // 2), act(),
                            layers.conv(m * 3 // 2, 2 * m, 3, 1))
        return h_a, h_s

    def gains_z(self, quality):
        return self._interp(self.log_gain_z, quality), self._interp(self.log_inv_gain_z, quality)

    def entropy_params(self, z_hat_scaled: torch.Tensor, h_s: nn.Module | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, σ) of y from the un-gained ẑ; the coder passes the float64 copy of h_s."""
        means, scales = (h_s or self.h_s)(z_hat_scaled).chunk(2, dim=1)
        return means, scales

    def hyper_pass(self, x, quality, hard: bool):
        """The training pass up to y's entropy parameters: gained y, its gains, μ, σ and z's bits. z uses
        additive noise in training (its rate is small); `hard` rounds it as inference does."""
        g, g_inv = self.gains(quality)
        gz, gz_inv = self.gains_z(quality)
        y = self.analyse(x) * g
        z = self.h_a(y) * gz
        z_tilde = torch.round(z) if hard else z + torch.empty_like(z).uniform_(-0.5, 0.5)
        bits_z = -torch.log2(self.density_z.likelihood(z_tilde)).sum(dim=(1, 2, 3))
        means, scales = self.entropy_params(z_tilde * gz_inv)
        return y, g, g_inv, means, scales, bits_z, y[0].numel() + z[0].numel()

    def forward(self, x, quality, surrogate, step, zero_center=True, hard=False) -> ForwardResult:
        y, _, g_inv, means, scales, bits_z, latents = self.hyper_pass(x, quality, hard)
        y_tilde, residual = surrogate_residual(y, means, surrogate, step, zero_center)
        bits_y = -torch.log2(self.gaussian.likelihood(residual, scales)).sum(dim=(1, 2, 3))
        return ForwardResult(self.synthesise(y_tilde * g_inv), bits_y, bits_z, latents)

