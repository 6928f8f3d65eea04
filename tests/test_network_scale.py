"""Networks at transformer scale: the summary table, the coder choice, memory, steps, calibration."""

import torch

from workbench.core.jobs import run
from workbench.core.network.compress import compress_network_job


def test_summary_table_never_cuts_names():
    prefix = "encoder.layer.11.attention.self."
    sd = {prefix + k: torch.randn(4, 4) for k in ("query.weight", "key.weight", "value.weight")}
    lines = run(compress_network_job(sd, "uniform", {"bits": 4})).format_summary().splitlines()
    rows = [ln for ln in lines if ln.startswith(prefix)]
    assert [r.split()[0] for r in rows] == list(sd)
    assert len({len(ln.split(" [")[0]) for ln in rows}) == 1      # the columns still line up
