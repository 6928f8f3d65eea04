"""Probability models of quantized latents, for training (differentiable likelihoods) and for coding
(integer tables that make decoding bit-exact on any machine).

* `FactorizedDensity` is the non-parametric per-channel density of Ballé et al. (2018, appendix 6.1):
  a monotone function c(x) built from small softplus-weighted layers with tanh gates is the CDF, and
  the likelihood of an integer bin is c(x + ½) − c(x − ½). For coding, `tables()` turns each
  channel's CDF into an integer `CategoricalTable` once; the tables are stored with the weights.
* `GaussianScales` is the zero-mean Gaussian of a mean-scale hyperprior after the mean has been
  subtracted (zero-center quantization codes k = round((y − μ)/Δ)). Its scale has a tunable lower
  bound (the "scale lower bound" trick of Zhang, Li, Liu 2023). For coding, scales are snapped to a
  fixed log-spaced grid whose levels each have an integer table, so a decoder only needs the grid
  index, not bit-identical floats.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from workbench.core.entropy import CategoricalTable

LIKELIHOOD_FLOOR = 1e-9

SCALE_GRID_MIN = 0.05
SCALE_GRID_MAX = 80.0
SCALE_LEVELS = 64
TAIL_SIGMAS = 7.0   # a level's table spans ±TAIL_SIGMAS·σ; values beyond it use the escape symbols


def _lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    """max(x, bound) whose gradient still pushes values below the bound upwards (Ballé's LowerBound)."""
    return x + (torch.clamp_min(x, bound) - x).detach() if bound > 0 else x


class FactorizedDensity(nn.Module):
    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        dims = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))
        self.channels = channels

    def _logits_cdf(self, x: torch.Tensor) -> torch.Tensor:
        """x: (C, 1, K) -> logits of the CDF, same shape."""
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(matrix), x) + bias
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def likelihood(self, v: torch.Tensor) -> torch.Tensor:
        """Probability of the unit bin around each value of v (N, C, H, W)."""
        n, c, h, w = v.shape
        x = v.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self._logits_cdf(x - 0.5)
        upper = self._logits_cdf(x + 0.5)
        # Evaluate on the side of the median where the CDF is small, to avoid 1 - 1 cancellation.
        sign = -torch.sign(lower + upper).detach()
        p = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        p = p.reshape(c, n, h, w).permute(1, 0, 2, 3)
        return _lower_bound(p, LIKELIHOOD_FLOOR)

    @torch.no_grad()
    def tables(self, span: int = 255, centers: torch.Tensor | None = None) -> list[CategoricalTable]:
        """One integer table per channel over the integers k where the density has mass (float64 CPU):
        the probability of the unit bin around centers[c] + k (centers default to 0)."""
        model = self.to(torch.float64)
        try:
            grid = torch.arange(-span, span + 1, dtype=torch.float64)
            x = grid.view(1, 1, -1).expand(self.channels, 1, -1)
            if centers is not None:
                x = x + centers.detach().to(torch.float64).view(-1, 1, 1)
            cdf_hi = torch.sigmoid(model._logits_cdf(x + 0.5))[:, 0]
            cdf_lo = torch.sigmoid(model._logits_cdf(x - 0.5))[:, 0]
            pmf = (cdf_hi - cdf_lo).clamp_min(0).numpy()
            lower_tail = torch.sigmoid(model._logits_cdf(x[..., :1] - 0.5))[:, 0, 0].numpy()
            upper_tail = 1 - torch.sigmoid(model._logits_cdf(x[..., -1:] + 0.5))[:, 0, 0].numpy()
        finally:
            self.to(torch.float32)
        out = []
        for c in range(self.channels):
            p = pmf[c].copy()
            p[0] += lower_tail[c]
            p[-1] += upper_tail[c]
            keep = np.nonzero(p > 1e-7)[0]
            lo, hi = (int(keep[0]), int(keep[-1])) if keep.size else (span, span)
            q = p[lo:hi + 1].copy()
            q[0] += p[:lo].sum()
            q[-1] += p[hi + 1:].sum()
            out.append(CategoricalTable.from_probabilities(q, offset=lo - span))
        return out


class GaussianScales:
    """Zero-mean discretized Gaussian with a bounded scale; stateless, so it is a plain class."""

    def __init__(self, scale_bound: float = 0.11):
        if not scale_bound > 0:
            raise ValueError("the scale lower bound must be positive")
        self.scale_bound = float(scale_bound)

    def bounded(self, scale: torch.Tensor) -> torch.Tensor:
        """The scale the likelihood prices with (never under the bound; the gradient passes above it)."""
        return _lower_bound(scale, self.scale_bound)

    def likelihood(self, residual: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """P(bin of width 1 around `residual`) under N(0, scale); `residual` = value − mean."""
        s = self.bounded(scale)
        v = torch.abs(residual)
        upper = _std_normal_cdf((0.5 - v) / s)
        lower = _std_normal_cdf((-0.5 - v) / s)
        return _lower_bound(upper - lower, LIKELIHOOD_FLOOR)


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x * (2 ** -0.5))


# --- coding tables for the Gaussian -----------------------------------------------------------------

def scale_grid() -> np.ndarray:
    """The scales the coder knows: log-spaced from SCALE_GRID_MIN to SCALE_GRID_MAX."""
    return np.exp(np.linspace(math.log(SCALE_GRID_MIN), math.log(SCALE_GRID_MAX), SCALE_LEVELS))


def scale_indices(scale: torch.Tensor) -> torch.Tensor:
    """Grid index of each scale: the smallest grid scale ≥ the scale (coding with a slightly wider
    Gaussian than predicted costs far less than a narrower one when the prediction is off)."""
    step = (math.log(SCALE_GRID_MAX) - math.log(SCALE_GRID_MIN)) / (SCALE_LEVELS - 1)
    idx = torch.ceil((torch.log(scale.to(torch.float64).clamp_min(SCALE_GRID_MIN)) - math.log(SCALE_GRID_MIN))
                     / step - 1e-9)
    return idx.clamp(0, SCALE_LEVELS - 1).to(torch.int64)


def gaussian_tables() -> list[CategoricalTable]:
    """Integer tables for every grid scale: symbols −R−1..R+1, the two ends being escapes."""
    out = []
    for s in scale_grid():
        r = max(1, int(math.ceil(TAIL_SIGMAS * s)))
        k = np.arange(-r, r + 1, dtype=np.float64)
        cdf = lambda t: 0.5 * np.vectorize(math.erfc)(-t / (s * math.sqrt(2.0)))
        p = cdf(k + 0.5) - cdf(k - 0.5)
        tail = float(cdf(np.array([-r - 0.5]))[0])
        out.append(CategoricalTable.from_probabilities(np.concatenate([[tail], p, [tail]]), offset=-r - 1))
    return out


def trellis_tables() -> tuple[list[CategoricalTable], list[CategoricalTable]]:
    """Integer tables of trellis-coded levels for every grid scale, one list per quantizer.

    With step Δ (units of Δ here), Q0 reconstructs 2k and owns the cell [2k − 1, 2k + 1]; Q1
    reconstructs 0, ±1, ±3, ... (2k − sgn k) and owns [−½, ½], [½, 2], [2, 4], ... The probability of
    a level is the Gaussian mass of its cell: the entropy model conditioned on the trellis state
    (through the quantizer the state selects). Symbols span ±(R + 1) with escapes at the ends, as
    in `gaussian_tables`.
    """
    cdf = lambda t, s: 0.5 * np.vectorize(math.erfc)(-t / (s * math.sqrt(2.0)))
    q0, q1 = [], []
    for s in scale_grid():
        r = max(1, int(math.ceil(TAIL_SIGMAS * s / 2)) + 1)
        k = np.arange(-r, r + 1, dtype=np.float64)
        hi0 = 2 * np.abs(k) + 1
        lo0 = np.maximum(2 * np.abs(k) - 1, -1)
        p0 = np.where(k == 0, cdf(np.full_like(k, 1.0), s) - cdf(np.full_like(k, -1.0), s),
                      cdf(hi0, s) - cdf(lo0, s))
        a = np.abs(k)
        hi1 = np.where(a == 0, 0.5, 2 * a)
        lo1 = np.where(a == 0, -0.5, np.where(a == 1, 0.5, 2 * a - 2))
        p1 = cdf(hi1, s) - cdf(lo1, s)
        for out, p, edge in ((q0, p0, 2 * r + 1), (q1, p1, 2 * r)):
            tail = float(cdf(np.array([-float(edge)]), s)[0])
            out.append(CategoricalTable.from_probabilities(np.concatenate([[tail], p, [tail]]), offset=-r - 1))
    return q0, q1
