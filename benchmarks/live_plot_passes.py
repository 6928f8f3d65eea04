"""GUI work of the Live tab while a per-image optimization's metrics arrive: the GUI thread's CPU time per
event-loop pass.

An optimization reports four metrics from its first step and five more at its last (the probe of the
hard-quantized latents); each new metric gets a plot. A pass that does 30-40 ms of work leaves no room
under the 50 ms event-loop target on a busy machine. This feeds `LiveCurves` (1280x500, offscreen) the
same events without running the job and prints, per phase, the passes that took more than 5 ms of the
GUI thread's CPU (`time.thread_time`, so other processes do not inflate it) and the worst pass overall.

Usage: QT_QPA_PLATFORM=offscreen python benchmarks/live_plot_passes.py [--runs 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from workbench.core.jobs import Progress  # noqa: E402
from workbench.ui.live_curves import LiveCurves  # noqa: E402

FIRST = ["rate_bpp", "entropy", "loss", "temperature"]
LAST = FIRST + ["hard_loss", "hard_bpp", "psnr", "ms_ssim", "gap"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args(argv)
    app = QApplication.instance() or QApplication([])
    curves = LiveCurves()
    curves.resize(1280, 500)
    curves.show()

    def passes(seconds: float) -> list[float]:
        """The GUI thread's CPU milliseconds of each event-loop pass during `seconds`."""
        out, end = [], time.perf_counter() + seconds
        while time.perf_counter() < end:
            cpu = time.thread_time()
            app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents, 20)
            out.append((time.thread_time() - cpu) * 1000.0)
        return out

    worst = 0.0
    for run in range(args.runs):
        curves.reset()
        passes(1.5)                                       # spare plots are built while nothing runs
        phases = [("first step, 4 metrics", [Progress(1, 10, "", {k: 1.0 for k in FIRST})]),
                  ("steps 2-9", [Progress(s, 10, "", {k: float(s) for k in FIRST}) for s in range(2, 10)]),
                  ("last step, 5 more metrics", [Progress(10, 10, "", {k: 2.0 for k in LAST})])]
        for name, events in phases:
            curves.add_events(events)
            ms = passes(1.0)
            worst = max(worst, max(ms))
            print(f"run {run + 1}, {name}: passes over 5 ms of GUI CPU: "
                  + ", ".join(f"{m:.0f}" for m in ms if m > 5) + " ms")
    print(f"worst pass: {worst:.1f} ms of GUI CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
