"""What a training run's decoder makes of a held-out crop right now, for people to look at.

At every validation the job decodes one held-out crop through real rounding (what the coder sends, not
the training surrogate) at the middle quality level and writes the picture with its rate and PSNR into
`RUN/preview/`: `original.png` once, `step-NNNNNNN.png` per preview, and `preview.json` (the latest one
and the history of all, written last and atomically, so a reader never sees numbers without their
picture). The rate is the entropy model's estimate for the rounded latents (`val_bpp_hard`'s measure),
which the coded file matches up to its header. A finetuning run (`finetune.py`) decodes the crop from
what its quantizer decides, and its rate is the size of the file that quantizer writes.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from workbench.core.atomic import write_bytes_atomic
from workbench.core.learned.quantizers import StraightThrough

FOLDER = "preview"
INDEX = "preview.json"


def preview_level(levels: int) -> int:
    return (levels + 1) // 2


@torch.no_grad()
def write_preview(model, crop: torch.Tensor, level: int, step: int, out_dir: Path, zero_center: bool) -> dict:
    """Decode `crop` (1, 3, H, W in 0..1) at `level`; returns the record added to the index."""
    model.eval()
    q = torch.full((1,), float(level), device=crop.device)
    r = model(crop, q, StraightThrough(), step, zero_center, hard=True)
    pixels = crop.shape[-1] * crop.shape[-2]
    return save_preview(out_dir, crop, r.x_hat, step, level, float((r.bits_y + r.bits_z).sum()) / pixels)


def save_preview(out_dir: Path, crop: torch.Tensor, x_hat: torch.Tensor, step: int, level: int, bpp: float,
                 **extra) -> dict:
    """Store a decoded crop (1, 3, H, W in 0..1) with its rate; `extra` goes into its record (finetuning
    names its quantizer, since its preview is not decoded from rounded latents)."""
    folder = Path(out_dir) / FOLDER
    folder.mkdir(exist_ok=True)
    decoded = torch.round(x_hat.clamp(0, 1) * 255)
    original = torch.round(crop * 255)
    mse = float((decoded - original).pow(2).mean())
    record = {"step": step, "level": level, "bpp": bpp, "psnr": 10 * math.log10(255.0 ** 2 / max(mse, 1e-10)),
              "file": f"step-{step:07d}.png", **extra}
    if not (folder / "original.png").exists():
        write_bytes_atomic(folder / "original.png", _png(original))
    write_bytes_atomic(folder / record["file"], _png(decoded))
    history = [p for p in read_previews(out_dir) if p["step"] < step] + [record]
    write_bytes_atomic(folder / INDEX, json.dumps({"latest": record, "history": history}, indent=1).encode())
    return record


def read_previews(out_dir: str | Path) -> list[dict]:
    """Every preview of a run, oldest first; empty when there is none yet (or the index is unreadable)."""
    try:
        data = json.loads((Path(out_dir) / FOLDER / INDEX).read_text(encoding="utf-8"))
        return [p for p in data["history"] if isinstance(p, dict) and "step" in p]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _png(x: torch.Tensor) -> bytes:
    arr = x[0].permute(1, 2, 0).to(torch.uint8).cpu().numpy()
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG")
    return buf.getvalue()
