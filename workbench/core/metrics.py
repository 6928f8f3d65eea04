"""Image quality metrics used by benchmarks and (later) as training losses.

MS-SSIM is implemented here rather than imported so the package does not depend on a test-only
library; it reproduces `pytorch_msssim.ms_ssim(x, y, data_range=255)` (Wang et al. 2003 weights,
11x11 Gaussian with sigma 1.5, 'valid' filtering, zero-padded 2x2 average pooling for odd sizes,
relu on the contrast terms) so numbers stay comparable with published results. The one deliberate
difference: pytorch-msssim builds its Gaussian in float32, whose taps sum to 1 only within ~1e-7,
and that biases its results by a few 1e-7; ours is built in float64.

Measuring uses numpy only, so a command that encodes a JPEG never pays for importing torch; the
differentiable version for training (`ms_ssim_torch`) lives in `metrics_torch` and is the same
computation, equal to this one to rounding.
"""

from __future__ import annotations

import math

import numpy as np

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
# Output rows per block of the banded-matrix filter; ~32 balances matmul size against padding.
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

    Takes HxWxC (or HxW) uint8 arrays, or N,C,H,W tensors in 0..255 (a batch gives its mean; tensors
    go through `ms_ssim_torch`, since whoever holds one has imported torch already).
    """
    if type(a).__module__.startswith("torch") or type(b).__module__.startswith("torch"):
        import torch

        from workbench.core.metrics_torch import as_batch, ms_ssim_torch as impl

        with torch.no_grad():
            return float(impl(as_batch(a), as_batch(b)).mean())
    from threadpoolctl import threadpool_limits

    x, y = _as_hwc(a), _as_hwc(b)
    _check_same_shape(x.shape, y.shape)
    check_ms_ssim_size(x.shape[0], x.shape[1])
    levels = []
    # The filter is many small GEMMs: BLAS threads gain little on them and, on a busy machine (or
    # beside the other processes of a parallel bench), made one MS-SSIM take seconds instead of 0.1 s.
    with threadpool_limits(1, user_api="blas"):
        for level in range(len(_WEIGHTS)):
            last = level == len(_WEIGHTS) - 1
            ssim, cs = _ssim_terms(x, y, last)
            if not last:
                levels.append(np.maximum(cs, 0.0))
                x, y = _pool(x), _pool(y)
    levels.append(np.maximum(ssim, 0.0))
    per_channel = np.prod(np.stack(levels) ** np.asarray(_WEIGHTS)[:, None], axis=0)
    return float(per_channel.mean())


def ms_ssim_torch(x, y):
    """Per-image MS-SSIM of N,C,H,W tensors in 0..255, differentiable so it can serve as a loss
    (see `metrics_torch.ms_ssim_torch`)."""
    from workbench.core.metrics_torch import ms_ssim_torch as impl

    return impl(x, y)


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a log scale, where differences between good codecs become visible."""
    if value >= 1.0:
        return MAX_DB
    return min(MAX_DB, -10.0 * math.log10(1.0 - value))


def check_ms_ssim_size(h: int, w: int) -> None:
    if min(h, w) < MS_SSIM_MIN_SIDE:
        raise ImageError(
            f"image of {w}x{h} px is too small for MS-SSIM: both sides must be at least "
            f"{MS_SSIM_MIN_SIDE} px (5 scales of an 11 px window)"
        )


def _ssim_terms(x, y, with_ssim):
    """Mean contrast-structure terms per channel at one scale of H,W,C float64 arrays, and the mean
    SSIM when `with_ssim` (only the coarsest scale uses it).

    Four filtered maps suffice: the cs denominator only needs the sum of the two variances.
    """
    mu_x, mu_y, sq_sum, xy = (_blur(t) for t in (x, y, x * x + y * y, x * y))
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    cs_map = (2 * (xy - mu_xy) + _C2) / (sq_sum - mu_xx - mu_yy + _C2)
    channels = x.shape[-1]
    cs = cs_map.reshape(-1, channels).mean(axis=0)
    if not with_ssim:
        return None, cs
    ssim_map = (2 * mu_xy + _C1) / (mu_xx + mu_yy + _C1) * cs_map
    return ssim_map.reshape(-1, channels).mean(axis=0), cs


def _blur(t):
    """Separable 'valid' Gaussian filter of an H,W,C array; returns a (W-10, H-10, C) array.

    Each 1-D pass filters along the first axis, whose rows are contiguous, as one batched GEMM of
    a small banded matrix with overlapping row blocks (views, not copies); a single transpose
    between the passes turns columns into rows. The result stays transposed: only its per-channel
    means are used.
    """
    h, w, c = t.shape
    rows = _filter_rows(t.reshape(h, w * c)).reshape(h - _WIN + 1, w, c)
    cols = np.ascontiguousarray(rows.transpose(1, 0, 2)).reshape(w, -1)
    return _filter_rows(cols).reshape(w - _WIN + 1, h - _WIN + 1, c)


def _filter_rows(t):
    n_rows, n_cols = t.shape
    n_out = n_rows - _WIN + 1
    block = min(_BLOCK, n_out)
    n_blocks = n_out // block
    band = _band(block)
    out = np.empty((n_out, n_cols))
    s0, s1 = t.strides
    windows = np.lib.stride_tricks.as_strided(t, (n_blocks, block + _WIN - 1, n_cols), (block * s0, s0, s1))
    np.matmul(band, windows, out=out[: n_blocks * block].reshape(n_blocks, block, n_cols))
    if n_blocks * block < n_out:       # the last rows: one more block, aligned to the end
        np.matmul(band, t[n_out - block:], out=out[n_out - block:])
    return out


_BANDS: dict[int, np.ndarray] = {}


def _band(block):
    """block x (block + 10) matrix whose row j holds the kernel at columns j..j+10."""
    if block not in _BANDS:
        offset = np.arange(block + _WIN - 1)[None, :] - np.arange(block)[:, None]
        inside = (offset >= 0) & (offset < _WIN)
        _BANDS[block] = np.where(inside, _gaussian()[offset.clip(0, _WIN - 1)], 0.0)
    return _BANDS[block]


def _gaussian():
    coords = np.arange(_WIN, dtype=np.float64) - _WIN // 2
    g = np.exp(-(coords**2) / (2 * _SIGMA**2))
    return g / g.sum()


def _pool(t):
    """2x2 average pooling, zero-padding odd sides on both ends as torch's avg_pool2d(padding=1) does."""
    ph, pw = t.shape[0] % 2, t.shape[1] % 2
    if ph or pw:
        t = np.pad(t, ((ph, ph), (pw, pw), (0, 0)))
    h, w = t.shape[0] // 2 * 2, t.shape[1] // 2 * 2
    return (t[0:h:2, 0:w:2] + t[1:h:2, 0:w:2] + t[0:h:2, 1:w:2] + t[1:h:2, 1:w:2]) * 0.25


def _as_hwc(img) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ImageError(f"expected an HxWxC image, got an array of shape {arr.shape}")
    return arr.astype(np.float64)


def _check_same_shape(sa, sb):
    if tuple(sa) != tuple(sb):
        raise ImageError(f"images differ in shape: {tuple(sa)} vs {tuple(sb)}")
