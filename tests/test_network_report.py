"""What the Network tab shows, computed headless: layer rows, histograms, the decode-back check."""

import numpy as np
import pytest
import torch

from workbench.core.jobs import run
from workbench.core.network import demo
from workbench.core.network.checkpoint import open_checkpoint, save_checkpoint
from workbench.core.network.compress import compress_network_job
from workbench.core.network.paths import is_checkpoint_path
from workbench.core.network.report import layer_rows, tensor_histogram
from workbench.core.network.verify import check_file


@pytest.fixture(scope="module")
def compressed():
    torch.manual_seed(0)
    state = {"a.weight": torch.randn(16, 32), "a.bias": torch.randn(16), "steps": torch.tensor(5),
             "b.weight": torch.randn(8, 16).half()}
    return state, run(compress_network_job(state, "uniform", {"bits": 4}))


def test_layer_rows_before_and_after_compression(compressed):
    state, result = compressed
    before = layer_rows(state)
    assert [r.bits_per_parameter for r in before] == [32, 32, 64, 16]
    assert sum(r.share for r in before) == pytest.approx(1.0) and all(r.coding == "" for r in before)
    after = {r.name: r for r in layer_rows(state, result)}
    assert sum(r.share for r in after.values()) == pytest.approx(1.0)
    assert after["a.weight"].coding.startswith("scalar, ") and after["steps"].coding == "raw"
    assert after["a.weight"].bits_per_parameter < 6 and after["a.weight"].snr_db > 10
    assert after["steps"].snr_db == float("inf") and after["b.weight"].dtype == "float16"
    assert after["a.weight"].share == pytest.approx(
        next(r.bytes for r in result.rows if r.name == "a.weight") / sum(r.bytes for r in result.rows))


def test_histogram_shares_bins_and_counts_levels(compressed):
    state, result = compressed
    h = tensor_histogram(state["a.weight"], result.state["a.weight"])
    assert len(h.edges) == len(h.before) + 1 == 102 and h.edges[0] == -h.edges[-1]
    assert h.before.sum() == pytest.approx(1.0) and h.after.sum() == pytest.approx(1.0)
    assert h.levels == len(np.unique(result.state["a.weight"].numpy())) <= 15
    assert 0.0 > h.edges[50] and 0.0 < h.edges[51]                 # zero is the centre of the middle bin
    big = tensor_histogram(torch.randn(3_000_001), max_samples=1_000_000)
    assert big.sampled <= 1_000_000 and big.total == 3_000_001 and big.after is None
    assert tensor_histogram(torch.zeros(4)).before.sum() == pytest.approx(1.0)


def test_decode_check_reads_the_written_file(compressed, tmp_path):
    state, result = compressed
    path = tmp_path / "m.wbn"
    path.write_bytes(result.data)
    check = check_file(path, result.state)
    assert check.ok and check.tensors == 4 and check.parameters == sum(t.numel() for t in state.values())
    assert check.sentence().startswith("Decoding m.wbn gives back all 4 tensors")
    wrong = dict(result.state)
    wrong["a.weight"] = wrong["a.weight"] + 1
    wrong["b.weight"] = wrong["b.weight"].float()
    del wrong["a.bias"]
    wrong["extra"] = torch.zeros(1)
    bad = check_file(path, wrong)
    assert not bad.ok and bad.missing == ("extra",) and bad.extra == ("a.bias",)
    assert bad.differing == ("a.weight: values", "b.weight: float16 instead of float32")
    assert "does NOT restore" in bad.sentence()


def test_opened_checkpoint_and_what_counts_as_one(tmp_path):
    (tmp_path / "hf").mkdir()
    save_checkpoint({"w": torch.ones(3, 3)}, tmp_path / "hf" / "model.safetensors")
    net = open_checkpoint(tmp_path / "hf")
    assert net.path.name == "model.safetensors" and net.file_bytes == net.path.stat().st_size and net.parameters == 9
    assert is_checkpoint_path(tmp_path / "hf") and is_checkpoint_path("x.PTH") and not is_checkpoint_path(tmp_path)
    assert not is_checkpoint_path("photo.png")


def test_demo_task_only_for_the_demo_network():
    assert demo.task_for({"w": torch.ones(2, 2)}) is None
    state = open_checkpoint(demo.WEIGHTS).state
    task = demo.task_for(state)
    assert task is not None and task is demo.task_for(state) and task.accuracy(state) > 0.95
