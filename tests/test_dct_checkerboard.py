"""The dct-checkerboard kind: starts as the dct-context model it is initialised from, codes each group's two
checkerboard halves in order (its round trips, latent optimization and finetuning are tested with
dct-context's in `test_dct_context.py`)."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import tiny_models

from workbench.core.errors import OptionError
from workbench.core.jobs import run
from workbench.core.learned.kinds import build_model
from workbench.core.learned.kinds.dct_checkerboard import ANCHORS, OTHERS, anchor_mask
from workbench.core.learned.quantizers import StraightThrough
from workbench.core.learned.train import TrainOptions, train_job
from workbench.core.learned.weights import load_codec_model

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
    return tiny_models.context_model(tmp_path_factory.mktemp("cb"), "dct-checkerboard", ("context", "spatial"))


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


def test_training_only_the_spatial_context_keeps_every_other_weight(tmp_path):
    images = tiny_models.training_images(tmp_path / "images")
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
