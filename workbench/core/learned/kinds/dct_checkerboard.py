"""`dct-context` with a spatial context inside each frequency group: the groups coded in two checkerboard halves.

The frequency-group context predicts a group from the groups decoded before it, at the same block
position; what it cannot see is the group itself in the neighbouring blocks, and that is where a block
DCT leaves most of its redundancy (the DC and lowest frequencies of adjacent 8×8 blocks move together,
and so do the magnitudes of every band around an edge). So each group is coded in two halves, as in
He et al.'s checkerboard context (CVPR 2021): the *anchors* (block row + column even) under the
parameters `dct-context` gives them, then the other half, whose mean and scale a small network corrects
from the decoded anchors around it. Decoding takes two parallel passes per group (ten), never a serial
spatial loop.

The network's last layer starts at zero, so a model started from a `dct-context` checkpoint *is* that
codec at step 0 and training only has to learn what the neighbours add. It sees, at the anchors only,
the un-gained decoded values and the residuals in units of their scale, through a 3×3 window (the four
anchors next to each position of the other half): a first version with a 5×5 window and the anchors'
scales as a third input doubled the decoding time of a 1276×850 photograph. Like the group context it
runs in float64 on the CPU on encoder and decoder alike (`CodecModel.exact`), and it sees nominal
values, never the reconstruction offsets finetuning learns.

Bitstream: that of `dct-context`, except that each group's part of stream 1 holds its anchors, then its
other half, each laid out as (channel, row, every other column) chains for the latent quantizer.
"""

from __future__ import annotations

import torch
from torch import nn

from workbench.core.learned.kinds.base import MODELS, threads
from workbench.core.learned.kinds.dct_context import DCTContextHyperprior
from workbench.core.learned.kinds.hyperprior import step_scale


class Half:
    """One checkerboard half of a group tensor (B, C, H, W): row r keeps columns (r + parity) mod 2 + 2k, as
    a (B, C, H, W/2) tensor whose rows are the latent quantizer's chains. W is even: images are padded to
    multiples of the hyperprior's 64-pixel stride, so the latent's width is a multiple of 8."""

    def __init__(self, parity: int):
        self.parity = parity

    def take(self, t: torch.Tensor) -> torch.Tensor:
        pairs = t.unflatten(-1, (t.shape[-1] // 2, 2))
        out = pairs.new_empty(pairs.shape[:-1])
        out[..., 0::2, :] = pairs[..., 0::2, :, self.parity]
        out[..., 1::2, :] = pairs[..., 1::2, :, 1 - self.parity]
        return out

    def put(self, target: torch.Tensor, channels: list[int], value: torch.Tensor) -> None:
        pairs = target.unflatten(-1, (target.shape[-1] // 2, 2))       # a view: writes land in target
        sub = pairs[:, channels]
        sub[..., 0::2, :, self.parity] = value[..., 0::2, :]
        sub[..., 1::2, :, 1 - self.parity] = value[..., 1::2, :]
        pairs[:, channels] = sub


ANCHORS, OTHERS = Half(0), Half(1)


def anchor_mask(like: torch.Tensor) -> torch.Tensor:
    """1 at the anchors of a (B, C, H, W) tensor, 0 elsewhere, shaped (1, 1, H, W) in its dtype."""
    h, w = like.shape[-2:]
    rows = torch.arange(h, device=like.device).view(h, 1)
    cols = torch.arange(w, device=like.device).view(1, w)
    return ((rows + cols) % 2 == 0).to(like.dtype).view(1, 1, h, w)


class _SpatialContext(nn.Module):
    """(Δμ in un-gained units, Δ log σ) of a group's second half from its decoded anchors."""

    def __init__(self, channels: int, width: int = 64):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(2 * channels, width, 3, padding=1), nn.LeakyReLU(inplace=True),
                                  nn.Conv2d(width, width, 1), nn.LeakyReLU(inplace=True),
                                  nn.Conv2d(width, 2 * channels, 1))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, anchors: torch.Tensor, normalised: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d_mean, d_log_scale = self.body(torch.cat((anchors, normalised), dim=1)).chunk(2, dim=1)
        return d_mean, d_log_scale


@MODELS.register
class DCTCheckerboardHyperprior(DCTContextHyperprior):
    """`DCTContextHyperprior` whose groups are each coded in two checkerboard halves (module docstring)."""

    name = "dct-checkerboard"
    label = "DCT hyperprior with frequency-group and checkerboard spatial context"
    symbol_modules = ("h_s", "context", "spatial")

    def __init__(self, n: int = 64, m: int = 192, levels: int = 8, scale_bound: float = 0.11, width: int = 128):
        super().__init__(n, m, levels, scale_bound, width)
        self.spatial = nn.ModuleList(_SpatialContext(len(g)) for g in self.groups)

    def other_half(self, index: int, anchors: torch.Tensor, residual: torch.Tensor, mu: torch.Tensor,
                   sigma: torch.Tensor, g: torch.Tensor, g_inv: torch.Tensor, spatial: nn.ModuleList | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and scale (gained units) of the second half of group `index`, given the group's decoded
        values and residuals (read at the anchors only), and its first-half mean and scale everywhere.
        The coder passes the float64 copy of the networks."""
        mask = anchor_mask(mu)
        d_mean, d_log_scale = (spatial or self.spatial)[index](anchors * g_inv * mask, residual / sigma * mask)
        return mu + d_mean * g, sigma * torch.exp(d_log_scale)

    def group_step(self, index, mu, sigma, g, g_inv, quantize):
        y_a, residual_a = quantize(mu)
        mu_o, sigma_o = self.other_half(index, y_a, residual_a, mu, self.gaussian.bounded(sigma), g, g_inv)
        y_o, residual_o = quantize(mu_o)
        anchors = anchor_mask(mu).bool()
        return (torch.where(anchors, y_a, y_o), torch.where(anchors, residual_a, residual_o),
                torch.where(anchors, sigma, sigma_o))

    def _by_group(self, cm, means, scales, quality, quantizer, step, code) -> None:
        """As `dct-context` codes its groups, each in two parts: the anchors, then the other half under the
        spatial context's parameters (computed exactly as the decoder will, from the anchors' nominal x̂)."""
        delta = step * step_scale(quantizer.name)
        g, g_inv = (t.to(torch.float64) for t in self.gains(quality))
        decoded = []
        for i, idx in enumerate(self.groups):
            mu, sigma = self._exact_group(cm, i, decoded, means, scales, g)
            nominal = torch.zeros_like(mu)
            ANCHORS.put(nominal, slice(None), code(idx, ANCHORS, ANCHORS.take(mu), ANCHORS.take(sigma)))
            with torch.no_grad(), threads(1):
                mu_o, sigma_o = self.other_half(i, mu + delta * nominal, delta * nominal, mu, sigma, g[:, idx],
                                                g_inv[:, idx], cm.exact.spatial)
            sigma_o = torch.clamp_min(sigma_o, self.gaussian.scale_bound)
            OTHERS.put(nominal, slice(None), code(idx, OTHERS, OTHERS.take(mu_o), OTHERS.take(sigma_o)))
            OTHERS.put(mu, slice(None), OTHERS.take(mu_o))
            decoded.append((mu + delta * nominal) * g_inv[:, idx])
