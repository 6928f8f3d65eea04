"""CPU time and page faults of the learned codec with and without keeping freed buffers in the heap.

Each setting runs in its own child process (the allocator setting is per process), the two
alternating, so load from other work falls on both alike. Figures are CPU seconds per image
(encode + decode, after one warm-up image) and minor page faults.

    python benchmarks/learned_page_faults.py IMAGE [IMAGE ...] --rounds 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import workbench.core.allocator as allocator
if sys.argv[1] == "default":
    allocator.keep_freed_buffers = lambda: False      # before the codec imports the name
from workbench.core.codecs.learned import LearnedCodec
from workbench.core.images import load_image
codec = LearnedCodec()
images = [load_image(p).rgb for p in sys.argv[2:]]
codec.decode(codec.encode(images[0], codec.options(quality=4)))
t0, r0 = time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
for rgb in images:
    codec.decode(codec.encode(rgb, codec.options(quality=4)))
t1, r1 = time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
n = len(images)
print(json.dumps({"cpu": (t1 - t0) / n, "user": (r1.ru_utime - r0.ru_utime) / n,
                  "sys": (r1.ru_stime - r0.ru_stime) / n, "minflt": (r1.ru_minflt - r0.ru_minflt) / n}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    rows: dict[str, list[dict]] = {"default": [], "keep": []}
    for _ in range(args.rounds):
        for setting in rows:
            out = subprocess.run([sys.executable, "-c", CHILD, setting, *args.images],
                                 check=True, capture_output=True, text=True).stdout
            rows[setting].append(json.loads(out.splitlines()[-1]))
    print("| heap | CPU s per image | user | sys | minor faults per image |\n|---|---:|---:|---:|---:|")
    for setting, rs in rows.items():
        mean = {k: sum(r[k] for r in rs) / len(rs) for k in rs[0]}
        print(f"| {setting} | {mean['cpu']:.3f} | {mean['user']:.3f} | {mean['sys']:.3f} | {mean['minflt']:.0f} |")
    ratio = (sum(r["cpu"] for r in rows["keep"]) / sum(r["cpu"] for r in rows["default"]))
    print(f"keep / default CPU: {ratio:.3f}")


if __name__ == "__main__":
    main()
