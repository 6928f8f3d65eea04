"""Which paths are network checkpoints, decided from names alone.

Kept apart from `checkpoint` (which needs torch) because the main window asks this for every
dropped path at start-up, before torch is loaded: importing torch there would delay the first
window by seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")


def is_checkpoint_path(path: str | os.PathLike) -> bool:
    """Whether a dropped or opened path is a network rather than an image: a checkpoint suffix, or a
    folder holding a `.safetensors` file (an image folder never does).

    >>> is_checkpoint_path("model.safetensors"), is_checkpoint_path("photo.png")
    (True, False)
    """
    p = Path(path)
    if p.is_dir():
        return (p / "model.safetensors").is_file() or any(p.glob("*.safetensors"))
    return p.suffix.lower() in SUFFIXES


#: A network compressed by the workbench; the Network tab opens it as its decoded weights.
COMPRESSED_SUFFIX = ".wbn"


def is_network_path(path: str | os.PathLike) -> bool:
    """What the Network tab opens: a checkpoint, or a compressed `.wbn` network.

    >>> is_network_path("digits.wbn"), is_network_path("photo.png")
    (True, False)
    """
    return is_checkpoint_path(path) or Path(path).suffix.lower() == COMPRESSED_SUFFIX
