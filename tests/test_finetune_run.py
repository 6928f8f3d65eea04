"""A finetuning's run folder is a training's: the CLI line built from it, pausing and resuming, the progress
file, previews, and the quantizers a model's kind refuses."""

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from workbench.cli import main
from workbench.core.jobs import run
from workbench.core.learned import preview, run_folder
from workbench.core.learned.finetune import FinetuneOptions, finetune_job, refused_quantizers
from workbench.core.learned.run_folder import RunSpec
from workbench.core.learned.train import TrainOptions, train_job
from workbench.core.learned.weights import export_checkpoint
from test_compressai_import import compressai_state

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples"
TINY = dict(steps=4, batch=2, crop=64, crops_per_image=2, validate_every=2, checkpoint_every=2, lr=1e-3)


def tiny_model(folder: Path, kind: str = "hyperprior") -> Path:
    """A two-level model of `kind` trained for two steps on the sample photograph."""
    run(train_job(TrainOptions(model=kind, channels=8, latent_channels=8, lambdas="0.01,0.05", steps=2, batch=2,
                               crop=64, crops_per_image=2, validate_every=2, checkpoint_every=2, device="cpu"),
                  [SAMPLES], folder / f"{kind}-run"))
    return export_checkpoint(folder / f"{kind}-run" / "last.pt", folder / f"tiny-{kind}.safetensors")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("finetune"))


def test_the_command_line_finetunes_the_run_it_was_built_from_pauses_and_resumes(model, tmp_path, capsys):
    spec = RunSpec({**TINY, "model": str(model), "quantizer": "tcq4"}, {}, (str(SAMPLES),), "finetune")
    out = tmp_path / "run"
    line = run_folder.shell_line(spec, out)
    assert line.startswith(f"workbench finetune --model {model} --quantizer tcq4 --data ")
    assert "--lr=0.001" in line and "--steps=4" in line and "--seed" not in line      # defaults left out
    out.mkdir()
    run_folder.request_pause(out)
    assert main(run_folder.train_args(spec, out)) == 0
    assert "paused at step 1 of 4" in capsys.readouterr().out and not run_folder.pause_requested(out)
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 1
    saved = run_folder.load_spec(out)
    assert saved.command == "finetune" and saved.options == asdict(FinetuneOptions(**spec.options))
    assert saved.data == (str(SAMPLES.resolve()),)
    assert main(run_folder.train_args(saved, out)) == 0           # the same command resumes
    assert "paused" not in capsys.readouterr().out
    lines = [json.loads(x) for x in (out / "progress.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [0, 1, 2, 3, 4]
    assert {"loss", "psnr", "step_seconds"} <= set(lines[1])
    assert {"val_psnr", "val_psnr_base", "val_gain_db", "bpp", "preview_psnr"} <= set(lines[2])
    shots = preview.read_previews(out)
    assert [p["step"] for p in shots] == [0, 2, 4] and {p["quantizer"] for p in shots} == {"tcq4"}
    assert shots[0]["bpp"] == shots[-1]["bpp"] > 0          # the frozen encoder's file: its size stays
    assert shots[0]["psnr"] != shots[-1]["psnr"]             # the decoder's picture does not


def test_a_diverging_finetuning_stops_with_one_line_and_keeps_a_finite_checkpoint(model, tmp_path, capsys):
    spec = RunSpec({**TINY, "model": str(model), "quantizer": "round", "steps": 60, "lr": 1.0, "offset_lr": 1.0,
                    "checkpoint_every": 1}, {}, (str(SAMPLES),), "finetune")
    assert main(run_folder.train_args(spec, tmp_path / "run")) != 0
    assert "finetuning diverged" in capsys.readouterr().err


def test_a_kind_says_which_quantizers_it_finetunes_on(model, tmp_path):
    assert refused_quantizers(str(model)) == {}
    ar = tmp_path / "mbt2018-3-0123abcd.pth.tar"              # the autoregressive context: rounding only
    torch.save(compressai_state("mbt2018"), ar)
    refused = refused_quantizers(str(ar))
    assert set(refused) == {"rdoq", "tcq4", "tcq8"} and "round only" in refused["tcq8"]
    plain = tmp_path / "factorized.safetensors"              # no decoder finetuning at all
    shutil.copy(tiny_model(tmp_path, "factorized"), plain)
    refused = refused_quantizers(str(plain))
    assert set(refused) == {"round", "rdoq", "tcq4", "tcq8"} and "not available" in refused["round"]


def finetuned_ms_ssim_model(folder: Path) -> tuple[Path, list]:
    """A run folder of a two-step finetuning of a tiny model trained for MS-SSIM (192-pixel crops: MS-SSIM's
    five scales need 161), and the job's events."""
    run(train_job(TrainOptions(model="hyperprior", channels=8, latent_channels=8, lambdas="2,20", metric="ms-ssim",
                               steps=1, batch=1, crop=192, crops_per_image=1, validate_every=1, checkpoint_every=1,
                               device="cpu"), [SAMPLES], folder / "train"))
    model = export_checkpoint(folder / "train" / "last.pt", folder / "tiny-msssim.safetensors")
    events = []
    run(finetune_job(FinetuneOptions(**{**TINY, "model": str(model), "quantizer": "round", "crop": 192,
                                        "steps": 2}), [SAMPLES], folder / "ft"), events.append)
    return folder / "ft", events


def test_finetuning_a_model_trained_for_ms_ssim_reports_its_held_out_ms_ssim(tmp_path):
    """An MS-SSIM model's decoder is finetuned on MS-SSIM, so that is what its validation must show too,
    beside PSNR, for the original decoder and the finetuned one."""
    _, events = finetuned_ms_ssim_model(tmp_path)
    m = events[-1].metrics
    assert 0 < m["val_ms_ssim_base"] < 1 and 0 < m["val_ms_ssim"] < 1 and m["val_ms_ssim"] != m["val_ms_ssim_base"]
    assert "val_psnr" in m
