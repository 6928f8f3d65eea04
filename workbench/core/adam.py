"""The Adam optimizer without `torch.optim`."""

from __future__ import annotations

import math

import torch


class Adam:
    """Adam (Kingma & Ba 2015) with its default betas and epsilon, no weight decay: the step that
    `torch.optim.Adam` takes on CPU tensors, from each tensor's `.grad`. torch's optimizers import
    `torch._dynamo` at their first step, about 800 modules, as much CPU time as importing torch itself
    and 70 MB resident: too much for per-image latent optimization (two tensors) or soft-to-hard VQ's
    centre table (a fifth of the memory its whole fit may use on a 30 M-parameter network)."""

    def __init__(self, params: list[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.params, self.lr, self.betas, self.eps, self.steps = params, lr, betas, eps, 0
        self.m = [torch.zeros_like(p) for p in params]          # running means of the gradient
        self.v = [torch.zeros_like(p) for p in params]          # and of its square

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        b1, b2 = self.betas
        bias1, bias2 = 1 - b1 ** self.steps, 1 - b2 ** self.steps
        for p, m, v in zip(self.params, self.m, self.v):
            m.lerp_(p.grad, 1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            p.addcdiv_(m, (v.sqrt() / math.sqrt(bias2)).add_(self.eps), value=-self.lr / bias1)
