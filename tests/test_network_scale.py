"""Networks at transformer scale: the summary table, the coder choice, memory, steps, calibration."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.core import trellis
from workbench.cli import main as cli
from workbench.core.jobs import run
from workbench.core.network import bitstream as bs
from workbench.core.network import cabac, catcoder, encoder
from workbench.core.network.checkpoint import load_checkpoint, tensor_bytes
from workbench.core.network.compress import compress_network_job, decompress_network
from workbench.core.network.quantizers import QuantizedTensor


def test_summary_table_never_cuts_names():
    prefix = "encoder.layer.11.attention.self."
    sd = {prefix + k: torch.randn(4, 4) for k in ("query.weight", "key.weight", "value.weight")}
    lines = run(compress_network_job(sd, "uniform", {"bits": 4})).format_summary().splitlines()
    rows = [ln for ln in lines if ln.startswith(prefix)]
    assert [r.split()[0] for r in rows] == list(sd)
    assert len({len(ln.split(" [")[0]) for ln in rows}) == 1      # the columns still line up


def _levels(rows, cols, scale, seed=0):
    return np.random.default_rng(seed).laplace(0, scale, (rows, cols)).round().astype(np.int64)


@pytest.mark.parametrize("states", [0, 4, 8])
@pytest.mark.parametrize("scale", [0.2, 1.5, 30.0])
def test_size_estimates_match_the_coders(states, scale):
    sm = trellis.machine(states)
    lv = _levels(40, 300, scale)
    assert abs(cabac.estimate_bits(lv, sm) / (8 * len(cabac.encode_levels(lv, sm))) - 1) < 0.003
    assert abs(catcoder.estimate_bytes(lv, sm) - len(catcoder.encode_levels(lv, sm))) <= 8


def test_auto_coder_runs_only_the_coder_that_pays_off(monkeypatch):
    big = QuantizedTensor(levels=_levels(256, 2000, 1.0), steps=np.ones(1, np.float32), states=8)
    small = QuantizedTensor(levels=_levels(4, 40, 1.0), steps=np.ones(1, np.float32), states=8)
    sizes = {c: len(bs.code_levels(small, c)[1]) for c in ("cabac", "categorical")}
    assert sizes["cabac"] < sizes["categorical"]          # tables cost more than a tiny tensor's data
    assert bs.code_levels(small, "auto")[0] == "cabac"
    monkeypatch.setattr(cabac, "encode_levels", lambda *a: pytest.fail("CABAC ran on a large tensor"))
    coder, data = bs.code_levels(big, "auto")
    assert coder == "categorical" and data == catcoder.encode_levels(big.levels, big.machine)


TINY = encoder.EncoderConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                             intermediate_size=64, max_position_embeddings=32)


def test_encoder_folder_is_compressed_and_scored_by_output_cosine(tmp_path, capsys):
    sd = encoder.make_test_encoder(TINY)
    folder = encoder.save_folder(sd, TINY, tmp_path / "tiny-bert")
    assert encoder.EncoderConfig.read(folder) == TINY
    task = encoder.task_for_folder(folder, load_checkpoint(folder))
    assert task is not None and task.accuracy(sd) == pytest.approx(1.0)
    g = torch.Generator().manual_seed(0)
    noisy = {k: v + 0.005 * torch.randn(v.shape, generator=g) for k, v in sd.items()}
    assert 0.5 < task.accuracy(noisy) < 0.999
    assert cli(["compress-net", str(folder), "-q", "uniform", "--bits", "8", "-o", str(tmp_path / "t.wbn")]) == 0
    assert "output cosine: 1.0000 before" in capsys.readouterr().out
    summary = json.loads((tmp_path / "t.wbn.json").read_text())
    assert summary["metric"] == "output cosine" and 0.99 < summary["accuracy_after"] < 1.0


def test_bert_keys_under_a_prefix_run_the_same_forward():
    sd = encoder.make_test_encoder(TINY)
    ids = torch.randint(TINY.vocab_size, (2, 8))
    out = encoder.forward(sd, TINY, ids)
    assert out.shape == (2, 8, TINY.hidden_size)
    assert torch.equal(encoder.forward({"bert." + k: v for k, v in sd.items()}, TINY, ids), out)
    assert not encoder.matches({k: v for k, v in sd.items() if "layer.1." not in k}, TINY)


def test_tensors_are_coded_as_they_are_quantized(monkeypatch):
    """Streaming is what keeps memory near the model's size: never the levels of the whole network."""
    from workbench.core.network import quantizers

    events = []
    real_q, real_c = quantizers.UniformQuantizer.quantize_one, bs.code_levels
    monkeypatch.setattr(quantizers.UniformQuantizer, "quantize_one",
                        lambda self, *a: events.append("q") or real_q(self, *a))
    monkeypatch.setattr(bs, "code_levels", lambda *a: events.append("c") or real_c(*a))
    sd = {f"w{i}": torch.randn(8, 16) for i in range(3)}
    r = run(compress_network_job(sd, "uniform", {"bits": 6}, keep_state=False))
    assert events == ["q", "c"] * 3 and r.state == {}


@pytest.mark.parametrize("quantizer", ["rdoq", "tcq"])
def test_long_tensors_are_searched_in_blocks_of_chains_with_the_same_result(monkeypatch, quantizer):
    from workbench.core.network import quantizers

    sd = {"w": torch.randn(40, 50, generator=torch.Generator().manual_seed(0))}
    opts = {"bits": 5, "lam": 0.2}
    whole = decompress_network(run(compress_network_job(sd, quantizer, opts)).data)["w"]
    monkeypatch.setattr(quantizers, "SEARCH_CHUNK", 120)      # blocks of 2 chains
    assert torch.equal(decompress_network(run(compress_network_job(sd, quantizer, opts)).data)["w"], whole)


def test_default_step_is_not_coarsened_by_one_outlier_weight():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 64, generator=g) * 0.02
    w[0, 0] = 5.0                                               # 250 standard deviations
    back = decompress_network(run(compress_network_job({"w": w}, "uniform")).data)["w"]
    rest = torch.ones_like(w, dtype=torch.bool)
    rest[0, 0] = False
    err = (back - w)[rest].square().mean() / w[rest].square().mean()
    assert 10 * torch.log10(1 / err) > 20                       # max-scaled 6 bits rounds them all to zero
    assert abs(float(back[0, 0]) - 5.0) < 0.01


OLD_FILES = {  # SHA-256 of names, dtypes and values decoded by the version that wrote them (before issue 18)
    "net-shvq-cabac.wbn": "702362bba9c5493a8ab347e99b05f649522525c7356ddc4991e6fed73e453d0d",
    "net-shvq-categorical.wbn": "702362bba9c5493a8ab347e99b05f649522525c7356ddc4991e6fed73e453d0d",
    "net-tcq-cabac.wbn": "0160deb2709ee4ae4959c74eaed03c4b2457d85cb2bf85e301d47039f74b2801",
    "net-tcq-categorical.wbn": "0160deb2709ee4ae4959c74eaed03c4b2457d85cb2bf85e301d47039f74b2801",
    "net-uniform-cabac.wbn": "619c9132ba99c323cf2c96a2eb578278a5738ad625c28553b09ab43bf478a305",
    "net-uniform-categorical.wbn": "619c9132ba99c323cf2c96a2eb578278a5738ad625c28553b09ab43bf478a305",
    "net-delta.wbn": "8a2cab76546a836b647b8a36a552925868a4549351bf0e86feaf716a737c0f85",
}


@pytest.mark.parametrize("name", sorted(OLD_FILES))
def test_files_of_earlier_versions_decode_to_the_same_values(name):
    data = Path(__file__).parent / "data" / "fuzz"
    base = load_checkpoint(data / "base.safetensors") if "delta" in name else None
    h = hashlib.sha256()
    for k, v in decompress_network((data / name).read_bytes(), base).items():
        h.update(k.encode())
        h.update(str(v.dtype).encode())
        h.update(tensor_bytes(v))
    assert h.hexdigest() == OLD_FILES[name]


def test_calibrated_steps_buy_fidelity_at_the_same_rate(tmp_path, capsys):
    cfg = encoder.EncoderConfig(vocab_size=256, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=128, max_position_embeddings=64)
    sd = encoder.make_test_encoder(cfg)
    folder = encoder.save_folder(sd, cfg, tmp_path / "bert")
    task = encoder.task_for_folder(folder, sd)
    cal = encoder.task_for_folder(folder, sd, seed=encoder.CALIBRATION_SEED)
    assert not torch.equal(cal.ids, task.ids)                  # calibrated on other inputs than scored on
    plain = run(compress_network_job(sd, "uniform", {"qp": -20}, task=task))
    tuned = run(compress_network_job(sd, "uniform", {"qp": -16}, task=task, calibration=cal))
    assert len(tuned.data) < len(plain.data) and tuned.accuracy_after > plain.accuracy_after
    assert cli(["compress-net", str(folder), "--qp", "-20", "--calibrate", "tokens", "-o", str(tmp_path / "c.wbn")]) == 0
    assert json.loads((tmp_path / "c.wbn.json").read_text())["options"]["calibration"] == "encoder"
