"""Where along its curve a codec gains or loses against an anchor: for each point of each results file,
its rate over the anchor's at the same quality (PSNR and MS-SSIM dB). A BD-rate is one mean over a range;
this is what shows, e.g., that a learned model loses to BPG at low rates and wins at high ones.

    python benchmarks/rate_ratios.py ../shared/reference/compressai-kodak/bpg_444_x265_ycbcr.json \\
        docs/benchmarks/kodak_checkerboard_tcq8/learned_model-dct-checkerboard-mse.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.core.bdrate import rate_ratios  # noqa: E402
from workbench.core.bdtable import METRICS, load_results_json  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("anchor", type=Path)
    ap.add_argument("tests", type=Path, nargs="+")
    a = ap.parse_args()
    anchor = load_results_json(a.anchor)
    for path in a.tests:
        test = load_results_json(path)
        print(f"\n{test.name} against {anchor.name}: rate ratio at equal quality, per point\n")
        print("| bpp | " + " | ".join(f"{name} ({unit}) | ratio" for _, name, unit in METRICS) + " |")
        print("|---" * (1 + 2 * len(METRICS)) + "|")
        columns = []
        for key, _, _ in METRICS:
            a_q, t_q = getattr(anchor, key), getattr(test, key)
            ratios = rate_ratios(anchor.bpp, a_q, test.bpp, t_q) if a_q and t_q else [float("nan")] * len(test.bpp)
            columns.append((t_q or [float("nan")] * len(test.bpp), ratios))
        for i, bpp in enumerate(test.bpp):
            cells = [f"{q[i]:.2f} | {r[i]:.3f}" for q, r in columns]
            print(f"| {bpp:.3f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
