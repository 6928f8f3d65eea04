"""Quantizers through the real bitstream: keys/shapes/dtypes, delta coding, corrupt files, demo accuracy."""

import pytest
import torch

from workbench.core.container import pack, unpack
from workbench.core.errors import BitstreamError
from workbench.core.jobs import run
from workbench.core.network.checkpoint import CheckpointError
from workbench.core.network.compress import compress_network_job, decompress_network
from workbench.core.network.quantizers import NET_QUANTIZERS

FAST = {"uniform": {"bits": 6}, "rdoq": {"bits": 6, "lam": 0.1}, "tcq": {"bits": 6, "states": 4},
        "shvq": {"centers": 8, "iters": 30}}


def _state():
    g = torch.Generator().manual_seed(0)
    return {
        "conv.weight": torch.randn(8, 3, 3, 3, generator=g) * 0.2,
        "conv.bias": torch.randn(8, generator=g) * 0.1,
        "fc.weight": (torch.randn(10, 72, generator=g) * 0.1).half(),
        "emb": (torch.randn(5, 6, generator=g)).to(torch.bfloat16),
        "norm.running_mean": torch.randn(8, generator=g).double(),
        "norm.num_batches_tracked": torch.tensor(42),
        "mask": torch.tensor([True, False, True]),
        "scalar": torch.tensor(0.5),
    }


def test_all_quantizers_registered():
    assert {"uniform", "rdoq", "tcq", "shvq"} <= set(NET_QUANTIZERS.names())


@pytest.mark.parametrize("name", sorted(FAST))
@pytest.mark.parametrize("coder", ["auto", "cabac", "categorical"])
def test_round_trip_keeps_keys_shapes_dtypes(name, coder):
    sd = _state()
    res = run(compress_network_job(sd, name, FAST[name], coder=coder))
    back = decompress_network(res.data)
    assert list(back) == list(sd)
    for k, v in sd.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape, k
        assert torch.equal(back[k], res.state[k])
    for k in ("norm.num_batches_tracked", "mask"):
        assert torch.equal(back[k], sd[k])
    # 1-D tensors are near-lossless, weights are close
    assert torch.allclose(back["conv.bias"], sd["conv.bias"], atol=1e-4)
    snr = {r.name: r.snr_db for r in res.rows}
    assert snr["conv.weight"] > 10 and snr["norm.running_mean"] > 60
    assert abs(res.bits_per_weight - 8 * len(res.data) / res.parameters) < 1e-9


def test_delta_coding_needs_the_right_base():
    base = _state()
    g = torch.Generator().manual_seed(5)
    tuned = {k: (v + 0.01 * torch.randn(v.shape, generator=g).to(v.dtype)) if v.is_floating_point() else v
             for k, v in base.items()}
    tuned["conv.weight"][:4] = base["conv.weight"][:4]  # partly unchanged: sparse difference
    res = run(compress_network_job(tuned, "uniform", {"step": 0.004}, base=base))
    full = run(compress_network_job(tuned, "uniform", {"step": 0.004}))
    assert len(res.data) < len(full.data)
    back = decompress_network(res.data, base)
    assert all(back[k].dtype == tuned[k].dtype for k in tuned)
    assert torch.allclose(back["conv.weight"], tuned["conv.weight"], atol=0.0021)
    with pytest.raises(BitstreamError, match="pass the base"):
        decompress_network(res.data)
    wrong = dict(base)
    wrong["conv.bias"] = base["conv.bias"] + 1
    with pytest.raises(BitstreamError, match="wrong base"):
        decompress_network(res.data, wrong)
    with pytest.raises(CheckpointError, match="does not match"):
        run(compress_network_job(tuned, "uniform", {}, base={"conv.weight": torch.zeros(1)}))


def test_corrupt_or_foreign_wbn_gives_bitstream_error():
    res = run(compress_network_job(_state(), "tcq", FAST["tcq"]))
    data = bytearray(res.data)
    for bad in (bytes(data[:-7]), bytes(data[:40]), b"", b"PK\x03\x04junk"):
        with pytest.raises(BitstreamError):
            decompress_network(bad)
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x40
    with pytest.raises(BitstreamError):
        decompress_network(bytes(flipped))
    # valid container, damaged manifest (CRC recomputed): still a clean BitstreamError
    c = unpack(bytes(data))
    from workbench.core.container import Container

    for man in (c.streams[0][:10], c.streams[0][:4] + b"\xff" * 40):
        evil = Container(c.kind, c.codec_id, c.model_hash, c.quantizer_id, c.params, c.shapes,
                         (man,) + c.streams[1:])
        with pytest.raises(BitstreamError):
            decompress_network(pack(evil))
    with pytest.raises(BitstreamError, match="allowed"):
        decompress_network(bytes(data), max_elements=100)


def test_demo_network_accuracy_before_and_after():
    from workbench.core.network.checkpoint import load_checkpoint
    from workbench.core.network.demo import WEIGHTS, DigitsTask

    task = DigitsTask()
    sd = load_checkpoint(WEIGHTS)
    assert task.matches(sd)
    res = run(compress_network_job(sd, "uniform", {"bits": 5}, task=task))
    assert res.accuracy_before > 0.97
    assert res.accuracy_after >= res.accuracy_before - 0.01
    assert res.bits_per_weight < 3.5
    assert task.accuracy(decompress_network(res.data)) == res.accuracy_after
