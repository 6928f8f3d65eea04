"""What the GUI thread itself does during a job, and what the job's threads hold the interpreter for.

`event_loop_latency.py` measures wall-clock gaps, which other processes on the machine inflate. This runs
the same jobs through the same widgets (the RD tab's sweep: `RDView` above `LiveCurves`; the Network tab's
demo: `NetworkView`; 1280x1300, offscreen) and measures what load hardly changes:

* the gaps between ticks of a 10 ms timer less the GUI thread's waits for a core (Linux schedstat), split
  into the GUI thread's own CPU time (`time.thread_time`) and the rest, its wait for the interpreter lock,
  and the events dispatched within the longest gaps;
* every event the GUI thread's event loop dispatches (`QApplication.notify` at the outermost level: a
  timer's slot, a queued signal, a window's paint pass) with its CPU time and lock wait, and the painting
  of each widget nested in it: the costliest dispatches, and the total per kind;
* the job's threads: each innermost call into C over 2 ms of that thread's CPU or 30 ms of wall time (one
  that keeps the interpreter lock keeps the GUI thread waiting for all of it, whatever the switch
  interval), or with `--profile-job` their Python functions by CPU time;
* the garbage collector's runs (a full one holds the lock throughout, in whichever thread) and the
  modules imported while the job ran, by thread.

Usage: QT_QPA_PLATFORM=offscreen python benchmarks/gui_thread_work.py [--job rd|network] [--runs 1] [--top 12]
                                                                      [--image PATH] [--codecs jpeg,webp]
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import gc
import pstats
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEvent, QEventLoop, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QTabWidget  # noqa: E402

from event_loop_latency import pair, workers_start_as_in_the_app  # noqa: E402
from workbench.ui import rd_view  # noqa: E402
from workbench.ui.app import GIL_SWITCH_S  # noqa: E402
from workbench.ui.live_curves import LiveCurves  # noqa: E402
from workbench.ui.main_window import PRELOAD, preload  # noqa: E402

C_CALL_MS = 2.0
WAIT_MS = 30.0


def sched() -> tuple[float, float, float]:
    """Wall clock, this thread's CPU time and its time spent waiting for a core, in ms. The wait is Linux's
    schedstat (exact once the thread runs again); its CPU figure lags by up to a scheduler tick, so the
    CPU time is the thread clock's."""
    with open("/proc/thread-self/schedstat") as f:
        _, waited, _ = f.read().split()
    return time.perf_counter() * 1000.0, time.thread_time() * 1000.0, int(waited) / 1e6


class TimedApp(QApplication):
    """Times every event dispatched in the GUI thread; nested dispatches (paints) are kept per outer one.

    An outer dispatch's wall time less its CPU time and less its wait for a core is the time the thread
    slept inside it: waiting for the interpreter lock (nothing else in a dispatch blocks, file reads aside).
    """

    def __init__(self, argv):
        super().__init__(argv)
        self.names: dict[int, str] = {}      # id of a QTimer -> what its slot does
        self.records: list[tuple[float, float, str, list[tuple[float, str]]]] = []   # cpu, lock, what, inner
        self._stack: list[list] = []
        self.on = False
        self.t0 = 0.0

    def describe(self, receiver, event) -> str:
        kind = event.type().name
        if isinstance(receiver, QTimer):
            return f"{kind} {self.names.get(id(receiver), 'QTimer ' + (receiver.objectName() or '?'))}"
        return f"{kind} {type(receiver).__name__}{('/' + receiver.objectName()) if receiver.objectName() else ''}"

    def notify(self, receiver, event):  # noqa: N802 - Qt override
        if not self.on:
            return super().notify(receiver, event)
        outer = not self._stack
        frame = [sched() if outer else None, time.thread_time(), []]
        self._stack.append(frame)
        try:
            return super().notify(receiver, event)
        finally:
            self._stack.pop()
            if outer:
                wall, cpu, waited = (b - a for a, b in zip(frame[0], sched()))
                self.records.append((cpu, max(0.0, wall - cpu - waited), self.describe(receiver, event), frame[2],
                                     frame[0][0] / 1000.0 - self.t0))
            else:
                cpu = (time.thread_time() - frame[1]) * 1000.0
                if event.type() in (QEvent.Type.Paint, QEvent.Type.Timer, QEvent.Type.MetaCall) and cpu > 0.5:
                    self._stack[-1][2].append((cpu, self.describe(receiver, event)))
                self._stack[-1][2].extend(frame[2])


class Ticks:
    """A 10 ms timer in the GUI thread, as in event_loop_latency.py; each gap between its ticks less the
    GUI thread's waits for a core is what the gap would be on a machine with a core free for it."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[tuple] = []     # wall less the core waits, CPU, lock wait (ms), at (s), wall (ms)
        self._last = sched()

    def start(self) -> None:
        self.gaps.clear()
        self._last = sched()
        self.t0 = self._last[0] / 1000.0
        self.timer.start()

    def _tick(self) -> None:
        now = sched()
        wall, cpu, waited = (b - a for a, b in zip(self._last, now))
        self.gaps.append((wall - waited, cpu, wall - waited - cpu, now[0] / 1000.0 - self.t0, wall))
        self._last = now


class CCallProfile:
    """sys.setprofile hook for the sweep's threads: innermost C calls over C_CALL_MS of their thread's CPU
    time, or over WAIT_MS of wall time (a call that blocks while holding the interpreter lock shows here)."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float, float, str]] = []   # cpu ms, wall ms, start s, what
        self._open: dict[tuple[int, int], list] = {}
        self.t0 = time.perf_counter()

    def __call__(self, frame, event, arg):
        key = (threading.get_ident(), id(frame))
        if event == "c_call":
            self._open[key] = [time.thread_time(), time.perf_counter(), True]
        elif event == "call":                  # Python code inside: the open C calls are not leaves
            me = threading.get_ident()
            for (ident, _), start in self._open.items():
                if ident == me:
                    start[2] = False
        elif event in ("c_return", "c_exception"):
            start = self._open.pop(key, None)
            if start is not None and start[2]:
                cpu = (time.thread_time() - start[0]) * 1000.0
                wall = (time.perf_counter() - start[1]) * 1000.0
                if cpu > C_CALL_MS or wall > WAIT_MS:
                    where = f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}"
                    self.calls.append((cpu, wall, start[1] - self.t0, f"{threading.current_thread().name}: "
                                       f"{getattr(arg, '__qualname__', arg)} <- {where}"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", default=str(ROOT / "resources" / "samples" / "endeavour.png"))
    ap.add_argument("--codecs", default="jpeg,webp")
    ap.add_argument("--job", choices=("rd", "network"), default="rd", help="rd: the RD tab's sweep; network: "
                    "the Network tab's demo (digits CNN, 4-state TCQ, accuracy measured)")
    ap.add_argument("--runs", type=int, default=1, help="jobs, one after another (a sweep into a fresh folder "
                    "each time, so no point is reused)")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--profile-job", action="store_true", help="profile the sweep thread's Python functions "
                    "(CPU time, cProfile) instead of timing its C calls")
    args = ap.parse_args(argv)
    workers_start_as_in_the_app()

    sys.setswitchinterval(GIL_SWITCH_S)
    app = TimedApp([])
    tabs = QTabWidget()
    curves = LiveCurves()
    results = tempfile.TemporaryDirectory(prefix="workbench-rd-")
    rd = rd_view.RDView(results=results.name)
    tabs.addTab(pair(rd, curves, (820, 480)), "rd")
    if args.job == "network":
        from workbench.ui import network_view

        net = network_view.NetworkView()
        tabs.addTab(net, "network")
    tabs.resize(1280, 1300)
    tabs.show()
    app.processEvents()
    preload(PRELOAD)
    settle = time.perf_counter() + 2.0
    while time.perf_counter() < settle:
        app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents, 50)
    ticks, imports, collections_ = Ticks(), ImportLog(), GCLog()
    app.names.update({id(ticks.timer): "the 10 ms tick", id(curves._redraw_timer): "LiveCurves._redraw_next",
                      id(curves._spare_timer): "LiveCurves spare"})
    for owner, label in ((rd, "RDView"), (curves, "LiveCurves"), (curves.rd_points, "RDPointsView")):
        for name, timer in vars(owner).items():
            if isinstance(timer, QTimer) and id(timer) not in app.names:
                app.names[id(timer)] = f"{label}.{name}"
    app.names[id(rd.runner._timer)] = "JobRunner._flush (progress_batch: RDView._on_batch, LiveCurves.add_events)"
    if args.job == "network":
        tabs.setCurrentWidget(net)
        app.names[id(net.runner._timer)] = "JobRunner._flush (the Network tab's job)"
        for name, timer in vars(net).items():
            if isinstance(timer, QTimer) and id(timer) not in app.names:
                app.names[id(timer)] = f"NetworkView.{name}"
    sys.meta_path.insert(0, imports)
    rd.set_current(args.image)
    rd.set_selected_codecs(args.codecs.split(","))
    curves.attach(rd.runner)

    for run in range(args.runs):
        app.records.clear()
        profile = cProfile.Profile(time.thread_time) if args.profile_job else CCallProfile()
        imports.names.clear()
        collections_.runs.clear()
        app.on = imports.on = collections_.on = True
        ticks.start()
        app.t0 = profile.t0 = collections_.t0 = ticks.t0
        cpu0, t0 = time.thread_time(), time.perf_counter()
        if args.job == "network":
            profile_job_thread(network_view, "compress_network_job", profile)
            net.result = None
            net.run_demo()
            finished = lambda: net.result is not None and not net.runner.is_running()   # noqa: E731
        else:
            rd.set_results_folder(Path(results.name) / f"run{run}")
            profile_job_thread(rd_view, "sweep_job", profile)
            rd.run()
            finished = lambda: not rd.runner.is_running() and rd.is_drawn() and curves.is_drawn()   # noqa: E731
        # An event loop that sleeps while nothing happens, as the app's (processEvents in a loop spins).
        done = time.perf_counter() + 3600
        loop = QEventLoop()

        def check() -> None:
            nonlocal done
            if done > time.perf_counter() + 1 and finished():
                done = time.perf_counter() + 0.3              # what the last signals leave to paint
            elif time.perf_counter() >= done:
                loop.quit()

        checker = QTimer(interval=50, timeout=check)
        checker.start()
        loop.exec()
        checker.stop()
        app.on = imports.on = collections_.on = False
        ticks.timer.stop()
        total_cpu = (time.thread_time() - cpu0) * 1000.0
        what = (f"network demo ({'first use' if run == 0 else 'again'})" if args.job == "network"
                else f"{len(rd.result().points) if rd.result() else 0} points")
        print(f"run {run + 1}: {what} in {time.perf_counter() - t0:.1f} s; GUI thread CPU "
              f"{total_cpu:.0f} ms in {len(app.records)} dispatched events")
        report(app.records, ticks.gaps, imports.names, profile, args.top)
        runs = sorted(collections_.runs, reverse=True)
        print(f"  garbage collections: {len(runs)}, {sum(r[0] for r in runs):.0f} ms in all; the longest: "
              + ", ".join(f"{ms:.1f} ms (generation {g}, at {at:.2f} s, {who})" for ms, g, at, who in runs[:5]))
    return 0


def profile_job_thread(module, name: str, profile) -> None:
    """Set `profile` in the thread that next calls `module.name` (a job factory: the job's thread)."""
    original = getattr(module, name)

    def profiled(*a, **kw):
        setattr(module, name, original)
        if isinstance(profile, cProfile.Profile):
            profile.enable()
        else:
            sys.setprofile(profile)
            threading.setprofile(profile)          # threads the job starts (a process pool's)
        return original(*a, **kw)

    setattr(module, name, profiled)


class GCLog:
    """Collections of the cyclic garbage collector: it runs in whichever thread allocates, holding the
    interpreter lock throughout, so a long one stalls the window from any thread."""

    def __init__(self) -> None:
        self.runs: list[tuple[float, int, float, str]] = []      # ms, generation, at s, thread
        self.t0 = 0.0
        self.on = False
        self._start = 0.0
        gc.callbacks.append(self)

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        elif self.on:
            self.runs.append(((time.perf_counter() - self._start) * 1000.0, info["generation"],
                              self._start - self.t0, threading.current_thread().name))


class ImportLog:
    """Modules imported while the sweep runs, by thread: a first-use import holds the interpreter lock."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.on = False

    def find_spec(self, name, path=None, target=None):
        if self.on:
            self.names.append(f"{threading.current_thread().name}: {name}")
        return None


def report(records, gaps, imported, job, top: int) -> None:
    worst = sorted(gaps, key=lambda g: -g[0])[:5]
    print("  the 5 longest gaps between 10 ms ticks, less the GUI thread's waits for a core (GUI CPU + lock "
          "wait in them): " + ", ".join(f"{g:.0f} ms ({c:.0f} + {lk:.0f}, at {at:.2f} s)" for g, c, lk, at, _ in worst))
    for g, _, _, at, wall in worst[:3]:
        inside = [r for r in records if at - wall / 1000.0 - 0.001 <= r[4] <= at]
        print(f"    in the {g:.0f} ms gap at {at:.2f} s ({len(inside)} dispatches, "
              f"{sum(r[0] for r in inside):.0f} ms of CPU): " + "; ".join(
            f"{what} {cpu:.1f}+{lock:.1f}" for cpu, lock, what, _, _ in inside if cpu + lock > 0.5))
    if imported:
        print(f"  imported during the sweep: {len(imported)} modules: " + ", ".join(imported[:20]))
    print(f"  the {top} costliest dispatches (GUI thread CPU + lock wait ms: event; what was painted in it):")
    for cpu, lock, what, inner, at in sorted(records, key=lambda r: -r[0] - r[1])[:top]:
        nested = collections.Counter()
        for c, name in inner:
            nested[name] += c
        inside = ", ".join(f"{name} {c:.1f}" for name, c in nested.most_common(4))
        print(f"  {cpu:6.1f} + {lock:5.1f}  {at:6.2f} s  {what}" + (f"  [{inside}]" if inside else ""))
    totals: dict[str, list[float]] = collections.defaultdict(list)
    for cpu, lock, what, _, _ in records:
        totals[what].append(cpu + lock)
    print("  per kind of event (count, total / worst GUI CPU + lock wait ms):")
    for what, costs in sorted(totals.items(), key=lambda kv: -sum(kv[1]))[:top]:
        print(f"  {len(costs):5d}  {sum(costs):7.1f} / {max(costs):5.1f}  {what}")
    if isinstance(job, cProfile.Profile):
        print("  the sweep thread's functions by CPU time (cProfile, thread_time):")
        pstats.Stats(job).sort_stats("cumulative").print_stats(top)
        return
    threading.setprofile(None)
    calls = sorted(job.calls, key=lambda c: -c[0])
    print(f"  the sweep's threads' C calls over {C_CALL_MS:.0f} ms of CPU or {WAIT_MS:.0f} ms of wall time "
          f"(CPU / wall ms, started at s):")
    for cpu, wall, at, what in calls[:top]:
        print(f"  {cpu:6.1f} / {wall:6.1f}  {at:6.2f}  {what}")


if __name__ == "__main__":
    sys.exit(main())
