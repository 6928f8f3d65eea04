"""Image quality metrics used by benchmarks and (later) as training losses.

MS-SSIM is implemented here rather than imported so the package does not depend on a test-only
library; it reproduces `pytorch_msssim.ms_ssim(x, y, data_range=255)` (Wang et al. 2003 weights,
11x11 Gaussian with sigma 1.5, 'valid' filtering, zero-padded 2x2 average pooling for odd sizes,
relu on the contrast terms) so numbers stay comparable with published results. The one deliberate
difference: pytorch-msssim builds its Gaussian in float32, whose taps sum to 1 only within ~1e-7,
and that biases its results by a few 1e-7; ours is built in float64.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from workbench.core.errors import ImageError

# Identical images have infinite PSNR / MS-SSIM dB, which JSON cannot hold; 100 dB is far above
# anything a lossy codec reaches, so it reads as "lossless" without special cases downstream.
MAX_DB = 100.0

_PEAK = 255.0
_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_WIN, _SIGMA = 11, 1.5
_C1 = (0.01 * _PEAK) ** 2
_C2 = (0.03 * _PEAK) ** 2
# Four 2x halvings must leave at least one full window at the coarsest scale.
MS_SSIM_MIN_SIDE = (_WIN - 1) * 2 ** (len(_WEIGHTS) - 1) + 1  # 161
# Output columns per block of the banded-matrix filter; ~32 balances matmul size against padding.
_BLOCK = 32


def psnr(a, b) -> float:
    """PSNR in dB for 8-bit images (peak 255), capped at `MAX_DB` so lossless results stay finite."""
    a, b = np.asarray(a), np.asarray(b)
    _check_same_shape(a.shape, b.shape)
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    if mse == 0:
        return MAX_DB
    return min(MAX_DB, 10.0 * math.log10(_PEAK**2 / mse))


def ms_ssim(a, b) -> float:
    """MS-SSIM of two images, computed in float64 so that values near 1 survive conversion to dB.

    Takes HxWxC (or HxW) uint8 arrays, or N,C,H,W tensors in 0..255; a batch gives its mean.
    """
    x, y = _as_batch(a), _as_batch(b)
    with torch.no_grad():
        return float(ms_ssim_torch(x, y).mean())


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a log scale, where differences between good codecs become visible."""
    if value >= 1.0:
        return MAX_DB
    return min(MAX_DB, -10.0 * math.log10(1.0 - value))


def ms_ssim_torch(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image MS-SSIM of N,C,H,W tensors in 0..255, differentiable so it can serve as a loss.

    Runs in the inputs' dtype (float32 for training; `ms_ssim` passes float64). As in
    pytorch-msssim, relu(cs) ** weight has no finite gradient where a contrast term is exactly 0.
    """
    _check_same_shape(tuple(x.shape), tuple(y.shape))
    if x.dim() != 4:
        raise ImageError(f"MS-SSIM needs N,C,H,W tensors, got shape {tuple(x.shape)}")
    if min(x.shape[-2:]) < MS_SSIM_MIN_SIDE:
        h, w = x.shape[-2:]
        raise ImageError(
            f"image of {w}x{h} px is too small for MS-SSIM: both sides must be at least "
            f"{MS_SSIM_MIN_SIDE} px (5 scales of an 11 px window)"
        )
    kernel = _gaussian(x.dtype, x.device)
    weights = x.new_tensor(_WEIGHTS)
    levels = []
    for level in range(len(_WEIGHTS)):
        ssim, cs = _ssim_terms(x, y, kernel)
        if level < len(_WEIGHTS) - 1:
            levels.append(torch.relu(cs))
            padding = [s % 2 for s in x.shape[-2:]]
            x = F.avg_pool2d(x, kernel_size=2, padding=padding)
            y = F.avg_pool2d(y, kernel_size=2, padding=padding)
    levels.append(torch.relu(ssim))
    per_channel = torch.prod(torch.stack(levels) ** weights.view(-1, 1, 1), dim=0)
    return per_channel.mean(dim=1)


def _ssim_terms(x, y, kernel):
    """Mean SSIM and contrast-structure terms per image and channel at one scale.

    Four filtered maps suffice: the cs denominator only needs the sum of the two variances. They
    are filtered one by one, not stacked, because buffers above glibc's 32 MB mmap limit are
    page-faulted afresh on every allocation, which made a stacked 768x512 pass twice as slow.
    """
    mu_x, mu_y, sq_sum, xy = (_blur(t, kernel) for t in (x, y, x * x + y * y, x * y))
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    cs_map = (2 * (xy - mu_xy) + _C2) / (sq_sum - mu_xx - mu_yy + _C2)
    ssim_map = (2 * mu_xy + _C1) / (mu_xx + mu_yy + _C1) * cs_map
    return ssim_map.flatten(2).mean(-1), cs_map.flatten(2).mean(-1)


def _blur(t, kernel):
    """Separable 'valid' Gaussian filter over the last two dims.

    torch has no fast float64 convolution on CPU; multiplying overlapping blocks by a small banded
    matrix turns each 1-D pass into one GEMM, several times faster than conv2d in float64.
    """
    return _blur_last(_blur_second_last(t, kernel), kernel)


def _blur_second_last(t, kernel):
    n_out, block, n_blocks = _blocks(t.shape[-2])
    t = F.pad(t, (0, 0, 0, n_blocks * block - n_out))
    windows = t.unfold(-2, block + _WIN - 1, block).transpose(-1, -2)  # (..., blocks, taps, W)
    return (_band(kernel, block).T @ windows).flatten(-3, -2)[..., :n_out, :]


def _blur_last(t, kernel):
    n_out, block, n_blocks = _blocks(t.shape[-1])
    t = F.pad(t, (0, n_blocks * block - n_out))
    # reshape copies the overlapping windows once so the product is a single GEMM instead of a
    # batched one that torch would run matrix by matrix.
    windows = t.unfold(-1, block + _WIN - 1, block).reshape(-1, block + _WIN - 1)
    return (windows @ _band(kernel, block)).view(*t.shape[:-1], -1)[..., :n_out]


def _blocks(length):
    n_out = length - _WIN + 1
    block = min(_BLOCK, n_out)
    return n_out, block, -(-n_out // block)


def _band(kernel, block):
    """(block + 10) x block matrix whose column j holds the kernel at rows j..j+10."""
    offset = torch.arange(block + _WIN - 1, device=kernel.device)[:, None] - torch.arange(
        block, device=kernel.device
    )
    inside = (offset >= 0) & (offset < _WIN)
    return torch.where(inside, kernel[offset.clamp(0, _WIN - 1)], kernel.new_zeros(()))


def _gaussian(dtype, device):
    coords = torch.arange(_WIN, dtype=torch.float64) - _WIN // 2
    g = torch.exp(-(coords**2) / (2 * _SIGMA**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def _as_batch(img) -> torch.Tensor:
    if isinstance(img, torch.Tensor):
        return img.detach().to(torch.float64)
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ImageError(f"expected an HxWxC image, got an array of shape {arr.shape}")
    return torch.from_numpy(arr.astype(np.float64)).permute(2, 0, 1).unsqueeze(0)


def _check_same_shape(sa, sb):
    if tuple(sa) != tuple(sb):
        raise ImageError(f"images differ in shape: {tuple(sa)} vs {tuple(sb)}")
