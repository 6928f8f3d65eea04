"""The learned codec: round trips, rate knobs, bit-exact decoding, damaged files, escapes."""

import dataclasses
import doctest
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.core import container
from workbench.core.codecs import decode_any, get_codec
from workbench.core.compress import compress_image
from workbench.core.entropy import CategoricalReader, CategoricalWriter
from workbench.core.errors import BitstreamError
from workbench.core.images import load_image
from workbench.core.learned import densities, quantizers
from workbench.core.learned.catalog import shipped_models
from workbench.core.learned.latent_quantizers import LATENT_QUANTIZERS

DATA = Path(__file__).parent / "data"
pytestmark = pytest.mark.skipif(not shipped_models(), reason="no learned model weights in resources/models")


@pytest.fixture(scope="module")
def chapel():
    return load_image(DATA / "chapel_192x176.png").rgb


def test_quality_knob_orders_rate_and_distortion(chapel):
    results = [compress_image(chapel, "learned", quality=q) for q in (1, 4, 8)]
    bpps = [r.bpp for r in results]
    psnrs = [r.quality.psnr for r in results]
    assert bpps == sorted(bpps) and bpps[0] < bpps[-1]
    assert psnrs[0] < psnrs[-1]
    for r in results:
        assert r.reconstruction.shape == chapel.shape
        # The model's own estimate and the real file agree to within the header and table precision.
        assert r.estimated_bits is not None and abs(r.bpp / r.estimated_bpp - 1) < 0.35


def test_larger_step_lowers_the_rate(chapel):
    fine = compress_image(chapel, "learned", quality=4, step=1.0)
    coarse = compress_image(chapel, "learned", quality=4, step=2.0)
    assert coarse.size_bytes < fine.size_bytes


def test_odd_sizes_are_padded_and_cropped_back():
    rgb = (np.random.default_rng(0).integers(0, 256, (37, 53, 3))).astype(np.uint8)
    codec = get_codec("learned")
    out = codec.decode(codec.encode(rgb, codec.options(quality=2)))
    assert out.shape == rgb.shape


def test_file_is_recognised_by_contents(chapel):
    data = get_codec("learned").encode(chapel, get_codec("learned").options(quality=3))
    decoded, cls = decode_any(data)
    assert cls.name == "learned" and decoded.shape == chapel.shape


def _decode_in_subprocess(path: Path, threads: int) -> str:
    code = ("import sys, hashlib, torch; torch.set_num_threads(int(sys.argv[2]));"
            "from workbench.core.codecs import decode_any;"
            "rgb, _ = decode_any(open(sys.argv[1], 'rb').read());"
            "print(hashlib.sha256(rgb.tobytes()).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code, str(path), str(threads)], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def test_decoding_is_bit_exact_with_one_or_two_threads(chapel, tmp_path):
    codec = get_codec("learned")
    data = codec.encode(chapel, codec.options(quality=5))
    path = tmp_path / "x.wbi"
    path.write_bytes(data)
    here = hashlib.sha256(codec.decode(data).tobytes()).hexdigest()
    assert _decode_in_subprocess(path, 1) == here
    assert _decode_in_subprocess(path, 2) == here


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_file_encoded_on_gpu_decodes_bit_exactly_on_cpu(chapel, tmp_path):
    codec = get_codec("learned")
    data = codec.encode(chapel, codec.options(quality=5, device="cuda"))
    path = tmp_path / "gpu.wbi"
    path.write_bytes(data)
    here = hashlib.sha256(codec.decode(data).tobytes()).hexdigest()
    code = ("import os, sys, hashlib; os.environ['CUDA_VISIBLE_DEVICES'] = '';"
            "from workbench.core.codecs import decode_any;"
            "rgb, _ = decode_any(open(sys.argv[1], 'rb').read());"
            "print(hashlib.sha256(rgb.tobytes()).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == here
    cpu = compress_image(chapel, "learned", quality=5, device="cpu")
    assert abs(len(data) - cpu.size_bytes) <= 0.01 * cpu.size_bytes + 16


def _repack(data: bytes, **changes) -> bytes:
    return container.pack(dataclasses.replace(container.unpack(data), **changes))


def test_damaged_or_mismatched_files_give_clear_errors(chapel):
    codec = get_codec("learned")
    data = codec.encode(chapel, codec.options(quality=3))
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x40
    with pytest.raises(BitstreamError, match="checksum"):
        codec.decode(bytes(flipped))
    with pytest.raises(BitstreamError, match="model hash"):
        codec.decode(_repack(data, model_hash=bytes(32)))
    c = container.unpack(data)
    with pytest.raises(BitstreamError, match="not installed"):
        codec.decode(_repack(data, params={**c.params, "model": "no-such-model"}, model_hash=bytes(32)))
    with pytest.raises(BitstreamError, match="out of range"):
        codec.decode(_repack(data, params={**c.params, "quality": 99.0}))
    with pytest.raises(BitstreamError):
        codec.decode(_repack(data, streams=(c.streams[0], c.streams[1][: len(c.streams[1]) // 2 // 4 * 4])))


def test_escaped_latents_round_trip():
    class Model:
        gaussian = tuple(densities.gaussian_tables())

    k = np.array([[0, 3, -2000, 57], [1, -1, 0, 900]], dtype=np.float64)
    levels = np.array([[0, 0, 5, 0], [10, 63, 0, 1]])
    w = CategoricalWriter()
    rounding = LATENT_QUANTIZERS.get("round")()
    rounding.write(w, k, levels, np.ones(2), Model)
    r = CategoricalReader(w.finish())
    assert np.array_equal(rounding.read(r, levels, Model), k)
    r.finish()


def test_scale_grid_indices_never_round_a_scale_down():
    grid = torch.from_numpy(densities.scale_grid())
    s = torch.tensor([0.01, 0.05, 0.0500001, 1.0, 79.0, 500.0], dtype=torch.float64)
    idx = densities.scale_indices(s)
    assert idx.min() >= 0 and idx.max() <= densities.SCALE_LEVELS - 1
    inside = (s >= densities.SCALE_GRID_MIN) & (s <= densities.SCALE_GRID_MAX)
    assert torch.all(grid[idx][inside] >= s[inside] * (1 - 1e-9))


def test_surrogate_docstring_examples():
    result = doctest.testmod(quantizers)
    assert result.failed == 0 and result.attempted >= 3


def test_sua_temperature_anneals_from_noise_like_to_rounding():
    q = quantizers.make_surrogate("sua", tau_start=1.0, tau_end=0.01, tau_steps=100)
    assert q.temperature(0) == pytest.approx(1.0) and q.temperature(100) == pytest.approx(0.01)
    v = torch.full((20000,), 0.3)
    early = q(v, 0)
    late = q(v, 100)
    assert 0.2 < float((early == 1).float().mean()) < 0.45     # P(up) = sigmoid(-0.4) at tau 1
    assert float((late == 0).float().mean()) == 1.0
    v.requires_grad_(True)
    q(v, 50).sum().backward()
    assert torch.all(v.grad == 1)                               # straight-through backward


def test_a_broken_model_file_is_refused_with_a_message(chapel, tmp_path):
    from workbench.core.errors import OptionError
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    codec = get_codec("learned")
    with pytest.raises(OptionError, match="not a valid workbench model file"):
        codec.encode(chapel, codec.options(model=str(bad)))
    with pytest.raises(OptionError, match="not found"):
        codec.encode(chapel, codec.options(model=str(tmp_path / "missing.safetensors")))


@pytest.mark.parametrize("table", [torch.full((2, 64, 3), float("nan")), torch.zeros(3, 3), torch.full((2, 64, 3), 5.0)])
def test_malformed_reconstruction_offsets_are_refused(tmp_path, table):
    from safetensors.torch import load, save
    from workbench.core.errors import OptionError
    from workbench.core.learned.weights import load_codec_model, model_path
    src = model_path("dct-hyperprior-mse")
    raw = src.read_bytes()
    meta = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])["__metadata__"]
    bad = tmp_path / "bad-offsets.safetensors"
    bad.write_bytes(save({**load(raw), "offsets.tcq8": table}, metadata=meta))
    with pytest.raises(OptionError, match="offsets"):
        load_codec_model(str(bad))
