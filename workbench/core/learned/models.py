"""Transform-coding models with a continuous rate knob (gain units, Cui et al. 2021).

One network covers the whole rate range: per quality level l it learns a gain vector applied to the
latent before quantization and an inverse gain applied after, so larger gains mean finer effective
quantization. A fractional quality interpolates two neighbouring levels geometrically, which gives
the app a continuous quality slider and target-size search for the price of one trained model.

`forward` is the training path (surrogate quantization, differentiable likelihoods). The coding path
(`LearnedCodec` in `codec.py`) uses `analyse`, `hyper_params` and `synthesise` with hard rounding.
The entropy parameters are always computed on the CPU in float64 (`hyper_params`), on encoder and
decoder alike, so a file made on a GPU decodes to the same symbols on a CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from workbench.core.learned import layers
from workbench.core.learned.densities import FactorizedDensity, GaussianScales
from workbench.core.registry import Registry

MSE_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
MSSSIM_LAMBDAS = (2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.0)


@dataclass
class ForwardResult:
    x_hat: torch.Tensor
    bits_y: torch.Tensor      # per image
    bits_z: torch.Tensor      # per image
    latents: int              # number of latent elements (y and z) per image


class TransformCodingModel(nn.Module):
    name: ClassVar[str]
    label: ClassVar[str]
    has_hyperprior: ClassVar[bool]

    def __init__(self, n: int = 64, m: int = 128, levels: int = 8, scale_bound: float = 0.11):
        super().__init__()
        self.n, self.m, self.levels = n, m, levels
        self.config = {"n": n, "m": m, "levels": levels, "scale_bound": scale_bound}
        self.g_a = layers.analysis(n, m)
        self.g_s = layers.synthesis(n, m)
        # Gains start spread out so the levels differ from the first step (λ spans 100x: gains ~3x).
        ramp = torch.linspace(-0.6, 0.6, levels).view(levels, 1) if levels > 1 else torch.zeros(1, 1)
        self.log_gain = nn.Parameter(ramp.repeat(1, m))
        self.log_inv_gain = nn.Parameter(-ramp.repeat(1, m))

    # --- gains ---------------------------------------------------------------------------------
    def _interp(self, table: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        """Gains for per-image qualities in [1, levels] (N,) -> (N, C, 1, 1)."""
        if self.levels == 1:
            return torch.exp(table[0]).expand(quality.shape[0], -1)[:, :, None, None]
        q = quality.clamp(1, self.levels) - 1
        lo = q.floor().long().clamp(max=self.levels - 2)
        t = (q - lo).unsqueeze(1)
        g = torch.exp((1 - t) * table[lo] + t * table[lo + 1])
        return g[:, :, None, None]

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
        act = lambda: nn.LeakyReLU(inplace=True)
        self.h_a = nn.Sequential(layers.conv(m, n, 3, 1), act(), layers.conv(n, n), act(), layers.conv(n, n))
        self.h_s = nn.Sequential(layers.deconv(n, m), act(), layers.deconv(m, m * 3 // 2), act(),
                                 layers.conv(m * 3 // 2, 2 * m, 3, 1))
        self.density_z = FactorizedDensity(n)
        self.gaussian = GaussianScales(scale_bound)
        ramp = torch.linspace(-0.3, 0.3, levels).view(levels, 1) if levels > 1 else torch.zeros(1, 1)
        self.log_gain_z = nn.Parameter(ramp.repeat(1, n))
        self.log_inv_gain_z = nn.Parameter(-ramp.repeat(1, n))

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


def build_model(name: str, **config) -> TransformCodingModel:
    return MODELS.get(name)(**config)
