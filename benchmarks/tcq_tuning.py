"""How the trellis step factor and the distortion weight were chosen: BD-rate (PSNR, or MS-SSIM dB) of a
latent quantizer against rounding with the same model, on a few TRAINING images (never Kodak, which is the
evaluation set).

    python benchmarks/tcq_tuning.py ../shared/datasets/train --images 5,50,120 tcq8:0.75:2 rdoq:1:4
    python benchmarks/tcq_tuning.py ../shared/datasets/train --model dct-checkerboard-msssim --metric ms-ssim \
        tcq8:0.75:1 tcq8:0.75:2 tcq8:0.75:4

Each setting is QUANTIZER:STEP_FACTOR:WEIGHT (the factor multiplies --step for trellis quantizers; the
weight multiplies the search's distortion weight). Qualities 1, 3, 5, 7; sizes from the real files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from workbench.core import bdrate
from workbench.core.compress import compress_image
from workbench.core.images import list_images, load_image
from workbench.core.learned.catalog import DEFAULT_MODEL
from workbench.core.learned.kinds import hyperprior as coding

QUALITIES = (1, 3, 5, 7)


def curve(images, model: str, metric: str, quantizer: str, factor: float, weight: float
          ) -> tuple[list[float], list[float], float]:
    coding.TRELLIS_STEP_SCALE, coding.RDO_WEIGHT = factor, weight
    bpp, quality, seconds = [], [], 0.0
    for q in QUALITIES:
        results = [compress_image(rgb, "learned", model=model, quality=q, quantizer=quantizer) for rgb in images]
        bpp.append(float(np.mean([r.bpp for r in results])))
        quality.append(float(np.mean([r.quality.psnr if metric == "psnr" else r.quality.ms_ssim_db
                                      for r in results])))
        seconds += sum(r.encode_s for r in results)
    return bpp, quality, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--images", default="5,50,120", help="1-based positions in the sorted folder")
    ap.add_argument("--model", default=DEFAULT_MODEL, help="the learned model (a shipped name or file)")
    ap.add_argument("--metric", default="psnr", choices=("psnr", "ms-ssim"), help="the BD-rate's quality axis")
    ap.add_argument("settings", nargs="+")
    args = ap.parse_args()
    if "kodak" in args.folder.resolve().as_posix().lower():
        raise SystemExit("tune on training images, never on Kodak")
    files = list_images(args.folder)
    images = [load_image(files[int(i) - 1]).rgb for i in args.images.split(",")]
    defaults = coding.TRELLIS_STEP_SCALE, coding.RDO_WEIGHT
    axis = "PSNR" if args.metric == "psnr" else "MS-SSIM dB"
    base = curve(images, args.model, args.metric, "round", *defaults)
    print(f"{args.model}, round: bpp {np.round(base[0], 3)}, {axis} {np.round(base[1], 2)}, encode {base[2]:.1f} s")
    for setting in args.settings:
        name, factor, weight = setting.split(":")
        c = curve(images, args.model, args.metric, name, float(factor), float(weight))
        print(f"{setting}: bpp {np.round(c[0], 3)}, {axis} {np.round(c[1], 2)}, encode {c[2]:.1f} s, "
              f"BD-rate vs round {bdrate.bd_rate(base[0], base[1], c[0], c[1]):+.2f} %")


if __name__ == "__main__":
    main()
