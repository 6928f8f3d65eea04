"""The DCT hyperprior kind: a mean-scale hyperprior over a fixed orthonormal 8×8 block DCT.

It codes its latents exactly as `MeanScaleHyperprior` does (same bitstream); only the transforms differ.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from workbench.core.learned import layers
from workbench.core.learned.kinds.base import MODELS
from workbench.core.learned.kinds.hyperprior import MeanScaleHyperprior


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
    y_stride = 8
    z_stride = 32
    decoder_parameters = ("g_s", "post", "log_inv_gain")

    def __init__(self, n: int = 64, m: int = 192, levels: int = 8, scale_bound: float = 0.11):
        if m != 192:
            raise ValueError("the 8x8 DCT model has exactly 192 latent channels (64 coefficients x 3 colours)")
        super().__init__(n, m, levels, scale_bound)
        self.post = PostFilter()
        # DCT coefficients of 0..1 images are up to ~8 (DC) and mostly well below 1: start with gains
        # that make the middle level quantize like JPEG at moderate quality.
        ramp = torch.linspace(1.6, 4.0, levels).view(levels, 1) if levels > 1 else torch.full((1, 1), 2.8)
        with torch.no_grad():
            self.log_gain.copy_(ramp.repeat(1, m))
            self.log_inv_gain.copy_(-ramp.repeat(1, m))

    def build_transforms(self, n: int, m: int) -> tuple[nn.Module, nn.Module]:
        return BlockDCT(inverse=False), BlockDCT(inverse=True)

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


class BlockDCT(nn.Module):
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


class PostFilter(nn.Module):
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
