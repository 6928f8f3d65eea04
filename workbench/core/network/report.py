"""What the network workspace shows about each tensor: its share of the rate and its histogram.

Both are computed here, from numbers only, so the table and the plots in the GUI, and any test, read
the same values: the GUI only draws them.

Before compression a tensor's rate is what it takes in the checkpoint (its dtype's bits per value);
after, it is what its coded stream takes in the `.wbn` file. Shares are of the summed tensor data, so
they add up to 100 %; the file's own headers are not attributed to any tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from workbench.core.network.checkpoint import StateDict
from workbench.core.network.compress import NetResult


@dataclass(frozen=True)
class LayerRow:
    name: str
    shape: tuple[int, ...]
    dtype: str
    parameters: int
    bits_per_parameter: float
    share: float                 # of the summed tensor data, 0..1
    coding: str = ""             # "" before compression, e.g. "tcq, cabac" or "raw" after
    snr_db: float | None = None  # None before compression; inf when the tensor is restored exactly


def layer_rows(state: StateDict, result: NetResult | None = None) -> list[LayerRow]:
    """One row per tensor of `state`, measured on the checkpoint or, given `result`, on the `.wbn` file.

    >>> rows = layer_rows({"w": torch.zeros(2, 3), "b": torch.zeros(3, dtype=torch.float16)})
    >>> [(r.name, r.bits_per_parameter, round(r.share, 3)) for r in rows]
    [('w', 32.0, 0.8), ('b', 16.0, 0.2)]
    """
    if result is None:
        sizes = {k: t.numel() * t.element_size() for k, t in state.items()}
        total = sum(sizes.values()) or 1
        return [LayerRow(name=k, shape=tuple(t.shape), dtype=_dtype(t), parameters=t.numel(),
                         bits_per_parameter=8.0 * t.element_size(), share=sizes[k] / total)
                for k, t in state.items()]
    total = sum(r.bytes for r in result.rows) or 1
    return [LayerRow(name=r.name, shape=tuple(r.shape), dtype=r.dtype, parameters=r.parameters,
                     bits_per_parameter=r.bits_per_weight, share=r.bytes / total,
                     coding="raw" if r.mode == "raw" else f"{r.mode}, {r.coder}", snr_db=r.snr_db)
            for r in result.rows]


@dataclass(frozen=True)
class TensorHistogram:
    """Shares of the weights per bin (each series sums to 1), on bins shared by both series so the
    quantized spikes line up with the distribution they replace."""

    edges: np.ndarray
    before: np.ndarray
    after: np.ndarray | None
    levels: int | None   # distinct values after quantization
    sampled: int         # weights counted (every one up to `max_samples`)
    total: int


def tensor_histogram(before: torch.Tensor, after: torch.Tensor | None = None, bins: int = 101,
                     max_samples: int = 1_000_000) -> TensorHistogram:
    """Histogram of a tensor and, optionally, of its quantized reconstruction.

    The range is symmetric about zero with an odd number of bins, so zero (where most quantizers put
    most weights) is the centre of a bin. Tensors larger than `max_samples` are counted on an evenly
    strided subset, the same elements for both series, which keeps a click on a huge layer instant.

    >>> h = tensor_histogram(torch.tensor([-1.0, 0.0, 0.1, 1.0]), torch.tensor([-1.0, 0.0, 0.0, 1.0]), bins=5)
    >>> h.before.tolist(), h.after.tolist(), h.levels
    ([0.25, 0.0, 0.5, 0.0, 0.25], [0.25, 0.0, 0.5, 0.0, 0.25], 3)
    """
    x = _sample(before, max_samples)
    y = _sample(after, max_samples) if after is not None else None
    stride_total = before.numel()
    amax = float(np.abs(x).max()) if x.size else 0.0
    if y is not None and y.size:
        amax = max(amax, float(np.abs(y).max()))
    amax = amax if amax > 0 else 1.0
    bins = bins + 1 if bins % 2 == 0 else bins
    edges = np.linspace(-amax, amax, bins + 1)
    return TensorHistogram(edges=edges, before=_shares(x, edges), after=None if y is None else _shares(y, edges),
                           levels=None if y is None else int(np.unique(y).size), sampled=int(x.size),
                           total=stride_total)


def _sample(t: torch.Tensor, max_samples: int) -> np.ndarray:
    flat = t.detach().reshape(-1)
    if flat.numel() > max_samples:
        flat = flat[:: -(-flat.numel() // max_samples)]
    return flat.to(torch.float64).cpu().numpy()


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts, _ = np.histogram(values, bins=edges)
    return counts / max(values.size, 1)


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).replace("torch.", "")
