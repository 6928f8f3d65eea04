"""The compiled CABAC coder and trellis search (issue 18) write and choose exactly what the pure-Python
and torch versions did, so files that released versions wrote, and the sizes measured, are unchanged."""

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.core.container import pack, unpack
from workbench.core.errors import BitstreamError
from workbench.core.network import bitstream as bs
from workbench.core.network import cabac, catcoder
from workbench.core import trellis
from workbench.core.trellis import MACHINES

DATA = Path(__file__).parent / "data"
STREAMS = np.load(DATA / "cabac_streams.npz")
"""Levels and the bytes the pure-Python CABAC coder (commit 9ff041f) wrote for them: Laplacian levels
of the uniform, TCQ-4 and TCQ-8 machines, 16-bit bias levels (Exp-Golomb order 12), levels up to 2^24,
all-zero and one-element tensors."""
CASES = sorted({k.split("__")[0] for k in STREAMS.files})


@pytest.mark.parametrize("name", CASES)
def test_cabac_writes_and_reads_the_python_coders_bytes(name):
    lv = STREAMS[f"{name}__levels"].astype(np.int64)
    sm = MACHINES[int(STREAMS[f"{name}__states"])]
    old = STREAMS[f"{name}__bytes"].tobytes()
    assert cabac.encode_levels(lv, sm) == old
    assert np.array_equal(cabac.decode_levels(old, lv.shape, sm), lv)


@pytest.mark.parametrize("name", ["net-uniform-cabac.wbn", "net-tcq-cabac.wbn", "net-shvq-cabac.wbn"])
def test_cabac_streams_of_released_files_are_written_again_byte_for_byte(name):
    c = unpack((DATA / "fuzz" / name).read_bytes())
    coded = 0
    for i, e in enumerate(bs.iter_network(c)):
        if e.q is not None and e.coder == "cabac":
            assert cabac.encode_levels(e.q.levels, e.q.machine) == c.streams[i + 1], e.name
            coded += 1
    assert coded > 0


def test_cabac_damage_is_still_a_clear_error():
    lv = STREAMS["tcq8_mixed__levels"].astype(np.int64)
    sm = MACHINES[8]
    data = cabac.encode_levels(lv, sm)
    with pytest.raises(BitstreamError):
        cabac.decode_levels(data[: len(data) // 2], lv.shape, sm)
    with pytest.raises(BitstreamError):
        cabac.decode_levels(data + b"\x00" * 16, lv.shape, sm)


@pytest.mark.parametrize("states", [0, 4, 8])
def test_compiled_trellis_search_picks_the_torch_searchs_levels(states):
    """`viterbi` with a `TableRate` runs the compiled search; `_viterbi` is the torch recursion it replaced
    (still used for other rates). Ties (half-integer inputs), escapes beyond the table (large levels) and
    per-weight importance included."""
    sm = MACHINES[states]
    gen = torch.Generator().manual_seed(states)
    for scale in (0.3, 4.0, 40.0):
        u = torch.randn(12, 150, dtype=torch.float64, generator=gen) * scale
        u[0, :60] = torch.round(u[0, :60] * 2) / 2
        rate = trellis.TableRate.fit(trellis.viterbi(u, 0.0, trellis.TableRate.flat(), sm).numpy(), sm)
        f = torch.rand(12, 150, dtype=torch.float64, generator=gen) + 0.5
        for lam in (0.0, 0.1, 1.0):
            for w in (None, f):
                ref = trellis._viterbi(u, torch.ones_like(u) if w is None else w, lam, rate, sm)
                assert torch.equal(trellis.viterbi(u, lam, rate, sm, w), ref), (scale, lam, w is None)


@pytest.mark.parametrize("name", ["net-uniform-categorical.wbn", "net-tcq-categorical.wbn", "net-shvq-categorical.wbn"])
def test_released_categorical_streams_decode_and_the_compiled_coder_round_trips_their_levels(name):
    """Format 1 files hold layout 1 (constriction) streams, still read; the compiled coder (layout 2, what
    format 2 files hold) codes the same levels back exactly, within a few bytes of its estimate."""
    c = unpack((DATA / "fuzz" / name).read_bytes())
    assert c.params["format"] == 1
    coded = 0
    for e in bs.iter_network(c):
        if e.q is not None and e.coder == "categorical-v1":
            data = catcoder.encode_levels(e.q.levels, e.q.machine)
            assert np.array_equal(catcoder.decode_levels(data, e.q.levels.shape, e.q.machine), e.q.levels)
            assert abs(catcoder.estimate_bytes(e.q.levels, e.q.machine) - len(data)) <= 8
            coded += 1
    assert coded > 0


def test_compiled_categorical_coder_writes_format_2_and_refuses_damage():
    lv = STREAMS["tcq8_mixed__levels"].astype(np.int64)
    sm = MACHINES[8]
    data = catcoder.encode_levels(lv, sm)
    for bad in (data[: len(data) // 2], data + b"\x00" * 16):
        with pytest.raises(BitstreamError):
            catcoder.decode_levels(bad, lv.shape, sm)
    zeros = np.zeros((3, 50), dtype=np.int64)                       # one-symbol tables: no coder bytes
    only_tables = catcoder.encode_levels(zeros, sm)
    assert np.array_equal(catcoder.decode_levels(only_tables, zeros.shape, sm), zeros)
    with pytest.raises(BitstreamError):
        catcoder.decode_levels(only_tables + b"\x00", zeros.shape, sm)
    e = bs.Entry("w", lv.shape, torch.float32, chains=lv.shape[0], coder="categorical", data=data)
    from workbench.core.network.quantizers import QuantizedTensor
    e.q = QuantizedTensor(levels=lv, steps=np.ones(1, np.float32), states=8)
    c = unpack(pack(bs.pack_network([e], "tcq", {"coder": "categorical"}, None)))
    assert c.params["format"] == 2
    assert np.array_equal(next(bs.iter_network(c)).q.levels, lv)


def _tiny_encoder():
    """A 2-layer test transformer's weights and its calibration task (random token ids)."""
    from workbench.core.network import encoder

    cfg = encoder.EncoderConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=64, max_position_embeddings=32)
    sd = encoder.make_test_encoder(cfg)
    return sd, encoder.EncoderTask(sd, cfg, batch=2, tokens=16, seed=2)


def test_shared_forward_probes_measure_the_same_sensitivities():
    """`EncoderTask.probes` runs the forward pass once for all probes; the sensitivities (and so the
    calibrated steps) are bit-identical to one forward pass per probe."""
    from workbench.core.jobs import run
    from workbench.core.network.sensitivity import sensitivity_job

    sd, task = _tiny_encoder()
    one_at_a_time = type("OneAtATime", (), {"probe": staticmethod(task.probe)})()
    names = [k for k, v in sd.items() if v.ndim >= 2]
    assert run(sensitivity_job(task, sd, names)) == run(sensitivity_job(one_at_a_time, sd, names))


def test_bfloat16_probes_measure_nearly_the_same_sensitivities_and_leave_autocast_off(monkeypatch):
    """Where the CPU has bfloat16 arithmetic the calibration forward pass runs under autocast
    (`sensitivity.fast_probes`; forced on here, so any CPU checks it): the sensitivities stay within
    a few % of float32's, far inside the probes' own randomness, and autocast is off whenever the
    job hands control back (its progress events), so the caller's code never runs under it."""
    from workbench.core.jobs import run
    from workbench.core.network import sensitivity

    sd, task = _tiny_encoder()
    names = [k for k, v in sd.items() if v.ndim >= 2]
    monkeypatch.setattr(sensitivity, "_native_bf16", lambda: False)
    exact = run(sensitivity.sensitivity_job(task, sd, names))
    monkeypatch.setattr(sensitivity, "_native_bf16", lambda: True)
    on_between = []
    fast = run(sensitivity.sensitivity_job(task, sd, names),
               lambda _: on_between.append(torch.is_autocast_enabled("cpu")))
    assert on_between and not any(on_between)
    rel = np.array([fast[k] / exact[k] - 1 for k in names])
    assert 0 < np.abs(rel).max() < 0.05, rel


@pytest.mark.parametrize("bf16", [False, True])
def test_calibration_frees_each_gradient_and_measures_what_whole_gradients_did(monkeypatch, bf16):
    """The calibration adds each tensor's squared gradient as backward produces it (in row chunks)
    and drops it, and under bfloat16 its graph keeps weights as float32 leaves, casting them again
    for backward; the sensitivities are bit-identical to summing every tensor's whole gradient of
    each probe under plain autocast, and no weight keeps a gradient or a hook afterwards."""
    from workbench.core.jobs import run
    from workbench.core.network import encoder, sensitivity

    sd, task = _tiny_encoder()
    names = [k for k, v in sd.items() if v.ndim >= 2]
    monkeypatch.setattr(sensitivity, "_native_bf16", lambda: bf16)
    monkeypatch.setattr(sensitivity, "_CHUNK", 100)      # several chunks per tensor

    seen = []

    class Recording:
        def probes(self, params, gen, n):
            seen.append(params)
            yield from task.probes(params, gen, n)

    got = run(sensitivity.sensitivity_job(Recording(), sd, names))
    assert all(p.grad is None and not p._post_accumulate_grad_hooks for p in seen[0].values())

    plain = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    monkeypatch.setattr(encoder, "fast_probes", lambda: plain)
    params = {k: v.detach().requires_grad_(k in names) for k, v in sd.items()}
    rows = {k: torch.zeros(sd[k].shape[0], dtype=torch.float64) for k in names}
    gen = torch.Generator().manual_seed(12345)
    for value in task.probes(params, gen, sensitivity.PROBES):
        for k, g in zip(names, torch.autograd.grad(value, [params[k] for k in names], retain_graph=True)):
            rows[k] += g.reshape(g.shape[0], -1).square().sum(1, dtype=torch.float64)
    for k in names:
        touched = rows[k] > 0
        want = float(rows[k][touched].sum()) / (sensitivity.PROBES * sd[k][0].numel() * int(touched.sum()))
        assert got[k] == want, k
