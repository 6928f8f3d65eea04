"""Per-image latent optimization: spend encoder time on one image to lower R + λ·D for a fixed model.

The analysis transform gives latents that are good on average over the training images; for one
image, gradient descent on the latents themselves (y and z; the decoder is untouched, so the result is
a normal bitstream) finds better ones (Campos et al. 2019; Yang et al. 2020, "SGA"). Rounding has no
useful gradient, so the descent runs through an annealed soft-to-hard surrogate (`SoftRounding`), whose
temperature starts where both integer neighbours are likely and decays until it is rounding. At the
end the encoder quantizes hard with the chosen latent quantizer, exactly as without optimization.
(The training surrogate SUA was tried first: with its straight-through gradient the latents drifted
and the result was worse than no optimization, +18 % BD-rate on a training image; see docs.)

Every step is a progress event with what the app's live curves plot: the surrogate's rate (bpp) and
entropy (bits per latent), the temperature, and every `probe_every` steps the hard-quantized rate,
PSNR, MS-SSIM and the soft–hard gap of the loss. The model's weights are never changed.
"""

from __future__ import annotations

import json
import math

import torch

from workbench.core import metrics
from workbench.core.adam import Adam
from workbench.core.jobs import Job, Progress
from workbench.core.learned.kinds.base import MSE_LAMBDAS, interpolate_levels
from workbench.core.learned.quantizers import StraightThrough

TAU_START = 0.5
TAU_END = 0.01
LEARNING_RATE = 0.005


def model_lambda(cm, quality: torch.Tensor, levels: int | None = None) -> tuple[float, str]:
    """λ of the model's loss at this quality, and the distortion it belongs to ("mse" or "ms-ssim").
    Without a model (or one whose file does not list its λ), the MSE λ of the same quality level."""
    lambdas = json.loads(cm.info.get("lambdas") or "[]") if cm is not None else []
    metric = cm.info.get("metric", "mse") if cm is not None else "mse"
    levels = cm.model.levels if cm is not None else levels
    if len(lambdas) != levels:
        lambdas, metric = list(MSE_LAMBDAS[:levels]), "mse"
    lam = torch.exp(interpolate_levels(torch.log(torch.tensor(lambdas, dtype=torch.float64)), quality))
    return float(lam[0]), metric


def refine_latents(cm, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, quality: torch.Tensor, steps: int,
                   size: tuple[int, int], device: torch.device, probe_every: int = 10
                   ) -> Job[tuple[torch.Tensor, torch.Tensor]]:
    """Yields one Progress per step; returns refined (y, z) in float64 on the CPU, ready to quantize.

    `x` is the padded image (1, 3, H', W') in 0..1, `y`/`z` the encoder's gained latents, `size` the
    real (height, width) that the distortion is measured on. What is returned are the latents with
    the lowest hard-quantized loss among those probed, the encoder's own included, so optimizing
    never ends worse (in the model's estimate) than not optimizing."""
    model = cm.model.to(device)
    h, w = size
    lam, metric = model_lambda(cm, quality)
    if metric == "ms-ssim" and min(h, w) < metrics.MS_SSIM_MIN_SIDE:      # too small for 5 scales
        lam, metric = model_lambda(None, quality, model.levels)
    surrogate = SoftRounding(TAU_START, TAU_END, steps - 1)
    target = x.to(device)[..., :h, :w]
    q = quality.to(device)
    terms = lambda quantizer, step: _loss_terms(model, y, z, q, target, quantizer, step, metric, h, w)
    y = y.to(device, torch.float32).clone().requires_grad_(True)
    z = z.to(device, torch.float32).clone().requires_grad_(True)
    opt = Adam([y, z], lr=LEARNING_RATE)
    pixels, latents = h * w, y[0].numel() + z[0].numel()

    def probe() -> dict:
        with torch.no_grad():
            hard = terms(StraightThrough(), 0)
            x_hat = hard["x_hat"].clamp(0, 1)
            mse = float((target - x_hat).pow(2).mean())
            out = {"hard_loss": float(hard["bits"] / pixels + lam * hard["distortion"]),
                   "hard_bpp": float(hard["bits"]) / pixels, "psnr": 10 * math.log10(1 / max(mse, 1e-12))}
            if min(h, w) >= metrics.MS_SSIM_MIN_SIDE:
                out["ms_ssim"] = float(metrics.ms_ssim_torch(target * 255, torch.round(x_hat * 255))[0])
        return out

    best_loss, best = probe()["hard_loss"], (y.detach().clone(), z.detach().clone())
    try:
        for step in range(steps):
            soft = terms(surrogate, step)
            loss = soft["bits"] / pixels + lam * soft["distortion"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bits = float(soft["bits"].detach())
            m = {"rate_bpp": bits / pixels, "entropy": bits / latents, "loss": float(loss.detach()),
                 "temperature": surrogate.temperature(step)}
            if (step + 1) % probe_every == 0 or step == steps - 1:
                m.update(probe())
                m["gap"] = m["loss"] - m["hard_loss"]
                if m["hard_loss"] < best_loss:
                    best_loss, best = m["hard_loss"], (y.detach().clone(), z.detach().clone())
            yield Progress(step + 1, steps, f"optimizing latents: step {step + 1} of {steps}", metrics=m)
    finally:
        model.to("cpu")
    return best[0].to("cpu", torch.float64), best[1].to("cpu", torch.float64)


class SoftRounding:
    """Stochastic Gumbel annealing (Yang et al. 2020), our form: v rounds up with the relaxed sample
    w = σ(((atanh(r) − atanh(1 − r)) / τ + L) / τ), r = v − floor(v), L ~ Logistic(0, 1) (the
    difference of two Gumbel samples: a two-way Gumbel-softmax at temperature τ), and the value is
    floor(v) + w. Unlike the training surrogates, the gradient goes through w (no straight-through),
    so moving a latent changes its value smoothly; as τ → 0, w becomes the hard nearest-neighbour
    choice. τ decays exponentially from `tau_start` to `tau_end` over the steps."""

    def __init__(self, tau_start: float, tau_end: float, steps: int):
        self.tau_start, self.tau_end, self.steps = tau_start, tau_end, max(1, steps)

    def temperature(self, step: int) -> float:
        t = min(1.0, step / self.steps)
        return math.exp((1 - t) * math.log(self.tau_start) + t * math.log(self.tau_end))

    def __call__(self, v: torch.Tensor, step: int) -> torch.Tensor:
        tau = self.temperature(step)
        low = torch.floor(v).detach()
        r = (v - low).clamp(1e-4, 1 - 1e-4)
        u = torch.rand_like(v).clamp(1e-6, 1 - 1e-6)
        logistic = torch.log(u) - torch.log1p(-u)
        w = torch.sigmoid(((torch.atanh(r) - torch.atanh(1 - r)) / tau + logistic) / tau)
        return low + w


def _loss_terms(model, y, z, quality, target, quantizer, step, metric, h, w) -> dict:
    """Rate (bits) and distortion (the loss's units) of the latents under a surrogate (the model kind's
    `latent_terms`), the distortion measured on the real image size."""
    bits, x_hat = model.latent_terms(y, z, quality, quantizer, step)
    x_hat = x_hat[..., :h, :w]
    if metric == "mse":
        dist = (target - x_hat).pow(2).mean() * 255.0 ** 2
    else:
        dist = 1.0 - metrics.ms_ssim_torch(target * 255.0, x_hat.clamp(0, 1) * 255.0)[0]
    return {"bits": bits, "distortion": dist, "x_hat": x_hat}
