"""bmshj2018-factorized with gain units: y is coded per channel under a learned density.

Bitstream (container codec id "learned", parameters {model, quality, step}): stream 0 is empty (no
hyper-latent), stream 1 holds round(y/Δ) channel by channel under that channel's integer table.
"""

from __future__ import annotations

import torch
from torch import nn

from workbench.core.entropy import CategoricalReader, CategoricalWriter
from workbench.core.errors import BitstreamError
from workbench.core.images import check_rgb
from workbench.core.learned import layers
from workbench.core.learned.densities import FactorizedDensity
from workbench.core.learned.device import pick_device
from workbench.core.learned.kinds.base import (MODELS, Encoded, ForwardResult, TransformCodingModel, code_per_channel,
                                               file_parameters, pack_image, padded, read_per_channel,
                                               synthesise_pixels, to_tensor)


@MODELS.register
class FactorizedPrior(TransformCodingModel):
    name = "factorized"
    label = "Factorized prior (Ballé 2018)"

    def __init__(self, n: int = 64, m: int = 128, levels: int = 8, scale_bound: float = 0.11):
        super().__init__(n, m, levels, scale_bound)
        self.density_y = FactorizedDensity(m)

    def build_transforms(self, n: int, m: int) -> tuple[nn.Module, nn.Module]:
        return layers.analysis(n, m), layers.synthesis(n, m)

    def forward(self, x, quality, surrogate, step, zero_center=True, hard=False) -> ForwardResult:
        g, g_inv = self.gains(quality)
        y = self.analyse(x) * g
        y_tilde = surrogate(y, step)
        bits_y = -torch.log2(self.density_y.likelihood(y_tilde)).sum(dim=(1, 2, 3))
        x_hat = self.synthesise(y_tilde * g_inv)
        return ForwardResult(x_hat, bits_y, torch.zeros_like(bits_y), y[0].numel())

    def coding_tables(self):
        return {"tables.hyper": self.density_y.tables()}

    def compress(self, cm, rgb, options):
        yield from ()      # a job like every kind's compress, with nothing to report
        self.check_tools(options)
        rgb = check_rgb(rgb)
        h, w = rgb.shape[:2]
        device = pick_device(options.device)
        quality = torch.tensor([float(options.quality)])
        with torch.no_grad():
            try:
                g, _ = self.to(device).gains(quality.to(device))
                y = (self.analyse(to_tensor(rgb, self.z_stride).to(device)) * g).to("cpu", torch.float64)
            finally:
                self.to("cpu")
        writer = CategoricalWriter()
        code_per_channel(writer, torch.round(y / options.step)[0], cm.hyper_tables)
        params = {"model": cm.name, "quality": float(options.quality), "step": float(options.step)}
        return Encoded(pack_image(cm, params, (h, w), [CategoricalWriter().finish(), writer.finish()]), None)

    def decompress(self, cm, c):
        quality, step, quantizer = file_parameters(c, streams=2)
        if quantizer != "round" or not (1 <= quality <= self.levels and 0.25 <= step <= 8):
            raise BitstreamError("learned-codec parameters are out of range")
        h, w = c.shapes[0][:2]
        hw = (padded(h, self.z_stride) // self.y_stride, padded(w, self.z_stride) // self.y_stride)
        reader = CategoricalReader(c.streams[1])
        y_hat = step * read_per_channel(reader, cm.hyper_tables, hw)[None]
        reader.finish()
        _, g_inv = self.gains(torch.tensor([quality]))
        return synthesise_pixels(self, y_hat, g_inv, (h, w))
