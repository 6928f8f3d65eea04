"""The differentiable MS-SSIM (torch), for training losses and per-image optimization.

Kept apart from `metrics` so that measuring a classical codec never imports torch (seconds of CPU per
command); `metrics.ms_ssim_torch` forwards here. Same definition as `metrics.ms_ssim`, which runs
the identical computation in numpy.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from workbench.core.errors import ImageError
from workbench.core.metrics import _BLOCK, _C1, _C2, _SIGMA, _WEIGHTS, _WIN, _check_same_shape, check_ms_ssim_size


def ms_ssim_torch(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image MS-SSIM of N,C,H,W tensors in 0..255, differentiable so it can serve as a loss.

    Runs in the inputs' dtype (float32 for training; `ms_ssim` passes float64). As in
    pytorch-msssim, relu(cs) ** weight has no finite gradient where a contrast term is exactly 0.
    """
    _check_same_shape(tuple(x.shape), tuple(y.shape))
    if x.dim() != 4:
        raise ImageError(f"MS-SSIM needs N,C,H,W tensors, got shape {tuple(x.shape)}")
    check_ms_ssim_size(*x.shape[-2:])
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


def as_batch(img) -> torch.Tensor:
    """A float64 N,C,H,W tensor of a tensor or an HxWxC (HxW) array."""
    if isinstance(img, torch.Tensor):
        return img.detach().to(torch.float64)
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ImageError(f"expected an HxWxC image, got an array of shape {arr.shape}")
    return torch.from_numpy(arr.astype(np.float64)).permute(2, 0, 1).unsqueeze(0)
