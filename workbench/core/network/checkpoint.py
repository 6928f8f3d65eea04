"""Loading and saving network checkpoints without ever running code from them.

A `.pt`/`.pth` file is a pickle, and unpickling can call any function the file names, so it is only
read with `torch.load(weights_only=True)`: PyTorch's restricted unpickler, which builds tensors and
plain containers and refuses every other global. A refusal becomes a `CheckpointError` that says
why, never a fallback to the unrestricted loader. `.safetensors` files (and Hugging Face-style
folders holding `model.safetensors`) contain no code at all and are preferred.

A checkpoint is handled as an ordered `dict[str, torch.Tensor]`; nested dicts (`{"state_dict":
{...}}`, optimizer-free training checkpoints) are flattened with dotted names so the tensors keep
unique, stable keys. Entries that are not tensors (epoch counters, strings) are dropped with a note,
because they carry no weights and cannot be compressed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path


import numpy as np
import torch

from workbench.core.atomic import write_bytes_atomic
from workbench.core.errors import WorkbenchError
from workbench.core.network.paths import SUFFIXES, is_checkpoint_path  # noqa: F401 (re-exported)

StateDict = dict[str, torch.Tensor]


class CheckpointError(WorkbenchError):
    """A checkpoint cannot be read safely, or does not fit what the operation needs."""




def load_checkpoint(path: str | os.PathLike, *, notes: list[str] | None = None) -> StateDict:
    """Read a state dict from `.pt/.pth/.bin/.ckpt` (restricted unpickler), `.safetensors`, or a
    folder holding `model.safetensors` (Hugging Face layout).

    >>> import tempfile, torch
    >>> d = tempfile.mkdtemp()
    >>> _ = save_checkpoint({"w": torch.ones(2, 3)}, d + "/m.safetensors")
    >>> {k: tuple(v.shape) for k, v in load_checkpoint(d + "/m.safetensors").items()}
    {'w': (2, 3)}
    """
    p = checkpoint_file(path)
    with open(p, "rb") as fh:
        head = fh.read(8)
    if p.suffix == ".safetensors" or _looks_like_safetensors(p, head):
        return _load_safetensors(p)
    return _load_torch(p, notes if notes is not None else [])


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The file a checkpoint path stands for: the path itself, or the safetensors file of a Hugging
    Face-style folder. Sizes are measured on this file, so "N times smaller" compares real files."""
    p = Path(path)
    if p.is_dir():
        candidates = [p / "model.safetensors"] + sorted(p.glob("*.safetensors"))
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise CheckpointError(f"{p} is a folder without model.safetensors (or another .safetensors file)")
        p = found
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint file")
    return p


@dataclass
class OpenedCheckpoint:
    """A loaded state dict together with what a user sees of its file: where it is, how large, and
    what was dropped while reading it."""

    path: Path
    state: StateDict
    file_bytes: int
    notes: list[str]

    @property
    def parameters(self) -> int:
        return sum(t.numel() for t in self.state.values())


def open_checkpoint(path: str | os.PathLike) -> OpenedCheckpoint:
    """`load_checkpoint` plus the file's size and the loader's notes."""
    notes: list[str] = []
    state = load_checkpoint(path, notes=notes)
    if not state:
        raise CheckpointError(f"{path} holds no tensors")
    f = checkpoint_file(path)
    return OpenedCheckpoint(path=f, state=state, file_bytes=f.stat().st_size, notes=notes)


def save_checkpoint(state: StateDict, path: str | os.PathLike, *, protect=()) -> Path:
    """Write `state` as `.safetensors` (by suffix) or as a `.pt` state dict, atomically."""
    p = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    if p.suffix == ".safetensors":
        from safetensors.torch import save

        data = save(_untie(state))
    elif p.suffix in (".pt", ".pth", ".bin", ".ckpt"):
        import io

        buf = io.BytesIO()
        torch.save(state, buf)
        data = buf.getvalue()
    else:
        raise CheckpointError(f"{p}: unknown checkpoint type (use .safetensors or .pt)")
    return write_bytes_atomic(p, data, protect=protect)


def state_hash(state: StateDict) -> bytes:
    """SHA-256 over names, dtypes, shapes and raw bytes in key order: equal weights, equal hash,
    whatever file format they came from (a delta file uses it to refuse a wrong base)."""
    h = hashlib.sha256()
    for name, t in sorted(state.items()):  # sorted: loaders (safetensors) may not keep one order
        t = t.detach().contiguous().cpu()
        h.update(f"{name}\0{str(t.dtype)}\0{tuple(t.shape)}\0".encode())
        h.update(_raw_bytes(t))
    return h.digest()


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str
    parameters: int
    mean: float
    std: float
    min: float
    max: float
    abs_max: float


def tensor_table(state: StateDict) -> list[TensorInfo]:
    """One row per tensor with the statistics a user needs to choose steps (max |w| drives
    per-tensor steps; a large abs_max/std ratio is the outlier case that needs per-channel steps)."""
    rows = []
    for name, t in state.items():
        x = t.detach().double() if t.numel() else torch.zeros(1, dtype=torch.float64)
        rows.append(TensorInfo(
            name=name, shape=tuple(t.shape), dtype=str(t.dtype).replace("torch.", ""), parameters=t.numel(),
            mean=float(x.mean()), std=float(x.std()) if x.numel() > 1 else 0.0,
            min=float(x.min()), max=float(x.max()), abs_max=float(x.abs().max()),
        ))
    return rows


def format_table(rows: list[TensorInfo]) -> str:
    lines = [f"{'name':<32} {'shape':<18} {'dtype':<9} {'params':>9} {'mean':>10} {'std':>10} {'absmax':>10}"]
    for r in rows:
        lines.append(f"{r.name[:32]:<32} {str(list(r.shape)):<18} {r.dtype:<9} {r.parameters:>9} "
                     f"{r.mean:>10.4g} {r.std:>10.4g} {r.abs_max:>10.4g}")
    lines.append(f"total parameters: {sum(r.parameters for r in rows)}")
    return "\n".join(lines)


# --- internals -------------------------------------------------------------------------------------


def _looks_like_safetensors(p: Path, head: bytes) -> bool:
    # safetensors: u64 header length then a JSON object starting with '{'; pickles start with 0x80,
    # zip-based torch files with 'PK'.
    if len(head) < 8 or head[:2] == b"PK" or head[:1] == b"\x80":
        return False
    n = int.from_bytes(head, "little")
    if not 2 <= n <= p.stat().st_size - 8:
        return False
    with open(p, "rb") as fh:
        fh.seek(8)
        return fh.read(1) == b"{"


def _load_safetensors(p: Path) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load

    raw = p.read_bytes()
    try:
        state = load(raw)
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8:8 + n])
    except (SafetensorError, ValueError, OSError) as exc:
        raise CheckpointError(f"{p}: not a valid safetensors file ({str(exc).splitlines()[0][:200]})") from None
    # safetensors returns a dict in hash order; the file's data order is the stable, meaningful one.
    order = sorted(state, key=lambda k: (header.get(k, {}).get("data_offsets", [0])[0], k))
    return {k: state[k] for k in order}


def _load_torch(p: Path, notes: list[str]) -> StateDict:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # protocol notes from the restricted unpickler are noise here
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()
        reason = next((ln for ln in first if "GLOBAL" in ln or "Unsupported" in ln), first[0] if first else "")
        raise CheckpointError(
            f"{p} needs arbitrary unpickling (it refers to code: {reason.strip()[:160]}); refused because loading "
            "it could run code from the file. Re-save it as a plain state dict or as .safetensors"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError, TypeError, IndexError, KeyError) as exc:
        # IndexError/KeyError: the restricted unpickler on bytes that are not a pickle at all (a text file)
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise CheckpointError(f"{p}: not a readable PyTorch checkpoint ({why})") from None
    if isinstance(obj, torch.Tensor):
        return {"tensor": obj}
    if not isinstance(obj, dict):
        raise CheckpointError(f"{p} holds a {type(obj).__name__}, not a state dict of tensors")
    out: StateDict = {}
    _flatten(obj, "", out, notes)
    if not out:
        raise CheckpointError(f"{p} holds no tensors")
    return out


def _flatten(obj: dict, prefix: str, out: StateDict, notes: list[str]) -> None:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, torch.Tensor):
            out[name] = value
        elif isinstance(value, dict):
            _flatten(value, name + ".", out, notes)
        else:
            notes.append(f"dropped non-tensor entry {name!r} ({type(value).__name__})")


def _untie(state: StateDict) -> StateDict:
    # safetensors refuses tensors that share memory (tied weights); copies keep the values.
    seen: set[int] = set()
    out = {}
    for k, v in state.items():
        ptr = v.untyped_storage().data_ptr() if v.numel() else -1
        out[k] = v.clone() if ptr in seen else v
        seen.add(ptr)
    return out


def _raw_bytes(t: torch.Tensor) -> bytes:
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    arr = t.numpy()
    return arr.astype(arr.dtype.newbyteorder("<")).tobytes()


def numel(shape: tuple[int, ...]) -> int:
    return int(math.prod(shape)) if shape else 1


def to_numpy_f64(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


