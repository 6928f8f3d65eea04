"""Trellis, CABAC and categorical level coding; every docstring example runs."""

import doctest
import importlib

import numpy as np
import pytest
import torch

from workbench.core import trellis
from workbench.core.network import cabac, catcoder

MODULES = ["cabac", "catcoder", "quantizers", "checkpoint", "compress"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(f"workbench.core.network.{name}")
    result = doctest.testmod(mod)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize("sm", [trellis.TCQ4, trellis.TCQ8])
def test_tcq_levels_lie_on_the_state_quantizer_lattice(sm):
    torch.manual_seed(0)
    u = torch.randn(16, 200, dtype=torch.float64) * 4
    rate = trellis.TableRate.flat()
    lv = trellis.viterbi(u, 0.05, rate, sm).numpy()
    states = trellis.track_states(lv, sm)
    q = np.asarray(sm.quantizer)[states]
    x = trellis.dequantize(lv, np.ones(1, np.float32), sm).astype(np.int64)
    # Q0 reconstructs even multiples, Q1 odd multiples or zero
    assert np.all(x[(q == 0)] % 2 == 0)
    odd_or_zero = (x[q == 1] % 2 == 1) | (x[q == 1] == 0)
    assert np.all(odd_or_zero)
    # the decoder's state walk is the machine's transition table
    for r in range(3):
        s = 0
        for j in range(lv.shape[1]):
            assert states[r, j] == s
            s = sm.next_state[s][lv[r, j] & 1]
    # trellis beats a single 2Δ lattice (MSE 1/3 in Δ² units) clearly
    assert float(np.mean((x - u.numpy()) ** 2)) < 0.3


def _ideal_bits(lv):
    _, c = np.unique(lv, return_counts=True)
    return float(-(c * np.log2(c / c.sum())).sum())


@pytest.mark.parametrize("coder", [cabac, catcoder])
@pytest.mark.parametrize("scale", [0.3, 3.0])
def test_level_coders_round_trip_close_to_ideal(coder, scale):
    rng = np.random.default_rng(1)
    lv = np.round(rng.laplace(0, scale, size=(40, 300))).astype(np.int64)
    for sm in (trellis.UNIFORM, trellis.TCQ8):
        data = coder.encode_levels(lv, sm)
        assert np.array_equal(coder.decode_levels(data, lv.shape, sm), lv)
        assert 8 * len(data) < 1.06 * _ideal_bits(lv) + 600


def test_cabac_codes_huge_levels_and_rejects_damage():
    lv = np.array([[0, 5_000_000, -123456, 1]])
    data = cabac.encode_levels(lv, trellis.UNIFORM)
    assert cabac.decode_levels(data, lv.shape, trellis.UNIFORM).tolist() == lv.tolist()
    from workbench.core.errors import BitstreamError

    with pytest.raises(BitstreamError):
        cabac.decode_levels(data[:3], lv.shape, trellis.UNIFORM)
    big = np.round(np.random.default_rng(0).laplace(0, 3, size=(30, 100))).astype(np.int64)
    d2 = cabac.encode_levels(big, trellis.UNIFORM)
    with pytest.raises(BitstreamError):
        cabac.decode_levels(d2[: len(d2) // 3], big.shape, trellis.UNIFORM)
    with pytest.raises(ValueError):
        catcoder.encode_levels(np.array([[0, 100000]]), trellis.UNIFORM)
