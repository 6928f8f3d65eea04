"""The dct-checkerboard kind: starts as the dct-context model it is initialised from, codes each group's two
checkerboard halves in order, and decodes what the encoder reconstructed, with every latent quantizer."""

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.core.codecs import get_codec
from workbench.core.compress import compress_image
from workbench.core.errors import OptionError
from workbench.core.images import load_image
from workbench.core.jobs import run
from workbench.core.learned.kinds import build_model
from workbench.core.learned.kinds.dct_checkerboard import ANCHORS, OTHERS, anchor_mask
from workbench.core.learned.quantizers import StraightThrough
from workbench.core.learned.train import TrainOptions, save_checkpoint, train_job
from workbench.core.learned.weights import export_checkpoint, load_codec_model

DATA = Path(__file__).parent / "data"


def test_the_two_halves_split_a_group_into_the_checkerboard():
    t = torch.arange(2 * 3 * 4 * 6, dtype=torch.float64).view(2, 3, 4, 6)
    a, o = ANCHORS.take(t), OTHERS.take(t)
    assert a.shape == o.shape == (2, 3, 4, 3)
    mask = anchor_mask(t).bool().expand_as(t)
    assert torch.equal(a.flatten().sort().values, t[mask].sort().values)
    assert torch.equal(o.flatten().sort().values, t[~mask].sort().values)
    back = torch.zeros_like(t)
    ANCHORS.put(back, [0, 1, 2], a)
    OTHERS.put(back, [0, 1, 2], o)
    assert torch.equal(back, t)
    some = torch.zeros_like(t)
    OTHERS.put(some, [2], o[:, 2:3])
    assert torch.equal(some[:, 2][~mask[:, 2]], t[:, 2][~mask[:, 2]]) and not some[:, :2].any()


def test_starts_as_the_dct_context_model_it_is_initialised_from():
    torch.manual_seed(0)
    base = build_model("dct-context", n=8)
    model = build_model("dct-checkerboard", n=8)
    assert set(model.load_init({"model": base.state_dict()}, None)) == set(base.state_dict())
    x, q = torch.rand(2, 3, 64, 64), torch.tensor([1.5, 7.0])
    with torch.no_grad():
        a, b = base(x, q, StraightThrough(), 0, hard=True), model(x, q, StraightThrough(), 0, hard=True)
    assert torch.equal(a.x_hat, b.x_hat) and torch.allclose(a.bits_y, b.bits_y, rtol=1e-5)


@pytest.fixture(scope="module")
def checkerboard_model(tmp_path_factory):
    """A tiny trained dct-checkerboard model whose group and spatial contexts really move the parameters."""
    tmp = tmp_path_factory.mktemp("cb")
    images = tmp / "images"
    images.mkdir()
    shutil.copy(DATA / "chapel_192x176.png", images / "a.png")
    shutil.copy(DATA.parents[1] / "resources" / "samples" / "endeavour.png", images / "b.png")
    opts = TrainOptions(model="dct-checkerboard", channels=8, steps=2, batch=2, crop=64, crops_per_image=2,
                        validate_every=2, checkpoint_every=2, lambdas="0.01,0.05")
    last = run(train_job(opts, [images], tmp / "run"))
    state = torch.load(last, weights_only=True)
    model = build_model("dct-checkerboard", n=8, levels=2)
    model.load_state_dict(state["model"])
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for net in [*model.context, *model.spatial]:
            last_conv = net.body[-1]
            last_conv.weight.copy_(0.02 * torch.randn(last_conv.weight.shape, generator=g))
    save_checkpoint(last, model, torch.optim.Adam(model.parameters()), 2, {"metric": "mse", "lambda_values": [0.01, 0.05]})
    return export_checkpoint(last, tmp / "cb.safetensors", "test")


@pytest.mark.parametrize("quantizer", ["round", "rdoq", "tcq8"])
def test_round_trip_matches_the_encoders_reconstruction(checkerboard_model, quantizer):
    rgb = load_image(DATA / "chapel_192x176.png").rgb[:72, :88]
    r = compress_image(rgb, "learned", model=str(checkerboard_model), quality=1.5, quantizer=quantizer)
    assert r.reconstruction.shape == rgb.shape and r.estimated_bits is not None
    assert abs(len(r.data) * 8 / r.estimated_bits - 1) < 0.5
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert np.array_equal(get_codec("learned").decode(r.data), r.reconstruction)
    finally:
        torch.set_num_threads(old)


def test_the_anchors_move_the_other_halfs_parameters(checkerboard_model):
    cm = load_codec_model(str(checkerboard_model))
    mu, sigma = torch.zeros(1, 3, 4, 4, dtype=torch.float64), torch.ones(1, 3, 4, 4, dtype=torch.float64)
    decoded = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    g = torch.ones(1, 3, 1, 1, dtype=torch.float64)
    with torch.no_grad():
        m, s = cm.model.other_half(0, decoded, decoded, mu, sigma, g, g, cm.exact.spatial)
        m2, s2 = cm.model.other_half(0, decoded + (1 - anchor_mask(decoded)), decoded, mu, sigma, g, g,
                                     cm.exact.spatial)
    assert not torch.equal(m, mu) and not torch.equal(s, sigma)
    assert torch.equal(m, m2) and torch.equal(s, s2)       # the other half's own values are never read


def test_latent_optimization_runs_through_the_halves(checkerboard_model):
    rgb = load_image(DATA / "chapel_192x176.png").rgb[:64, :64]
    r = compress_image(rgb, "learned", model=str(checkerboard_model), quality=1, optimize=2)
    assert r.reconstruction.shape == rgb.shape


def test_training_only_the_spatial_context_keeps_every_other_weight(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(DATA / "chapel_192x176.png", images / "a.png")
    shutil.copy(DATA.parents[1] / "resources" / "samples" / "endeavour.png", images / "b.png")
    torch.manual_seed(0)
    start = build_model("dct-context", n=8, levels=2)
    torch.save({"model": start.state_dict()}, tmp_path / "init.pt")
    opts = TrainOptions(model="dct-checkerboard", channels=8, steps=2, batch=2, crop=64, crops_per_image=2, lr=1e-2,
                        validate_every=2, checkpoint_every=2, lambdas="0.01,0.05", init=str(tmp_path / "init.pt"),
                        train_only="spatial")
    trained = torch.load(run(train_job(opts, [images], tmp_path / "run")), weights_only=True)["model"]
    before = start.state_dict()
    changed = {k.split(".")[0] for k, v in trained.items() if k in before and not torch.equal(v, before[k])}
    assert changed == set() and any(not torch.equal(v, torch.zeros_like(v))
                                    for k, v in trained.items() if k.startswith("spatial.") and k.endswith("body.4.weight"))
    with pytest.raises(OptionError, match="no trainable part named spatal"):
        run(train_job(replace(opts, train_only="spatal"), [images], tmp_path / "run2"))
