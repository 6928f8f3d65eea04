"""One benchmark report from several `workbench bench` runs on disjoint image sets.

A long benchmark (per-image optimization with hundreds of steps) is run as parts, one process per core,
each on its own folder of images; this joins their per-image points and writes the same report
`workbench bench` writes (curves averaged over every image, BD-rate table, plot).

    python benchmarks/merge_bench_parts.py --anchor learned --out docs/benchmarks/optimize_300 \
        docs/benchmarks/optimize_300/kodim01-04 docs/benchmarks/optimize_300/kodim05-08 ...

`--images` keeps only some images' points, e.g. to compare with a run on more images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.core.bench_report import format_bd_table, join_results, load_points, write_report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("parts", nargs="+", type=Path, help="output folders of `workbench bench`")
    ap.add_argument("--anchor", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--images", help="comma-separated file names: keep only these images' points")
    args = ap.parse_args()
    only = set(args.images.split(",")) if args.images else None
    result = join_results([load_points(part, only) for part in args.parts])
    write_report(result, args.out, args.anchor)
    print(f"{len(result.images)} images from {len(args.parts)} parts")
    print(format_bd_table(result.bd_table(args.anchor), args.anchor))


if __name__ == "__main__":
    main()
