"""Training crops from folders of photographs.

Crops are cut once into a uint8 tensor held in memory (a few hundred MB at most): on a 2-core CPU
decoding JPEGs every step would cost as much as the training step itself. Every image is first
downscaled with antialiasing by a random factor (at least `min_downscale`), which removes the JPEG
artefacts of BSDS-like data and gives large photographs a range of scales. Files are split into
training and validation by a hash of their name, so the split is the same on every run and machine.
Validation has a second set cut at the photographs' own scale (`NATIVE`): an encoder-side change once
cut the scaled crops' rate by 7 % and lost on photographs at their own size (docs/learned_codec.md, stop
27), so what is decided from validation should hold at both.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from workbench.core.errors import OptionError
from workbench.core.images import list_images

VALIDATION_PERCENT = 6
#: Downscale ranges (min, max): the training crops', and the photographs' own scale.
SCALED = (1.5, 3.0)
NATIVE = (1.0, 1.0)


def is_validation(path: Path) -> bool:
    digest = hashlib.sha256(path.name.encode("utf-8")).digest()
    return digest[0] * 100 // 256 < VALIDATION_PERCENT


@dataclass(frozen=True)
class CropSet:
    train: torch.Tensor        # (N, 3, crop, crop) uint8
    validation: torch.Tensor   # (M, 3, crop, crop) uint8
    files: int


def cut_crops(folders: list[Path], crop: int, per_image: int, seed: int = 0, min_downscale: float = SCALED[0],
              max_downscale: float = SCALED[1], validation_only: bool = False) -> CropSet:
    """`validation_only` opens only the validation files and leaves `train` empty."""
    rng = np.random.default_rng(seed)
    files = [f for folder in folders for f in list_images(folder)]
    if not files:
        raise OptionError(f"no images found in {', '.join(map(str, folders))}")
    train, val = [], []
    for path in files:
        if validation_only and not is_validation(path):
            continue
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            # Larger photographs get more crops: they hold more distinct content.
            count = min(per_image * 6, max(per_image, round(per_image * w * h / (480 * 320))))
            for _ in range(count):
                lo = max(min_downscale, 1.0)
                hi = max(lo, min(max_downscale, min(w, h) / crop))
                f = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if hi > lo else lo
                sw, sh = int(w / f), int(h / f)
                if min(sw, sh) < crop:
                    continue
                small = im.resize((sw, sh), Image.Resampling.LANCZOS, reducing_gap=3.0)
                x0 = int(rng.integers(0, sw - crop + 1))
                y0 = int(rng.integers(0, sh - crop + 1))
                arr = np.asarray(small.crop((x0, y0, x0 + crop, y0 + crop)), dtype=np.uint8)
                (val if is_validation(path) else train).append(arr.transpose(2, 0, 1).copy())
    if not train and val and not validation_only:
        # Every file hashed to validation (the one bundled sample photograph): train on its crops too; the
        # held-out crops are then other crops of the same photographs, not other photographs.
        train = list(val)
    if not train and not validation_only:
        raise OptionError(f"no training crops of {crop} px could be cut (images too small?)")
    to_t = lambda a: torch.from_numpy(np.stack(a)) if a else torch.zeros(0, 3, crop, crop, dtype=torch.uint8)
    return CropSet(to_t(train), to_t(val), len(files))


def spread(crops: torch.Tensor, count: int) -> torch.Tensor:
    """`count` crops evenly spaced through the list: the files are listed folder by folder, so the first
    few would all come from one source."""
    if crops.shape[0] <= count:
        return crops
    return crops[torch.linspace(0, crops.shape[0] - 1, count).round().long()]


def batches(crops: torch.Tensor, batch: int, generator: torch.Generator):
    """Endless random batches in 0..1 float with random flips."""
    n = crops.shape[0]
    while True:
        idx = torch.randint(0, n, (batch,), generator=generator)
        x = crops[idx].float() / 255.0
        if torch.rand((), generator=generator) < 0.5:
            x = x.flip(-1)
        yield x


def cached_crops(cache_dir: Path, folders: list[Path], crop: int, per_image: int, seed: int, write: bool,
                 scale: tuple[float, float] = SCALED) -> CropSet:
    """`cut_crops`, kept in `cache_dir` so that resuming a run does not cut them again. Training crops are
    always at the `SCALED` scale, so at any other scale only validation crops are cut: the set is there to
    validate on, and cutting every training file at its own size would read and store hundreds of MB."""
    tag = "" if scale == SCALED else f"-scale{scale[0]:g}-{scale[1]:g}"
    path = Path(cache_dir) / f"crops-{crop}px-{per_image}x-seed{seed}{tag}.pt"
    if path.exists():
        state = torch.load(path, weights_only=True)
        return CropSet(state["train"], state["validation"], int(state["files"]))
    out = cut_crops(folders, crop, per_image, seed=seed, min_downscale=scale[0], max_downscale=scale[1],
                    validation_only=scale != SCALED)
    if write:
        tmp = path.with_suffix(".tmp")
        torch.save({"train": out.train, "validation": out.validation, "files": out.files}, tmp)
        tmp.replace(path)
    return out
