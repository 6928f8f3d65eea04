"""What our encoder tools save on a trained CompressAI checkpoint (issue 14): rdoq, tcq8 and per-image
optimization against plain rounding, at equal PSNR, through the same bench the CLI runs.

A checkpoint is one rate point, so each tool's curve is swept with the quantization step Δ (1 and
above lowers the rate of a hyperprior model); the curves are the means over the images at each Δ, and
each tool's saving is its BD-rate (PSNR) against rounding over the PSNR interval both reach. Per-image
optimization is slow on the CPU, so it can run at fewer Δ and on the first `--optimize-images` images;
its rows are then compared with rounding on those same images only. Points are stored in `--out`
(`points.jsonl`), so an interrupted study resumes where it stopped.

    .venv/bin/python benchmarks/compressai_tools_study.py ~/runs/mbt/mbt2018-mean-3-xxxxxxxx.pth.tar \
        --images ../shared/datasets/kodak --out bench-out/mbt-tools --jobs 2
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.core.bdrate import bd_rate, overlap, quality_range  # noqa: E402
from workbench.core.bench import bench_job  # noqa: E402
from workbench.core.jobs import run  # noqa: E402

TOOLS = {"round": "quantizer=round", "rdoq": "quantizer=rdoq", "tcq8": "quantizer=tcq8"}


def spec(model: str, step: float, tool: str) -> str:
    return f"learned:model={model}:step={step:g}:{tool}"


def curve(points, model: str, tool: str, steps, images) -> tuple[np.ndarray, np.ndarray]:
    """Mean bpp and PSNR over `images` at each Δ of `steps` (Δ rising: rate falling)."""
    by = defaultdict(dict)
    for p in points:
        by[p.codec][p.image] = p
    bpp, psnr = [], []
    for s in steps:
        row = by[spec(model, s, tool)]
        bpp.append(np.mean([row[i].bpp for i in images]))
        psnr.append(np.mean([row[i].psnr for i in images]))
    return np.array(bpp), np.array(psnr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="CompressAI checkpoint (named like the zoo's files, so its λ is known)")
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", default="1,1.25,1.6,2", help="Δ values of the rounding, rdoq and tcq8 curves")
    ap.add_argument("--optimize", type=int, default=60, help="per-image optimization steps")
    ap.add_argument("--optimize-steps", default="1,1.6", help="Δ values of the optimized curve")
    ap.add_argument("--optimize-images", type=int, default=0, help="optimize only the first N images (0: all)")
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()

    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    steps = [float(s) for s in args.steps.split(",")]
    opt_steps = [float(s) for s in args.optimize_steps.split(",")]
    opt_images = images[:args.optimize_images] if args.optimize_images else images
    cheap = [spec(args.model, s, t) for t in TOOLS.values() for s in steps]
    optimized_tool = f"optimize={args.optimize}"
    slow = [spec(args.model, s, optimized_tool) for s in opt_steps]

    def report(event) -> None:
        print(f"[{event.step}/{event.total}] {event.message}", flush=True)

    points = run(bench_job(images, cheap, jobs=args.jobs, out_dir=args.out), report).points
    points += run(bench_job(opt_images, slow, jobs=args.jobs, out_dir=args.out), report).points

    names = [p.name for p in images]
    opt_names = [p.name for p in opt_images]
    print(f"\nModel: {args.model}\nImages: {args.images} ({len(names)}; optimization on {len(opt_names)})\n")
    print("| tool | images | Δ | mean bpp | mean PSNR (dB) |\n|---|---|---|---|---|")
    rows = [(t, TOOLS[t], steps, names) for t in TOOLS] + [(optimized_tool, optimized_tool, opt_steps, opt_names)]
    for label, tool, ss, ims in rows:
        bpp, psnr = curve(points, args.model, tool, ss, ims)
        for s, b, q in zip(ss, bpp, psnr):
            print(f"| {label} | {len(ims)} | {s:g} | {b:.4f} | {q:.3f} |")
    print("\n| tool | images | BD-rate vs rounding (PSNR) | PSNR interval (dB) |\n|---|---|---|---|")
    for label, tool, ss, ims in rows[1:]:
        rb, rq = curve(points, args.model, TOOLS["round"], steps, ims)
        tb, tq = curve(points, args.model, tool, ss, ims)
        interval = overlap(quality_range(rb, rq), quality_range(tb, tq))
        span = f"{interval[0]:.2f}–{interval[1]:.2f}" if interval else "none"
        print(f"| {label} | {len(ims)} | {bd_rate(rb, rq, tb, tq):+.2f} % | {span} |")


if __name__ == "__main__":
    main()
