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
import pickletools
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path


import numpy as np
import torch

from workbench.core.atomic import write_bytes_atomic
from workbench.core.errors import WorkbenchError, out_of_memory
from workbench.core.files import describe_size, open_regular, regular_file
from workbench.core.network.paths import SUFFIXES, is_checkpoint_path  # noqa: F401 (re-exported)

StateDict = dict[str, torch.Tensor]


class CheckpointError(WorkbenchError):
    """A checkpoint cannot be read safely, or does not fit what the operation needs."""


NOT_IN_SAFETENSORS = (torch.complex128, torch.complex32, torch.float8_e8m0fnu)
"""Dtypes the safetensors library refuses to write (complex128) or writes but cannot read back."""
MAX_CHECKPOINT_BYTES = 16 << 30
"""The largest checkpoint file read, and the most that a zip checkpoint's entries may declare in all."""
MAX_INFLATION = 4
"""torch.save stores zip entries uncompressed, so a real checkpoint inflates to its own size; entries
that another tool compressed may inflate to at most this many times the file size, so that a small
file cannot make the loader allocate gigabytes."""


def load_checkpoint(path: str | os.PathLike, *, notes: list[str] | None = None,
                    limit: int = MAX_CHECKPOINT_BYTES) -> StateDict:
    """Read a state dict from `.pt/.pth/.bin/.ckpt` (restricted unpickler), `.safetensors`, or a
    folder holding `model.safetensors` (Hugging Face layout). Anything but a regular file of at most
    `limit` bytes is refused before it is opened, and a file that holds no tensors is refused.

    >>> import tempfile, torch
    >>> d = tempfile.mkdtemp()
    >>> _ = save_checkpoint({"w": torch.ones(2, 3)}, d + "/m.safetensors")
    >>> {k: tuple(v.shape) for k, v in load_checkpoint(d + "/m.safetensors").items()}
    {'w': (2, 3)}
    """
    p = checkpoint_file(path, limit)
    with open_regular(p, limit, CheckpointError, what="a checkpoint") as fh:
        try:
            head = fh.read(512)
            size = os.fstat(fh.fileno()).st_size
        except OSError as exc:
            raise CheckpointError(f"{p}: cannot read ({exc.strerror or exc})") from None
        if p.suffix == ".safetensors" or _looks_like_safetensors(head, size):
            state = _load_safetensors(p, fh, head, size)
        elif head[:2] == b"PK":
            _check_zip(p, fh, size, limit)
            state = _load_torch(p, fh, notes if notes is not None else [])
        elif head[:1] == b"\x80" or head[257:262] == b"ustar":    # a pickle (protocol >= 2), legacy tar
            state = _load_torch(p, fh, notes if notes is not None else [])
        else:
            raise CheckpointError(f"{p} is not a network checkpoint: {_content_kind(head)} (a checkpoint "
                                  "is a .pt/.pth state dict or .safetensors)")
    if not state:
        raise CheckpointError(f"{p} holds no tensors")
    return state


def checkpoint_file(path: str | os.PathLike, limit: int = MAX_CHECKPOINT_BYTES) -> Path:
    """The file a checkpoint path stands for: the path itself, or the safetensors file of a Hugging
    Face-style folder. Sizes are measured on this file, so "N times smaller" compares real files.
    FIFOs, devices and files over `limit` are refused here, before anything opens them."""
    p = Path(path)
    if p.is_dir():
        candidates = [p / "model.safetensors"] + sorted(p.glob("*.safetensors"))
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise CheckpointError(f"{p} is a folder without model.safetensors (or another .safetensors file)")
        p = found
    regular_file(p, CheckpointError, limit=limit, what="a checkpoint")
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
    f = checkpoint_file(path)
    return OpenedCheckpoint(path=f, state=state, file_bytes=f.stat().st_size, notes=notes)


def save_checkpoint(state: StateDict, path: str | os.PathLike, *, protect=()) -> Path:
    """Write `state` as `.safetensors` (by suffix) or as a `.pt` state dict, atomically."""
    p = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    if p.suffix == ".safetensors":
        from safetensors.torch import save

        odd = next((f"{k!r} ({v.dtype})" for k, v in state.items() if v.dtype in NOT_IN_SAFETENSORS), None)
        if odd:
            raise CheckpointError(f"{p}: .safetensors cannot hold tensor {odd}; write a .pt file instead")
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
        h.update(tensor_bytes(t))
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


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    # safetensors: u64 header length then a JSON object starting with '{'; pickles start with 0x80,
    # zip-based torch files with 'PK'.
    if len(head) < 9 or head[:2] == b"PK" or head[:1] == b"\x80":
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= size - 8 and head[8:9] == b"{"


_SIGNATURES = ((0, b"\x89PNG", "a PNG image"), (0, b"\xff\xd8\xff", "a JPEG image"), (0, b"GIF8", "a GIF image"),
               (8, b"WEBP", "a WebP image"), (4, b"ftyp", "an HEIF/AVIF image or a video"),
               (0, b"\xff\x0a", "a JPEG XL image"), (4, b"JXL ", "a JPEG XL image"), (4, b"jP  ", "a JPEG 2000 image"),
               (0, b"BPG\xfb", "a BPG image"), (0, b"WBC\x1a", "a workbench compressed file (.wbi/.wbn)"),
               (0, b"\x1f\x8b", "a gzip archive"), (0, b"%PDF", "a PDF document"))


def _content_kind(head: bytes) -> str:
    """What a file that is no checkpoint looks like, so the message can say so (not blame pickling)."""
    for offset, magic, kind in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return f"it is {kind}"
    if not head:
        return "the file is empty"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and all(ch.isprintable() or ch in "\t\r\n" for ch in text.rstrip("\x00")):
        return "it is a text file"
    return "its bytes match no known format"


def _check_zip(p: Path, fh, size: int, limit: int) -> None:
    """The sizes a zip checkpoint declares, checked before torch allocates a byte for them."""
    try:
        infos = zipfile.ZipFile(fh).infolist()
        declared = sum(i.file_size for i in infos)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, NotImplementedError) as exc:
        raise CheckpointError(f"{p}: not a readable PyTorch checkpoint (damaged zip: {_words(str(exc))})") from None
    bound = min(limit, MAX_INFLATION * size)
    if declared > bound:
        raise CheckpointError(f"{p}: its entries declare {describe_size(declared)} of data in a "
                              f"{describe_size(size)} file (at most {describe_size(bound)} is accepted); "
                              "refused as damaged or hostile")
    fh.seek(0)


def _load_safetensors(p: Path, fh, head: bytes, size: int) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        raw = head + fh.read(size)      # the file's size was checked against the limit when it was opened
        state = load(raw)
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8:8 + n])
    except KeyError as exc:
        raise CheckpointError(f"{p}: a tensor has dtype {exc}, which this safetensors library cannot read") from None
    except (SafetensorError, ValueError, OSError, TypeError) as exc:
        raise CheckpointError(f"{p}: not a valid safetensors file ({_words(str(exc))})") from None
    # safetensors returns a dict in hash order; the file's data order is the stable, meaningful one.
    order = sorted(state, key=lambda k: (header.get(k, {}).get("data_offsets", [0])[0], k))
    return {k: state[k] for k in order}


def _load_torch(p: Path, fh, notes: list[str]) -> StateDict:
    try:
        fh.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # protocol notes from the restricted unpickler are noise here
            obj = torch.load(fh, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(_refusal(p, str(exc), fh)) from None
    except Exception as exc:     # torch.load on damaged bytes raises anything (KeyError, AssertionError, ...)
        if out_of_memory(exc):
            raise MemoryError(str(exc)) from None
        raise CheckpointError(f"{p}: not a readable PyTorch checkpoint ({_words(str(exc)) or type(exc).__name__})") from None
    if isinstance(obj, torch.Tensor):
        return {"tensor": obj}
    if not isinstance(obj, dict):
        raise CheckpointError(f"{p} holds a {type(obj).__name__}, not a state dict of tensors")
    out: StateDict = {}
    try:
        _flatten(obj, "", out, notes)
    except RecursionError:
        raise CheckpointError(f"{p}: its dicts are nested too deeply to be a state dict") from None
    return out


def _refusal(p: Path, text: str, fh) -> str:
    """The restricted unpickler's refusal as one line: code the file refers to is named (that is the
    case where loading could run code); anything else is a file this loader cannot read."""
    glob = re.search(r"GLOBAL ([\w.]+)", text)
    code = glob.group(1) if glob else _foreign_global(fh)
    if code:
        return (f"{p} refers to code ({code}), so loading it could run code from the file: refused. "
                "Re-save it as a plain state dict or as .safetensors")
    op = re.search(r"Unsupported operand (\d+)", text)
    if op:
        return (f"{p}: not a PyTorch checkpoint this program can read safely (its pickle uses instruction "
                f"{op.group(1)}, which the restricted loader does not accept); re-save it with torch.save "
                "or as .safetensors")
    boilerplate = ("Weights only load failed", "Check the documentation", "Please file", "(1)", "(2)")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(boilerplate)]
    reason = lines[0].replace("WeightsUnpickler error:", "").strip() if lines else "no reason given"
    return f"{p}: refused by the restricted loader ({_words(reason)})"


def _foreign_global(fh, max_ops: int = 1_000_000) -> str | None:
    """The first function or class a plain pickle names that the restricted loader does not allow.
    The loader stops at the first instruction it does not know (protocol 4's framing, say) before
    it sees any name, so the names are read here by listing the instructions, which runs nothing."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals
        allowed = set(_get_allowed_globals())
    except Exception:          # a private helper: without it, every name counts as foreign
        allowed = set()
    strings: list[str] = []
    try:
        fh.seek(0)
        for i, (op, arg, _) in enumerate(pickletools.genops(fh)):
            if i >= max_ops:
                break
            if op.name == "GLOBAL":
                name = str(arg).replace(" ", ".")
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                name = f"{strings[-2]}.{strings[-1]}"
            else:
                if isinstance(arg, str):
                    strings.append(arg)
                continue
            if name not in allowed:
                return name
    except Exception:          # not a pickle after all (or a damaged one): nothing to name
        return None
    return None


def _words(text: str, limit: int = 160) -> str:
    """The first line of `text`, shortened at a word boundary (a cut word reads like a typo)."""
    line = (text.strip().splitlines() or [""])[0].strip()
    if len(line) <= limit:
        return line
    return line[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " …"


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


def tensor_bytes(t: torch.Tensor) -> bytes:
    """The tensor's values as little-endian bytes, for any dtype a `.wbn` file can store."""
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    if t.element_size() == 1 and t.is_floating_point():     # float8: numpy has no such dtype
        return t.reshape(-1).view(torch.uint8).numpy().tobytes()
    arr = t.numpy()
    return arr.astype(arr.dtype.newbyteorder("<")).tobytes()


def same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-identical tensors: equal dtype, shape and bytes (`torch.equal` calls NaN unequal to itself)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return bool(torch.equal(a, b)) or tensor_bytes(a) == tensor_bytes(b)


def numel(shape: tuple[int, ...]) -> int:
    return int(math.prod(shape)) if shape else 1


def to_numpy_f64(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


