"""The dct-context kind (and dct-checkerboard, which codes each of its groups in two halves): starts as the
DCT model it is initialised from, codes its groups in order, and decodes what the encoder reconstructed,
with every latent quantizer."""

from pathlib import Path

import numpy as np
import pytest
import torch
import tiny_models

from workbench.core import container
from workbench.core.compress import compress_image
from workbench.core.images import load_image
from workbench.core.jobs import run
from workbench.core.learned.kinds import build_model
from workbench.core.learned.kinds.dct_context import band_channels
from workbench.core.learned.quantizers import StraightThrough
from workbench.core.learned.weights import export_checkpoint, load_codec_model

DATA = Path(__file__).parent / "data"


def test_groups_cover_every_channel_once_in_frequency_order():
    groups = band_channels()
    flat = [c for g in groups for c in g]
    assert sorted(flat) == list(range(192)) and groups[0] == [0, 64, 128]   # the three DC coefficients first


def test_starts_as_the_dct_model_it_is_initialised_from():
    torch.manual_seed(0)
    base = build_model("dct-hyperprior", n=8)
    model = build_model("dct-context", n=8)
    assert set(model.load_init({"model": base.state_dict()}, None)) == set(base.state_dict())
    x, q = torch.rand(2, 3, 64, 64), torch.tensor([1.5, 7.0])
    with torch.no_grad():
        a, b = base(x, q, StraightThrough(), 0, hard=True), model(x, q, StraightThrough(), 0, hard=True)
    assert torch.equal(a.x_hat, b.x_hat) and torch.allclose(a.bits_y, b.bits_y, rtol=1e-5)


@pytest.fixture(scope="module", params=[("dct-context", ("context",)), ("dct-checkerboard", ("context", "spatial"))],
                ids=lambda p: p[0])
def context_model(tmp_path_factory, request):
    """A tiny trained model of each context kind whose context networks really move the means and scales."""
    kind, parts = request.param
    return tiny_models.context_model(tmp_path_factory.mktemp("ctx"), kind, parts)


@pytest.mark.parametrize("quantizer", ["round", "rdoq", "tcq8"])
def test_round_trip_matches_the_encoders_reconstruction(context_model, quantizer):
    rgb = load_image(DATA / "chapel_192x176.png").rgb[:72, :88]
    r = compress_image(rgb, "learned", model=str(context_model), quality=1.5, quantizer=quantizer)
    assert r.reconstruction.shape == rgb.shape and r.estimated_bits is not None
    assert abs(len(r.data) * 8 / r.estimated_bits - 1) < 0.5
    # The decoder's pixels are the same whichever torch thread count the caller set.
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        from workbench.core.codecs import get_codec
        assert np.array_equal(get_codec("learned").decode(r.data), r.reconstruction)
    finally:
        torch.set_num_threads(old)


def test_context_changes_the_entropy_parameters(context_model):
    cm = load_codec_model(str(context_model))
    model = cm.model
    y = torch.randn(1, 192, 4, 4, dtype=torch.float64)
    means, scales = torch.zeros_like(y), torch.ones_like(y)
    g = torch.ones(1, 192, 1, 1, dtype=torch.float64)
    mu, sigma = model._exact_group(cm, 1, [y[:, band_channels()[0]]], means, scales, g)
    assert not torch.equal(mu, means[:, band_channels()[1]]) and not torch.equal(sigma, scales[:, band_channels()[1]])


def test_latent_optimization_runs_through_the_groups(context_model):
    rgb = load_image(DATA / "chapel_192x176.png").rgb[:64, :64]
    r = compress_image(rgb, "learned", model=str(context_model), quality=1, optimize=2)
    assert r.reconstruction.shape == rgb.shape


def test_finetuning_retrains_the_synthesis_on_trellis_coded_latents(context_model, tmp_path):
    """The decoder (stage, inverse DCT/colour, post-filter) and tcq8's reconstruction offsets change; what
    decides symbols does not, so the new model file writes the same rounded streams, and its tcq8 files
    decode to exactly what its encoder reconstructed."""
    from workbench.core.codecs import get_codec
    from workbench.core.learned.finetune import FinetuneOptions, finetune_job
    images = tiny_models.training_images(tmp_path / "images")
    opts = FinetuneOptions(model=str(context_model), quantizer="tcq8", steps=3, batch=2, crop=64, crops_per_image=2,
                           validate_every=3, checkpoint_every=3, lr=1e-3)
    events = []
    last = run(finetune_job(opts, [images], tmp_path / "ft"), events.append)
    assert events[-1].metrics["val_psnr"] != events[-1].metrics["val_psnr_base"]
    tuned = export_checkpoint(last, tmp_path / "ctx-tcq.safetensors")
    base_cm, tuned_cm = load_codec_model(str(context_model)), load_codec_model(str(tuned))
    assert np.abs(tuned_cm.offsets["tcq8"]).max() > 0
    a, b = base_cm.model.state_dict(), tuned_cm.model.state_dict()
    changed = {k.split(".")[0] for k in a if not torch.equal(a[k], b[k])}
    assert {"stage_s", "post"} <= changed <= {"stage_s", "post", "g_s"}
    rgb = load_image(DATA / "chapel_192x176.png").rgb[:72, :88]
    codec = get_codec("learned")
    fa = container.unpack(codec.encode(rgb, codec.options(quality=1.5, model=str(context_model))))
    fb = container.unpack(codec.encode(rgb, codec.options(quality=1.5, model=str(tuned))))
    assert fa.streams == fb.streams and fa.model_hash != fb.model_hash
    r = compress_image(rgb, "learned", model=str(tuned), quality=1.5, quantizer="tcq8")
    assert np.array_equal(codec.decode(r.data), r.reconstruction)


def test_training_can_start_from_a_shipped_model_file():
    from workbench.core.learned.train import _initial_weights
    init = _initial_weights("dct-hyperprior-mse", "cpu")
    model = build_model("dct-context")
    loaded = model.load_init(init, None)
    assert len(loaded) == len(init["model"]) and all(k in model.state_dict() for k in loaded)
