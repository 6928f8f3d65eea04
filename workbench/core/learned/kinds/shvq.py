"""The `dct-shvq` kind: the DCT codec with soft-to-hard vector quantization instead of a hyperprior.

Why this pairing: the block DCT is lossless from the first step, so what training learns here is
the quantizer itself — per-level gains (quantization matrices), per-(level, coefficient) codebooks
and their histograms — plus the colour transform and the post-filter. That isolates what SHVQ
brings (DESIGN §3.3): d = 1 is a learned non-uniform scalar quantizer per coefficient, d = 4 codes
2×2 neighbouring blocks' values of one coefficient jointly, which can exploit their dependence
(and pays for it with a coarser codebook at the same L). There is no hyperprior: the static
histograms are the whole entropy model, so the rate is what a JPEG-like coder with learned tables
would spend.

The scalar surrogate that `workbench train` passes in is ignored; quality levels are integers.

Bitstream (container codec id "learned", parameters {model, quality, step}, the model file's SHA-256,
shapes[0] = (height, width, 3)): one range-coded stream holding, per latent channel in order, the
center index of every vector of that channel (vectors in raster order) under that (level, channel)'s
integer table from the model file. The only decision the encoder makes is which index to send
(nearest center, in float64 on the CPU), and the decoder never recomputes it — it looks the centers
up; the tables are integers stored at export, so decoding is bit-exact everywhere. Each level has its
own histograms and codebooks, so there is nothing to interpolate, and a codebook has no step: only
integer qualities and Δ = 1 are accepted.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from workbench.core.entropy import CategoricalReader, CategoricalWriter
from workbench.core.errors import BitstreamError, OptionError
from workbench.core.images import check_rgb
from workbench.core.learned.device import pick_device
from workbench.core.learned.kinds.base import (MODELS, Encoded, ForwardResult, TransformCodingModel, file_parameters,
                                               pack_image, padded, synthesise_pixels, to_tensor)
from workbench.core.learned.kinds.dct import BlockDCT, PostFilter
from workbench.core.learned.shvq import SHVQOptions, SoftToHardVQ
from workbench.core.options import build


def parse_vq_options(text: str, dim: int, centers: int) -> SHVQOptions:
    """'key=value,key=value' (the CLI's --vq-options) on top of dim and centers."""
    values: dict = {"dim": dim, "centers": centers}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise OptionError(f"--vq-options: expected key=value, got {item!r}")
        values[key.strip().replace("-", "_")] = value.strip()
    return build(SHVQOptions, values)


def to_vectors(y: torch.Tensor, dim: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, V, d): scalars, or 2×2 spatial blocks of one channel."""
    n, c, h, w = y.shape
    if dim == 1:
        return y.reshape(n, c, h * w, 1)
    return y.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, -1, 4)


def from_vectors(v: torch.Tensor, dim: int, h: int, w: int) -> torch.Tensor:
    n, c = v.shape[:2]
    if dim == 1:
        return v.reshape(n, c, h, w)
    return v.reshape(n, c, h // 2, w // 2, 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)


@MODELS.register
class DCTSoftToHardVQ(TransformCodingModel):
    """Colour transform + 8×8 DCT, per-level gains, SHVQ per (level, coefficient), post-filter."""

    name = "dct-shvq"
    label = "DCT with soft-to-hard vector quantization"
    y_stride = 8
    z_stride = 16                # 2×2 blocks of 8×8 blocks; the scalar model pads to 8 (instance value)

    def __init__(self, n: int = 64, m: int = 192, levels: int = 3, scale_bound: float = 0.11, dim: int = 1,
                 centers: int = 64, vq_options: str = "", lambdas: tuple[float, ...] = ()):
        if m != 192:
            raise ValueError("the 8x8 DCT model has exactly 192 latent channels (64 coefficients x 3 colours)")
        super().__init__(n, m, levels, scale_bound)
        opts = parse_vq_options(vq_options, dim, centers)
        if lambdas and len(lambdas) != levels:
            raise ValueError("dct-shvq needs one λ per level")
        self.config.update(dim=opts.dim, centers=opts.centers, vq_options=vq_options, lambdas=list(lambdas))
        self.lambdas = tuple(float(v) for v in lambdas)
        self.dim = opts.dim
        self.z_stride = 8 * (2 if opts.dim == 4 else 1)
        self.post = PostFilter()
        ramp = torch.linspace(1.6, 4.0, levels).view(levels, 1) if levels > 1 else torch.full((1, 1), 2.8)
        with torch.no_grad():
            self.log_gain.copy_(ramp.repeat(1, m))
            self.log_inv_gain.copy_(-ramp.repeat(1, m))
        self.vq = SoftToHardVQ(levels, m, opts)

    def build_transforms(self, n: int, m: int):
        return BlockDCT(inverse=False), BlockDCT(inverse=True)

    def synthesise(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.post(self.g_s(y_hat))

    def level_index(self, quality: torch.Tensor) -> torch.Tensor:
        """0-based level of each (integer) quality; fractions are rounded (training draws integers)."""
        return quality.detach().round().clamp(1, self.levels).long() - 1

    def level_gains(self, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.exp(self.log_gain[level])[:, :, None, None],
                torch.exp(self.log_inv_gain[level])[:, :, None, None])

    def forward(self, x, quality, surrogate=None, step=0, zero_center=True, hard=False) -> ForwardResult:
        level = self.level_index(quality)
        g, g_inv = self.level_gains(level)
        coeffs = self.g_a(x)
        if self.training and not bool(self.vq.ready):
            self._kmeans_init(coeffs.detach())
        y = coeffs * g
        h, w = y.shape[-2:]
        res = self.vq(to_vectors(y, self.dim), level, step, hard)
        y_hat = from_vectors(res.values, self.dim, h, w)
        x_hat = self.post(self.g_s(y_hat * g_inv))
        self.last_bits_hard = res.bits_hard.detach()
        return ForwardResult(x_hat, res.bits, torch.zeros_like(res.bits), y[0].numel())

    @torch.no_grad()
    def _kmeans_init(self, coeffs: torch.Tensor) -> None:
        """Every level's codebooks from the same batch: only the gains differ between levels.

        With the λs known the k-means is entropy-constrained with the loss's own trade-off. The loss
        is bits + λ·255²·MSE per image, MSE over 3 colour channels; the block DCT is orthonormal and
        the inverse YCbCr transform spreads an error e in one of Y, Cb, Cr over R, G and B with a
        squared gain of 3.0, 3.3 and 2.5, so a squared error e² on a gained coefficient costs about
        λ·255²·e² / g² in bits (g the coefficient's gain). Approximate: the learned colour transform
        drifts from YCbCr."""
        samples = []
        for level in range(self.levels):
            y = coeffs * torch.exp(self.log_gain[level])[None, :, None, None]
            v = to_vectors(y, self.dim)                                     # (N, C, V, d)
            samples.append(v.permute(1, 0, 2, 3).reshape(v.shape[1], -1, self.dim))
        weight = None
        if self.lambdas:
            lam = torch.tensor(self.lambdas, dtype=torch.float64)[:, None]
            weight = torch.exp(2 * self.log_gain.detach().to(torch.float64).cpu()) / (lam * 255.0 ** 2)
        self.vq.initialise(torch.stack(samples), torch.Generator().manual_seed(0), weight)

    # --- what training and export ask of a vector-quantized model --------------------------------
    @classmethod
    def training_config(cls, opts, lambdas: list[float]) -> dict:
        return {**super().training_config(opts, lambdas), "dim": opts.vq_dim, "centers": opts.vq_centers,
                "vq_options": opts.vq_options, "lambdas": lambdas}

    def training_qualities(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """Integer qualities: histograms and codebooks exist per level only."""
        return torch.randint(1, self.levels + 1, (batch,), generator=generator).float()

    def progress_metrics(self) -> dict:
        return {"sigma": float(self.vq.sigma), "gap": float(self.vq.gap), "gap_target": self.vq.last_target}

    def coding_tables(self):
        return {"tables.hyper": self.vq.tables()}

    def load_init(self, checkpoint: dict, lambdas) -> list[str]:
        """Start from another model's checkpoint (e.g. the DCT hyperprior): every tensor with the same
        name and shape, and the gains interpolated in log λ from the source's levels to ours — the
        quantization matrices that checkpoint learned are the best starting point we have. Codebooks
        and histograms are not taken over: k-means sets them on the first batch."""
        state = checkpoint.get("model", checkpoint)
        own = self.state_dict()
        loaded = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape and not k.startswith("vq.")}
        src_lambdas = json.loads(checkpoint.get("recipe", "{}")).get("lambda_values") if "recipe" in checkpoint else None
        for key in ("log_gain", "log_inv_gain"):
            if key in state and src_lambdas and len(src_lambdas) == state[key].shape[0] \
                    and state[key].shape[1] == own[key].shape[1]:
                xs = np.log(np.asarray(src_lambdas, dtype=np.float64))
                src = state[key].to(torch.float64).cpu().numpy()
                rows = [[np.interp(np.log(lam), xs, src[:, c]) for c in range(src.shape[1])] for lam in lambdas]
                loaded[key] = torch.tensor(rows, dtype=own[key].dtype)
        self.load_state_dict(loaded, strict=False)
        return sorted(loaded)

    # --- coding --------------------------------------------------------------------------------
    def _level(self, quality: float) -> int:
        if quality != int(quality) or not 1 <= quality <= self.levels:
            raise OptionError(f"this vector-quantized model has integer qualities 1..{self.levels} only (one set "
                              f"of histograms per level), got {quality:g}")
        return int(quality) - 1

    def _tables(self, cm, level: int):
        if len(cm.hyper_tables) != self.levels * self.m:
            raise BitstreamError("the model file's index tables do not match its architecture")
        return cm.hyper_tables[level * self.m:(level + 1) * self.m]

    def compress(self, cm, rgb, options):
        """Its estimate is the ideal code length of the indices under the stored tables."""
        yield from ()      # a job like every kind's compress, with nothing to report
        self.check_tools(options)
        rgb = check_rgb(rgb)
        level = self._level(float(options.quality))
        if float(options.step) != 1.0:
            raise OptionError("a vector-quantized model has no quantization step; use step 1")
        h, w = rgb.shape[:2]
        device = pick_device(options.device)
        x = to_tensor(rgb, self.z_stride)
        with torch.no_grad():
            try:
                coeffs = self.to(device).analyse(x.to(device)).to("cpu", torch.float64)
            finally:
                self.to("cpu")
            g = torch.exp(self.log_gain[level].to(torch.float64))[None, :, None, None]
            indices = self.vq.nearest(to_vectors(coeffs * g, self.dim), torch.tensor([level]))[0]     # (C, V)
        writer = CategoricalWriter()
        bits = 0.0
        for ch, table in enumerate(self._tables(cm, level)):
            sym = indices[ch].numpy()
            writer.write(sym, table)
            bits -= float(np.log2(table.probabilities[sym]).sum())
        params = {"model": cm.name, "quality": float(level + 1), "step": 1.0}
        return Encoded(pack_image(cm, params, (h, w), [writer.finish()]), bits)

    def decompress(self, cm, c):
        quality, step, _ = file_parameters(c, streams=1)
        if quality != int(quality) or not 1 <= quality <= self.levels or step != 1.0:
            raise BitstreamError("learned-codec parameters are out of range for a vector-quantized model")
        level = int(quality) - 1
        h, w = c.shapes[0][:2]
        hp, wp = padded(h, self.z_stride) // self.y_stride, padded(w, self.z_stride) // self.y_stride
        reader = CategoricalReader(c.streams[0])
        indices = torch.from_numpy(np.stack([reader.read(t, hp * wp // self.dim).astype(np.int64)
                                             for t in self._tables(cm, level)]))
        reader.finish()
        with torch.no_grad():
            y_hat = from_vectors(self.vq.lookup(indices[None], torch.tensor([level])), self.dim, hp, wp)
        g_inv = torch.exp(self.log_inv_gain[level].to(torch.float64))[None, :, None, None]
        return synthesise_pixels(self, y_hat.to(torch.float64), g_inv, (h, w))
