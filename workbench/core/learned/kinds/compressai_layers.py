"""Layers whose parameter and buffer names match CompressAI 1.2.8's, so its checkpoints load as they are.

Written from CompressAI's documented facts (names, shapes, formulas), not its code. The numerics follow
CompressAI's forward pass operation by operation, so an imported model computes what it computed when
it was trained:

- GDN keeps `beta` and `gamma` in their stored (reparametrised) form: the effective value is
  max(p, bound)² − pedestal, with `bound` and `pedestal` persistent one-element float32 buffers
  (`beta_reparam.pedestal`, `beta_reparam.lower_bound.bound`, and the same under `gamma_reparam`),
  read from the checkpoint rather than recomputed, because checkpoints carry them.
- The lower bound's gradient is CompressAI's: it passes where the input is at or above the bound, or
  where the gradient pushes the input upwards, so finetuning an imported decoder behaves as training did.
- MaskedConv2d's `mask` is a persistent buffer (it is in every checkpoint); the weight is multiplied by
  it on every call instead of being overwritten in place, which gives the same values.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

REPARAM_OFFSET = 2.0 ** -18


class _LowerBoundGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, bound)
        return torch.max(x, bound)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, bound = ctx.saved_tensors
        return grad * ((x >= bound) | (grad < 0)), None


class LowerBound(nn.Module):
    def __init__(self, bound: float):
        super().__init__()
        self.register_buffer("bound", torch.tensor([float(bound)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _LowerBoundGrad.apply(x, self.bound)


class NonNegative(nn.Module):
    """Maps a stored value p to max(p, sqrt(minimum + pedestal))² − pedestal (always ≥ minimum)."""

    def __init__(self, minimum: float = 0.0):
        super().__init__()
        pedestal = REPARAM_OFFSET ** 2
        self.register_buffer("pedestal", torch.tensor([pedestal]))
        self.lower_bound = LowerBound((minimum + pedestal) ** 0.5)

    def stored(self, value: torch.Tensor) -> torch.Tensor:
        """The stored form of an effective value (used only to initialise fresh layers)."""
        return torch.sqrt(torch.max(value + self.pedestal, self.pedestal))

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return self.lower_bound(p) ** 2 - self.pedestal


class GDN(nn.Module):
    """y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j²); the inverse multiplies by the root instead."""

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self.beta_reparam = NonNegative(beta_min)
        self.gamma_reparam = NonNegative()
        self.beta = nn.Parameter(self.beta_reparam.stored(torch.ones(channels)))
        self.gamma = nn.Parameter(self.gamma_reparam.stored(gamma_init * torch.eye(channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        beta = self.beta_reparam(self.beta)
        gamma = self.gamma_reparam(self.gamma).reshape(c, c, 1, 1)
        norm = F.conv2d(x ** 2, gamma, beta)
        return x * (torch.sqrt(norm) if self.inverse else torch.rsqrt(norm))


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride)


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


def subpel_conv3x3(cin: int, cout: int, r: int = 1) -> nn.Sequential:
    """Upsampling by r: a 3×3 convolution to cout·r² channels, then pixel shuffle (keys `0.weight`, `0.bias`)."""
    return nn.Sequential(nn.Conv2d(cin, cout * r * r, 3, padding=1), nn.PixelShuffle(r))


class MaskedConv2d(nn.Conv2d):
    """A convolution that sees only positions before the centre in raster order: type A hides the
    centre too (the context model's first layer), type B keeps it."""

    def __init__(self, *args, mask_type: str = "A", **kwargs):
        super().__init__(*args, **kwargs)
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', not {mask_type!r}")
        mask = torch.ones_like(self.weight.data)
        h, w = mask.shape[-2:]
        mask[:, :, h // 2, w // 2 + (mask_type == "B"):] = 0
        mask[:, :, h // 2 + 1:] = 0
        self.register_buffer("mask", mask)

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.masked_weight(), self.bias)


class ResidualBlockWithStride(nn.Module):
    """conv3x3(stride) → LeakyReLU → conv3x3 → GDN, plus a 1×1 (strided) skip when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 2):
        super().__init__()
        self.conv1 = conv3x3(cin, cout, stride)
        self.leaky_relu = nn.LeakyReLU()
        self.conv2 = conv3x3(cout, cout)
        self.gdn = GDN(cout)
        self.skip = conv1x1(cin, cout, stride) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.gdn(self.conv2(self.leaky_relu(self.conv1(x))))
        return out + (x if self.skip is None else self.skip(x))


class ResidualBlockUpsample(nn.Module):
    """Sub-pixel conv → LeakyReLU → conv3x3 → inverse GDN, plus a sub-pixel conv skip (`upsample`)."""

    def __init__(self, cin: int, cout: int, upsample: int = 2):
        super().__init__()
        self.subpel_conv = subpel_conv3x3(cin, cout, upsample)
        self.leaky_relu = nn.LeakyReLU()
        self.conv = conv3x3(cout, cout)
        self.igdn = GDN(cout, inverse=True)
        self.upsample = subpel_conv3x3(cin, cout, upsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.igdn(self.conv(self.leaky_relu(self.subpel_conv(x))))
        return out + self.upsample(x)


class ResidualBlock(nn.Module):
    """conv3x3 → LeakyReLU → conv3x3 → LeakyReLU, plus the input (through a 1×1 conv if channels change)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = conv3x3(cin, cout)
        self.leaky_relu = nn.LeakyReLU()
        self.conv2 = conv3x3(cout, cout)
        self.skip = conv1x1(cin, cout) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.leaky_relu(self.conv2(self.leaky_relu(self.conv1(x))))
        return out + (x if self.skip is None else self.skip(x))


class _ResidualUnit(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.conv = nn.Sequential(conv1x1(n, n // 2), nn.ReLU(), conv3x3(n // 2, n // 2), nn.ReLU(),
                                  conv1x1(n // 2, n))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x) + x)


class AttentionBlock(nn.Module):
    """Cheng et al.'s simplified attention: x + trunk(x) · sigmoid(mask branch(x)), each branch three
    residual units (the mask branch ends in a 1×1 conv)."""

    def __init__(self, n: int):
        super().__init__()
        self.conv_a = nn.Sequential(_ResidualUnit(n), _ResidualUnit(n), _ResidualUnit(n))
        self.conv_b = nn.Sequential(_ResidualUnit(n), _ResidualUnit(n), _ResidualUnit(n), conv1x1(n, n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_a(x) * torch.sigmoid(self.conv_b(x)) + x
