"""Soft-to-hard vector quantization: the quantizer, its σ schedule, the dct-shvq model and its coder."""

import dataclasses
import doctest
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.core import container
from workbench.core.jobs import run
from workbench.core.errors import BitstreamError, OptionError
from workbench.core.learned import shvq
from workbench.core.learned.shvq import SHVQOptions, SoftToHardVQ, gap_target, kmeans, next_sigma

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]


def test_docstring_round_trip():
    result = doctest.testmod(shvq)
    assert result.failed == 0 and result.attempted >= 5


def test_kmeans_finds_separated_clusters_and_entropy_constraint_merges_them():
    g = torch.Generator().manual_seed(1)
    means = torch.tensor([[-5.0, 0.0], [0.0, 5.0], [5.0, 0.0]], dtype=torch.float64)
    x = (means.repeat_interleave(200, 0) + 0.1 * torch.randn(600, 2, generator=g, dtype=torch.float64))[None]
    centers, counts = kmeans(x, 3, 10, torch.Generator().manual_seed(0))
    found = sorted(tuple(round(v) for v in c) for c in centers[0].tolist())
    assert found == sorted(tuple(round(v) for v in m) for m in means.tolist())
    assert counts.sum() == 600 and sorted(counts[0].tolist()) == [200, 200, 200]
    # A high price per bit makes one cluster cheaper than three: the rarer ones empty out.
    unequal = torch.cat([x[:, :400], x[:, 400:450], x[:, 200:350]], 1)
    _, counts = kmeans(unequal, 3, 10, torch.Generator().manual_seed(0),
                       rate_weight=torch.tensor([1e4], dtype=torch.float64))
    assert int((counts[0] > 0).sum()) == 1 and int(counts.max()) == 600


def test_initialise_sets_codebooks_and_histograms_per_set_and_group():
    vq = SoftToHardVQ(2, 3, SHVQOptions(dim=4, centers=5))
    samples = torch.randn(2, 3, 100, 4, generator=torch.Generator().manual_seed(0))
    samples[1] *= 10
    vq.initialise(samples, torch.Generator().manual_seed(0))
    assert bool(vq.ready) and vq.centers.shape == (2, 3, 5, 4)
    assert torch.allclose(vq.hist.sum(-1), torch.ones(2, 3))
    assert vq.centers[1].abs().mean() > 4 * vq.centers[0].abs().mean()    # each set fitted to its own data
    with pytest.raises(ValueError):
        vq.initialise(torch.zeros(2, 3, 10, 1))


def test_sigma_schedule_is_monotone_and_driven_by_the_gap():
    o = SHVQOptions(sigma_start=1.0, sigma_growth=0.1, sigma_max=50.0, gap_start=0.5, gap_end=0.01,
                    gap_decay_steps=100)
    targets = [gap_target(t, o) for t in range(0, 1000, 10)]
    assert targets[0] == pytest.approx(0.5) and all(a >= b for a, b in zip(targets, targets[1:]))
    assert targets[-1] == pytest.approx(0.01, abs=1e-4)
    assert next_sigma(2.0, 0.6, 0, o) == pytest.approx(2.2)      # gap above target: σ grows
    assert next_sigma(2.0, 0.4, 0, o) == 2.0                     # below: σ stays
    sigma, rng = 1.0, np.random.default_rng(0)
    for step in range(500):
        new = next_sigma(sigma, float(rng.uniform(0, 1)), step, o)
        assert sigma <= new <= o.sigma_max
        sigma = new
    assert sigma == o.sigma_max


def _fitted_vq(sigma: float, **options) -> SoftToHardVQ:
    vq = SoftToHardVQ(1, 2, SHVQOptions(dim=1, centers=4, sigma_start=sigma, **options))
    vq.initialise(torch.randn(1, 2, 400, 1, generator=torch.Generator().manual_seed(0)),
                  torch.Generator().manual_seed(0))
    return vq


def test_soft_assignment_becomes_hard_at_large_sigma_and_gradients_flow():
    z = torch.randn(3, 2, 50, 1, generator=torch.Generator().manual_seed(2))
    sel = torch.zeros(3, dtype=torch.long)
    soft, sharp = _fitted_vq(0.5), _fitted_vq(1e4)
    soft.eval(), sharp.eval()
    hard = sharp.lookup(sharp.nearest(z, sel), sel)
    out = sharp(z, sel)
    assert torch.allclose(out.values, hard.float(), atol=1e-6)          # forward is always hard
    assert torch.allclose(out.bits, out.bits_hard, rtol=1e-3)           # large σ: soft rate = hard rate
    r = soft(z, sel)
    gap_soft = float((r.bits - r.bits_hard).detach().mean())
    assert gap_soft > 1.0                                              # small σ: spread over centers
    zz = z.clone().requires_grad_(True)
    r = soft(zz, sel)
    (r.values.pow(2).sum() + r.bits.sum()).backward()
    assert zz.grad.abs().sum() > 0 and soft.centers.grad.abs().sum() > 0


def test_training_mode_updates_histogram_gap_and_sigma_only():
    vq = _fitted_vq(0.5, gap_start=0.0, gap_end=0.0)     # any positive gap is above target
    z = torch.randn(4, 2, 50, 1, generator=torch.Generator().manual_seed(3))
    sel = torch.zeros(4, dtype=torch.long)
    hist = vq.hist.clone()
    vq.eval()
    vq(z, sel, step=0)
    assert torch.equal(vq.hist, hist) and float(vq.sigma) == 0.5
    vq.train()
    vq(z, sel, step=0)
    assert not torch.equal(vq.hist, hist) and float(vq.sigma) > 0.5 and np.isfinite(float(vq.gap))
    assert torch.allclose(vq.hist.sum(-1), torch.ones(1, 2))


# --- the model, export and the coder ------------------------------------------------------------------

@pytest.fixture(scope="module")
def shvq_models(tmp_path_factory):
    from workbench.core.jobs import run
    from workbench.core.learned.train import TrainOptions, train_job
    from workbench.core.learned.weights import export_checkpoint
    tmp = tmp_path_factory.mktemp("shvq")
    images = tmp / "images"
    images.mkdir()
    shutil.copy(DATA / "chapel_192x176.png", images / "a.png")
    shutil.copy(ROOT / "resources" / "samples" / "endeavour.png", images / "b.png")
    files = {}
    for dim, centers in ((1, 8), (4, 16)):
        out = tmp / f"run{dim}"
        events = []
        opts = TrainOptions(model="dct-shvq", vq_dim=dim, vq_centers=centers, steps=3, batch=2, crop=64,
                            crops_per_image=2, validate_every=3, checkpoint_every=3, lambdas="0.005,0.05")
        run(train_job(opts, [images], out), events.append)
        files[dim] = (export_checkpoint(out / "last.pt", tmp / f"shvq{dim}.safetensors", "test"), events)
    return files


@pytest.fixture(scope="module")
def chapel():
    from workbench.core.images import load_image
    return load_image(DATA / "chapel_192x176.png").rgb


def test_training_reports_sigma_and_gap(shvq_models):
    for _, events in shvq_models.values():
        final = events[-1].metrics
        for key in ("sigma", "gap", "gap_target", "val_bpp_hard", "val_bpp_soft", "mismatch_bpp", "psnr"):
            assert key in final and np.isfinite(final[key]), key
        assert final["mismatch_psnr"] == 0.0        # forward hard in both passes


@pytest.mark.parametrize("dim", [1, 4])
def test_export_encode_decode_bit_exact(shvq_models, chapel, dim, tmp_path):
    from workbench.core.codecs import decode_any, get_codec
    model_file = shvq_models[dim][0]
    codec = get_codec("learned")
    sizes = []
    for q in (1, 2):
        encoded = run(codec.encode_job(chapel, codec.options(quality=q, model=str(model_file))))
        data = encoded.data
        decoded, cls = decode_any(data)
        assert cls.name == "learned" and decoded.shape == chapel.shape
        assert np.array_equal(decoded, codec.decode(data))
        # The estimate is the ideal code length of the same tables: the file is within the coder's overhead.
        assert abs(len(container.unpack(data).streams[0]) * 8 - encoded.estimated_bits) < 64 + 0.02 * len(data) * 8
        sizes.append(len(data))
    assert sizes[0] <= sizes[1]
    if dim == 4:    # a fresh process decodes the same pixels (it loads the model file by hash, by path)
        path = tmp_path / "x.wbi"
        path.write_bytes(data)
        code = ("import sys, hashlib, torch; torch.set_num_threads(1);"
                "from workbench.core.learned.weights import load_codec_model; load_codec_model(sys.argv[2]);"
                "from workbench.core.codecs import decode_any;"
                "rgb, _ = decode_any(open(sys.argv[1], 'rb').read());"
                "print(hashlib.sha256(rgb.tobytes()).hexdigest())")
        out = subprocess.run([sys.executable, "-c", code, str(path), str(model_file)], capture_output=True,
                             text=True, check=True)
        assert out.stdout.strip() == hashlib.sha256(decoded.tobytes()).hexdigest()


def test_odd_sizes_round_trip(shvq_models):
    from workbench.core.codecs import get_codec
    rgb = np.random.default_rng(0).integers(0, 256, (37, 53, 3)).astype(np.uint8)
    codec = get_codec("learned")
    out = codec.decode(codec.encode(rgb, codec.options(quality=2, model=str(shvq_models[4][0]))))
    assert out.shape == rgb.shape


def _repack(data: bytes, **changes) -> bytes:
    return container.pack(dataclasses.replace(container.unpack(data), **changes))


def test_bad_inputs_are_refused(shvq_models, chapel):
    from workbench.core.codecs import get_codec
    model_file = str(shvq_models[1][0])
    codec = get_codec("learned")
    with pytest.raises(OptionError, match="integer qualities"):
        codec.encode(chapel, codec.options(quality=1.5, model=model_file))
    with pytest.raises(OptionError, match="integer qualities"):
        codec.encode(chapel, codec.options(quality=3, model=model_file))
    with pytest.raises(OptionError, match="step"):
        codec.encode(chapel, codec.options(quality=1, step=2.0, model=model_file))
    data = codec.encode(chapel, codec.options(quality=1, model=model_file))
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    with pytest.raises(BitstreamError):
        codec.decode(bytes(flipped))
    c = container.unpack(data)
    with pytest.raises(BitstreamError):
        codec.decode(_repack(data, streams=(c.streams[0][: len(c.streams[0]) // 2 // 4 * 4],)))
    with pytest.raises(BitstreamError, match="out of range"):
        codec.decode(_repack(data, params={**c.params, "quality": 1.5}))
    with pytest.raises(BitstreamError, match="out of range"):
        codec.decode(_repack(data, params={**c.params, "step": 2.0}))
    with pytest.raises(BitstreamError):
        codec.decode(_repack(data, model_hash=bytes(32)))
