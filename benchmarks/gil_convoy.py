"""How long the GUI thread waits for the interpreter lock while a job's thread runs Python, per switch interval.

Qt calls back into Python for every pyqtgraph item it paints, and each call needs the interpreter lock. While
another thread runs Python (an RD sweep's thread drawing its report with matplotlib), each of those calls
waits up to the switch interval (`sys.setswitchinterval`) for it. This paints four small plots, one pass
after another, beside a thread that draws the RD report's plot (`bench_report.rd_plot_png`) over and over,
and prints per switch interval the GUI thread's CPU per pass and its wait for the lock: the wall time of
the pass less its CPU and less its waits for a core (Linux schedstat), so other processes on the machine
hardly change it. It also prints what the drawing thread got done: its CPU time for six plots.

Usage: QT_QPA_PLATFORM=offscreen python benchmarks/gil_convoy.py [--intervals-ms 1,0.5,0.2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from workbench.core.bench import BenchResult, RDPoint  # noqa: E402
from workbench.core.bench_report import rd_plot_png  # noqa: E402


def sched() -> tuple[float, float, float]:
    """Wall clock, this thread's CPU time and its waits for a core (Linux schedstat, exact once the thread
    runs again; its CPU figure lags by up to a scheduler tick, so CPU is the thread clock's), in seconds."""
    with open("/proc/thread-self/schedstat") as f:
        _, waited, _ = f.read().split()
    return time.perf_counter(), time.thread_time(), int(waited) / 1e9


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--intervals-ms", default="1,0.5,0.2")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    app = QApplication.instance() or QApplication([])
    plots = [pg.PlotWidget() for _ in range(4)]
    for w in plots:
        w.resize(500, 350)
        w.show()
    rng = np.random.default_rng(0)
    items = [w.plot(np.arange(8.0), rng.random(8), symbol="o") for w in plots for _ in range(2)]
    app.processEvents()
    result = BenchResult(images=["a"], codecs=["jpeg", "webp"],
                         points=[RDPoint(c, q, "a", (q + 1) / 10, 30.0 + q, 0.9, 10.0 + q, 0.01, 0.01)
                                 for c in ("jpeg", "webp") for q in range(8)])
    rd_plot_png(result)                    # matplotlib's first-use work, as the app's preload does
    gc.freeze()                            # as main_window.preload: no full collection in the middle
    drawn: dict[str, float] = {}

    def draw(n: int) -> None:
        cpu = time.thread_time()
        for _ in range(n):
            rd_plot_png(result)
        drawn["cpu"] = time.thread_time() - cpu

    for round_ in range(args.rounds):
        for ms in (float(v) for v in args.intervals_ms.split(",")):
            sys.setswitchinterval(ms / 1000.0)
            thread = threading.Thread(target=draw, args=(6,))
            thread.start()
            cpu, lock = [], []
            while thread.is_alive():
                for item in items:
                    item.setData(np.arange(8.0), rng.random(8))
                a = sched()
                app.processEvents()
                app.processEvents()
                b = sched()
                cpu.append(b[1] - a[1])
                lock.append(max(0.0, (b[0] - a[0]) - (b[1] - a[1]) - (b[2] - a[2])))
            thread.join()
            lock_ms = np.asarray(lock) * 1000.0
            print(f"round {round_ + 1}, switch interval {ms:g} ms: {len(lock)} passes of 4 plots, GUI CPU median "
                  f"{np.median(cpu) * 1000:.1f} ms, lock wait median {np.median(lock_ms):.1f} ms, p90 "
                  f"{np.percentile(lock_ms, 90):.1f} ms, max {lock_ms.max():.1f} ms; the drawing thread: "
                  f"{drawn['cpu']:.2f} s of CPU for 6 plots", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
