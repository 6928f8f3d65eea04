"""Networks at transformer scale: the summary table, the coder choice, memory, steps, calibration."""

import numpy as np
import pytest
import torch

from workbench.core import trellis
from workbench.core.jobs import run
from workbench.core.network import bitstream as bs
from workbench.core.network import cabac, catcoder
from workbench.core.network.compress import compress_network_job
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
