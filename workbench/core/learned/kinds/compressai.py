"""CompressAI's six image architectures as model kinds: their checkpoints code through our container.

The networks (`compressai_nets.py`) take CompressAI's state dicts as they are; the entropy models here
hold the same parameters (the entropy bottleneck's factorised density and quantiles, the Gaussian
conditional's scale bound) but code with our integer-table discipline instead of CompressAI's own
coder, whose format does not promise cross-platform decoding:

* ẑ = median + round(z − median) per channel, as CompressAI quantizes it, coded under integer tables
  computed once at load (float64, CPU) from the factorised density around the medians;
* y under our 64-level scale grid with the hyperprior kind's coder (`HyperpriorCoding`), so
  bmshj2018-hyperprior and mbt2018-mean also take rdoq/tcq4/tcq8 and latent optimization when their λ
  is known (from a zoo file name);
* the autoregressive models (mbt2018, cheng2020) decode position by position in raster order — the
  causal loop their masked 5×5 context imposes — in float64 on the CPU, everything else vectorised.
  Their latents are rounded: a trellis path cannot run through a context that depends on the levels
  it has not chosen yet. The context sees the nominal ŷ = μ + round(y − μ), never reconstruction offsets.
  Per-image latent optimization descends a parallel surrogate of that loop (`latent_terms`).

Decoder finetuning (`workbench finetune`) retrains g_s (and the offsets) of the hyperprior and
autoregressive models on what their coder decides; the result is a workbench model file that keeps
the checkpoint's float32 weights, so its encoder and tables are exactly the checkpoint's.

A checkpoint has one rate point (CompressAI trains one model per quality): `quality` does not apply to
it and files record quality 1; `step` Δ > 1 lowers the rate of the hyperprior models.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from torch import nn

from workbench.core.entropy import CategoricalReader, CategoricalWriter
from workbench.core.errors import BitstreamError, OptionError
from workbench.core.images import check_rgb
from workbench.core.learned import densities
from workbench.core.learned.densities import FactorizedDensity, GaussianScales
from workbench.core.learned.device import pick_device
from workbench.core.learned.kinds.base import (MODELS, Encoded, ModelKind, code_per_channel, file_parameters,
                                               pack_image, padded, read_per_channel, synthesise_pixels, threads,
                                               to_tensor)
from workbench.core.learned.kinds.compressai_nets import build_networks
from workbench.core.learned.kinds.hyperprior import HyperpriorCoding

# What we take of CompressAI's entropy models: the density's parameters. Their coding tables, scale table
# and bounds are CompressAI's own bookkeeping (we compute ours; the scale bound is read by the loader).
_DENSITY_KEYS = ("matrices.", "biases.", "factors.", "quantiles")


class EntropyBottleneck(FactorizedDensity):
    """CompressAI's entropy bottleneck: the same factorised density (four hidden layers of 3) plus the
    learned quantiles whose middle one is each channel's median."""

    def __init__(self, channels: int):
        super().__init__(channels, filters=(3, 3, 3, 3))
        self.quantiles = nn.Parameter(torch.zeros(channels, 1, 3))

    def medians(self) -> torch.Tensor:
        return self.quantiles[:, 0, 1].detach()


class ImportedModel(ModelKind):
    """A CompressAI checkpoint: networks and entropy models from its state dict, nothing trained here."""

    trainable = False
    stored_dtype = torch.float32        # a finetuned decoder's file keeps the checkpoint's encoder exactly

    def rate_point(self, quality: float) -> float:
        return 1.0

    def __init__(self, n: int, m: int):
        super().__init__()
        self.n, self.m, self.levels = n, m, 1
        self.config = {"n": n, "m": m}
        for name, net in build_networks(self.name, n, m).items():
            setattr(self, name, net)

    def load_compressai(self, state: dict[str, torch.Tensor], scale_bound: float) -> None:
        """Load a CompressAI state dict (strict, once CompressAI's own coding buffers are dropped)."""
        own = {k: v for k, v in state.items() if not k.startswith("gaussian_conditional.")
               and not (k.startswith("entropy_bottleneck.") and not k[19:].startswith(_DENSITY_KEYS))}
        try:
            missing, unexpected = self.load_state_dict(own, strict=False)
        except RuntimeError as exc:          # a shape that does not fit: name the first such entry
            detail = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc))
            raise OptionError(f"the checkpoint does not fit {self.name} (N={self.n}, M={self.m}): "
                              f"{detail.rstrip('.')}") from None
        if missing or unexpected:
            what = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
            raise OptionError(f"the checkpoint does not fit {self.name} (N={self.n}, M={self.m}): {what}")
        if hasattr(self, "gaussian"):
            self.gaussian = GaussianScales(scale_bound)
            self.config["scale_bound"] = scale_bound        # a model file made from it (finetuning) keeps it

    def check_options(self, cm, options) -> None:
        self.check_tools(options)
        needs_lambda = options.quantizer != "round" or options.optimize
        if needs_lambda and not json.loads(cm.info.get("lambdas") or "[]"):     # (a finetuned file may hold [])
            raise OptionError(f"{options.quantizer if options.quantizer != 'round' else 'latent optimization'} needs "
                              "the λ the checkpoint was trained for, which its file name does not say "
                              "(name it like CompressAI's zoo files, e.g. mbt2018-mean-3-....pth.tar)")


@MODELS.register
class ImportedFactorized(ImportedModel):
    name = "bmshj2018-factorized"
    label = "bmshj2018-factorized (CompressAI)"
    y_stride = 16
    z_stride = 16

    def __init__(self, n: int, m: int):
        super().__init__(n, m)
        self.entropy_bottleneck = EntropyBottleneck(m)

    def coding_tables(self):
        return {"tables.hyper": self.entropy_bottleneck.tables(centers=self.entropy_bottleneck.medians())}

    def compress(self, cm, rgb, options):
        yield from ()      # a job like every kind's compress, with nothing to report
        self.check_options(cm, options)
        if float(options.step) != 1.0:
            raise OptionError("a factorized checkpoint codes with its own tables; use step 1")
        rgb = check_rgb(rgb)
        h, w = rgb.shape[:2]
        device = pick_device(options.device)
        with torch.no_grad():
            try:
                y = self.to(device).analyse(to_tensor(rgb, self.z_stride).to(device)).to("cpu", torch.float64)
            finally:
                self.to("cpu")
        medians = self.entropy_bottleneck.medians().to(torch.float64).view(-1, 1, 1)
        writer = CategoricalWriter()
        k = code_per_channel(writer, torch.round(y[0] - medians), cm.hyper_tables)
        with torch.no_grad():
            bits = float(-torch.log2(self.entropy_bottleneck.likelihood((k + medians)[None].float())).sum())
        params = {"model": cm.name, "quality": 1.0, "step": 1.0}
        return Encoded(pack_image(cm, params, (h, w), [CategoricalWriter().finish(), writer.finish()]), bits)

    def decompress(self, cm, c):
        _, step, quantizer = file_parameters(c, streams=2)
        if step != 1.0 or quantizer != "round":
            raise BitstreamError("learned-codec parameters are out of range for a factorized checkpoint")
        h, w = c.shapes[0][:2]
        reader = CategoricalReader(c.streams[1])
        k = read_per_channel(reader, cm.hyper_tables,
                             (padded(h, self.z_stride) // self.y_stride, padded(w, self.z_stride) // self.y_stride))
        reader.finish()
        y_hat = (k + self.entropy_bottleneck.medians().to(torch.float64).view(-1, 1, 1))[None]
        return synthesise_pixels(self, y_hat, torch.ones(1, self.m, 1, 1), (h, w))


@MODELS.register
class ImportedScaleHyperprior(HyperpriorCoding, ImportedModel):
    """bmshj2018-hyperprior: the hyper-analysis sees |y|, h_s predicts scales only (μ = 0)."""

    name = "bmshj2018-hyperprior"
    label = "bmshj2018-hyperprior (CompressAI)"
    y_stride = 16
    z_stride = 64
    supports_optimize = True        # when the file name gives λ (`check_options`)
    supports_finetune = True
    decoder_parameters = ("g_s",)

    def __init__(self, n: int, m: int, scale_bound: float = 0.11):
        super().__init__(n, m)
        self.entropy_bottleneck = EntropyBottleneck(n)
        self.gaussian = GaussianScales(scale_bound)
        self.config["scale_bound"] = scale_bound

    @property
    def density_z(self) -> EntropyBottleneck:
        return self.entropy_bottleneck

    def gains_z(self, quality):
        one = torch.ones(quality.shape[0], self.n, 1, 1, device=quality.device)
        return one, one

    def hyper_analyse(self, y):
        return self.h_a(torch.abs(y))

    def z_offsets(self):
        return self.entropy_bottleneck.medians()

    def entropy_params(self, z_hat, h_s=None):
        scales = (h_s or self.h_s)(z_hat)
        return torch.zeros_like(scales), scales

    def coding_tables(self):
        q0, q1 = densities.trellis_tables()
        return {"tables.hyper": self.entropy_bottleneck.tables(centers=self.z_offsets()),
                "tables.gaussian": densities.gaussian_tables(), "tables.tcq0": q0, "tables.tcq1": q1}

    def compress(self, cm, rgb, options):
        self.check_options(cm, options)
        return (yield from super().compress(cm, rgb, options))

    def decompress(self, cm, c):
        quality, _, _ = file_parameters(c, streams=2)
        if quality != 1.0:
            raise BitstreamError("learned-codec parameters are out of range for a one-rate checkpoint")
        return super().decompress(cm, c)


@MODELS.register
class ImportedMeanScaleHyperprior(ImportedScaleHyperprior):
    """mbt2018-mean: h_s predicts scales and means (in that order along the channels)."""

    name = "mbt2018-mean"
    label = "mbt2018-mean (CompressAI)"

    def hyper_analyse(self, y):
        return self.h_a(y)

    def entropy_params(self, z_hat, h_s=None):
        scales, means = (h_s or self.h_s)(z_hat).chunk(2, dim=1)
        return means, scales


# The causal taps of a 5×5 mask of type A: the two rows above and the two positions to the left.
_TAPS = [(i, j) for i in range(5) for j in range(5) if i < 2 or (i == 2 and j < 2)]


@MODELS.register
class ImportedJointAutoregressive(ImportedMeanScaleHyperprior):
    """mbt2018: the hyperprior's parameters and a masked 5×5 context over the ŷ decoded so far go
    through 1×1 layers (`entropy_parameters`) to the scale and mean of each position."""

    name = "mbt2018"
    label = "mbt2018 (CompressAI)"
    latent_quantizers = ("round",)
    symbol_modules = ("h_s", "context_prediction", "entropy_parameters")

    def entropy_params(self, z_hat, h_s=None):
        params = (h_s or self.h_s)(z_hat)
        return params, params        # resolved position by position in `_serial`

    def hyper_params(self, cm, z_hat, quality):
        with torch.no_grad(), threads(1):
            params = cm.exact.h_s(z_hat)
        return params, None

    def latent_terms(self, y, z, quality, quantizer, step):
        """Per-image optimization's surrogate. The context runs on the surrogate of y itself, as in
        CompressAI's training pass, not on the coder's serial μ + round(y − μ), which would put the causal
        loop inside every descent step; the optimized latents are then coded serially as any others."""
        medians = self.z_offsets().to(z).view(1, -1, 1, 1)
        z_t = medians + quantizer(z - medians, step)
        bits_z = -torch.log2(self.density_z.likelihood(z_t)).sum()
        ctx = self.context_prediction(quantizer(y, step))
        scales, means = self.entropy_parameters(torch.cat([self.h_s(z_t), ctx], dim=1)).chunk(2, dim=1)
        residual = quantizer(y - means, step)
        bits_y = -torch.log2(self.gaussian.likelihood(residual, scales)).sum()
        return bits_y + bits_z, self.synthesise(means + residual)

    def write_latents(self, cm, writer, y, means, scales, quality, quantizer, step):
        if step != 1.0:
            raise OptionError("an autoregressive checkpoint codes with step 1 only")
        bits, m = [0.0], self.m

        def code(r, c, mu, levels):
            nominal, _, b = quantizer.write_nominal(writer, (y[0, :, r, c] - mu).view(m, 1).numpy(), levels,
                                                    np.ones(m), cm)
            bits[0] += b
            return nominal

        mu, nominal, levels = self._serial(cm, means, code)
        return self._reconstruction(cm, quantizer, mu, nominal, levels), bits[0]

    def read_latents(self, cm, reader, means, scales, quality, quantizer, step):
        if step != 1.0:
            raise BitstreamError("learned-codec parameters are out of range for an autoregressive checkpoint")
        mu, nominal, levels = self._serial(cm, means, lambda r, c, mu, levels: quantizer.read_nominal(reader, levels,
                                                                                                     cm)[0])
        return self._reconstruction(cm, quantizer, mu, nominal, levels)

    def decide_latents(self, cm, y, means, scales, quality, quantizer, step):
        m = self.m
        mu, nominal, levels = self._serial(cm, means, lambda r, c, mu, levels: quantizer.decide(
            (y[0, :, r, c] - mu).view(m, 1).numpy(), levels, np.ones(m), cm)[0])
        return mu, nominal, np.zeros(levels.shape, dtype=np.int64), levels

    @staticmethod
    def _reconstruction(cm, quantizer, mu, nominal, levels) -> torch.Tensor:
        return mu + torch.from_numpy(quantizer.shifted(nominal, np.zeros(levels.shape, dtype=np.int64), levels, cm))

    def _serial(self, cm, params: torch.Tensor, code) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """(μ, nominal x̂, scale level) of every position, each (1, M, H, W), coding or decoding one position
        at a time in raster order: `code(row, column, μ, levels)` returns that position's nominal x̂ (M, 1).
        The context is the masked convolution evaluated at that position only (its 12 causal taps as one
        matrix product) over the nominal ŷ so far; the layers after it are 1×1, so they run on that
        position alone."""
        m = self.m
        _, _, hy, wy = params.shape
        ctx = cm.exact.context_prediction
        weight = torch.stack([ctx.weight[:, :, i, j] for i, j in _TAPS], dim=2).reshape(ctx.weight.shape[0], -1)
        bias = ctx.bias
        layers = [(mod.weight[:, :, 0, 0], mod.bias) if isinstance(mod, nn.Conv2d) else mod
                  for mod in cm.exact.entropy_parameters]
        bound = self.gaussian.scale_bound
        padded_hat = torch.zeros(m, hy + 2, wy + 4, dtype=torch.float64)
        flat_params = params[0].reshape(params.shape[1], -1)
        mu_all = torch.empty(1, m, hy, wy, dtype=torch.float64)
        nominal_all = np.empty((1, m, hy, wy))
        levels_all = np.empty((1, m, hy, wy), dtype=np.int64)
        with torch.no_grad(), threads(1):
            for r in range(hy):
                for c in range(wy):
                    window = padded_hat[:, r:r + 3, c:c + 5]
                    taps = torch.stack([window[:, i, j] for i, j in _TAPS], dim=1).reshape(-1)
                    h = torch.cat([flat_params[:, r * wy + c], weight @ taps + bias])
                    for layer in layers:
                        h = layer[0] @ h + layer[1] if isinstance(layer, tuple) else layer(h)
                    scales, means = h.chunk(2)
                    levels = densities.scale_indices(torch.clamp_min(scales, bound)).view(m, 1).numpy()
                    nominal = code(r, c, means, levels)
                    padded_hat[:, r + 2, c + 2] = means + torch.from_numpy(nominal).view(m)
                    mu_all[0, :, r, c], nominal_all[0, :, r, c], levels_all[0, :, r, c] = means, nominal[:, 0], levels[:, 0]
        return mu_all, nominal_all, levels_all


@MODELS.register
class ImportedCheng2020Anchor(ImportedJointAutoregressive):
    name = "cheng2020-anchor"
    label = "cheng2020-anchor (CompressAI)"


@MODELS.register
class ImportedCheng2020Attention(ImportedJointAutoregressive):
    name = "cheng2020-attn"
    label = "cheng2020-attn (CompressAI)"
