"""Tiny learned models trained for two steps, for tests that need real weights without shipping any."""

import shutil
from pathlib import Path

import torch

from workbench.core.jobs import run
from workbench.core.learned.kinds import build_model
from workbench.core.learned.train import TrainOptions, save_checkpoint, train_job
from workbench.core.learned.weights import export_checkpoint

DATA = Path(__file__).parent / "data"


def training_images(folder: Path) -> Path:
    """Two small photographs in `folder` (made if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DATA / "chapel_192x176.png", folder / "a.png")
    shutil.copy(DATA.parents[1] / "resources" / "samples" / "endeavour.png", folder / "b.png")
    return folder


def context_model(tmp: Path, kind: str, parts: tuple[str, ...]) -> Path:
    """A `kind` model (N=8, two levels) trained for two steps whose context networks in `parts` really move
    the means and scales: their last layers, which start at zero, get small random weights."""
    opts = TrainOptions(model=kind, channels=8, steps=2, batch=2, crop=64, crops_per_image=2,
                        validate_every=2, checkpoint_every=2, lambdas="0.01,0.05")
    last = run(train_job(opts, [training_images(tmp / "images")], tmp / "run"))
    model = build_model(kind, n=8, levels=2)
    model.load_state_dict(torch.load(last, weights_only=True)["model"])
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for net in (net for part in parts for net in getattr(model, part)):
            last_conv = net.body[-1]
            last_conv.weight.copy_(0.02 * torch.randn(last_conv.weight.shape, generator=g))
    save_checkpoint(last, model, torch.optim.Adam(model.parameters()), 2, {"metric": "mse", "lambda_values": [0.01, 0.05]})
    return export_checkpoint(last, tmp / f"{kind}.safetensors", "test")
