"""The DCT hyperprior with capacity that starts as the identity: the model meant to close the gap to BPG.

Three additions over `DCTHyperprior`, each initialised so that at step 0 the model *is* the DCT model
it was started from (so training continues from a working codec instead of from noise):

* an analysis stage and a synthesis stage at 1/8 resolution (residual blocks over the 192 coefficient
  maps, last layer zero): a 3×3 neighbourhood of 8×8 blocks lets them learn lapped behaviour and
  inter-block prediction that a block DCT lacks;
* a channel-group context model: the coefficients are coded in frequency order (DC of the three
  colours first, then growing diagonal bands of u + v), and each group's mean and scale are the
  hyperprior's corrected by a small network that sees every group decoded before it. Decoding takes
  one pass per group (five), all positions of a group in parallel — no serial spatial loop;
* nothing else changes: gains per quality level, zero-center quantization, the post-filter.

Bitstream: that of `MeanScaleHyperprior`, except that stream 1 holds the groups one after another,
each written by the latent quantizer as a whole stream of its own would be. The context networks run
in float64 on the CPU on encoder and decoder alike (`CodecModel.exact`), as the hyper-synthesis does,
because their scales choose the tables. The context sees the nominal reconstruction μ + Δ·x̂ (what the
symbols say), never the reconstruction offsets a finetuned decoder adds, and the inverse gains stay
frozen in finetuning: so what the context predicts, and therefore every decision and table, is fixed
by the encoder side, and `workbench finetune` can retrain the synthesis (stage, inverse DCT and colour
transform, post-filter) and the offsets on the real quantizer's output as for the DCT model.
Per-image optimization runs through the groups as training does.
"""

from __future__ import annotations

import torch
from torch import nn

from workbench.core.learned import densities
from workbench.core.learned.kinds.base import MODELS, ForwardResult, threads
from workbench.core.learned.kinds.dct import DCTHyperprior
from workbench.core.learned.kinds.hyperprior import step_scale, surrogate_residual

# Diagonal bands (u + v) of the 8×8 DCT, in coding order; each band covers all three colour channels.
BANDS = ((0, 0), (1, 2), (3, 5), (6, 8), (9, 14))


def band_channels() -> list[list[int]]:
    """Latent channel indices of each group (channel = colour·64 + 8u + v, as `BlockDCT` lays them out)."""
    groups = []
    for lo, hi in BANDS:
        freqs = [8 * u + v for u in range(8) for v in range(8) if lo <= u + v <= hi]
        groups.append([c * 64 + f for c in range(3) for f in freqs])
    return groups


class _Whole:
    """A group coded in one piece: the part of a group tensor (1, C, H, W) that a coding step sees."""

    @staticmethod
    def take(t: torch.Tensor) -> torch.Tensor:
        return t

    @staticmethod
    def put(target: torch.Tensor, channels: list[int], value: torch.Tensor) -> None:
        target[:, channels] = value


WHOLE = _Whole()


class _Residual(nn.Module):
    """x + f(x) over the coefficient maps, f two 3×3 convolutions whose last one starts at zero."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(inplace=True),
                                  nn.Conv2d(width, channels, 3, padding=1))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _GroupContext(nn.Module):
    """(Δμ in un-gained units, Δ log σ) for one group from the un-gained values decoded before it."""

    def __init__(self, cin: int, cout: int, width: int = 96):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, width, 3, padding=1), nn.LeakyReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(inplace=True),
                                  nn.Conv2d(width, 2 * cout, 3, padding=1))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, previous: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d_mean, d_log_scale = self.body(previous).chunk(2, dim=1)
        return d_mean, d_log_scale


@MODELS.register
class DCTContextHyperprior(DCTHyperprior):
    """`DCTHyperprior` + identity-initialised stages at 1/8 resolution + a channel-group context model."""

    name = "dct-context"
    label = "DCT hyperprior with 1/8-resolution stages and frequency-group context"
    supports_finetune = True
    # The inverse gains are not retrained: the context sees ŷ times them (module docstring).
    decoder_parameters = ("g_s", "post", "stage_s")
    symbol_modules = ("h_s", "context")

    def __init__(self, n: int = 64, m: int = 192, levels: int = 8, scale_bound: float = 0.11, width: int = 128):
        super().__init__(n, m, levels, scale_bound)
        self.config["width"] = width
        self.stage_a = _Residual(m, width)
        self.stage_s = _Residual(m, width)
        self.groups = band_channels()
        self.context = nn.ModuleList(
            _GroupContext(sum(len(g) for g in self.groups[:i]), len(self.groups[i])) for i in range(1, len(self.groups)))
        order = torch.tensor([c for g in self.groups for c in g])
        self.register_buffer("order", order, persistent=False)

    # The coder and the training pass share these three: analysis, synthesis and the context step.
    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage_a(self.g_a(x))

    def synthesise(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.post(self.g_s(self.stage_s(y_hat)))

    def group_params(self, index: int, previous: torch.Tensor | None, means: torch.Tensor, scales: torch.Tensor,
                     g: torch.Tensor, context: nn.ModuleList | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and scale (gained units) of group `index` given the un-gained values of the groups before
        it (concatenated in coding order) and the hyperprior's mean and scale for the group. The coder
        passes the float64 copy of the context networks."""
        if index == 0:
            return means, scales
        d_mean, d_log_scale = (context or self.context)[index - 1](previous)
        return means + d_mean * g, scales * torch.exp(d_log_scale)

    def group_step(self, index: int, mu: torch.Tensor, sigma: torch.Tensor, g: torch.Tensor, g_inv: torch.Tensor,
                   quantize) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One group through a training quantizer: `quantize(μ)` gives (ỹ, ỹ − μ); returns ỹ, the residual
        and the scale it is priced under. Here the whole group is one step; a spatial context splits it."""
        y_tilde, residual = quantize(mu)
        return y_tilde, residual, sigma

    def forward(self, x, quality, surrogate, step, zero_center=True, hard=False) -> ForwardResult:
        y, g, g_inv, means, scales, bits_z, latents = self.hyper_pass(x, quality, hard)
        bits_y = torch.zeros_like(bits_z)
        decoded: list[torch.Tensor] = []          # un-gained ŷ of each group so far
        y_tilde = torch.empty_like(y)
        for i, idx in enumerate(self.groups):
            previous = torch.cat(decoded, dim=1) if decoded else None
            mu, sigma = self.group_params(i, previous, means[:, idx], scales[:, idx], g[:, idx])
            yt, residual, sigma = self.group_step(
                i, mu, sigma, g[:, idx], g_inv[:, idx],
                lambda m, y_i=y[:, idx]: surrogate_residual(y_i, m, surrogate, step, zero_center))
            bits_y = bits_y - torch.log2(self.gaussian.likelihood(residual, sigma)).sum(dim=(1, 2, 3))
            y_tilde[:, idx] = yt
            decoded.append(yt * g_inv[:, idx])
        return ForwardResult(self.synthesise(y_tilde * g_inv), bits_y, bits_z, latents)

    def latent_terms(self, y, z, quality, quantizer, step):
        gz, gz_inv = self.gains_z(quality)
        g, g_inv = self.gains(quality)
        z_t = quantizer(z, step)
        bits = -torch.log2(self.density_z.likelihood(z_t)).sum()
        means, scales = self.entropy_params(z_t * gz_inv)
        y_hat, decoded = torch.empty_like(y), []
        for i, idx in enumerate(self.groups):
            mu, sigma = self.group_params(i, torch.cat(decoded, 1) if decoded else None, means[:, idx],
                                          scales[:, idx], g[:, idx])

            def rounded(m, y_i=y[:, idx]):
                residual = quantizer(y_i - m, step)
                return m + residual, residual

            y_i, residual, sigma = self.group_step(i, mu, sigma, g[:, idx], g_inv[:, idx], rounded)
            bits = bits - torch.log2(self.gaussian.likelihood(residual, sigma)).sum()
            y_hat[:, idx] = y_i
            decoded.append(y_i * g_inv[:, idx])
        return bits, self.synthesise(y_hat * g_inv)

    # --- coding: the groups in order, each under parameters that depend on the ones before ---------
    def _exact_group(self, cm, i: int, decoded: list, means, scales, g) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.groups[i]
        with torch.no_grad(), threads(1):
            mu, sigma = self.group_params(i, torch.cat(decoded, 1) if decoded else None, means[:, idx],
                                          scales[:, idx], g[:, idx], cm.exact.context)
        return mu, torch.clamp_min(sigma, self.gaussian.scale_bound)

    def _by_group(self, cm, means, scales, quality, quantizer, step, code) -> None:
        """Runs `code(channels, part, μ, σ)` for each group in coding order (μ and σ already taken by the
        part: `WHOLE` here); it returns the part's nominal x̂ (in multiples of Δ), which is what the
        context of the following groups sees."""
        delta = step * step_scale(quantizer.name)
        g, g_inv = (t.to(torch.float64) for t in self.gains(quality))
        decoded = []
        for i, idx in enumerate(self.groups):
            mu, sigma = self._exact_group(cm, i, decoded, means, scales, g)
            decoded.append((mu + delta * code(idx, WHOLE, mu, sigma)) * g_inv[:, idx])

    def write_latents(self, cm, writer, y, means, scales, quality, quantizer, step):
        delta = step * step_scale(quantizer.name)
        y_hat, bits = torch.empty_like(y), [0.0]

        def code(idx, part, mu, sigma):
            u, levels, weights = self.latent_chains(cm, part.take(y[:, idx]), mu, sigma, quality, quantizer.name,
                                                    step, idx)
            nominal, quant, b = quantizer.write_nominal(writer, u, levels, weights, cm)
            bits[0] += b
            part.put(y_hat, idx,
                     mu + delta * torch.from_numpy(quantizer.shifted(nominal, quant, levels, cm)).view(mu.shape))
            return torch.from_numpy(nominal).view(mu.shape)

        self._by_group(cm, means, scales, quality, quantizer, step, code)
        return y_hat, bits[0]

    def read_latents(self, cm, reader, means, scales, quality, quantizer, step):
        delta = step * step_scale(quantizer.name)
        y_hat = torch.empty_like(means)

        def code(idx, part, mu, sigma):
            _, c, hy, wy = mu.shape
            levels = densities.scale_indices(sigma / delta)[0].reshape(c * hy, wy).numpy()
            nominal, quant = quantizer.read_nominal(reader, levels, cm)
            part.put(y_hat, idx,
                     mu + delta * torch.from_numpy(quantizer.shifted(nominal, quant, levels, cm)).view(mu.shape))
            return torch.from_numpy(nominal).view(mu.shape)

        self._by_group(cm, means, scales, quality, quantizer, step, code)
        return y_hat

    def decide_latents(self, cm, y, means, scales, quality, quantizer, step):
        out = [torch.empty_like(y), torch.empty_like(y), torch.empty(y.shape, dtype=torch.int64),
               torch.empty(y.shape, dtype=torch.int64)]

        def code(idx, part, mu, sigma):
            u, levels, weights = self.latent_chains(cm, part.take(y[:, idx]), mu, sigma, quality, quantizer.name,
                                                    step, idx)
            nominal, quant = quantizer.decide(u, levels, weights, cm)
            for t, v in zip(out, (mu, nominal, quant, levels)):
                part.put(t, idx, torch.as_tensor(v).view(mu.shape).to(t.dtype))
            return torch.as_tensor(nominal).view(mu.shape).to(mu.dtype)

        self._by_group(cm, means, scales, quality, quantizer, step, code)
        return tuple(out)
