"""Soft-to-hard vector quantization (Agustsson et al., NeurIPS 2017; DESIGN §3.3).

A latent is cut into vectors of dimension d; each (set, group) — here (quality level, latent channel)
— has its own codebook of L learnable centers and its own probability table over them. Training
sees the hard nearest center in the forward pass and the gradient of the soft assignment
φ_j = softmax_j(−σ‖z − c_j‖²) in the backward pass (q = q_soft + stopgrad(q_hard − q_soft)), so the
network is always trained on exactly what the coder will reconstruct while centers and encoder
still get gradients.

Why codebooks and histograms per (quality level, channel): the latent channels of the DCT model are
coefficients of different frequencies and colours. The DC coefficient is spread over a wide range,
high frequencies are concentrated at zero with rare large values; one shared histogram would
charge a high-frequency zero as much as a DC value and would make the rate model useless, and one
shared codebook would spend its centers on the DC range. Per level because a level's gains move
every coefficient to a different scale; a table per (level, channel) costs L integers, which for
3 levels × 192 channels is small beside the weights. The price is that only integer quality levels
exist: a fractional level would need a histogram nobody trained.

Rate: −Σ_j φ_j log2 p_j bits per vector, with p the running (exponential moving average) hard
histogram of the same (level, channel): the cross-entropy of the soft histogram against the hard
one, summed over vectors (the mean over vectors of φ is the soft histogram, and the cross-entropy
is linear in it). p has no gradient; it is what the coder will use. Probabilities are floored at
2⁻¹⁶, the smallest the integer coding table can hold, so training never believes a center is
cheaper than the coder can make it.

σ schedule (a choice of ours — the paper's exact annealing formula was not available here; we only
know it drives the soft–hard gap towards a decaying target): the gap is the soft rate minus the
hard rate in bits per vector (how much the soft assignment still spreads over centers the hard one
would not pick), smoothed by an exponential moving average. Its target decays exponentially from
`gap_start` to `gap_end` over `gap_decay_steps`; whenever the smoothed gap lies above the target σ
grows by the factor 1 + `sigma_growth`, up to `sigma_max`. σ never decreases, so the quantizer only
ever moves towards hard assignment, and grows only as fast as the centers and encoder can follow.

Initialisation: k-means++ seeding and Lloyd iterations on the first training batch, per (set,
group), so that training starts from a quantizer fitted to the data rather than from random
centers. Plain (MSE) k-means spreads its L centers over the data, which for coefficients
concentrated at zero means ≈ log2 L bits per coefficient — 16 bpp at L = 64 in a first trial — and
the rate term alone needs far more steps than a CPU has to merge them. So when the model knows its
rate–distortion trade-off it passes a `rate_weight` per (set, group) and the Lloyd iterations become
entropy-constrained k-means (Chou, Lookabaugh & Gray 1989): a vector goes to the center minimising
‖z − c‖² + rate_weight · (−log2 p_j), p being the cluster frequencies of the previous iteration;
clusters that empty are parked far outside the data (probability → floor), because the coder
assigns by distance alone and would otherwise pick a dead center at 16 bits. That is close to the
optimal fixed-codebook quantizer for the loss being trained, from data, before the first step.

A round trip: three centers learned from six scalars, then hard quantization through indices:

>>> vq = SoftToHardVQ(1, 1, SHVQOptions(dim=1, centers=3))
>>> data = torch.tensor([-1.0, -0.9, 0.0, 0.1, 1.0, 1.1]).view(1, 1, 6, 1)
>>> vq.initialise(data, torch.Generator().manual_seed(0))
>>> z = torch.tensor([0.04, 1.2, -0.8]).view(1, 1, 3, 1)
>>> idx = vq.nearest(z, torch.tensor([0]))
>>> [round(v, 2) for v in vq.lookup(idx, torch.tensor([0])).flatten().tolist()]
[0.05, 1.05, -0.95]
>>> len(vq.tables()), vq.tables()[0].lo, vq.tables()[0].hi
(1, 0, 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from workbench.core.entropy import PRECISION, CategoricalTable
from workbench.core.options import option
from workbench.core.registry import Registry

PROB_FLOOR = 2.0 ** -PRECISION


@dataclass(frozen=True)
class SHVQOptions:
    dim: int = option(1, "vector dimension d: 1 (scalar) or 4 (2×2 spatial blocks of one channel)", choices=(1, 4))
    centers: int = option(64, "codebook size L per (quality level, channel)", minimum=2, maximum=4096)
    sigma_start: float = option(1.0, "softmax sharpness σ at the first step (in 1/latent-unit²)",
                                minimum=1e-4, maximum=1e6)
    sigma_max: float = option(1e4, "σ stops growing here", minimum=1e-4, maximum=1e8)
    sigma_growth: float = option(0.02, "relative growth of σ at a step whose gap is above the target",
                                 minimum=0.0, maximum=1.0)
    gap_start: float = option(0.1, "target soft–hard gap (bits per vector) at step 0", minimum=0.0, maximum=100.0)
    gap_end: float = option(0.005, "target soft–hard gap after the decay", minimum=0.0, maximum=100.0)
    gap_decay_steps: int = option(400, "time constant (steps) of the target's exponential decay", minimum=1)
    gap_smoothing: float = option(0.9, "moving-average factor of the measured gap", minimum=0.0, maximum=0.999)
    hist_decay: float = option(0.99, "moving-average factor of the running hard histogram",
                               minimum=0.0, maximum=0.99999)
    kmeans_iters: int = option(20, "Lloyd iterations of the k-means initialisation", minimum=0, maximum=1000)


def gap_target(step: int, o: SHVQOptions) -> float:
    """The gap the schedule aims for at `step`: exponential decay from gap_start to gap_end."""
    return o.gap_end + (o.gap_start - o.gap_end) * math.exp(-max(0, step) / o.gap_decay_steps)


def next_sigma(sigma: float, gap: float, step: int, o: SHVQOptions) -> float:
    """σ after a step that measured (smoothed) `gap`: grows while the gap is above target, never shrinks."""
    if gap > gap_target(step, o):
        return min(o.sigma_max, sigma * (1.0 + o.sigma_growth))
    return sigma


@dataclass
class VQResult:
    values: torch.Tensor        # (N, G, V, d): hard forward, soft backward
    bits: torch.Tensor          # (N,) rate used for training (soft, or hard when hard=True)
    bits_hard: torch.Tensor     # (N,) rate of the hard indices under the running histogram
    indices: torch.Tensor       # (N, G, V) long


VECTOR_QUANTIZERS: Registry = Registry("vector quantizer")


@VECTOR_QUANTIZERS.register
class SoftToHardVQ(nn.Module):
    """Codebooks (S sets × G groups × L centers × d) with running histograms; input vectors are
    (N, G, V, d) with one set index per item (N,)."""

    name: ClassVar[str] = "shvq"
    label: ClassVar[str] = "Soft-to-hard vector quantization"
    Options: ClassVar[type] = SHVQOptions

    def __init__(self, sets: int, groups: int, options: SHVQOptions | None = None):
        super().__init__()
        self.opts = o = options if options is not None else SHVQOptions()
        self.sets, self.groups = sets, groups
        self.centers = nn.Parameter(torch.zeros(sets, groups, o.centers, o.dim))
        self.register_buffer("hist", torch.full((sets, groups, o.centers), 1.0 / o.centers))
        self.register_buffer("sigma", torch.tensor(float(o.sigma_start)))
        self.register_buffer("gap", torch.tensor(float("nan")))
        self.register_buffer("ready", torch.tensor(0.0))
        self.last_target = gap_target(0, o)

    # --- initialisation ------------------------------------------------------------------------
    @torch.no_grad()
    def initialise(self, samples: torch.Tensor, generator: torch.Generator | None = None,
                   rate_weight: torch.Tensor | None = None) -> None:
        """k-means per (set, group) on `samples` (S, G, N, d) — entropy-constrained when
        `rate_weight` (S, G) (squared latent units per bit) is given; also sets the histograms to the
        cluster frequencies, so the first rate estimates are already meaningful."""
        s, g, n, d = samples.shape
        if (s, g, d) != (self.sets, self.groups, self.opts.dim):
            raise ValueError(f"k-means samples must be ({self.sets}, {self.groups}, N, {self.opts.dim})")
        x = samples.reshape(s * g, n, d).to(torch.float64).cpu()
        weight = None if rate_weight is None else rate_weight.reshape(s * g).to(torch.float64).cpu()
        centers, counts = kmeans(x, self.opts.centers, self.opts.kmeans_iters, generator, weight)
        self.centers.copy_(centers.view(s, g, -1, d).to(self.centers))
        freq = counts.to(torch.float64) / counts.sum(-1, keepdim=True)
        self.hist.copy_(freq.view(s, g, -1).to(self.hist))
        self.ready.fill_(1.0)

    # --- assignment ----------------------------------------------------------------------------
    def _sq_distances(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """‖z − c_j‖² for z (N, G, V, d) and per-item codebooks c (N, G, L, d) -> (N, G, V, L)."""
        if z.shape[-1] == 1:
            return (z - c.transpose(-1, -2)).pow(2)
        cross = torch.matmul(z, c.transpose(-1, -2))
        return (z.pow(2).sum(-1, keepdim=True) - 2 * cross + c.pow(2).sum(-1)[:, :, None, :]).clamp_min(0)

    @torch.no_grad()
    def nearest(self, z: torch.Tensor, sel: torch.Tensor) -> torch.Tensor:
        """Hard indices (N, G, V), decided on the CPU in float64 (the encoder's decision)."""
        c = self.centers.detach().to("cpu", torch.float64)[sel.cpu()]
        return self._sq_distances(z.detach().to("cpu", torch.float64), c).argmin(-1)

    def lookup(self, indices: torch.Tensor, sel: torch.Tensor) -> torch.Tensor:
        """Centers of `indices` (N, G, V) -> (N, G, V, d): what a decoder reconstructs."""
        c = self.centers[sel.to(self.centers.device)]                      # (N, G, L, d)
        idx = indices.to(c.device)[..., None].expand(*indices.shape, c.shape[-1])
        return torch.gather(c, 2, idx)

    def log2_probabilities(self) -> torch.Tensor:
        p = self.hist.clamp_min(PROB_FLOOR)
        return torch.log2(p / p.sum(-1, keepdim=True))

    # --- training / inference pass -------------------------------------------------------------
    def forward(self, z: torch.Tensor, sel: torch.Tensor, step: int = 0, hard: bool = False) -> VQResult:
        c = self.centers[sel]                                               # (N, G, L, d)
        dist = self._sq_distances(z, c)
        indices = dist.detach().argmin(-1)
        q_hard = torch.gather(c, 2, indices[..., None].expand(*indices.shape, c.shape[-1]))
        log_p = self.log2_probabilities()[sel]                              # (N, G, L)
        bits_hard = -torch.gather(log_p, 2, indices).sum(dim=(1, 2))
        if hard:
            return VQResult(q_hard, bits_hard, bits_hard, indices)
        phi = torch.softmax(-self.sigma * dist, dim=-1)
        q_soft = torch.matmul(phi, c)
        values = q_soft + (q_hard - q_soft).detach()
        bits = -torch.einsum("ngvl,ngl->n", phi, log_p)
        if self.training:
            self._update(indices, sel, bits.detach(), bits_hard.detach(), z.shape[2], step)
        return VQResult(values, bits, bits_hard, indices)

    @torch.no_grad()
    def _update(self, indices, sel, bits, bits_hard, vectors: int, step: int) -> None:
        o = self.opts
        counts = torch.zeros(*indices.shape[:2], o.centers, device=indices.device)
        counts.scatter_add_(2, indices, torch.ones_like(indices, dtype=counts.dtype))
        per_set = torch.zeros(self.sets, self.groups, o.centers, device=counts.device)
        per_set.index_add_(0, sel, counts)
        present = per_set.sum(-1, keepdim=True) > 0
        freq = per_set / per_set.sum(-1, keepdim=True).clamp_min(1)
        self.hist.copy_(torch.where(present, o.hist_decay * self.hist + (1 - o.hist_decay) * freq, self.hist))
        gap = float((bits - bits_hard).sum()) / (indices.shape[0] * self.groups * vectors)
        old = float(self.gap)
        smooth = gap if math.isnan(old) else o.gap_smoothing * old + (1 - o.gap_smoothing) * gap
        self.gap.fill_(smooth)
        self.last_target = gap_target(step, o)
        self.sigma.fill_(next_sigma(float(self.sigma), smooth, step, o))

    # --- coding tables -------------------------------------------------------------------------
    @torch.no_grad()
    def tables(self) -> list[CategoricalTable]:
        """Integer tables over the center indices 0..L−1, one per (set, group), set-major."""
        hist = self.hist.detach().to("cpu", torch.float64).reshape(-1, self.opts.centers)
        return [CategoricalTable.from_probabilities(row.clamp_min(0).numpy() + 1e-12) for row in hist]


def kmeans(x: torch.Tensor, k: int, iters: int, generator: torch.Generator | None = None,
           rate_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched k-means on x (B, N, d): k-means++ seeding, then Lloyd iterations. Plain k-means
    reseeds an empty cluster at the point farthest from its center; with `rate_weight` (B,) the
    assignment cost adds rate_weight · (−log2 cluster frequency) and empty clusters stay empty.
    Returns centers (B, k, d) and counts (B, k)."""
    b, n, d = x.shape
    rows = torch.arange(b)
    first = torch.randint(0, n, (b,), generator=generator)
    centers = [x[rows, first]]
    best = (x - centers[0][:, None]).pow(2).sum(-1)
    for _ in range(1, k):
        weights = best + 1e-12
        pick = torch.multinomial(weights, 1, generator=generator)[:, 0]
        centers.append(x[rows, pick])
        best = torch.minimum(best, (x - centers[-1][:, None]).pow(2).sum(-1))
    c = torch.stack(centers, 1)
    bits = torch.full((b, k), math.log2(k), dtype=x.dtype)
    x2 = x.pow(2).sum(-1, keepdim=True)                                   # (B, N, 1)
    for _ in range(iters + 1):
        dist = (x2 - 2 * torch.matmul(x, c.transpose(1, 2)) + c.pow(2).sum(-1)[:, None, :]).clamp_min(0)
        if rate_weight is not None:
            dist = dist + rate_weight[:, None, None] * bits[:, None, :]
        dmin, assign = dist.min(-1)
        counts = torch.zeros(b, k, dtype=torch.int64).scatter_add_(1, assign, torch.ones_like(assign))
        if _ == iters:
            break
        sums = torch.zeros(b, k, d, dtype=x.dtype).scatter_add_(1, assign[..., None].expand(b, n, d), x)
        empty = counts == 0
        c = torch.where(empty[..., None], c, sums / counts.clamp_min(1)[..., None])
        if rate_weight is not None:
            bits = -torch.log2((counts.to(x.dtype) / n).clamp_min(PROB_FLOOR))
            if _ == iters - 1 and empty.any():     # park the dead centers where no data will reach them
                far = x.abs().amax() * 4 + 100 + 10 * torch.arange(k, dtype=x.dtype)[None, :, None]
                c = torch.where(empty[..., None], far.expand(b, k, d), c)
        elif empty.any():
            far = dmin.argsort(-1, descending=True)
            for bi in torch.nonzero(empty.any(-1))[:, 0].tolist():
                slots = torch.nonzero(empty[bi])[:, 0]
                c[bi, slots] = x[bi, far[bi, :slots.numel()]]
    return c, counts
