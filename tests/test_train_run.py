"""The run folder of a training run: the CLI line that reproduces it, pausing, the progress file, previews."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.core.errors import OptionError
from workbench.core.learned import preview, run_folder
from workbench.core.learned.quantizers import SUAOptions
from workbench.core.learned.run_folder import ProgressLog, ProgressTail, RunSpec
from workbench.core.learned.train import TrainOptions

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples"
TINY = dict(model="dct-hyperprior", channels=8, latent_channels=192, steps=3, batch=2, crop=64, crops_per_image=2,
            validate_every=2, checkpoint_every=2, lambdas="0.01,0.05", device="cpu")


def test_the_command_line_trains_exactly_the_run_it_was_built_from(tmp_path, capsys):
    spec = RunSpec({**TINY, "lr": 3e-4}, {"tau_start": 0.25, "tau_steps": 7}, (str(SAMPLES),))
    out = tmp_path / "run"
    line = run_folder.shell_line(spec, out)
    assert line.startswith("workbench train --model dct-hyperprior --quantizer sua --lambda 0.01,0.05 --data ")
    assert "--lr=0.0003" in line and "--tau-steps=7" in line and "--seed" not in line     # defaults left out
    assert main(run_folder.train_args(spec, out)) == 0
    saved = run_folder.load_spec(out)
    assert saved.options == asdict(TrainOptions(**spec.options))
    assert saved.surrogate_options == asdict(SUAOptions(tau_start=0.25, tau_steps=7))
    assert saved.data == (str(SAMPLES.resolve()),)
    # The bundled sample set is one photograph, which the file split puts in validation: it trains anyway.
    lines = [json.loads(x) for x in (out / "progress.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [0, 1, 2, 3]
    assert {"loss", "bpp", "psnr", "temperature", "step_seconds"} <= set(lines[1])
    assert {"val_bpp_hard", "mismatch_psnr", "preview_bpp", "preview_psnr"} <= set(lines[2])
    # and held-out photographs at their own scale: other crops than the scaled ones, other figures
    assert {"native_bpp_hard", "native_psnr_hard"} <= set(lines[2]) and "native_bpp_soft" not in lines[2]
    assert lines[2]["native_bpp_hard"] != lines[2]["val_bpp_hard"]
    assert (out / "crops-192px-1x-seed2-scale1-1.pt").is_file()
    shots = preview.read_previews(out)
    assert [p["step"] for p in shots] == [0, 2, 3] and all((out / "preview" / p["file"]).is_file() for p in shots)
    assert (out / "preview" / "original.png").is_file()
    capsys.readouterr()


def test_a_pause_request_stops_after_a_checkpoint_and_the_same_command_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    args = run_folder.train_args(RunSpec({**TINY, "steps": 4, "checkpoint_every": 3}, {}, (str(SAMPLES),)), out)
    run_folder.request_pause(out)
    assert main(args) == 0
    assert "paused at step 1 of 4" in capsys.readouterr().out
    assert not run_folder.pause_requested(out)
    import torch
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 1     # saved although not a checkpoint step
    assert main(args) == 0
    assert "paused" not in capsys.readouterr().out
    assert [json.loads(x)["step"] for x in (out / "progress.jsonl").read_text().splitlines()] == [0, 1, 2, 3, 4]


def test_progress_past_the_checkpoint_is_dropped_on_resume_and_the_tail_starts_over(tmp_path):
    log = ProgressLog(tmp_path, 0)
    for step in range(1, 6):
        log.write(step, {"loss": float(step)})
    log.close()
    tail = ProgressTail(tmp_path)
    assert [r["step"] for r in tail.read()] == [1, 2, 3, 4, 5] and tail.read() == []
    with open(tmp_path / run_folder.PROGRESS_FILE, "a") as fh:
        fh.write('{"step": 6, "lo')                    # a line being written is not read half
    assert tail.read() == []
    with open(tmp_path / run_folder.PROGRESS_FILE, "a") as fh:
        fh.write('ss": 6.0}\n')
    assert [r["step"] for r in tail.read()] == [6]
    ProgressLog(tmp_path, 3).close()                    # resumed from the checkpoint of step 3
    records = tail.read()
    assert tail.restarted and [r["step"] for r in records] == [1, 2, 3]


def test_a_folder_that_is_no_run_says_so(tmp_path):
    with pytest.raises(OptionError, match="not a training run folder"):
        run_folder.load_spec(tmp_path)
    (tmp_path / run_folder.RUN_FILE).write_text("{")
    with pytest.raises(OptionError, match="damaged"):
        run_folder.load_spec(tmp_path)
