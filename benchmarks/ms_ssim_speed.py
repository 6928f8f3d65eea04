"""MS-SSIM cost per point: `python benchmarks/ms_ssim_speed.py IMAGE [--runs 5]`.

Times the numpy MS-SSIM that measuring uses against the torch one (float64, as measuring used it
before) on IMAGE and its JPEG at quality 50, in one process, and prints both values and their
difference. torch's import is timed separately: it was paid by every command that measured.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time

import numpy as np
from PIL import Image

from workbench.core import metrics


def timed(fn, runs):
    wall, cpu = [], []
    for _ in range(runs):
        w0, c0 = time.perf_counter(), time.process_time()
        value = fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return value, statistics.median(wall), statistics.median(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    a = np.asarray(Image.open(args.image).convert("RGB"))
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=50)
    b = np.asarray(Image.open(buf).convert("RGB"))

    value, wall, cpu = timed(lambda: metrics.ms_ssim(a, b), args.runs)
    t0 = time.perf_counter()
    import torch

    from workbench.core.metrics_torch import as_batch
    import_s = time.perf_counter() - t0
    x, y = as_batch(a), as_batch(b)
    with torch.no_grad():
        ref, twall, tcpu = timed(lambda: float(metrics.ms_ssim_torch(x, y)[0]), args.runs)
    print(f"`python benchmarks/ms_ssim_speed.py {' '.join(sys.argv[1:])}`: {a.shape[1]}x{a.shape[0]} px, "
          f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}\n")
    print("| MS-SSIM | value | wall (s) | CPU (s) |\n|---|---|---|---|")
    print(f"| numpy (measuring) | {value:.12f} | {wall:.3f} | {cpu:.3f} |")
    print(f"| torch float64 (before) | {ref:.12f} | {twall:.3f} | {tcpu:.3f} |")
    print(f"\n|difference| {abs(value - ref):.1e}; importing torch took {import_s:.2f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
