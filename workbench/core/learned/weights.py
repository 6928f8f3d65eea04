"""Shipped codec weights: export from a training checkpoint, listing and safe loading.

A model file is a safetensors file (never a pickle) holding the float16 weights, the integer coding
tables and a JSON description in its metadata. The tables are computed once, at export, from the
float16-rounded weights, and stored: a decoder never recomputes a probability table in floating
point, so the same file decodes identically on any machine. The SHA-256 of the file is the model
hash written into every bitstream, so a file is never decoded with different weights.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import pickle
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from workbench.core.allocator import keep_freed_buffers
from workbench.core.atomic import write_bytes_atomic
from workbench.core.entropy import CategoricalTable
from workbench.core.errors import OptionError
from workbench.core.files import read_limited
from workbench.core.jobs import Job
from workbench.core.learned.catalog import is_checkpoint_name, remembered_models, shipped_models, zoo_name
from workbench.core.learned.catalog import model_path as catalog_model_path
from workbench.core.learned.kinds import MODELS, MSE_LAMBDAS, MSSSIM_LAMBDAS, Encoded, ModelKind
from workbench.core.learned.latent_quantizers import LATENT_QUANTIZERS, OFFSET_SHAPE

MAX_MODEL_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class CodecModel:
    """A loaded model file: the network of its kind, its stored tables, its hash. Coding goes through
    the kind (`compress`/`decompress`), which reads what it needs from here."""
    name: str
    model: ModelKind                     # float32, eval mode, CPU
    hyper_tables: tuple[CategoricalTable, ...]     # z (hyperprior), y (factorized) or indices (SHVQ)
    gaussian: tuple[CategoricalTable, ...]         # one per scale-grid level (hyperprior kinds only)
    trellis: tuple[tuple[CategoricalTable, ...], ...] | None   # (Q0, Q1) per scale-grid level, or None
    sha256: bytes
    info: dict
    exact: torch.nn.Module    # float64 copies of the kind's `symbol_modules`: what decides the symbols
    offsets: dict[str, np.ndarray] = field(default_factory=dict)   # latent quantizer → reconstruction offsets

    def compress(self, rgb: np.ndarray, options) -> Job[Encoded]:
        return self.model.compress(self, rgb, options)

    def decompress(self, c) -> np.ndarray:
        return self.model.decompress(self, c)


def _pack_tables(tables: list[CategoricalTable], prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.offsets": torch.tensor([t.offset for t in tables], dtype=torch.int32),
            f"{prefix}.lengths": torch.tensor([len(t.freqs) for t in tables], dtype=torch.int32),
            f"{prefix}.freqs": torch.tensor([f for t in tables for f in t.freqs], dtype=torch.int32)}


def _unpack_tables(tensors: dict[str, torch.Tensor], prefix: str) -> tuple[CategoricalTable, ...]:
    offsets = tensors[f"{prefix}.offsets"].tolist()
    lengths = tensors[f"{prefix}.lengths"].tolist()
    freqs = tensors[f"{prefix}.freqs"].tolist()
    if sum(lengths) != len(freqs) or len(offsets) != len(lengths):
        raise ValueError(f"{prefix} tables are inconsistent")
    out, pos = [], 0
    for off, n in zip(offsets, lengths):
        out.append(CategoricalTable(off, tuple(freqs[pos:pos + n])))
        pos += n
    return tuple(out)


def export_checkpoint(checkpoint: Path, output: Path, description: str = "") -> Path:
    """Write the shippable form of a training checkpoint (float16 weights, or the kind's `stored_dtype`, +
    integer tables)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    recipe = json.loads(state.get("recipe", "{}"))
    model = MODELS.get(state["architecture"])(**json.loads(state["config"]))
    model.load_state_dict(state["model"])
    stored = {k: v.to(model.stored_dtype) for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.to(torch.float32) for k, v in stored.items()})
    tensors = {f"weights.{k}": v.contiguous() for k, v in stored.items()}
    for prefix, tables in model.coding_tables().items():
        tensors.update(_pack_tables(tables, prefix))
    for quantizer, table in state.get("offsets", {}).items():     # learned by `workbench finetune`
        tensors[f"offsets.{quantizer}"] = table.to(torch.float32).reshape(OFFSET_SHAPE).contiguous()
    meta = {
        "architecture": model.name, "config": json.dumps(model.config), "metric": recipe.get("metric", "mse"),
        "lambdas": json.dumps(recipe.get("lambda_values", [])), "description": description,
        "steps": str(state.get("step", 0)), "recipe": json.dumps(recipe),
    }
    return write_bytes_atomic(output, st_save(tensors, metadata=meta))


MAX_CHECKPOINT_BYTES = 1024 * 1024 * 1024


def model_path(name: str) -> Path:
    """A shipped model by name, or a path to a .safetensors model file or a CompressAI checkpoint."""
    p = catalog_model_path(name)
    if name in shipped_models() or p.suffix == ".safetensors" or is_checkpoint_name(name):
        if not p.is_file():
            raise OptionError(f"model file {p} not found")
        return p
    known = ", ".join(shipped_models()) or "none installed"
    raise OptionError(f"unknown learned model {name!r} (shipped: {known})")


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> CodecModel:
    raw = Path(path).read_bytes()
    if len(raw) > MAX_MODEL_BYTES:
        raise OptionError(f"model file {path} is larger than {MAX_MODEL_BYTES >> 20} MB")
    try:
        tensors = st_load(raw)      # validates the header and every tensor's bounds
        header_len = int.from_bytes(raw[:8], "little")
        meta = json.loads(raw[8:8 + header_len]).get("__metadata__") or {}
        model = MODELS.get(meta["architecture"])(**json.loads(meta["config"]))
        missing = [name for name in model.stored_tables if f"{name}.freqs" not in tensors]
        if missing:
            raise ValueError(f"coding tables {', '.join(missing)} are missing")
        model.load_state_dict({k[len("weights."):]: v.to(torch.float32) for k, v in tensors.items()
                               if k.startswith("weights.")})
        hyper = _unpack_tables(tensors, "tables.hyper")
        gauss = _unpack_tables(tensors, "tables.gaussian") if "tables.gaussian.freqs" in tensors else ()
        tcq = (_unpack_tables(tensors, "tables.tcq0"), _unpack_tables(tensors, "tables.tcq1")) \
            if "tables.tcq0.freqs" in tensors else None
        offsets = _unpack_offsets(tensors)
    except (SafetensorError, KeyError, ValueError, RuntimeError, TypeError, json.JSONDecodeError) as exc:
        raise OptionError(f"{path} is not a valid workbench model file: {exc}") from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    info = {k: v for k, v in meta.items() if k != "recipe"}
    exact = torch.nn.ModuleDict({name: copy.deepcopy(getattr(model, name)).to(torch.float64).eval()
                                 for name in model.symbol_modules})
    return CodecModel(Path(path).stem, model, hyper, gauss, tcq, hashlib.sha256(raw).digest(), info, exact,
                      offsets)


def _unpack_offsets(tensors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    out = {}
    for key, table in tensors.items():
        if not key.startswith("offsets."):
            continue
        name = key[len("offsets."):]
        if name not in LATENT_QUANTIZERS or tuple(table.shape) != OFFSET_SHAPE \
                or not torch.isfinite(table).all() or table.abs().max() > 1:
            raise ValueError(f"reconstruction offsets {key} are malformed")
        out[name] = table.to(torch.float64).numpy()
    return out


# CompressAI's zoo trains quality q with λ = these (MSE, on 255²·MSE) or those (MS-SSIM, on 1 − MS-SSIM).
# (our own default λs are the same values)
_ZOO_LAMBDAS = {"mse": MSE_LAMBDAS, "ms-ssim": MSSSIM_LAMBDAS}


def _read_checkpoint(path: str) -> tuple[bytes, object]:
    """A checkpoint's bytes and what torch.load makes of them, without unpickling code."""
    raw = read_limited(path, MAX_CHECKPOINT_BYTES, OptionError, what="a checkpoint")
    try:
        obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise OptionError(f"{Path(path).name} holds Python objects besides tensors; opening it would need "
                          "unpickling that can run code, so only weights-only checkpoints are opened") from None
    except (RuntimeError, ValueError, EOFError, OSError, AttributeError) as exc:
        reason = " ".join(str(exc).split()[:16]) or type(exc).__name__
        raise OptionError(f"{Path(path).name} is not a readable PyTorch checkpoint ({reason})") from None
    return raw, obj


def compressai_architecture(path: str | os.PathLike) -> str | None:
    """The CompressAI image architecture a checkpoint holds, or None when it holds some other network
    (which the Network tab compresses instead). A damaged CompressAI checkpoint or an unreadable file is
    the loader's one-line error, so a file dropped as a model is never silently treated as something else."""
    from workbench.core.learned.kinds.compressai_nets import plain_state_dict, recognise
    _, obj = _read_checkpoint(str(path))
    try:
        state = plain_state_dict(obj)
    except OptionError:             # not a mapping of names to tensors: a training checkpoint of another kind
        return None
    if not any(k.startswith("g_a.") for k in state):
        return None
    return recognise(state)[0]


@lru_cache(maxsize=8)
def _load_checkpoint(path: str, mtime_ns: int) -> CodecModel:
    """A CompressAI checkpoint (the zoo's bare state dict or the training example's dict with
    "state_dict"), loaded without unpickling code, recognised from its keys and shapes alone."""
    from workbench.core.learned.kinds.compressai_nets import plain_state_dict, recognise
    raw, obj = _read_checkpoint(path)
    state = plain_state_dict(obj)
    arch, n, m = recognise(state)
    model = MODELS.get(arch)(n=n, m=m)
    bound = state.get("gaussian_conditional.scale_bound")
    model.load_compressai(state, float(bound.reshape(-1)[0]) if isinstance(bound, torch.Tensor) and bound.numel() else 0.11)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise OptionError(f"{Path(path).name} holds non-finite weights")
    tables = model.coding_tables()
    info = {"architecture": arch, "description": f"CompressAI {arch} (N={n}, M={m})"}
    stated = zoo_name(path)
    if stated and stated[0] == arch:
        _, metric, quality = stated
        info.update(metric=metric, quality=str(quality), lambdas=json.dumps([_ZOO_LAMBDAS[metric][quality - 1]]))
    tcq = (tuple(tables["tables.tcq0"]), tuple(tables["tables.tcq1"])) if "tables.tcq0" in tables else None
    exact = torch.nn.ModuleDict({name: copy.deepcopy(getattr(model, name)).to(torch.float64).eval()
                                 for name in model.symbol_modules})
    return CodecModel(Path(path).name, model, tuple(tables["tables.hyper"]), tuple(tables.get("tables.gaussian", ())),
                      tcq, hashlib.sha256(raw).digest(), info, exact)


_BY_HASH: dict[bytes, CodecModel] = {}


def load_codec_model(name: str) -> CodecModel:
    keep_freed_buffers()            # the process is about to run a model's transforms
    path = model_path(name)
    load = _load_checkpoint if is_checkpoint_name(name) else _load_cached
    cm = load(str(path.resolve()), os.stat(path).st_mtime_ns)
    _BY_HASH[cm.sha256] = cm
    return cm


def model_for_file(name: str, sha256: bytes) -> CodecModel | None:
    """The model a bitstream names: a shipped model of that name with that hash, any model file this
    process has loaded with that hash (a model given by path), or a remembered imported model of that
    name with that hash. None when there is none."""
    if name in shipped_models():
        cm = load_codec_model(name)
        if cm.sha256 == sha256:
            return cm
    if sha256 in _BY_HASH and _BY_HASH[sha256].name == name:      # name and hash together, as a fresh process
        return _BY_HASH[sha256]
    for path in remembered_models():        # a model the user imported before, found by its name
        if Path(path).name == name or Path(path).stem == name:
            try:
                cm = load_codec_model(path)
            except OptionError:
                continue
            if cm.sha256 == sha256:
                return cm
    return None

