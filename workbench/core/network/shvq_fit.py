"""Soft-to-hard VQ's centre fit when only the centres move (no task to finetune with): at each
optimisation step, each tensor's sampled weights go through two compiled loops and numpy's
exponential, with the loss's gradient in closed form and all work in buffers allocated once.

Building and freeing a torch graph over 65 536 weights × 16 centres for each of a transformer's
tensors at every step raised the job's resident set to ~490 MB over the imports on a 119 MB model
(the freed blocks stay in the C heap); here one step holds a (samples × centres) buffer of one tensor,
allocated once.

The loss is the one `SoftToHardVQ` differentiates with autograd when it finetunes on a task, per tensor t
with samples w_i (importance v_i), centres c_j, scale s (the samples' std), hardness σ:
    φ_ij = softmax_j(−σ (w_i − c_j)² / s²),   ŵ_i = Σ_j φ_ij c_j,   h_j = mean_i φ_ij
    L_t = a_t Σ_i v_i (w_i − ŵ_i)² / s² + b_t · H(h),   H(h) = −Σ_j h_j log2(h_j + ε)
with a_t = count_t / (n_t N) and b_t = λ count_t / N (count_t the tensor's weights, n_t its samples, N
all weights), so sampled tensors weigh as much as their full size. Its gradient with respect to c_j:
    G_ij = ∂L/∂φ_ij = g_i c_j + (b/n) r_j,   g_i = −2 a v_i (w_i − ŵ_i) / s²,   r_j = ∂H/∂h_j
    ∂L/∂c_j = Σ_i φ_ij (G_ij − Σ_l φ_il G_il) · 2σ (w_i − c_j) / s²  +  Σ_i g_i φ_ij
(the first term through the softmax's logits, the second through ŵ's direct dependence on c).
"""

from __future__ import annotations

import math

import numpy as np

from workbench.core.jit import njit

EPS = 1e-12
"""Added to each histogram bin inside the logarithm, as the autograd path does."""
FLOOR = -104.0
"""Softmax terms with logits this far below a weight's largest are exactly zero, as in float32 (whose
smallest number is e^−103.3), so a centre no weight is near gets no gradient at all, as it gets none
from a float32 graph: Adam would turn even a 1e−20 gradient into a full step. Clamping there also keeps
the exponential off its slow underflow path, which made the hard, late steps several times slower."""
ZERO_BELOW = math.exp(FLOOR + 0.5)

FAST = {"reassoc", "contract", "arcp", "nsz"}
"""Sums over samples may be reassociated so the loops over them vectorise (the gradient changes in its
last bits, which the centres, unlike the trellis search's levels, do not need to reproduce)."""


@njit(fastmath=FAST)
def _logits(w, c, inv_s, sigma, phi, top):
    """phi[j, i] = the logit −σ (w_i − c_j)²/s² minus weight i's largest, clamped at FLOOR."""
    k, n = phi.shape
    top[:n] = -np.inf
    for j in range(k):
        cj = c[j]
        for i in range(n):
            d = (w[i] - cj) * inv_s
            z = -sigma * d * d
            phi[j, i] = z
            top[i] = max(top[i], z)
    for j in range(k):
        for i in range(n):
            phi[j, i] = max(phi[j, i] - top[i], FLOOR)


@njit(fastmath=FAST)
def _gradient(w, v, c, inv_s, sigma, dist_weight, rate_weight, phi, rows, grad):
    """From phi = exp(logits): the softmax, ∂L/∂c into `grad` (K,), and (the importance-weighted squared
    error over the samples in units of s², the entropy H(h) in bits). `v` is the samples' importance,
    or empty for all ones; `rows` (4, ≥ n) is scratch."""
    k, n = phi.shape
    inv_ln2 = 1.0 / math.log(2.0)
    inv_s2 = inv_s * inv_s
    norm = rows[0]
    soft = rows[1]
    g = rows[2]
    rho = rows[3]
    norm[:n] = 0.0
    for j in range(k):
        for i in range(n):
            e = phi[j, i]
            e = e if e > ZERO_BELOW else 0.0
            phi[j, i] = e
            norm[i] += e
    for i in range(n):
        norm[i] = 1.0 / norm[i]
    soft[:n] = 0.0
    hist = np.empty(k)
    for j in range(k):
        cj = c[j]
        hj = 0.0
        for i in range(n):
            p = phi[j, i] * norm[i]
            phi[j, i] = p
            soft[i] += p * cj
            hj += p
        hist[j] = hj / n
    weighted = v.shape[0] > 0
    err = 0.0
    for i in range(n):
        e = w[i] - soft[i]
        err += (v[i] if weighted else 1.0) * e * e
    entropy = 0.0
    r = np.empty(k)
    for j in range(k):
        h = hist[j]
        lg = math.log(h + EPS) * inv_ln2
        entropy -= h * lg
        r[j] = -(lg + h / (h + EPS) * inv_ln2)
    a2 = -2.0 * dist_weight * inv_s2
    bn = rate_weight / n
    two_sigma_s2 = 2.0 * sigma * inv_s2
    for i in range(n):
        g[i] = a2 * (v[i] if weighted else 1.0) * (w[i] - soft[i])
        rho[i] = 0.0
    for j in range(k):
        rj = r[j]
        for i in range(n):
            rho[i] += phi[j, i] * rj
    for j in range(k):
        cj = c[j]
        rj = r[j]
        acc = 0.0
        for i in range(n):
            p = phi[j, i]
            dz = p * (g[i] * (cj - soft[i]) + bn * (rj - rho[i]))
            acc += dz * two_sigma_s2 * (w[i] - cj) + g[i] * p
        grad[j] = acc
    return err * inv_s2, entropy


@njit
def nearest(values, centers, out):
    """Index of the nearest centre of each value (the first on a tie, like argmin), in float32 as
    the decoder's codebook is: no (values × centres) temporary."""
    k = centers.size
    for i in range(values.size):
        v = values[i]
        best = 0
        d = v - centers[0]
        best_d = d * d
        for j in range(1, k):
            d = v - centers[j]
            d = d * d
            if d < best_d:
                best_d = d
                best = j
        out[i] = best


class CentreFit:
    """Each tensor's sampled weights (float32, as given: not copied) and the step's buffers."""

    def __init__(self, samples: list[np.ndarray], importance: list[np.ndarray | None], counts: list[int],
                 scale: list[float], lam: float, k: int):
        sizes = [len(s) for s in samples]
        self.samples = [np.ascontiguousarray(s, dtype=np.float32) for s in samples]
        self.importance = [_NONE if v is None else np.ascontiguousarray(v, dtype=np.float32) for v in importance]
        n_total = float(sum(counts))
        self.counts = np.asarray(counts, dtype=np.float64)
        self.per_sample = self.counts / np.maximum(sizes, 1)
        self.dist_weight = self.per_sample / n_total
        self.rate_weight = lam * self.counts / n_total
        self.n_total = n_total
        self.inv_scale = 1.0 / np.asarray(scale, dtype=np.float64)
        self.phi = np.empty(k * max(sizes + [1]))
        self.rows = np.empty((4, max(sizes + [1])))
        self.grad = np.empty((len(samples), k))

    def step(self, centers: np.ndarray, sigma: float) -> tuple[np.ndarray, float, float]:
        """(∂L/∂centres, the distortion summed over tensors at their full sizes, the rate in bits per
        weight) at `centers` (tensors, K)."""
        centers = np.ascontiguousarray(centers, dtype=np.float64)
        k = centers.shape[1]
        dist = rate = 0.0
        for t, (w, v) in enumerate(zip(self.samples, self.importance)):
            phi = self.phi[:k * len(w)].reshape(k, len(w))
            _logits(w, centers[t], self.inv_scale[t], sigma, phi, self.rows[0])
            np.exp(phi, out=phi)            # numpy's vectorised exponential: ~10× numba's scalar one
            err, entropy = _gradient(w, v, centers[t], self.inv_scale[t], sigma, self.dist_weight[t],
                                     self.rate_weight[t], phi, self.rows, self.grad[t])
            dist += err * self.per_sample[t]
            rate += entropy * self.counts[t]
        return self.grad, dist, rate / self.n_total


_NONE = np.zeros(0, dtype=np.float32)
"""Importance of a tensor that has none: every weight counts 1."""
