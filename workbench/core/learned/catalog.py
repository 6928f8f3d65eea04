"""Where shipped model weights live, without importing torch (the codec list must stay fast)."""

from __future__ import annotations

from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parents[3] / "resources" / "models"
DEFAULT_MODEL = "dct-hyperprior-mse"


def shipped_models() -> list[str]:
    return sorted(p.stem for p in MODEL_DIR.glob("*.safetensors")) if MODEL_DIR.is_dir() else []
