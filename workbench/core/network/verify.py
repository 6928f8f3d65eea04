"""The decode-back check: does a `.wbn` file on disk give back exactly the tensors the encoder meant?

`compress_network_job` already decodes its own bytes before reporting, but that proves nothing about
the file a user saved and will ship. This check reads the written bytes again, decodes them with the
same `decompress_network` a receiver would use, and compares names, shapes, dtypes and every value
with the encoder's reconstruction (`NetResult.state`), so what is shown is a fact about the file.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from workbench.core.jobs import Job, Progress, run
from workbench.core.container import MAX_FILE_BYTES
from workbench.core.errors import BitstreamError
from workbench.core.files import read_limited
from workbench.core.network.checkpoint import StateDict, same_values
from workbench.core.network.compress import decompress_network


@dataclass(frozen=True)
class DecodeCheck:
    file: str
    tensors: int                 # decoded
    parameters: int              # decoded
    missing: tuple[str, ...]     # expected but not in the file
    extra: tuple[str, ...]       # in the file but not expected
    differing: tuple[str, ...]   # "name: what differs"
    decode_s: float

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.differing)

    def sentence(self) -> str:
        """One line for the status area; names at most three offenders so it stays one line."""
        if self.ok:
            return (f"Decoding {self.file} gives back all {self.tensors} tensors ({self.parameters:,} parameters) "
                    f"with the same names, shapes, dtypes and values as the encoder's reconstruction "
                    f"({self.decode_s * 1000:.0f} ms).")
        parts = []
        for label, items in (("missing", self.missing), ("unexpected", self.extra), ("different", self.differing)):
            if items:
                shown = ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")
                parts.append(f"{len(items)} {label} ({shown})")
        return f"Decoding {self.file} does NOT restore the encoder's tensors: {'; '.join(parts)}."


def check_file_job(path: str | os.PathLike, expected: StateDict, base: StateDict | None = None) -> Job[DecodeCheck]:
    """Read `path`, decode it and compare with `expected`; yields one event per stage."""
    p = Path(path)
    yield Progress(0, 2, f"reading and decoding {p.name}")
    data = read_limited(p, MAX_FILE_BYTES, BitstreamError, what="a compressed network")
    t0 = time.perf_counter()
    decoded = decompress_network(data, base)
    decode_s = time.perf_counter() - t0
    yield Progress(1, 2, f"comparing {len(decoded)} tensors")
    differing = []
    for name in expected:
        if name not in decoded:
            continue
        a, b = expected[name], decoded[name]
        if tuple(a.shape) != tuple(b.shape):
            differing.append(f"{name}: shape {list(b.shape)} instead of {list(a.shape)}")
        elif a.dtype != b.dtype:
            differing.append(f"{name}: {_dtype(b)} instead of {_dtype(a)}")
        elif not same_values(a.detach().cpu(), b):
            differing.append(f"{name}: values")
    return DecodeCheck(file=p.name, tensors=len(decoded), parameters=sum(t.numel() for t in decoded.values()),
                       missing=tuple(k for k in expected if k not in decoded),
                       extra=tuple(k for k in decoded if k not in expected), differing=tuple(differing),
                       decode_s=decode_s)


def check_file(path: str | os.PathLike, expected: StateDict, base: StateDict | None = None) -> DecodeCheck:
    return run(check_file_job(path, expected, base))


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).replace("torch.", "")
