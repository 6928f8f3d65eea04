"""Transform-coding models with a continuous rate knob (gain units, Cui et al. 2021).

One network covers the whole rate range: per quality level l it learns a gain vector applied to the
latent before quantization and an inverse gain applied after, so larger gains mean finer effective
quantization. A fractional quality interpolates two neighbouring levels geometrically, which gives
the app a continuous quality slider and target-size search for the price of one trained model.

`forward` is the training path (surrogate quantization, differentiable likelihoods). The coding path
(`workbench/core/learned/coding.py`) calls the same sub-networks with hard rounding, and computes
the entropy parameters on the CPU in float64 on encoder and decoder alike, so a file made on a GPU
decodes to the same symbols on a CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from workbench.core.learned import layers
from workbench.core.learned.densities import FactorizedDensity, GaussianScales
from workbench.core.registry import Registry

MSE_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
MSSSIM_LAMBDAS = (2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.0)


def interpolate_levels(values: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Per-image rows for qualities in [1, L]: linear between the rows of `values` (L, ...) around each
    quality. Applied to logarithms (of gains, of λ) it is the geometric interpolation that makes a
    fractional quality land between its two neighbouring levels."""
    levels = values.shape[0]
    if levels == 1:
        return values[0].expand(quality.shape[0], *values.shape[1:])
    q = quality.to(values.dtype).clamp(1, levels) - 1
    lo = q.floor().long().clamp(max=levels - 2)
    t = (q - lo).view(-1, *([1] * (values.dim() - 1)))
    return (1 - t) * values[lo] + t * values[lo + 1]


@dataclass
class ForwardResult:
    x_hat: torch.Tensor
    bits_y: torch.Tensor      # per image
    bits_z: torch.Tensor      # per image
    latents: int              # number of latent elements (y and z) per image


class TransformCodingModel(nn.Module):
    """Base of the registered architectures; `synthesise` is what a decoder runs on ŷ (un-gained)."""

    name: ClassVar[str]
    label: ClassVar[str]
    has_hyperprior: ClassVar[bool]
    y_stride: ClassVar[int] = 16     # pixels per latent position along each axis
    z_stride: ClassVar[int] = 64     # pixels per hyper-latent position (what images are padded to)

    def __init__(self, n: int = 64, m: int = 128, levels: int = 8, scale_bound: float = 0.11):
        super().__init__()
        self.n, self.m, self.levels = n, m, levels
        self.config = {"n": n, "m": m, "levels": levels, "scale_bound": scale_bound}
        self.g_a, self.g_s = self.build_transforms(n, m)
        # Gains start spread out so the levels differ from the first step (λ spans 100x: gains ~3x).
        ramp = torch.linspace(-0.6, 0.6, levels).view(levels, 1) if levels > 1 else torch.zeros(1, 1)
        self.log_gain = nn.Parameter(ramp.repeat(1, m))
        self.log_inv_gain = nn.Parameter(-ramp.repeat(1, m))

    def build_transforms(self, n: int, m: int) -> tuple[nn.Module, nn.Module]:
        return layers.analysis(n, m), layers.synthesis(n, m)

    def synthesise(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.g_s(y_hat)

    def synthesis_energy(self) -> torch.Tensor:
        """Squared-error gain from each (un-gained) latent channel to the pixels, for encoder-side
        rate-distortion decisions. A nonlinear synthesis has no single value; 1 is the neutral guess."""
        return torch.ones(self.m)

    # --- gains ---------------------------------------------------------------------------------
    def _interp(self, table: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        """Gains for per-image qualities in [1, levels] (N,) -> (N, C, 1, 1)."""
        return torch.exp(interpolate_levels(table, quality))[:, :, None, None]

    def gains(self, quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._interp(self.log_gain, quality), self._interp(self.log_inv_gain, quality)


MODELS: Registry[TransformCodingModel] = Registry("model architecture")


@MODELS.register
class FactorizedPrior(TransformCodingModel):
    """bmshj2018-factorized with gain units: y is coded with a per-channel learned density."""

    name = "factorized"
    label = "Factorized prior (Ballé 2018)"
    has_hyperprior = False

    def __init__(self, n: int = 64, m: int = 128, levels: int = 8, scale_bound: float = 0.11):
        super().__init__(n, m, levels, scale_bound)
        self.density_y = FactorizedDensity(m)

    def forward(self, x, quality, surrogate, step, zero_center=True, hard=False) -> ForwardResult:
        g, g_inv = self.gains(quality)
        y = self.g_a(x) * g
        y_tilde = surrogate(y, step)
        bits_y = -torch.log2(self.density_y.likelihood(y_tilde)).sum(dim=(1, 2, 3))
        x_hat = self.g_s(y_tilde * g_inv)
        return ForwardResult(x_hat, bits_y, torch.zeros_like(bits_y), y[0].numel())


@MODELS.register
class MeanScaleHyperprior(TransformCodingModel):
    """mbt2018-mean style: a hyperprior z predicts a mean and a scale per latent; z has its own
    factorized density. Gain units act on y and (with their own gains) on z."""

    name = "hyperprior"
    label = "Mean-scale hyperprior (Minnen 2018)"
    has_hyperprior = True

    def __init__(self, n: int = 64, m: int = 128, levels: int = 8, scale_bound: float = 0.11):
        super().__init__(n, m, levels, scale_bound)
        self.h_a, self.h_s = self.build_hyper(n, m)
        self.density_z = FactorizedDensity(n)
        self.gaussian = GaussianScales(scale_bound)
        ramp = torch.linspace(-0.3, 0.3, levels).view(levels, 1) if levels > 1 else torch.zeros(1, 1)
        self.log_gain_z = nn.Parameter(ramp.repeat(1, n))
        self.log_inv_gain_z = nn.Parameter(-ramp.repeat(1, n))

    def build_hyper(self, n: int, m: int) -> tuple[nn.Module, nn.Module]:
        act = lambda: nn.LeakyReLU(inplace=True)
        h_a = nn.Sequential(layers.conv(m, n, 3, 1), act(), layers.conv(n, n), act(), layers.conv(n, n))
        h_s = nn.Sequential(layers.deconv(n, m), act(), layers.deconv(m, m * 3 // 2), act(),
                            layers.conv(m * 3 // 2, 2 * m, 3, 1))
        return h_a, h_s

    def gains_z(self, quality):
        return self._interp(self.log_gain_z, quality), self._interp(self.log_inv_gain_z, quality)

    def entropy_params(self, z_hat_scaled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        means, scales = self.h_s(z_hat_scaled).chunk(2, dim=1)
        return means, scales

    def forward(self, x, quality, surrogate, step, zero_center=True, hard=False) -> ForwardResult:
        g, g_inv = self.gains(quality)
        gz, gz_inv = self.gains_z(quality)
        y = self.g_a(x) * g
        z = self.h_a(y) * gz
        # z uses additive noise in training (its rate is small); `hard` rounds it as inference does.
        z_tilde = torch.round(z) if hard else z + torch.empty_like(z).uniform_(-0.5, 0.5)
        bits_z = -torch.log2(self.density_z.likelihood(z_tilde)).sum(dim=(1, 2, 3))
        means, scales = self.entropy_params(z_tilde * gz_inv)
        # Zero-center quantization: the surrogate acts on the residual y − μ, so its offset (what
        # rounding adds) depends on μ, but the offset is gradient-free and the reconstruction is
        # y + offset. That is the partial stop-gradient: μ gets its gradient from the rate alone, as
        # at inference, where μ + round(y − μ) lands next to y whatever μ is. (Letting the
        # reconstruction's gradient reach μ as well — ŷ = μ + Q(y − sg(μ)) — made training diverge
        # within 40 steps here: the surrogate then claims μ moves ŷ, which rounding undoes.)
        if zero_center:
            offset = (surrogate(y - means, step) - (y - means)).detach()
            residual = y - means + offset
            y_tilde = y + offset
        else:
            y_tilde = surrogate(y, step)
            residual = y_tilde - means
        bits_y = -torch.log2(self.gaussian.likelihood(residual, scales)).sum(dim=(1, 2, 3))
        x_hat = self.g_s(y_tilde * g_inv)
        return ForwardResult(x_hat, bits_y, bits_z, y[0].numel() + z[0].numel())


@MODELS.register
class DCTHyperprior(MeanScaleHyperprior):
    """A mean-scale hyperprior over a fixed orthonormal 8×8 block DCT, with a learned colour transform
    and a learned post-filter: the variant that trains to a useful codec in CPU-hours.

    Why: the GDN transforms of bmshj2018 need 10^5–10^6 steps to leave the blurry regime, which a
    2-core CPU cannot give (here 4 000 steps left their autoencoder at 23 dB even without
    quantization). A complete orthonormal transform is lossless from the first step, so training only
    has to learn what makes a codec good on top of it: per-level, per-coefficient gains (learned
    quantization matrices, one set per quality level), the hyperprior's adaptive mean and scale for
    every coefficient, the colour transform (initialised to YCbCr) and a residual post-filter that
    removes blocking (initialised to output zero, so the model starts as a plain DCT codec).
    """

    name = "dct-hyperprior"
    label = "DCT mean-scale hyperprior with post-filter"
    has_hyperprior = True
    y_stride = 8
    z_stride = 32

    def __init__(self, n: int = 64, m: int = 192, levels: int = 8, scale_bound: float = 0.11):
        if m != 192:
            raise ValueError("the 8x8 DCT model has exactly 192 latent channels (64 coefficients x 3 colours)")
        super().__init__(n, m, levels, scale_bound)
        self.post = _PostFilter()
        # DCT coefficients of 0..1 images are up to ~8 (DC) and mostly well below 1: start with gains
        # that make the middle level quantize like JPEG at moderate quality.
        ramp = torch.linspace(1.6, 4.0, levels).view(levels, 1) if levels > 1 else torch.full((1, 1), 2.8)
        with torch.no_grad():
            self.log_gain.copy_(ramp.repeat(1, m))
            self.log_inv_gain.copy_(-ramp.repeat(1, m))

    def build_transforms(self, n: int, m: int) -> tuple[nn.Module, nn.Module]:
        return _BlockDCT(inverse=False), _BlockDCT(inverse=True)

    def build_hyper(self, n: int, m: int) -> tuple[nn.Module, nn.Module]:
        h_a, _ = super().build_hyper(n, m)
        act = lambda: nn.LeakyReLU(inplace=True)    # narrower than the GDN model's: m = 192 is fixed here
        h_s = nn.Sequential(layers.deconv(n, n * 2), act(), layers.deconv(n * 2, m), act(),
                            layers.conv(m, 2 * m, 3, 1))
        return h_a, h_s

    def synthesise(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.post(self.g_s(y_hat))

    def synthesis_energy(self) -> torch.Tensor:
        """The DCT is orthonormal, so a coefficient's error reaches the pixels scaled by its colour's
        column of the inverse colour transform: energy = that column's squared norm (post-filter ignored)."""
        colour = self.g_s.colour.detach()
        return (colour ** 2).sum(0).repeat_interleave(64)

    def forward(self, x, quality, surrogate, step, zero_center=True, hard=False) -> ForwardResult:
        res = super().forward(x, quality, surrogate, step, zero_center, hard)
        res.x_hat = self.post(res.x_hat)
        return res


class _BlockDCT(nn.Module):
    """Colour transform + orthonormal 8×8 DCT per channel as one stride-8 convolution (or its inverse)."""

    def __init__(self, inverse: bool):
        super().__init__()
        self.inverse = inverse
        n = torch.arange(8, dtype=torch.float64)
        basis = torch.cos(math.pi * (2 * n[None, :] + 1) * n[:, None] / 16) * math.sqrt(2 / 8)
        basis[0] /= math.sqrt(2)
        block = torch.einsum("ui,vj->uvij", basis, basis).reshape(64, 1, 8, 8).float()
        self.register_buffer("block", block, persistent=False)
        ycbcr = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
        self.colour = nn.Parameter(torch.linalg.inv(ycbcr) if inverse else ycbcr)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if not self.inverse:
            c = torch.einsum("ij,njhw->nihw", self.colour, t - 0.5)
            n, _, h, w = c.shape
            coeffs = F.conv2d(c.reshape(n * 3, 1, h, w), self.block, stride=8)
            return coeffs.reshape(n, 192, h // 8, w // 8)
        n, _, h, w = t.shape
        pix = F.conv_transpose2d(t.reshape(n * 3, 64, h, w), self.block, stride=8).reshape(n, 3, h * 8, w * 8)
        return torch.einsum("ij,njhw->nihw", self.colour, pix) + 0.5


class _PostFilter(nn.Module):
    """x + f(x) with f a small CNN at half resolution (space-to-depth keeps it cheap); f starts at 0."""

    def __init__(self, width: int = 48):
        super().__init__()
        self.body = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(12, width, 3, padding=1), nn.LeakyReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(inplace=True),
                                  nn.Conv2d(width, 12, 3, padding=1), nn.PixelShuffle(2))
        nn.init.zeros_(self.body[-2].weight)
        nn.init.zeros_(self.body[-2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def build_model(name: str, **config) -> TransformCodingModel:
    return MODELS.get(name)(**config)


# Registered here so that every user of MODELS sees it (it reuses this module's DCT pieces).
from workbench.core.learned import models_shvq  # noqa: E402,F401
