"""Training: progress events, resuming, the refusal of Kodak, DDP with two CPU processes, export."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.core.errors import OptionError
from workbench.core.jobs import run
from workbench.core.learned.train import TrainOptions, train_job
from workbench.core.learned.weights import export_checkpoint, load_codec_model

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]
TINY = dict(model="dct-hyperprior", channels=8, latent_channels=192, steps=2, batch=2, crop=64, crops_per_image=2, validate_every=2, checkpoint_every=1,
            lambdas="0.01,0.05")


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(DATA / "chapel_192x176.png", folder / "a.png")
    shutil.copy(ROOT / "resources" / "samples" / "endeavour.png", folder / "b.png")
    return folder


def test_training_reports_the_metrics_and_resumes(images, tmp_path):
    out = tmp_path / "run"
    events = []
    last = run(train_job(TrainOptions(**TINY), [images], out), events.append)
    assert last == out / "last.pt" and last.exists()
    final = events[-1].metrics
    for key in ("loss", "bpp", "entropy", "mse", "psnr", "temperature", "val_bpp_soft", "val_bpp_hard",
                "mismatch_bpp", "mismatch_psnr"):
        assert key in final and np.isfinite(final[key]), key
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 2
    # Running again with more steps continues from step 2 instead of starting over.
    events = []
    run(train_job(TrainOptions(**{**TINY, "steps": 3}), [images], out), events.append)
    assert [e.step for e in events if e.metrics][0] == 3
    with pytest.raises(OptionError, match="trained with"):
        run(train_job(TrainOptions(**{**TINY, "steps": 4, "channels": 16}), [images], out))


@pytest.mark.parametrize("arch,latent", [("dct-hyperprior", 192), ("hyperprior", 8), ("factorized", 8)])
def test_every_architecture_trains_exports_and_codes(images, tmp_path, arch, latent):
    out = tmp_path / "run"
    run(train_job(TrainOptions(**{**TINY, "model": arch, "latent_channels": latent}), [images], out))
    model_file = export_checkpoint(out / "last.pt", tmp_path / f"{arch}.safetensors", "test")
    cm = load_codec_model(str(model_file))
    assert cm.model.name == arch and cm.model.levels == 2
    from workbench.core.codecs import get_codec
    from workbench.core.images import load_image
    rgb = load_image(DATA / "chapel_192x176.png").rgb
    codec = get_codec("learned")
    data = codec.encode(rgb, codec.options(quality=1.5, model=str(model_file)))
    again = codec.decode(data)
    assert again.shape == rgb.shape
    assert np.array_equal(again, codec.decode(data))


def test_cli_refuses_to_train_on_kodak(tmp_path):
    kodak = tmp_path / "kodak"
    kodak.mkdir()
    from workbench.cli import main
    assert main(["train", "--data", str(kodak), "--out", str(tmp_path / "r")]) == 2


def test_crop_must_suit_the_hyperprior(images, tmp_path):
    with pytest.raises(OptionError, match="multiple of 32"):
        run(train_job(TrainOptions(**{**TINY, "crop": 80}), [images], tmp_path / "r"))


def test_distributed_training_with_two_cpu_processes(images, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "workbench", "train", "--data", str(images), "--out", str(out), "--device", "cpu",
           *[f"--{k.replace('_', '-')}={v}" for k, v in TINY.items() if k != "lambdas"], "--lambda", TINY["lambdas"]]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["step"] == 2 and json.loads(state["recipe"])["world_size"] == 2
