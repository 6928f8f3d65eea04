"""Encoder-side tools on a trained model: per-image latent optimization and decoder finetuning."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.cli import main
from workbench.core import container
from workbench.core.codecs import get_codec
from workbench.core.compress import compress_job
from workbench.core.errors import OptionError
from workbench.core.images import load_image
from workbench.core.jobs import run
from workbench.core.learned.finetune import FinetuneOptions, finetune_job
from workbench.core.learned.optimize import Adam, SoftRounding
from workbench.core.learned.train import TrainOptions, train_job
from workbench.core.learned.weights import export_checkpoint, load_codec_model

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]


def test_soft_rounding_anneals_to_rounding_with_a_gradient():
    v = torch.tensor([0.2, 1.7, -0.6, 3.45], requires_grad=True)
    cold = SoftRounding(0.5, 1e-4, 10)
    assert cold(v, 10).detach().tolist() == pytest.approx([0.0, 2.0, -1.0, 3.0], abs=1e-3)
    warm = SoftRounding(0.5, 1e-4, 10)(v, 0)
    warm.sum().backward()
    assert torch.all(v.grad > 0)                        # unlike straight-through, a real gradient
    assert torch.all((warm >= torch.floor(v)) & (warm <= torch.floor(v) + 1))


def test_the_optimizations_adam_steps_as_torchs_adam():
    """Its own Adam spares the optimization torch._dynamo's import; the steps must be torch's."""
    torch.manual_seed(0)
    start = [torch.randn(2, 5, 3) for _ in range(2)]
    ours, theirs = ([p.clone().requires_grad_(True) for p in start] for _ in range(2))
    mine, reference = Adam(ours, lr=0.005), torch.optim.Adam(theirs, lr=0.005)
    target = torch.randn(2, 5, 3)
    for _ in range(20):
        for params, opt in ((ours, mine), (theirs, reference)):
            opt.zero_grad(set_to_none=True)
            ((params[0] * params[1] - target) ** 2).sum().backward()
            opt.step()
    for a, b, before in zip(ours, theirs, start):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
        assert (a - before).abs().max() > 0.05                         # 20 steps of 0.005 moved it


def test_an_optimization_does_not_import_torchs_compiler():
    """torch._dynamo costs as much CPU to import as torch itself; a fresh process shows whether the
    optimization pulls it in."""
    code = ("import sys, numpy as np\n"
            "from workbench.core.compress import compress_image\n"
            "from workbench.core.codecs import get_codec\n"
            "rgb = (np.indices((64, 64, 3)).sum(0) * 3 % 256).astype(np.uint8)\n"
            "compress_image(rgb, 'learned', get_codec('learned').options(quality=3, optimize=2))\n"
            "print('torch' in sys.modules, 'torch._dynamo' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.stdout.split() == ["True", "False"], done.stderr


@pytest.fixture(scope="module")
def chapel():
    return load_image(DATA / "chapel_192x176.png").rgb


def test_optimize_reports_live_metrics_and_writes_a_standard_file(chapel):
    events = []
    codec = get_codec("learned")
    r = run(compress_job(chapel, "learned", codec.options(quality=3, optimize=4)), events.append)
    assert [e.step for e in events] == [1, 2, 3, 4] and events[-1].total == 4
    assert {"rate_bpp", "entropy", "temperature", "loss"} <= set(events[0].metrics)
    assert {"psnr", "hard_bpp", "gap", "ms_ssim"} <= set(events[-1].metrics)
    assert events[0].metrics["temperature"] > events[-1].metrics["temperature"]
    # the parameters say nothing about optimization: any decoder reads the file
    assert "optimize" not in container.unpack(r.data).params
    assert r.reconstruction.shape == chapel.shape and r.quality.psnr > 25


def test_optimize_is_a_cli_flag(tmp_path):
    src = tmp_path / "a.png"
    shutil.copy(DATA / "chapel_192x176.png", src)
    assert main(["compress", str(src), "-c", "learned", "-q", "2", "--optimize", "2", "--quantizer", "tcq4",
                 "-o", str(tmp_path / "a.wbi")]) == 0
    assert main(["decompress", str(tmp_path / "a.wbi"), "-o", str(tmp_path / "b.png")]) == 0


def test_finetuning_changes_only_the_decoder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(DATA / "chapel_192x176.png", images / "a.png")
    shutil.copy(ROOT / "resources" / "samples" / "endeavour.png", images / "b.png")
    tiny = dict(model="dct-hyperprior", channels=8, steps=2, batch=2, crop=64, crops_per_image=2,
                validate_every=2, checkpoint_every=2, lambdas="0.01,0.05")
    run(train_job(TrainOptions(**tiny), [images], tmp_path / "base"))
    base = export_checkpoint(tmp_path / "base" / "last.pt", tmp_path / "base.safetensors")
    opts = FinetuneOptions(model=str(base), quantizer="tcq8", steps=3, batch=2, crop=64, crops_per_image=2,
                           validate_every=3, checkpoint_every=3, lr=1e-3)
    events = []
    last = run(finetune_job(opts, [images], tmp_path / "ft"), events.append)
    assert "val_gain_db" in events[-1].metrics
    tuned = export_checkpoint(last, tmp_path / "tuned.safetensors")
    offsets = load_codec_model(str(tuned)).offsets
    assert set(offsets) == {"tcq8"} and np.abs(offsets["tcq8"]).max() > 0     # learned with the decoder
    a, b = load_codec_model(str(base)).model.state_dict(), load_codec_model(str(tuned)).model.state_dict()
    changed = {k for k in a if not torch.equal(a[k], b[k])}
    assert changed and all(load_codec_model(str(base)).model.is_decoder_parameter(k) for k in changed)
    assert not any(k.startswith(("g_a.", "h_a.", "h_s.", "density_z.")) for k in changed)
    # the encoder is untouched, so with rounding both models write the same symbols (the trellis search
    # weighs errors with the decoder's gains, so its choices may move); only the decoded pixels differ
    rgb = load_image(DATA / "chapel_192x176.png").rgb
    codec = get_codec("learned")
    fa = container.unpack(codec.encode(rgb, codec.options(quality=2, model=str(base))))
    fb = container.unpack(codec.encode(rgb, codec.options(quality=2, model=str(tuned))))
    assert fa.streams == fb.streams and fa.model_hash != fb.model_hash
    tcq_file = codec.encode(rgb, codec.options(quality=2, model=str(tuned), quantizer="tcq8"))
    assert codec.decode(tcq_file).shape == rgb.shape
    # finetuning a finetuned model again keeps its offsets (fixed here, with --offset-lr 0)
    again = run(finetune_job(FinetuneOptions(**{**opts.__dict__, "model": str(tuned), "steps": 1, "offset_lr": 0.0}),
                             [images], tmp_path / "ft2"))
    kept = load_codec_model(str(export_checkpoint(again, tmp_path / "again.safetensors"))).offsets
    assert np.array_equal(kept["tcq8"], offsets["tcq8"])
    # resuming with another quantizer in the same folder is refused
    with pytest.raises(OptionError, match="another"):
        run(finetune_job(FinetuneOptions(**{**opts.__dict__, "quantizer": "round"}), [images], tmp_path / "ft"))
