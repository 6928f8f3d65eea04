"""Benchmark: how many calibration probes the per-tensor sensitivities need (issue 18, target 1).

    .venv/bin/python benchmarks/calibration_probes.py bench-out/encoder-30m --out bench-out/calibration_probes.json

Each tensor's sensitivity s_t (`workbench.core.network.sensitivity`) is one scalar, the mean of
diag(JᵀJ) over all its weights, estimated from random probes v as the mean of (∂(v·f)/∂w)². This
measures, on a BERT folder's calibration task (random token ids, seed 2), each probe's per-tensor
value separately, for Gaussian and Rademacher (±1) v and for 4 / 2 / 1 sequences of 128 tokens,
and compares estimates from n probes against a reference of 32 independent Gaussian probes on the
calibration task's own 4 sequences: the relative error of s_t (RMS and max over tensors, RMS over
disjoint groups of n probes) and of the step, which scales as s_t^(-1/2) (`step_factors`). CPU
seconds of the forward pass and of each backward pass (process_time: the other jobs on a shared
machine do not count).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from workbench.core.network.checkpoint import load_checkpoint
from workbench.core.network.encoder import CALIBRATION_SEED, forward, task_for_folder


def per_probe(sd, names, task, kind: str, n: int, seed: int) -> tuple[np.ndarray, float, float]:
    """(n probes × tensors) of each probe's mean squared gradient over the rows it reached, the CPU
    seconds of the forward pass and the mean CPU seconds of one backward pass."""
    params = {k: v.detach().float().requires_grad_(k in names) for k, v in sd.items()}
    wanted = [params[k] for k in names]
    gen = torch.Generator().manual_seed(seed)
    t = time.process_time()
    out = forward(params, task.cfg, task.ids)
    fwd = time.process_time() - t
    vals = np.zeros((n, len(names)))
    t = time.process_time()
    for p in range(n):
        v = (torch.randn(out.shape, generator=gen) if kind == "gaussian"
             else torch.randint(2, out.shape, generator=gen).float() * 2 - 1)
        grads = torch.autograd.grad((out * v).sum(), wanted, retain_graph=p + 1 < n, allow_unused=True)
        for j, (k, g) in enumerate(zip(names, grads)):
            rows = g.double().square().reshape(g.shape[0], -1).sum(1)
            touched = rows > 0
            vals[p, j] = float(rows[touched].sum()) / (params[k][0].numel() * max(int(touched.sum()), 1))
        del grads
    return vals, fwd, (time.process_time() - t) / n


def errors(vals: np.ndarray, ref: np.ndarray, n: int) -> dict:
    """Relative errors of the n-probe estimates (every disjoint group of n probes) against `ref`."""
    groups = [vals[i:i + n].mean(0) for i in range(0, len(vals) - n + 1, n)]
    rel = np.stack([g / ref - 1 for g in groups])                    # groups × tensors
    step = np.stack([np.sqrt(ref / g) - 1 for g in groups])
    return {"probes": n, "groups": len(groups),
            "sens_rel_err_rms": float(np.sqrt((rel ** 2).mean())), "sens_rel_err_max": float(np.abs(rel).max()),
            "step_rel_err_rms": float(np.sqrt((step ** 2).mean())), "step_rel_err_max": float(np.abs(step).max())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--probes", type=int, default=32)
    ap.add_argument("--out", type=Path, default=Path("bench-out/calibration_probes.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    sd = load_checkpoint(args.folder)
    names = [k for k, v in sd.items() if v.ndim >= 2]
    task = task_for_folder(args.folder, sd, seed=CALIBRATION_SEED)
    ref, fwd, bwd = per_probe(sd, names, task, "gaussian", args.probes, seed=777)
    ref = ref.mean(0)
    print(f"reference: {args.probes} Gaussian probes; forward {fwd:.2f} CPU s, backward {bwd:.2f} CPU s each", flush=True)
    result = {"tensors": len(names), "reference_probes": args.probes, "runs": []}
    for batch in (4, 2, 1):
        t = task if batch == 4 else task_for_folder(args.folder, sd, seed=CALIBRATION_SEED, batch=batch)
        for kind in ("gaussian", "rademacher") if batch == 4 else ("rademacher",):
            vals, fwd, bwd = per_probe(sd, names, t, kind, args.probes, seed=12345)
            for n in (1, 2, 4, 8, 16):
                e = {"batch": batch, "kind": kind, "forward_cpu_s": fwd, "backward_cpu_s": bwd,
                     "calibration_cpu_s": fwd + n * bwd, **errors(vals, ref, n)}
                result["runs"].append(e)
                print(json.dumps(e), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"log-spread of the reference sensitivities over tensors: "
          f"{float(np.std(np.log(ref))):.2f} (steps span {math.exp(0.5 * float(np.ptp(np.log(ref)))):.0f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
