"""Where learned-codec work runs: `auto` is CUDA when torch sees it, else the CPU (DESIGN §1)."""

from __future__ import annotations

import torch

from workbench.core.errors import OptionError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise OptionError("device cuda requested, but torch sees no CUDA device here")
    if name not in ("cpu", "cuda"):
        raise OptionError(f"unknown device {name!r} (auto, cpu or cuda)")
    return torch.device(name)
