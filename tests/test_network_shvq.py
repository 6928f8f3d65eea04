"""Soft-to-hard VQ of network weights without a task: the closed-form centre fit against autograd."""

import numpy as np
import pytest
import torch

from workbench.core.jobs import run
from workbench.core.network.quantizers import SHVQOptions, SoftToHardVQ, QuantInput, _kmeans_init
from workbench.core.adam import Adam
from workbench.core.network.shvq_fit import CentreFit, nearest


def _autograd_loss(ws, imps, counts, scale, centers, sigma, lam):
    """The loss as the autograd path of the quantizer writes it, summed over tensors."""
    n_total = sum(counts)
    total, dist, rate = 0.0, 0.0, 0.0
    for w, v, n, s, c in zip(ws, imps, counts, scale, centers):
        d2 = ((w[:, None] - c[None, :]) / s) ** 2
        phi = torch.softmax(-sigma * d2, 1)
        hist = phi.mean(0)
        err = (w - phi @ c) ** 2 / s ** 2
        part = (err if v is None else err * v).sum() * (n / w.numel())
        part_rate = n * -(hist * torch.log2(hist + 1e-12)).sum()
        total = total + part / n_total + lam * part_rate / n_total
        dist, rate = dist + float(part.detach()), rate + float(part_rate.detach())
    return total, dist, rate / n_total


@pytest.mark.parametrize("sigma", [2.0, 60.0, 2000.0])
def test_closed_form_gradient_is_autograds(sigma):
    g = torch.Generator().manual_seed(3)
    ws = [torch.randn(700, generator=g) * 0.02, torch.randn(300, generator=g) ** 3,     # heavy tails
          torch.randn(9, generator=g)]
    imps = [None, torch.rand(300, generator=g) + 0.5, None]
    counts, k, lam = [7000, 300, 9], 8, 0.05
    scale = [float(w.std()) for w in ws]
    centers = [torch.quantile(w.double(), torch.linspace(0, 1, k + 2, dtype=torch.float64)[1:-1]).requires_grad_(True)
               for w in ws]
    loss, dist, rate = _autograd_loss([w.double() for w in ws], [None if v is None else v.double() for v in imps],
                                      counts, scale, centers, sigma, lam)
    loss.backward()
    fit = CentreFit([w.numpy() for w in ws], [None if v is None else v.numpy() for v in imps], counts, scale, lam, k)
    grad, fdist, frate = fit.step(np.stack([c.detach().numpy() for c in centers]), sigma)
    ref = np.stack([c.grad.numpy() for c in centers])
    assert np.abs(grad - ref).max() <= 1e-9 * np.abs(ref).max()
    assert fdist == pytest.approx(dist, rel=1e-12) and frate == pytest.approx(rate, rel=1e-12)


def test_nearest_centre_is_argmins_first_on_ties():
    c = np.array([-0.5, 0.0, 0.25, 0.25, 1.0], dtype=np.float32)
    v = np.concatenate([np.random.default_rng(0).normal(0, 1, 1000),
                        [0.125, -0.25, 0.625, 0.25]]).astype(np.float32)        # exact midpoints, a duplicate
    out = np.empty(v.size, dtype=np.uint8)
    nearest(v, c, out)
    ref = ((torch.from_numpy(v)[:, None] - torch.from_numpy(c)[None, :]) ** 2).argmin(1)
    assert out.tolist() == ref.tolist()


def test_centres_follow_the_autograd_fit():
    """The quantizer's steps (one Adam over the table of all tensors' centres, gradients in closed form)
    end where separate Adams over per-tensor autograd gradients end. Only while the assignment is soft:
    once it is hard (σ in the hundreds) the steps overshoot back and forth, and float32 rounding alone
    (the old graph's) moves the centres apart by up to 1e-3 after 40 steps."""
    g = torch.Generator().manual_seed(1)
    main = {"a": torch.randn(20, 30, generator=g) * 0.05, "b": torch.randn(8, 8, generator=g) ** 3}
    imp = {"b": torch.rand(8, 8, generator=g) + 0.5}
    opts = SHVQOptions(centers=6, lam=0.05, iters=40, sigma1=50.0)
    got = run(SoftToHardVQ().run(QuantInput(main, {}, imp), opts)).tensors

    ws = {k: v.reshape(-1) for k, v in main.items()}
    scale = [float(w.std()) for w in ws.values()]
    centers = [torch.nn.Parameter(_kmeans_init(w, opts.centers)) for w in ws.values()]
    adam = torch.optim.Adam(centers, lr=opts.lr)
    for it in range(opts.iters):
        sigma = opts.sigma0 * (opts.sigma1 / opts.sigma0) ** (it / (opts.iters - 1))
        adam.zero_grad()
        imps = [imp[k].reshape(-1) if k in imp else None for k in ws]
        _autograd_loss(list(ws.values()), imps, [w.numel() for w in ws.values()], scale, centers, sigma,
                       opts.lam)[0].backward()
        adam.step()
    for k, c in zip(ws, centers):
        q = got[k]
        c = c.detach().numpy()
        idx = ((ws[k][:, None] - torch.from_numpy(c)[None, :]) ** 2).argmin(1).numpy()
        np.testing.assert_allclose(q.values().reshape(-1), c[idx], rtol=1e-5, atol=1e-6)


def test_adam_steps_are_torchs():
    g = torch.Generator().manual_seed(0)
    start = torch.randn(5, 16, generator=g)
    ref = torch.nn.Parameter(start.clone())
    torch_adam = torch.optim.Adam([ref], lr=1e-3)
    table = start.clone()                     # as the centre fit steps it: a plain tensor, .grad set by hand
    adam = Adam([table], 1e-3)
    for _ in range(200):
        grad = torch.randn(5, 16, generator=g, dtype=torch.float64) * 10.0 ** -(6 * torch.rand(5, 1, generator=g))
        ref.grad = grad.float()
        torch_adam.step()
        table.grad = grad.float()
        adam.step()
    ours = table.numpy()
    np.testing.assert_allclose(ours, ref.detach().numpy(), rtol=0, atol=1e-6)
    assert np.abs(ours - start.numpy()).max() > 0.02          # it moved: 200 steps of up to lr each
