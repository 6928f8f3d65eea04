"""Benchmark: peak memory and CPU time of the calibration alone (`sensitivity_job` with the token
task of a BERT folder), in this process, and whether its sensitivities equal a saved run's.

    .venv/bin/python benchmarks/calibration_memory.py [--folder bench-out/encoder-30m] [--save F] [--compare F]

Run it in a fresh process (it reads this process's peak resident set): the baseline is the resident
set after the imports, as in `network_memory.py`; the figure is the peak minus that baseline (the
loaded model, the calibration task and the calibration) over the model's float32 size.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", default="bench-out/encoder-30m")
    ap.add_argument("--save", help="write the sensitivities here (JSON)")
    ap.add_argument("--compare", help="a file --save wrote: report the largest relative difference")
    args = ap.parse_args(argv)

    import torch

    from workbench.core.jobs import run
    from workbench.core.network.checkpoint import load_checkpoint
    from workbench.core.network.compress import compress_network_job  # noqa: F401  (the job's imports)
    from workbench.core.network.encoder import CALIBRATION_SEED, task_for_folder
    from workbench.core.network.sensitivity import sensitivity_job

    torch.set_num_threads(1)
    base_kb = _rss_kb()
    state = load_checkpoint(args.folder)
    size = sum(t.numel() * 4 for t in state.values())
    task = task_for_folder(args.folder, state, seed=CALIBRATION_SEED)
    if task is None:
        raise SystemExit(f"{args.folder}: not a BERT folder")
    names = [k for k, v in state.items() if v.ndim >= 2]          # what compress_network_job calibrates
    cpu0 = time.process_time()
    sens = run(sensitivity_job(task, state, names))
    cpu = time.process_time() - cpu0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_kb
    row = {"peak_over_baseline_mb": peak_kb / 1024, "ratio_to_float32": peak_kb * 1024 / size,
           "calibration_cpu_s": cpu}
    if args.save:
        Path(args.save).write_text(json.dumps(sens))
    if args.compare:
        ref = json.loads(Path(args.compare).read_text())
        row["max_relative_difference"] = max(abs(sens[k] / ref[k] - 1) if ref[k] else abs(sens[k]) for k in ref)
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
