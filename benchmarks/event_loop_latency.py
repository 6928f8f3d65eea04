"""How responsive the GUI stays while a job runs: the worst gap between ticks of a 10 ms timer.

A frozen window is the failure users notice first. A 10 ms QTimer in the GUI thread should fire every
10 ms; any longer gap means the event loop was blocked (by plotting, by signal floods, or by a worker
thread holding the interpreter lock). Real workloads, each through the widgets that show it in the app:

* ``rd``: an RD sweep (JPEG + WebP at their default settings) on a photo, driving `RDView` and
  `LiveCurves` exactly as in the app;
* ``optimize``: per-image latent optimization of the learned codec on a Compare side (`CompareView`,
  the side's runner followed by `LiveCurves`; the side runs it in a child process), ending with the
  decoded picture shown;
* ``network``: the Network tab's demo (`NetworkView.run_demo`): open the digits CNN, compress it with
  trellis-coded quantization, measure its accuracy, fill the table and the sentence;
* ``anneal``: a soft-to-hard vector quantizer annealed in numpy on synthetic 2-D data (soft
  assignment softmax(-sigma·d²), codebook update, sigma raised every step), driving `LiveCurves`
  with the metrics a training run reports: entropy, sigma, soft-hard gap, distortion, loss;
* ``train``: the Train tab's "Watch a codec learn" in the main window: `workbench train` in a child
  process on two threads, the tab reading its progress file and previews into twelve live plots and
  the preview pictures (`--train-steps` shortens it).

Usage:
    python benchmarks/event_loop_latency.py [--job rd,optimize,network,anneal,train] [--image PATH]
                                            [--repeat 2] [--max-gap-ms 50] [--stalls] [--screenshots DIR]
Exits with status 1 when the worst gap exceeds --max-gap-ms. `--stalls` samples the GUI thread's Python
stack whenever a tick is late and prints where the late ticks were spent.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QSplitter, QTabWidget, QWidget  # noqa: E402

from workbench.core.jobs import Job, Progress  # noqa: E402
from workbench.ui.app import GIL_SWITCH_S  # noqa: E402
from workbench.ui.job_runner import JobRunner  # noqa: E402
from workbench.ui.live_curves import LiveCurves  # noqa: E402
from workbench.ui.main_window import PRELOAD, preload  # noqa: E402
from workbench.ui.rd_view import RDView  # noqa: E402

TICK_MS = 10
JOBS = ("rd", "optimize", "network", "anneal", "train")
#: Where the GUI thread is when a tick is this late: past half the target, a stall in the making.
LATE_MS = 25.0


def anneal_job(steps: int = 300, vectors: int = 20_000, centers: int = 16, lam: float = 0.05,
               seed: int = 0) -> Job[np.ndarray]:
    """Soft-to-hard VQ (Agustsson et al. 2017) of a 2-D Gaussian mixture; returns the codebook."""
    rng = np.random.default_rng(seed)
    modes = rng.normal(scale=2.0, size=(5, 2))
    z = modes[rng.integers(0, len(modes), vectors)] + rng.normal(scale=0.4, size=(vectors, 2))
    c = z[rng.choice(vectors, centers, replace=False)].copy()
    sigma = 0.3
    for step in range(1, steps + 1):
        d2 = ((z[:, None, :] - c[None]) ** 2).sum(-1)
        logits = -sigma * d2
        logits -= logits.max(axis=1, keepdims=True)
        phi = np.exp(logits)
        phi /= phi.sum(axis=1, keepdims=True)
        hard = d2.argmin(axis=1)
        q_soft, q_hard = phi @ c, c[hard]
        p_hard = np.bincount(hard, minlength=centers) / vectors
        q_hist = phi.mean(axis=0)
        entropy = float(-(p_hard[p_hard > 0] * np.log2(p_hard[p_hard > 0])).sum())
        cross = float(-(q_hist * np.log2(np.maximum(p_hard, 1e-9))).sum())
        mse = float(((z - q_hard) ** 2).sum(axis=1).mean())
        gap = float(np.sqrt(((q_soft - q_hard) ** 2).sum(axis=1)).mean())
        c = (phi.T @ z) / np.maximum(phi.sum(axis=0), 1e-12)[:, None]
        sigma *= 1.02
        yield Progress(step, steps, f"annealing: sigma {sigma:.2f}, {entropy:.3f} bits per vector",
                       metrics={"loss": mse + lam * cross, "entropy": entropy, "mse": mse,
                                "sigma": sigma, "soft_hard_gap": gap})
    return c


class GapMeter:
    """Records the time between consecutive ticks of a precise 10 ms timer in the GUI thread."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self.cpu: list[float] = []          # the GUI thread's own CPU time within each gap
        self.at: list[float] = []           # when each gap ended, in seconds from start()
        self._last = self._last_cpu = self._t0 = 0.0

    def start(self) -> None:
        self.gaps.clear()
        self.cpu.clear()
        self.at.clear()
        self._last, self._last_cpu = time.perf_counter(), time.thread_time()
        self._t0 = self._last
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def resume(self) -> None:
        """Continue after a pause that must not count (taking a screenshot is not part of the job)."""
        self._last, self._last_cpu = time.perf_counter(), time.thread_time()
        self.timer.start()

    def _tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        self.gaps.append((now - self._last) * 1000.0)
        self.cpu.append((cpu - self._last_cpu) * 1000.0)
        self.at.append(now - self._t0)
        self._last, self._last_cpu = now, cpu

    def late_ms(self) -> float:
        return (time.perf_counter() - self._last) * 1000.0 if self.timer.isActive() else 0.0


class StallSampler:
    """Samples the Python stacks every 2 ms while a GUI tick is late, to find what blocks the event loop.

    Each sample is the GUI thread's innermost frames and those of the other threads (the jobs). A sample
    needs the interpreter lock, so one that lands while a job holds it is taken when the lock is free: a
    job's stack seen often is what it was running when the GUI thread was late, e.g. an import.
    """

    def __init__(self, meter: GapMeter) -> None:
        self.meter = meter
        self.counts: collections.Counter[str] = collections.Counter()
        self._gui = threading.get_ident()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(0.002):
            if self.meter.late_ms() < LATE_MS:
                continue
            for ident, frame in sys._current_frames().items():
                if ident != me:
                    who = "GUI" if ident == self._gui else "job"
                    stack = traceback.extract_stack(frame)[-3:]
                    self.counts[who + "  " + " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}"
                                                         for f in reversed(stack))] += 1

    def report(self, most: int = 10) -> None:
        print(f"  where the threads were while a tick was over {LATE_MS:.0f} ms late (2 ms samples):")
        for stack, n in self.counts.most_common(most):
            print(f"  {n:5d}  {stack}")
        self.counts.clear()

    def close(self) -> None:
        self._stop.set()


def run_until(start, done, meter: GapMeter, timeout_s: float = 600.0) -> float:
    """Call `start()` and spin the event loop until `done()` (checked every tick) is true."""
    app = QApplication.instance()
    meter.start()
    t0 = time.perf_counter()
    start()
    while not done():
        if time.perf_counter() - t0 > timeout_s:
            raise SystemExit(f"the job did not end within {timeout_s:.0f} s")
        app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)
    elapsed = time.perf_counter() - t0
    meter.stop()
    return elapsed


def run_job(runner: JobRunner, start, meter: GapMeter, on_progress=None) -> tuple[str, float]:
    """Call `start()` (which starts `runner`) and spin the event loop until the job ends."""
    loop = QEventLoop()
    outcome = ["finished"]

    def failed(message: str) -> None:
        outcome[0] = f"failed ({message})"
        loop.quit()

    def cancelled() -> None:
        outcome[0] = "cancelled"
        loop.quit()

    connections = [(runner.finished, loop.quit), (runner.failed, failed), (runner.cancelled, cancelled)]
    if on_progress is not None:
        connections.append((runner.progress, on_progress))
    for signal, slot in connections:
        signal.connect(slot)
    meter.start()
    t0 = time.perf_counter()
    start()
    if not runner.is_running():
        meter.stop()
        return "not started (no image or no available codec selected)", 0.0
    loop.exec()
    elapsed = time.perf_counter() - t0
    meter.stop()
    for signal, slot in connections:
        signal.disconnect(slot)
    return outcome[0], elapsed


def report(name: str, kind: str, elapsed: float, meter: GapMeter, steps: str) -> float:
    """One line per job; the GUI thread's CPU time within the worst gaps tells its own work (CPU close to the
    gap) from waiting for the interpreter lock or for a core (CPU far below it)."""
    g, cpu, at = np.asarray(meter.gaps), np.asarray(meter.cpu), np.asarray(meter.at)
    worst = np.argsort(g)[::-1][:3]
    print(f"{name}: {kind} in {elapsed:.1f} s ({steps}); {len(g)} ticks of {TICK_MS} ms: "
          f"worst gap {g.max():.1f} ms, mean {g.mean():.1f} ms, p99 {np.percentile(g, 99):.1f} ms; "
          f"GUI thread CPU in the 3 worst gaps: " + ", ".join(f"{cpu[i]:.0f} of {g[i]:.0f} ms (at {at[i]:.2f} s)"
                                                               for i in worst))
    return float(g.max())


def workers_start_as_in_the_app() -> None:
    """Worker processes (the RD sweep's) start with 'spawn', which runs the main script again in each of them
    before its first task: this script's imports (Qt, pyqtgraph, the window's modules) cost each worker 1.4 s
    of CPU, beside the window, where the app's entry script costs 0.03 s. Named after the app's entry module,
    the workers import that instead, as in the app."""
    import importlib.util

    import __main__
    __main__.__spec__ = importlib.util.find_spec("workbench.ui.app")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--job", default=",".join(j for j in JOBS if j != "train"),
                    help=f"comma-separated, of {', '.join(JOBS)} (default: all but train, which takes minutes)")
    ap.add_argument("--image", default=str(ROOT / "resources" / "samples" / "endeavour.png"))
    ap.add_argument("--codecs", default="jpeg,webp")
    ap.add_argument("--optimize-steps", type=int, default=10, help="latent optimization steps of the optimize job")
    ap.add_argument("--train-steps", type=int, help="steps of the train job (default: the demo's)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of the optimize and network jobs (the first one "
                    "imports what only it needs)")
    ap.add_argument("--max-gap-ms", type=float, default=50.0)
    ap.add_argument("--stalls", action="store_true", help="print where the GUI thread was during late ticks")
    ap.add_argument("--screenshots", type=Path, help="also save live-curves.png (mid-job) and rd-view.png here")
    args = ap.parse_args(argv)
    workers_start_as_in_the_app()
    jobs = [j.strip() for j in args.job.split(",") if j.strip()]
    if not jobs or any(j not in JOBS for j in jobs):
        ap.error(f"--job takes a comma-separated list of {', '.join(JOBS)}")

    load_before = os.getloadavg()[0]          # other processes competing for the CPU inflate every gap
    sys.setswitchinterval(GIL_SWITCH_S)       # as the app sets it (workbench/ui/app.py)
    app = QApplication.instance() or QApplication([])
    tabs = QTabWidget()
    curves = LiveCurves()
    results = tempfile.TemporaryDirectory(prefix="workbench-rd-")   # fresh: every point measured, none reused
    rd = RDView(results=results.name)
    tabs.addTab(pair(rd, curves, (820, 480)), "rd")
    if "optimize" in jobs:                   # every tab is built before any job starts, as in the app
        from workbench.core.codecs import codec_class
        from workbench.ui.compare_view import CompareView
        from workbench.ui.encode_worker import Worker

        if not codec_class("learned").is_available():
            raise SystemExit("the optimize job needs the learned codec's model weights")
        compare, opt_curves = CompareView(Worker()), LiveCurves()
        opt_curves.follow(compare.right.runner)
        opt_page = pair(compare, opt_curves, (800, 500))
        tabs.addTab(opt_page, "optimize")
    if "network" in jobs:
        from workbench.ui.network_view import NetworkView

        net = NetworkView()
        tabs.addTab(net, "network")
    tabs.resize(1280, 1300)
    tabs.show()
    app.processEvents()
    # What the app imports in the background before its RD, Live and Network tabs appear (main_window.PRELOAD);
    # what only a learned encode, an optimization or the network demo needs is imported by the first such job.
    preload(PRELOAD)
    settle = time.perf_counter() + 2.0               # the plots' spare widgets are built while nothing runs
    while time.perf_counter() < settle:
        app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents, 50)
    meter = GapMeter()
    sampler = StallSampler(meter) if args.stalls else None
    worst = 0.0

    def measured(name: str, kind: str, elapsed: float, steps: str) -> None:
        nonlocal worst
        worst = max(worst, report(name, kind, elapsed, meter, steps))
        if sampler is not None:
            sampler.report()

    if "rd" in jobs:
        rd.set_current(args.image)
        codecs = args.codecs.split(",")
        rd.set_selected_codecs(codecs)
        curves.attach(rd.runner)
        kind, elapsed = run_job(rd.runner, rd.run, meter)
        points = len(rd.result().points) if rd.result() else 0
        measured(f"rd sweep ({', '.join(codecs)} on {Path(args.image).name})", kind, elapsed, f"{points} points")
        if args.screenshots:
            args.screenshots.mkdir(parents=True, exist_ok=True)
            while not (rd.is_drawn() and curves.is_drawn()):   # the plots take turns; let them finish
                app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)
            rd.grab().save(str(args.screenshots / "rd-view.png"))

    if "optimize" in jobs:
        from workbench.core.images import load_image

        tabs.setCurrentWidget(opt_page)
        app.processEvents()
        image = load_image(args.image)
        compare.left.panel.set_selection(None)
        right = compare.right
        for run in range(args.repeat):
            right.panel.set_selection("learned", {"quality": 3 + run % 2, "optimize": args.optimize_steps})
            elapsed = run_until(lambda: compare.set_image(image),
                                lambda: (right.result is not None or right.failed) and not right.runner.is_running(),
                                meter)
            kind = "finished" if right.result is not None else f"failed ({right.metrics.status.text()})"
            measured(f"per-image optimization (learned, quality {3 + run % 2}, on {Path(args.image).name}, "
                     f"{first_or_again(run)})", kind, elapsed, f"{args.optimize_steps} steps")
        compare.shutdown()

    if "network" in jobs:
        tabs.setCurrentWidget(net)
        app.processEvents()
        for run in range(args.repeat):
            net.result = None
            elapsed = run_until(net.run_demo, lambda: net.result is not None and not net.runner.is_running(), meter)
            measured(f"network compression (Network tab demo: digits CNN, 4-state TCQ, accuracy measured, "
                     f"{first_or_again(run)})", "finished", elapsed, f"{len(net.network.state)} tensors")
        net.shutdown()

    if "anneal" in jobs:
        tabs.setCurrentIndex(0)
        runner = JobRunner()
        curves.attach(runner)
        shot = {"done": False}

        def maybe_shoot(ev: Progress) -> None:
            if args.screenshots and not shot["done"] and (ev.fraction or 0) >= 0.6:
                shot["done"] = True
                args.screenshots.mkdir(parents=True, exist_ok=True)
                meter.stop()
                curves.grab().save(str(args.screenshots / "live-curves.png"))
                meter.resume()

        kind, elapsed = run_job(runner, lambda: runner.start(anneal_job), meter, maybe_shoot)
        measured("soft-to-hard annealing (numpy, 20k vectors, 16 centres)", kind, elapsed, "300 steps")
        runner.shutdown()

    if sampler is not None:
        sampler.close()
    if "train" in jobs:
        train_demo(meter, args, measured)

    ok = worst < args.max_gap_ms
    print(f"worst gap overall {worst:.1f} ms: {'within' if ok else 'OVER'} the {args.max_gap_ms:.0f} ms target "
          f"(load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs)")
    return 0 if ok else 1


def train_demo(meter: GapMeter, args, measured_report) -> None:
    """The Train tab's demo in a main window of its own (throw-away settings, config and data folders)."""
    from PySide6.QtCore import QSettings

    from workbench.ui import train_view
    from workbench.ui.main_window import MainWindow

    tmp = Path(tempfile.mkdtemp(prefix="workbench-train-"))
    os.environ["XDG_CONFIG_HOME"], os.environ["XDG_DATA_HOME"] = str(tmp / "config"), str(tmp / "data")
    if args.train_steps:
        steps = args.train_steps
        train_view.DEMO_OPTIONS.update(steps=steps, validate_every=max(1, steps // 20),
                                       checkpoint_every=max(1, steps // 8))
        train_view.DEMO_SURROGATE[1]["tau_steps"] = steps
    app = QApplication.instance()
    window = MainWindow(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat))
    window.resize(1400, 860)
    window.show()
    while window.train is None or window.worker.busy:      # the tabs, then the background imports
        app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)
    view = window.train
    window.tabs.setCurrentWidget(view)
    shot = {"done": not args.screenshots}

    def done() -> bool:
        total = view.bar.maximum()
        if not shot["done"] and view.step >= 0.6 * total and view.curves.is_drawn():
            shot["done"] = True
            meter.stop()
            args.screenshots.mkdir(parents=True, exist_ok=True)
            window.grab().save(str(args.screenshots / "train-1400x860.png"))
            meter.resume()
        return not view.is_running()

    elapsed = run_until(view.run_demo, done, meter, timeout_s=3600)
    measured_report(f"training (Watch a codec learn: {train_view.DEMO_OPTIONS['model']} "
                    f"{train_view.DEMO_OPTIONS['channels']}/{train_view.DEMO_OPTIONS['latent_channels']} channels "
                    f"in a child process)", view.outcome, elapsed, f"{view.step} steps")
    print(f"demo: {view.summary or view.message.text()}")
    window.close()


def first_or_again(run: int) -> str:
    """The first run of a kind imports what only it needs (scikit-learn for the digits): imports in the job's
    thread hold the interpreter lock. An optimization imports torch in its own child process every time."""
    return "first use in the process" if run == 0 else "again"


def pair(top: QWidget, bottom: QWidget, sizes: tuple[int, int]) -> QSplitter:
    """A tab's widget above the plots that follow its job, both painted as in the app."""
    split = QSplitter(Qt.Orientation.Vertical)
    split.addWidget(top)
    split.addWidget(bottom)
    split.setSizes(list(sizes))
    return split


if __name__ == "__main__":
    sys.exit(main())
