"""Benchmark: `--coder auto`'s CABAC margin (`bitstream.AUTO_MARGIN`) against file size and decode CPU time.

    .venv/bin/python benchmarks/network_auto_margin.py [--folder bench-out/encoder-30m] [--margins 0.01,0]

For each setting and margin, one process: `compress_network_job` (what `workbench compress-net` runs)
and `decompress_network`, CPU seconds (`time.process_time`, so other load on the machine does not count).
A few tensors are coded first so numba's compiled code is loaded before any timing.
"""

from __future__ import annotations

import argparse
import json
import time

SETTINGS = (("uniform", {"qp": -36}), ("uniform", {}), ("tcq", {"qp": -28, "lam": 0.1, "states": 8}))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", default="bench-out/encoder-30m")
    ap.add_argument("--margins", default="0.01,0")
    args = ap.parse_args(argv)
    import torch

    from workbench.core.jobs import run
    from workbench.core.network import bitstream as bs
    from workbench.core.network.checkpoint import load_checkpoint
    from workbench.core.network.compress import compress_network_job, decompress_network

    torch.set_num_threads(1)
    sd = load_checkpoint(args.folder)
    decompress_network(run(compress_network_job(dict(list(sd.items())[:3]), "uniform", {}, keep_state=False)).data)
    for q, o in SETTINGS:
        for m in (float(x) for x in args.margins.split(",")):
            bs.AUTO_MARGIN = m
            t = time.process_time()
            r = run(compress_network_job(sd, q, o, keep_state=False))
            job = time.process_time() - t
            t = time.process_time()
            decompress_network(r.data)
            dec = time.process_time() - t
            print(json.dumps({"quantizer": q, "options": o, "margin": m, "bytes": len(r.data), "job_cpu_s": job,
                              "decode_cpu_s": dec, "cabac_tensors": sum(row.coder == "cabac" for row in r.rows),
                              "cabac_weights": sum(row.parameters for row in r.rows if row.coder == "cabac")}),
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
