"""Training surrogates for rounding latents: the scalar quantization family (DESIGN §3.2).

Every surrogate maps a residual v (the latent minus the predicted mean when zero-center
quantization is on, else the latent itself) to a stand-in for round(v) that gradients can pass.
At inference every one of them is plain rounding on a step Δ: k = round(v / Δ).

* `noise`: v + u, u ~ U(−½, ½) (Ballé et al. 2017). Smooth, unbiased, but never equal to round(v):
  the largest train–test mismatch.
* `ste`: round(v) forward, identity backward. No mismatch, biased gradients.
* `sua`: stochastic uniform annealing (Zhang, Li, Liu 2023). The paper's text was not available to
  us, so the formula below is our reconstruction from its description ("an adjustable temperature
  coefficient" moving a stochastic surrogate between a noise-like regime and rounding): v is rounded
  to its lower or upper integer neighbour at random, with P(up) = softmax over the negative
  distances divided by the temperature τ, i.e. P(up) = σ((2r − 1)/τ) with r = v − floor(v).
  τ → ∞ picks either neighbour with probability ½ (high variance, large mismatch); τ → 0 is hard
  rounding. Forward is the sample, backward the identity. τ decays exponentially from `tau_start`
  to `tau_end` over `tau_steps` training steps — the schedule is ours too.

Zero-center quantization (ŷ = μ + Q(y − μ)) with its partial stop-gradient is applied by the model,
not here (`MeanScaleHyperprior.forward` says where the stop-gradient sits and why).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from workbench.core.options import option
from workbench.core.registry import Registry


class ScalarSurrogate:
    name: ClassVar[str]
    label: ClassVar[str]
    Options: ClassVar[type]

    def __init__(self, options=None):
        self.opts = options if options is not None else self.Options()

    def __call__(self, v: torch.Tensor, step: int) -> torch.Tensor:
        raise NotImplementedError

    def temperature(self, step: int) -> float | None:
        """The annealing temperature at `step`, for surrogates that have one (shown in live curves)."""
        return None


SURROGATES: Registry[ScalarSurrogate] = Registry("quantizer")


@dataclass(frozen=True)
class NoOptions:
    pass


@SURROGATES.register
class UniformNoise(ScalarSurrogate):
    """Smooth and unbiased, but never equal to what the coder does.

    >>> v = torch.tensor([0.2, 1.7])
    >>> bool((UniformNoise()(v, 0) - v).abs().max() <= 0.5)
    True
    """

    name = "noise"
    label = "Additive uniform noise"
    Options = NoOptions

    def __call__(self, v, step):
        return v + torch.empty_like(v).uniform_(-0.5, 0.5)


@SURROGATES.register
class StraightThrough(ScalarSurrogate):
    """Exactly what the coder does, with a biased (identity) gradient.

    >>> StraightThrough()(torch.tensor([0.2, 1.7]), 0).tolist()
    [0.0, 2.0]
    """

    name = "ste"
    label = "Straight-through rounding"
    Options = NoOptions

    def __call__(self, v, step):
        return v + (torch.round(v) - v).detach()


@dataclass(frozen=True)
class SUAOptions:
    tau_start: float = option(0.5, "temperature at the first step (large: both neighbours equally likely)",
                              minimum=1e-4, maximum=100.0)
    tau_end: float = option(0.02, "temperature after the decay (small: plain rounding)", minimum=1e-4, maximum=100.0)
    tau_steps: int = option(20000, "steps over which the temperature decays exponentially", minimum=1)


@SURROGATES.register
class StochasticUniformAnnealing(ScalarSurrogate):
    """At a tiny temperature it is plain rounding:

    >>> q = StochasticUniformAnnealing(SUAOptions(tau_start=1e-4, tau_end=1e-4))
    >>> q(torch.tensor([0.2, 1.7, -0.6]), 0).tolist()
    [0.0, 2.0, -1.0]
    """

    name = "sua"
    label = "Stochastic uniform annealing"
    Options = SUAOptions

    def temperature(self, step: int) -> float:
        o = self.opts
        t = min(1.0, max(0, step) / o.tau_steps)
        return math.exp((1 - t) * math.log(o.tau_start) + t * math.log(o.tau_end))

    def __call__(self, v, step):
        tau = self.temperature(step)
        with torch.no_grad():
            low = torch.floor(v)
            p_up = torch.sigmoid((2 * (v - low) - 1) / tau)
            sample = low + (torch.rand_like(v) < p_up).to(v.dtype)
        return v + (sample - v).detach()


def make_surrogate(name: str, **values) -> ScalarSurrogate:
    from workbench.core.options import build
    cls = SURROGATES.get(name)
    return cls(build(cls.Options, values))
