"""The learned image codec behind `workbench compress -c learned`: a shipped model + hard rounding
on a step Δ + range coding through the integer tables stored with the model.

Bitstream (inside the workbench container, codec id "learned"): parameters {model, quality, step},
the model file's SHA-256 as the model hash, shapes[0] = (height, width, 3), and two streams:
0. z: per channel, every z value of that channel under the channel's table (values outside a
   table are clamped by the encoder, which uses the clamped values itself);
1. y (hyperprior): k = round((y − μ)/Δ) grouped by scale level (all latents whose predicted scale
   σ/Δ falls on grid level L, in channel-major raster order, for L = 0, 1, ...). Each level's table
   has two escape symbols at its ends; the excess |k| − R − 1 of every escaped value follows its
   group under a fixed heavy-tailed table. For the factorized model stream 1 holds y per channel.

Determinism: the entropy parameters (μ, σ → level) are computed from integer data on the CPU in
float64 by both encoder and decoder (`_hyper_params`), and all tables are integers read from the
model file, so the symbols decode identically wherever the file was made. The synthesis runs on the
CPU in float32 with a fixed thread count (`_SYNTH_THREADS`) so the pixels do not depend on the
caller's torch thread setting.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import torch
from torch.nn import functional as F

from workbench.core import container
from workbench.core.entropy import CategoricalReader, CategoricalTable, CategoricalWriter
from workbench.core.errors import BitstreamError, OptionError
from workbench.core.images import check_rgb
from workbench.core.learned.catalog import shipped_models
from workbench.core.learned import densities
from workbench.core.learned.device import pick_device
from workbench.core.learned.weights import CodecModel, load_codec_model, model_for_file

CODEC_ID = "learned"
ESCAPE_MAX = (1 << 14) - 1
_SYNTH_THREADS = 2


@lru_cache(maxsize=1)
def escape_table() -> CategoricalTable:
    """Excess magnitudes 0..2^14−1 with P(e) ∝ 1/(e+1)², from integers only (machine-independent)."""
    counts = [(1 << 40) // ((e + 1) * (e + 1)) for e in range(ESCAPE_MAX + 1)]
    return CategoricalTable.from_counts(counts)


def encode_image(rgb: np.ndarray, options) -> tuple[bytes, float | None]:
    """The container bytes and the model's own rate estimate in bits (None for the factorized model)."""
    rgb = check_rgb(rgb)
    cm = load_codec_model(options.model)
    device = pick_device(options.device)
    h, w = rgb.shape[:2]
    x = _to_tensor(rgb, cm.model.z_stride)
    quality = torch.tensor([float(options.quality)])
    with torch.no_grad():
        model = cm.model.to(device)
        try:
            g, _ = model.gains(quality.to(device))
            y = (model.g_a(x.to(device)) * g).to("cpu", torch.float64)
            if model.has_hyperprior:
                gz, _ = model.gains_z(quality.to(device))
                z = (model.h_a(y.to(device, torch.float32)) * gz).to("cpu", torch.float64)
        finally:
            model.to("cpu")
    writer_z, writer_y = CategoricalWriter(), CategoricalWriter()
    if model.has_hyperprior:
        z_hat = _code_per_channel(writer_z, torch.round(z)[0], cm.hyper_tables)
        means, scales = _hyper_params(cm, z_hat[None], quality)
        levels = densities.scale_indices(scales / options.step)
        k = torch.round((y - means) / options.step).to(torch.int64)
        estimate = _estimate_bits(cm, z_hat, k, scales / options.step)
        _write_levels(writer_y, k[0], levels[0], cm.gaussian)
    else:
        k = torch.round(y / options.step)[0]
        _code_per_channel(writer_y, k, cm.hyper_tables)
        estimate = None
    c = container.Container(container.PayloadKind.IMAGE, CODEC_ID, model_hash=cm.sha256,
                            params={"model": cm.name, "quality": float(options.quality),
                                    "step": float(options.step)},
                            shapes=[(h, w, 3)], streams=[writer_z.finish(), writer_y.finish()])
    return container.pack(c), estimate


def decode_image(data: bytes) -> np.ndarray:
    c = container.unpack(data)
    if c.codec_id != CODEC_ID or c.kind != container.PayloadKind.IMAGE:
        raise BitstreamError(f"not a learned-codec image (codec {c.codec_id!r})")
    params = c.params
    try:
        name, quality, step = str(params["model"]), float(params["quality"]), float(params["step"])
    except (KeyError, TypeError, ValueError):
        raise BitstreamError("learned-codec parameters are missing or malformed") from None
    if not (1 <= quality <= 8 and 0.25 <= step <= 8) or len(c.streams) != 2:
        raise BitstreamError("learned-codec parameters are out of range")
    cm = model_for_file(name, c.model_hash)
    if cm is None:
        if name in shipped_models():
            raise BitstreamError(f"this file was made with different weights for model {name!r} "
                                 "(model hash mismatch); decoding it would give a wrong image")
        raise BitstreamError(f"this file needs the learned model {name!r}, which is not installed here")
    h, w = c.shapes[0][:2]
    hp, wp = _padded(h, cm.model.z_stride), _padded(w, cm.model.z_stride)
    model = cm.model
    q = torch.tensor([quality])
    reader_z, reader_y = CategoricalReader(c.streams[0]), CategoricalReader(c.streams[1])
    if model.has_hyperprior:
        z_hat = _read_per_channel(reader_z, cm.hyper_tables, (hp // model.z_stride, wp // model.z_stride))
        reader_z.finish()
        means, scales = _hyper_params(cm, z_hat[None], q)
        levels = densities.scale_indices(scales / step)[0]
        k = _read_levels(reader_y, levels, cm.gaussian)
        y_hat = means + step * k[None].to(torch.float64)
    else:
        y_hat = step * _read_per_channel(reader_y, cm.hyper_tables, (hp // model.y_stride, wp // model.y_stride))[None]
    reader_y.finish()
    with torch.no_grad(), _threads(_SYNTH_THREADS):
        _, g_inv = model.gains(q)
        x_hat = model.synthesise((y_hat * g_inv.to(torch.float64)).to(torch.float32))
    out = torch.round(x_hat[0, :, :h, :w].clamp(0, 1) * 255).to(torch.uint8)
    return np.ascontiguousarray(out.permute(1, 2, 0).numpy())



# --- helpers ------------------------------------------------------------------------------------------

def _padded(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple


def _to_tensor(rgb: np.ndarray, multiple: int) -> torch.Tensor:
    """(1, 3, H', W') in 0..1, edge-padded to multiples of the model's total stride."""
    h, w = rgb.shape[:2]
    x = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255.0
    hp, wp = _padded(h, multiple), _padded(w, multiple)
    return F.pad(x, (0, wp - w, 0, hp - h), mode="replicate") if (hp, wp) != (h, w) else x


@contextmanager
def _threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _hyper_params(cm: CodecModel, z_hat: torch.Tensor, quality: torch.Tensor):
    """μ and σ (float64, CPU) from integer z: identical on every machine that runs this code."""
    with torch.no_grad(), _threads(1):
        model = cm.model
        _, gz_inv = model.gains_z(quality)
        means, scales = cm.h_s64(z_hat * gz_inv.to(torch.float64)).chunk(2, dim=1)
    return means, torch.clamp_min(scales, model.gaussian.scale_bound)


def _code_per_channel(writer: CategoricalWriter, values: torch.Tensor, tables) -> torch.Tensor:
    """Clamp each channel into its table's alphabet, code it, return the clamped integers."""
    out = torch.empty_like(values)
    for ch, table in enumerate(tables):
        v = values[ch].clamp(table.lo, table.hi)
        out[ch] = v
        writer.write(v.to(torch.int64).numpy().reshape(-1), table)
    return out


def _read_per_channel(reader: CategoricalReader, tables, hw: tuple[int, int]) -> torch.Tensor:
    n = hw[0] * hw[1]
    return torch.stack([torch.from_numpy(reader.read(t, n).astype(np.float64)).view(*hw) for t in tables])


def _write_levels(writer: CategoricalWriter, k: torch.Tensor, levels: torch.Tensor, tables) -> None:
    flat_k, flat_l = k.reshape(-1).numpy(), levels.reshape(-1).numpy()
    for level, table in enumerate(tables):
        sel = flat_k[flat_l == level]
        if not sel.size:
            continue
        r = -table.lo - 1
        sym = np.clip(sel, -r - 1, r + 1)
        writer.write(sym, table)
        excess = np.abs(sel[np.abs(sel) > r]) - r - 1
        if excess.size:
            if excess.max() > ESCAPE_MAX:
                raise OptionError("a latent is too large to code (the image drives the model far outside "
                                  "what it was trained on)")
            writer.write(excess, escape_table())


def _read_levels(reader: CategoricalReader, levels: torch.Tensor, tables) -> torch.Tensor:
    flat_l = levels.reshape(-1).numpy()
    k = np.zeros(flat_l.size, dtype=np.int64)
    for level, table in enumerate(tables):
        where = np.nonzero(flat_l == level)[0]
        if not where.size:
            continue
        sym = reader.read(table, where.size).astype(np.int64)
        r = -table.lo - 1
        esc = np.abs(sym) == r + 1
        if esc.any():
            excess = reader.read(escape_table(), int(esc.sum())).astype(np.int64)
            sym[esc] = np.sign(sym[esc]) * (r + 1 + excess)
        k[where] = sym
    return torch.from_numpy(k).view(levels.shape)


def _estimate_bits(cm: CodecModel, z_hat: torch.Tensor, k: torch.Tensor, scales: torch.Tensor) -> float:
    """The model's own estimate of the rate: −log2 of the learned likelihoods of the coded symbols."""
    model = cm.model
    with torch.no_grad():
        p_y = model.gaussian.likelihood(k.to(torch.float32), scales.to(torch.float32))
        p_z = model.density_z.likelihood(z_hat[None].to(torch.float32))
    return float(-torch.log2(p_y).sum() - torch.log2(p_z).sum())
