"""What every learned model kind is: a network that owns its training pass and its coding.

Our own kinds (`TransformCodingModel`) have a continuous rate knob through gain units (Cui et al.
2021): per quality level l a model learns a gain vector applied to the latent before quantization and
an inverse gain applied after, so one network covers the whole rate range and a fractional quality
interpolates two neighbouring levels geometrically (the app's continuous quality slider and
target-size search, for the price of one trained model). Imported CompressAI checkpoints have one
rate point and no gains.

A kind is one registered class (`MODELS`) that owns, as CompressAI's models do:
* its transforms and its training pass (`forward`, with a surrogate for rounding), and what training
  asks of it (`training_qualities`, `progress_metrics`, `load_init`);
* its coding tables (`coding_tables`, computed once at export and stored as integers);
* how its latents become streams and come back (`compress` returns an `Encoded`, `decompress` pixels),
  inside the workbench container under codec id "learned";
* which encoder tools apply to it (`latent_quantizers`, `supports_optimize`, `supports_finetune`), and
  for decoder finetuning what the coder decides on a batch (`quantized_latents`) and which parameters
  are the decoder (`decoder_parameters`).
The codec adapter, training, finetuning and latent optimization call these and never ask which kind
a model is. The helpers at the end are shared by the kinds' coders.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from workbench.core import container
from workbench.core.codecs.base import Encoded
from workbench.core.entropy import CategoricalReader, CategoricalTable, CategoricalWriter
from workbench.core.errors import BitstreamError, OptionError
from workbench.core.jobs import Job
from workbench.core.registry import Registry

if TYPE_CHECKING:
    from workbench.core.learned.weights import CodecModel

CODEC_ID = "learned"
SYNTH_THREADS = 2      # the synthesis runs with this many threads whatever the caller set

MSE_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
MSSSIM_LAMBDAS = (2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.0)


def interpolate_levels(values: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Per-image rows for qualities in [1, L]: linear between the rows of `values` (L, ...) around each
    quality. Applied to logarithms (of gains, of λ) it is the geometric interpolation that makes a
    fractional quality land between its two neighbouring levels."""
    levels = values.shape[0]
    if levels == 1:
        return values[0].expand(quality.shape[0], *values.shape[1:])
    q = quality.to(values.dtype).clamp(1, levels) - 1
    lo = q.floor().long().clamp(max=levels - 2)
    t = (q - lo).view(-1, *([1] * (values.dim() - 1)))
    return (1 - t) * values[lo] + t * values[lo + 1]


@dataclass
class QuantizedLatents:
    """What the coder decides for a batch, shaped like y: the means μ it codes around (gained units), the
    nominal x̂ in multiples of Δ, the quantizer (0/1) and scale-grid level of each latent (which pick its
    reconstruction offset), and Δ. ŷ = μ + Δ·(x̂ + offset) times the inverse gains is what is synthesised."""
    means: torch.Tensor
    nominal: torch.Tensor
    quant: torch.Tensor
    levels: torch.Tensor
    delta: float


@dataclass
class ForwardResult:
    x_hat: torch.Tensor
    bits_y: torch.Tensor      # per image
    bits_z: torch.Tensor      # per image
    latents: int              # number of latent elements (y and z) per image


class ModelKind(nn.Module):
    """The interface every registered kind implements. `analyse` is what an encoder runs on the image
    (before any gains), `synthesise` what a decoder runs on ŷ (after the inverse gains)."""

    name: ClassVar[str]
    label: ClassVar[str]
    y_stride: ClassVar[int] = 16     # pixels per latent position along each axis
    z_stride: ClassVar[int] = 64     # pixels per hyper-latent position (what images are padded to)
    # Encoder tools that apply to this kind (the CLI and the app refuse the others with the reason).
    latent_quantizers: ClassVar[tuple[str, ...]] = ("round",)
    supports_optimize: ClassVar[bool] = False
    supports_finetune: ClassVar[bool] = False
    # Sub-networks whose output decides symbols: loaded files keep a float64 copy of them, which
    # encoder and decoder alike run on the CPU (`CodecModel.exact`).
    symbol_modules: ClassVar[tuple[str, ...]] = ()
    stored_tables: ClassVar[tuple[str, ...]] = ("tables.hyper",)    # what a model file must hold
    levels: int = 1
    trainable: ClassVar[bool] = True        # `workbench train` can train it from scratch
    # What `workbench finetune` retrains (parameter names or module prefixes); nothing that decides symbols.
    decoder_parameters: ClassVar[tuple[str, ...]] = ()
    stored_dtype: ClassVar[torch.dtype] = torch.float16     # how a model file stores the weights

    def rate_point(self, quality: float) -> float:
        """The quality an encode uses and records for the option's value: a one-rate model has only 1."""
        return float(quality)

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        return self.g_a(x)

    def synthesise(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.g_s(y_hat)

    def synthesis_energy(self) -> torch.Tensor:
        """Squared-error gain from each (un-gained) latent channel to the pixels, for encoder-side
        rate-distortion decisions. A nonlinear synthesis has no single value; 1 is the neutral guess."""
        return torch.ones(self.m)

    def gains(self, quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(gain, inverse gain) per image, (N, C, 1, 1); a model with one rate point has none."""
        one = torch.ones(quality.shape[0], self.m, 1, 1, device=quality.device)
        return one, one

    # --- training ------------------------------------------------------------------------------
    @classmethod
    def training_config(cls, opts, lambdas: list[float]) -> dict:
        """Constructor arguments from `workbench train`'s options (`train.TrainOptions`)."""
        return {"n": opts.channels, "m": opts.latent_channels, "levels": len(lambdas), "scale_bound": opts.scale_bound}

    def forward(self, x, quality, surrogate, step, zero_center=True, hard=False) -> ForwardResult:
        raise NotImplementedError

    def training_qualities(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """The quality of each image of a training batch: continuous in [1, levels], so every level and
        the paths between them are trained."""
        return 1 + torch.rand(batch, generator=generator) * (self.levels - 1)

    def progress_metrics(self) -> dict:
        """Scalars of the kind's own state for the live curves (e.g. SHVQ's σ and soft–hard gap)."""
        return {}

    def load_init(self, checkpoint: dict, lambdas) -> list[str]:
        """Start from another checkpoint: every tensor of the same name and shape; returns their names."""
        state = checkpoint.get("model", checkpoint)
        own = self.state_dict()
        loaded = {k: v.to(own[k].dtype) for k, v in state.items() if k in own and own[k].shape == v.shape}
        self.load_state_dict(loaded, strict=False)
        return sorted(loaded)

    # --- coding --------------------------------------------------------------------------------
    def coding_tables(self) -> dict[str, list[CategoricalTable]]:
        """Integer tables by name, computed at export from the float16-rounded weights and stored."""
        raise NotImplementedError

    def compress(self, cm: CodecModel, rgb: np.ndarray, options) -> Job[Encoded]:
        """Code one image with the options of the learned codec (`codecs/learned.py`); yields progress
        only for long encoder work (latent optimization)."""
        raise NotImplementedError

    def decompress(self, cm: CodecModel, c: container.Container) -> np.ndarray:
        """Pixels of a container that names this model (`coding.file_model` checked the hash)."""
        raise NotImplementedError

    # --- decoder finetuning (`finetune.py`) -------------------------------------------------------
    def is_decoder_parameter(self, name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in self.decoder_parameters)

    def quantized_latents(self, cm: CodecModel, x: torch.Tensor, quality: torch.Tensor,
                          quantizer) -> QuantizedLatents:
        """What `compress` with this latent quantizer (step 1) decides for a batch of padded images,
        computed by the frozen model `cm` exactly as the coder does, without writing a stream."""
        raise NotImplementedError

    def check_tools(self, options) -> None:
        """Refuse the encoder tools this kind has no use for, naming the reason."""
        quantizer = getattr(options, "quantizer", "round")
        if quantizer not in self.latent_quantizers:
            allowed = ", ".join(self.latent_quantizers)
            raise OptionError(f"the {self.name} model codes its latents with {allowed} only, not {quantizer}")
        if getattr(options, "optimize", 0) and not self.supports_optimize:
            raise OptionError(f"per-image latent optimization is not available for the {self.name} model")




class TransformCodingModel(ModelKind):
    """Our own kinds: one network for the whole rate range through gain units (module docstring)."""

    def __init__(self, n: int = 64, m: int = 128, levels: int = 8, scale_bound: float = 0.11):
        super().__init__()
        self.n, self.m, self.levels = n, m, levels
        self.config = {"n": n, "m": m, "levels": levels, "scale_bound": scale_bound}
        self.g_a, self.g_s = self.build_transforms(n, m)
        # Gains start spread out so the levels differ from the first step (λ spans 100x: gains ~3x).
        ramp = torch.linspace(-0.6, 0.6, levels).view(levels, 1) if levels > 1 else torch.zeros(1, 1)
        self.log_gain = nn.Parameter(ramp.repeat(1, m))
        self.log_inv_gain = nn.Parameter(-ramp.repeat(1, m))

    def build_transforms(self, n: int, m: int) -> tuple[nn.Module, nn.Module]:
        raise NotImplementedError

    def _interp(self, table: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        """Gains for per-image qualities in [1, levels] (N,) -> (N, C, 1, 1)."""
        return torch.exp(interpolate_levels(table, quality))[:, :, None, None]

    def gains(self, quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._interp(self.log_gain, quality), self._interp(self.log_inv_gain, quality)


MODELS: Registry[ModelKind] = Registry("model architecture")


# --- helpers shared by the kinds' coders ------------------------------------------------------------

def padded(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple


def to_tensor(rgb: np.ndarray, multiple: int) -> torch.Tensor:
    """(1, 3, H', W') in 0..1, edge-padded to multiples of the model's total stride."""
    h, w = rgb.shape[:2]
    x = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255.0
    hp, wp = padded(h, multiple), padded(w, multiple)
    return F.pad(x, (0, wp - w, 0, hp - h), mode="replicate") if (hp, wp) != (h, w) else x


@contextmanager
def threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def synthesise_pixels(model: ModelKind, y_hat: torch.Tensor, g_inv: torch.Tensor,
                      size: tuple[int, int]) -> np.ndarray:
    """8-bit RGB (H, W, 3) from float64 ŷ: the synthesis on the CPU in float32 with a fixed thread count,
    so the pixels do not depend on the caller's torch thread setting."""
    h, w = size
    with torch.no_grad(), threads(SYNTH_THREADS):
        x_hat = model.synthesise((y_hat * g_inv.to(torch.float64)).to(torch.float32))
    out = torch.round(x_hat[0, :, :h, :w].clamp(0, 1) * 255).to(torch.uint8)
    return np.ascontiguousarray(out.permute(1, 2, 0).numpy())


def pack_image(cm: CodecModel, params: dict, size: tuple[int, int], streams: list[bytes]) -> bytes:
    c = container.Container(container.PayloadKind.IMAGE, CODEC_ID, model_hash=cm.sha256, params=params,
                            shapes=[(size[0], size[1], 3)], streams=streams)
    return container.pack(c)


def file_parameters(c: container.Container, streams: int) -> tuple[float, float, str]:
    """(quality, step, latent quantizer) of a learned-codec file, validated; the image size is checked
    by the container."""
    try:
        quality, step = float(c.params["quality"]), float(c.params["step"])
        quantizer = str(c.params.get("quantizer", "round"))
    except (KeyError, TypeError, ValueError):
        raise BitstreamError("learned-codec parameters are missing or malformed") from None
    if not (math.isfinite(quality) and math.isfinite(step)) or len(c.streams) != streams \
            or not c.shapes or len(c.shapes[0]) != 3:
        raise BitstreamError("learned-codec parameters are out of range")
    return quality, step, quantizer


def code_per_channel(writer: CategoricalWriter, values: torch.Tensor, tables) -> torch.Tensor:
    """Clamp each channel into its table's alphabet, code it, return the clamped integers."""
    out = torch.empty_like(values)
    for ch, table in enumerate(tables):
        v = values[ch].clamp(table.lo, table.hi)
        out[ch] = v
        writer.write(v.to(torch.int64).numpy().reshape(-1), table)
    return out


def read_per_channel(reader: CategoricalReader, tables, hw: tuple[int, int]) -> torch.Tensor:
    n = hw[0] * hw[1]
    return torch.stack([torch.from_numpy(reader.read(t, n).astype(np.float64)).view(*hw) for t in tables])
