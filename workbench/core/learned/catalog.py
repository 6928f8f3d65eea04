"""Which learned models there are, and what to call them, without importing torch (the codec list and the
GUI's model chooser must stay fast).

Shipped models live in `resources/models`; models a user imports (a `.safetensors` file, or a CompressAI
checkpoint) stay where they are: only their paths are remembered, in a small JSON file under the user's
config folder, so the chooser offers them again next time. Whether a file really is a usable model is
decided when it is used, by the code that loads it.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

from workbench.core.atomic import write_bytes_atomic
from workbench.core.errors import OptionError, OutputError

MODEL_DIR = Path(__file__).resolve().parents[3] / "resources" / "models"
DEFAULT_MODEL = "dct-checkerboard-mse"
#: Files the chooser's "Open…" offers: our own weights and CompressAI checkpoints.
CHECKPOINT_NAMES = (".pth.tar", ".pth", ".pt")
MODEL_SUFFIXES = (".safetensors",) + CHECKPOINT_NAMES
#: How many imported models are remembered (the most recent first).
MAX_REMEMBERED = 20
#: The metric a model was trained for (its weights' metadata), as the GUI names it.
METRIC_NAMES = {"mse": "PSNR", "ms-ssim": "MS-SSIM"}


def shipped_models() -> list[str]:
    return sorted(p.stem for p in MODEL_DIR.glob("*.safetensors")) if MODEL_DIR.is_dir() else []


def models_file() -> Path:
    """$XDG_CONFIG_HOME/workbench/models.json (~/.config when unset), as the XDG spec says."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "workbench" / "models.json"


def remembered_models() -> list[str]:
    """Imported model paths, most recent first; a missing or damaged list reads as empty, since losing
    it costs the user one "Open…" and must never stop the window from opening."""
    try:
        data = json.loads(models_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    paths = data.get("models", []) if isinstance(data, dict) else []
    return [p for p in paths if isinstance(p, str)]


def remember_model(path: str | os.PathLike) -> str:
    """Add `path` (made absolute, the file itself untouched) to the front of the remembered models."""
    value = str(Path(path).expanduser().resolve())
    paths = [value] + [p for p in remembered_models() if p != value]
    target = models_file()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot remember the model: {target.parent} cannot be created ({err.strerror})") from None
    text = json.dumps({"models": paths[:MAX_REMEMBERED]}, indent=1) + "\n"
    write_bytes_atomic(target, text.encode("utf-8"))
    return value


def _metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` of a safetensors header (8-byte length, then JSON); empty when unreadable."""
    try:
        with path.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 1 << 24:
                return {}
            header = json.loads(f.read(n))
    except (OSError, ValueError, struct.error):
        return {}
    md = header.get("__metadata__") if isinstance(header, dict) else None
    return md if isinstance(md, dict) else {}


def model_path(value: str) -> Path:
    """Where a model value's weights are: a shipped name, or a path as given."""
    return MODEL_DIR / f"{value}.safetensors" if value in shipped_models() else Path(value)


def model_levels(value: str) -> int:
    """How many quality levels a model of ours covers (its weights' metadata); 1 for anything else, such as
    a CompressAI checkpoint (one model per quality)."""
    path = model_path(value)
    if path.suffix != ".safetensors":
        return 1
    try:
        levels = json.loads(_metadata(path).get("config", "{}")).get("levels", 1)
    except (ValueError, AttributeError):
        return 1
    return levels if isinstance(levels, int) and 1 <= levels <= 64 else 1


def model_label(value: str) -> str:
    """A model as people should read it: "dct-hyperprior-mse (PSNR)", "mbt2018-mean (CompressAI, PSNR,
    quality 3)", or an imported file's name.

    The metric comes from the weights' own metadata, so an imported safetensors model of ours is named as
    precisely as a shipped one; CompressAI checkpoints carry none, so their zoo file names say it, and a
    checkpoint named otherwise (a training run's) is at least marked as one.
    """
    path = model_path(value)
    if value in shipped_models() or path.suffix == ".safetensors":
        name = value if value in shipped_models() else path.name
        md = _metadata(path)
        notes = [n for n in (METRIC_NAMES.get(md.get("metric", "")), _decoder_for(md)) if n]
        return f"{name} ({', '.join(notes)})" if notes else name
    if path.is_dir():
        try:
            folder = zoo_folder(path)
        except OptionError:
            folder = None
        if folder is None:
            return path.name
        arch, metric, files = folder
        return f"{arch} (CompressAI, {METRIC_NAMES[metric]}, {_qualities(sorted(files))})"
    stated = zoo_name(path)
    if stated is not None:
        return f"{stated[0]} (CompressAI, {METRIC_NAMES[stated[1]]}, quality {stated[2]})"
    return f"{path.name} (CompressAI checkpoint)" if is_checkpoint_name(path) else path.name


def _decoder_for(metadata: dict[str, str]) -> str | None:
    """Says "decoder for tcq8" when the weights' decoder was finetuned on a quantizer other than rounding:
    the label is where a user choosing a model learns which quantizer it is meant for."""
    try:
        recipe = json.loads(metadata.get("recipe", "{}"))
    except ValueError:
        return None
    quantizer = recipe.get("quantizer") if isinstance(recipe, dict) and recipe.get("finetune_of") else None
    return f"decoder for {quantizer}" if isinstance(quantizer, str) and quantizer != "round" else None


def _qualities(qs: list[int]) -> str:
    if len(qs) == 1:
        return f"quality {qs[0]}"
    return f"qualities {qs[0]}–{qs[-1]}" if qs == list(range(qs[0], qs[-1] + 1)) else \
        f"qualities {', '.join(map(str, qs))}"


def is_checkpoint_name(path: str | os.PathLike) -> bool:
    """Whether a file is named like a CompressAI checkpoint (.pth.tar, .pth, .pt); only its keys tell
    whether it really holds an image model."""
    return Path(path).name.lower().endswith(CHECKPOINT_NAMES)


# CompressAI's zoo names its files <architecture>[-msssim]-<quality>-<hash>.pth.tar: one model per quality.
_ZOO_NAME = re.compile(r"^(?P<arch>[a-z0-9-]+?)(?:-(?P<metric>mse|msssim|ms-ssim))?-(?P<quality>[1-8])"
                       r"(?:-[0-9a-f]{6,})?\.(?:pth\.tar|pth|pt|tar)$")


def zoo_name(path: str | os.PathLike) -> tuple[str, str, int] | None:
    """(architecture, metric "mse" or "ms-ssim", quality) that a zoo-style file name states, else None."""
    m = _ZOO_NAME.match(Path(path).name.lower())
    if not m:
        return None
    return m.group("arch"), "ms-ssim" if m.group("metric") in ("msssim", "ms-ssim") else "mse", int(m.group("quality"))


_ZOO_FOLDER = ("must hold checkpoints of one architecture and metric named like CompressAI's zoo files "
               "(e.g. mbt2018-mean-3-....pth.tar)")


def zoo_folder(folder: str | os.PathLike) -> tuple[str, str, dict[int, str]] | None:
    """(architecture, metric, {quality: file}) of a folder of CompressAI checkpoints named as the zoo
    names them; None when no file in it is named so (an image folder), an error when they are of
    several architectures or metrics (no single model)."""
    folder = Path(folder)
    found: dict[tuple[str, str], dict[int, str]] = {}
    for f in sorted(folder.iterdir()):
        stated = zoo_name(f) if f.is_file() else None
        if stated:
            found.setdefault(stated[:2], {})[stated[2]] = str(f)
    if not found:
        return None
    if len(found) != 1:
        kinds = ", ".join(f"{a} ({m})" for a, m in found)
        raise OptionError(f"{folder} {_ZOO_FOLDER}; found {kinds}")
    (arch, metric), files = next(iter(found.items()))
    return arch, metric, files


def model_for_quality(value: str, quality: float) -> str:
    """The model file for a quality: a folder of CompressAI checkpoints named as the zoo names them (one
    file per quality, one architecture and metric) is one model whose quality picks the file; any other
    value is returned as it is."""
    folder = Path(value)
    if not folder.is_dir():
        return value
    stated = zoo_folder(folder)
    if stated is None:
        raise OptionError(f"{folder} {_ZOO_FOLDER}; found none")
    by_quality = stated[2]
    q = int(round(quality))
    if q not in by_quality:
        raise OptionError(f"{folder} has checkpoints for qualities {', '.join(map(str, sorted(by_quality)))}, not {q}")
    return by_quality[q]


def model_sweep(value: str) -> tuple[int, ...]:
    """The qualities that are different rate points of a model: one per level of a model of ours (a model
    made in the Train tab may have fewer than 8), the files' qualities for a folder of zoo checkpoints,
    and quality 1 alone for a single CompressAI checkpoint (quality does not apply to it)."""
    path = Path(value)
    stated = zoo_folder(path) if path.is_dir() else None
    if stated:
        return tuple(sorted(stated[2]))
    return tuple(range(1, min(model_levels(value), 8) + 1))


def model_choices() -> list[tuple[str, str]]:
    """(label, value) for the chooser: every shipped model, then the remembered imports (files, and folders
    of zoo checkpoints) that still exist."""
    out = [(model_label(name), name) for name in shipped_models()]
    out += [(model_label(p), p) for p in remembered_models() if Path(p).exists()]
    return out
