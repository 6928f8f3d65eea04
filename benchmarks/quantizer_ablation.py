"""Noise / STE / SUA, with and without the scale lower bound and zero-center quantization, at equal
training steps on one small DCT mean-scale hyperprior (N=32) and one λ.

    python benchmarks/quantizer_ablation.py --data ../shared/datasets/train --data ../shared/datasets/wikipedia49 --steps 1000 --out work/ablation

Each configuration trains from the same seed and crops; the table reports the held-out validation
(hard rounding, as the coder does): rate, PSNR, R + λ·D, and the train–test mismatch. Runs are
resumable (each keeps its own checkpoint folder).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.core.jobs import run  # noqa: E402
from workbench.core.learned.train import TrainOptions, train_job  # noqa: E402

CONFIGS = {
    "noise": dict(quantizer="noise", zero_center=False, scale_bound=0.01),
    "ste": dict(quantizer="ste", zero_center=False, scale_bound=0.01),
    "sua": dict(quantizer="sua", zero_center=False, scale_bound=0.01),
    "sua + scale bound": dict(quantizer="sua", zero_center=False, scale_bound=0.11),
    "sua + zero-center": dict(quantizer="sua", zero_center=True, scale_bound=0.01),
    "sua + both": dict(quantizer="sua", zero_center=True, scale_bound=0.11),
    "noise + both": dict(quantizer="noise", zero_center=True, scale_bound=0.11),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", action="append", required=True, help="training image folder (repeatable)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lmbda", type=float, default=0.0130)
    ap.add_argument("--out", default="work/ablation")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", help="comma-separated configuration names")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    names = a.only.split(",") if a.only else list(CONFIGS)
    rows = {}
    for name in names:
        opts = TrainOptions(model="dct-hyperprior", channels=32, latent_channels=192, lambdas=str(a.lmbda), steps=a.steps,
                            batch=16, crop=64, crops_per_image=4, lr=4e-4, validate_every=a.steps, checkpoint_every=a.steps, **CONFIGS[name])
        final = {}
        folder = Path(a.out) / name.replace(" ", "_").replace("+", "and")
        folder.mkdir(parents=True, exist_ok=True)
        for cached in Path(a.out).glob("*/crops-*.pt"):          # same crops for every configuration
            if not (folder / cached.name).exists():
                shutil.copy(cached, folder / cached.name)
        run(train_job(opts, [Path(d) for d in a.data], folder,
                      {"tau_steps": a.steps, "tau_start": 0.3} if opts.quantizer == "sua" else None),
            lambda e: final.update(e.metrics) if "val_bpp_hard" in e.metrics else None)
        d = 255.0 ** 2 * 10 ** (-final["val_psnr_hard"] / 10)
        rows[name] = {**final, "rd_loss_hard": final["val_bpp_hard"] + a.lmbda * d}
        print(f"{name:20s} bpp {final['val_bpp_hard']:.4f} PSNR {final['val_psnr_hard']:.3f} "
              f"R+λD {rows[name]['rd_loss_hard']:.4f} mismatch bpp {final['mismatch_bpp']:+.4f} "
              f"psnr {final['mismatch_psnr']:+.3f}", flush=True)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "ablation.json").write_text(json.dumps({"steps": a.steps, "lambda": a.lmbda, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
