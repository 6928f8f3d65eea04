"""Building blocks of the transform-coding networks.

GDN is the normalisation of Ballé et al. (2016): y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2).
beta and gamma must stay positive; they are stored as square roots offset by a small pedestal (as in
the paper's reparametrisation), which keeps gradients well-behaved near zero without any clipping
step outside autograd.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

_PEDESTAL = 2.0 ** -18


class GDN(nn.Module):
    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self._beta_bound = (beta_min + _PEDESTAL) ** 0.5
        self.beta = nn.Parameter(torch.sqrt(torch.ones(channels) + _PEDESTAL))
        self.gamma = nn.Parameter(torch.sqrt(gamma_init * torch.eye(channels) + _PEDESTAL))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = torch.clamp_min(self.beta, self._beta_bound) ** 2 - _PEDESTAL
        gamma = torch.clamp_min(self.gamma, _PEDESTAL ** 0.5) ** 2 - _PEDESTAL
        c = gamma.shape[0]
        norm = F.conv2d(x * x, gamma.view(c, c, 1, 1), beta)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1)


def analysis(n: int, m: int) -> nn.Sequential:
    """Four stride-2 convolutions with GDN: 16x downsampling, as in bmshj2018."""
    return nn.Sequential(conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m))


def synthesis(n: int, m: int) -> nn.Sequential:
    return nn.Sequential(deconv(m, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True),
                         deconv(n, n), GDN(n, inverse=True), deconv(n, 3))
