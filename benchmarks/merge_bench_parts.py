"""One benchmark report from several `workbench bench` runs on disjoint image sets.

A long benchmark (per-image optimization with hundreds of steps) is run as parts, one process per core,
each on its own folder of images; this joins their per-image points into one `BenchResult` and writes
the same report `workbench bench` writes (curves averaged over every image, BD-rate table, plot).

    python benchmarks/merge_bench_parts.py --anchor learned --out docs/benchmarks/optimize_300 \
        docs/benchmarks/optimize_300/kodim01-04 docs/benchmarks/optimize_300/kodim05-08 ...

`--images` keeps only some images' points, e.g. to compare with a run on more images.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workbench.core.bench import BenchResult, RDPoint
from workbench.core.bench_report import format_bd_table, write_report


def merged(parts: list[Path], only: set[str] | None = None) -> BenchResult:
    """The parts' points (only those of the images named in `only`, when given)."""
    result = BenchResult()
    for part in parts:
        data = json.loads((part / "per_image.json").read_text(encoding="utf-8"))
        images = [i for i in data["images"] if only is None or i in only]
        overlap = set(result.images) & set(images)
        if overlap:
            raise SystemExit(f"{part} repeats images of an earlier part: {', '.join(sorted(overlap))}")
        result.images += images
        result.points += [RDPoint(**p) for p in data["points"] if p["image"] in images]
    result.codecs = list(dict.fromkeys(p.codec for p in result.points))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("parts", nargs="+", type=Path, help="output folders of `workbench bench`")
    ap.add_argument("--anchor", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--images", help="comma-separated file names: keep only these images' points")
    args = ap.parse_args()
    result = merged(args.parts, set(args.images.split(",")) if args.images else None)
    write_report(result, args.out, args.anchor)
    print(f"{len(result.images)} images from {len(args.parts)} parts")
    print(format_bd_table(result.bd_table(args.anchor), args.anchor))


if __name__ == "__main__":
    main()
