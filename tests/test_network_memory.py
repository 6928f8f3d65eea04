"""Memory of the calibrated compression job (issue 18, target 2): the steps that stood at its peak on
a 29.7 M-parameter transformer make no whole-tensor copies they do not need and hand the heap back
between the calibration's backward passes. Results are those of the whole-tensor computations."""

import tracemalloc

import numpy as np
import torch

from workbench.core.network import bitstream as bs
from workbench.core.network import cabac, compress, sensitivity
from workbench.core.network.quantizers import QuantizedTensor, entropy_bits

LEVELS = np.round(np.random.default_rng(0).laplace(0, 3, (512, 2048))).astype(np.int64)
"""8 MB of levels, four of the slices the counting functions take."""


def _peak(fn, *args):
    """The result of `fn(*args)` and the most bytes numpy (and Python) held during the call."""
    fn(*args)                       # first calls load compiled code; only the call itself is measured
    tracemalloc.start()
    try:
        out = fn(*args)
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _whole_egk(levels):
    a = np.abs(levels).ravel()
    rem = a[a > cabac.NUM_GT] - cabac.NUM_GT - 1
    bits = [int(np.sum(2 * np.floor(np.log2(rem / (1 << k) + 1)) + 1 + k)) for k in range(24)]
    return int(np.argmin(bits)) if rem.size else 0


def _whole_entropy(levels):
    cnt = np.bincount(levels.ravel() - levels.min())
    p = cnt[cnt > 0] / levels.size
    return float(-(p * np.log2(p)).sum())


def test_exp_golomb_order_and_entropy_count_in_slices_without_a_copy_of_the_levels():
    rng = np.random.default_rng(1)
    for scale in (0.3, 3.0, 30.0, 3000.0):                  # 300 300 levels: two slices
        lv = np.round(rng.laplace(0, scale, (300, 1001))).astype(np.int64)
        assert cabac.best_egk(lv) == _whole_egk(lv)
        assert entropy_bits(lv) == _whole_entropy(lv)
    assert cabac.best_egk(np.zeros((3, 4), dtype=np.int64)) == 0
    for fn in (cabac.best_egk, entropy_bits):
        _, peak = _peak(fn, LEVELS)
        assert peak < LEVELS.nbytes / 2, (fn.__name__, peak)   # |levels| or levels - min: a full int64 copy


def test_reconstruction_is_the_values_without_a_copy():
    e = bs.Entry("w", LEVELS.shape, torch.float32, q=QuantizedTensor(levels=LEVELS, steps=np.array([0.01], np.float32)))
    rec, peak = _peak(compress._reconstruct, e, None)
    assert torch.equal(rec, torch.from_numpy(e.q.values()))
    assert peak < 1.5 * rec.numel() * 4, peak               # a copy of the values made it twice their size


def test_calibration_hands_the_heap_back_before_every_backward_pass(monkeypatch):
    from workbench.core.jobs import run
    from workbench.core.network import encoder

    cfg = encoder.EncoderConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                intermediate_size=64, max_position_embeddings=32)
    sd = encoder.make_test_encoder(cfg)
    task = encoder.EncoderTask(sd, cfg, batch=2, tokens=16, seed=2)
    events = []
    monkeypatch.setattr(sensitivity, "release_memory", lambda: events.append("release"))

    class Recording:
        def probes(self, params, gen, n):
            for value in task.probes(params, gen, n):
                value.register_hook(lambda g: events.append("backward"))
                yield value

    run(sensitivity.sensitivity_job(Recording(), sd, [k for k, v in sd.items() if v.ndim >= 2]))
    assert events.count("backward") == sensitivity.PROBES
    assert all(events[i - 1] == "release" for i, e in enumerate(events) if e == "backward"), events
    assert events[-1] == "release"
