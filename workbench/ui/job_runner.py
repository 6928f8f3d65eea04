"""Running a core job (a generator of `Progress` events) off the GUI thread.

The core's jobs know nothing about threads: they yield events and are stopped by closing the
generator. This adapter gives the GUI what it needs on top of that:

* the generator is created and advanced only in a worker `QThread`, so a slow encode never freezes
  the window;
* the worker never emits Qt signals itself. It appends events to a locked buffer which a 30 Hz timer
  in the GUI thread drains, so a job yielding thousands of events per second cannot flood the event
  queue, while `progress_batch` still hands every single event to the live plots;
* cancel and pause act between events (the only points where a generator can be stopped safely),
  and cancelling closes the generator so its `finally` blocks release files and memory at once.
"""

from __future__ import annotations

import inspect
import logging
import threading
import traceback
from typing import Any, Callable

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, QTimer, Signal, Slot

from workbench.core.errors import OUT_OF_MEMORY, Cancelled, WorkbenchError, out_of_memory
from workbench.core.jobs import Job, Progress

log = logging.getLogger(__name__)

#: 30 Hz: fast enough to look continuous, slow enough that redrawing plots never starves the GUI.
FLUSH_INTERVAL_MS = 33

# Worker threads that have not reported back yet. Holding them here (and not only on the runner)
# means a runner that is garbage-collected mid-job cannot destroy a running QThread, which Qt
# answers with an abort of the whole process.
_LIVE_THREADS: set["_JobThread"] = set()


def any_job_running() -> bool:
    """Whether any runner of the app has a job in flight (work that may wait for an idle window, such
    as building spare plots, waits for this to be False)."""
    return bool(_LIVE_THREADS)


class _JobThread(QThread):
    """Advances one job; talks to the GUI only through the lock-protected fields below."""

    def __init__(self, job_factory: Callable[[], Job[Any]]):
        super().__init__()
        self._factory = job_factory
        self._lock = threading.Lock()
        self._events: list[Progress] = []
        self._cancel = threading.Event()
        self._running = threading.Event()      # cleared while paused
        self._running.set()
        # ("finished", result) | ("failed", message) | ("cancelled", None); set before run() returns.
        self.outcome: tuple[str, Any] = ("cancelled", None)

    def take_events(self) -> list[Progress]:
        with self._lock:
            events, self._events = self._events, []
        return events

    def request_cancel(self) -> None:
        self._cancel.set()
        self._running.set()                     # wake a paused worker so it can notice the cancel

    def set_paused(self, paused: bool) -> None:
        if paused:
            self._running.clear()
        else:
            self._running.set()

    def run(self) -> None:  # noqa: D401 - Qt entry point of the worker thread
        job = None
        try:
            job = self._factory()
            if not inspect.isgenerator(job):        # a plain call: its value is the outcome, no events
                self.outcome, job = ("finished", job), None
                return
            while True:
                self._running.wait()
                if self._cancel.is_set():
                    self.outcome = ("cancelled", None)
                    return
                try:
                    event = next(job)
                except StopIteration as stop:
                    self.outcome = ("finished", stop.value)
                    job = None
                    return
                with self._lock:
                    self._events.append(event)
        except Cancelled:
            self.outcome = ("cancelled", None)
        except WorkbenchError as exc:
            self.outcome = ("failed", _one_line(str(exc)) or type(exc).__name__)
        except Exception as exc:  # anything else is a bug: full traceback to the log, one line to the user
            if out_of_memory(exc):
                self.outcome = ("failed", OUT_OF_MEMORY)
                return
            log.error("job failed with an internal error\n%s", traceback.format_exc())
            self.outcome = ("failed", _one_line(f"internal error: {type(exc).__name__}: {exc}"))
        finally:
            if job is not None:
                try:
                    job.close()                 # runs the job's finally blocks in this worker thread
                except Exception:
                    log.error("error while closing a job\n%s", traceback.format_exc())


class JobRunner(QObject):
    """Runs one job at a time in a worker thread and reports on the GUI thread.

    Exactly one of `finished`, `failed` or `cancelled` follows every `start()`, always after the
    last `progress`/`progress_batch` of that run.
    """

    started = Signal()
    progress = Signal(object)           # the latest Progress, at most ~30 times a second
    progress_batch = Signal(list)       # every Progress since the previous emission, in order
    finished = Signal(object)           # the job's return value
    failed = Signal(str)                # one-line message for the user
    cancelled = Signal()
    paused_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._thread: _JobThread | None = None
        self._paused = False
        self.live = True                # whether the Live tab shows the current (or last) job
        self._timer = QTimer(self)
        self._timer.setInterval(FLUSH_INTERVAL_MS)
        self._timer.timeout.connect(self._flush)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # -- control ---------------------------------------------------------------------------------
    def start(self, job_factory: Callable[[], Job[Any] | Any], live: bool = True) -> None:
        """Create the job with `job_factory()` inside the worker thread and run it.

        The factory runs in the worker because creating a job may already be slow (loading a
        model, reading a folder) and its errors belong to the job, reported through `failed`.
        A factory that returns a plain value instead of a job is a call without events. `live`
        False: a short job that the Live tab does not switch to (a Compare side's plain encode).
        """
        if self.is_running():
            raise RuntimeError("a job is already running; cancel it or wait for it to finish")
        thread = _JobThread(job_factory)
        thread.finished.connect(self._on_thread_finished, Qt.ConnectionType.QueuedConnection)
        _LIVE_THREADS.add(thread)
        self._thread = thread
        self._paused = False
        self.live = live
        self._timer.start()
        thread.start()
        self.started.emit()

    def cancel(self) -> None:
        """Ask the job to stop before its next event; `cancelled` follows when it has stopped."""
        if self._thread is not None:
            self._thread.request_cancel()
            if self._paused:
                self._paused = False
                self.paused_changed.emit(False)

    def pause(self) -> None:
        """Hold the worker before its next event (the event being computed still completes)."""
        if self._thread is not None and not self._paused:
            self._paused = True
            self._thread.set_paused(True)
            self.paused_changed.emit(True)

    def resume(self) -> None:
        if self._thread is not None and self._paused:
            self._paused = False
            self._thread.set_paused(False)
            self.paused_changed.emit(False)

    def is_running(self) -> bool:
        """True from `start()` until the final signal of that run has been emitted."""
        return self._thread is not None

    def is_paused(self) -> bool:
        return self._paused

    @Slot()
    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel and wait for the worker; for window close and application quit.

        Returns False when the job is stuck inside one long step past the timeout; the thread is
        then left to end on its own rather than killed, since killing a thread that holds the
        Python interpreter lock would hang the process.
        """
        thread = self._thread
        if thread is None:
            return True
        thread.request_cancel()
        if not thread.wait(timeout_ms):
            log.warning("a job did not stop within %.1f s of the request; leaving it to finish", timeout_ms / 1000)
            return False
        self._on_thread_finished(thread)
        return True

    # -- GUI-thread side -------------------------------------------------------------------------
    @Slot()
    def _flush(self) -> None:
        if self._thread is not None:
            self._deliver(self._thread.take_events())

    def _deliver(self, events: list[Progress]) -> None:
        if events:
            self.progress_batch.emit(events)
            self.progress.emit(events[-1])

    @Slot()
    def _on_thread_finished(self, thread: _JobThread | None = None) -> None:
        thread = thread if isinstance(thread, _JobThread) else self.sender()
        if thread is None or thread is not self._thread:
            return                              # already reported (shutdown() got there first)
        _LIVE_THREADS.discard(thread)
        self._timer.stop()
        self._deliver(thread.take_events())
        self._thread = None
        if self._paused:
            self._paused = False
            self.paused_changed.emit(False)
        kind, value = thread.outcome
        if kind == "finished":
            self.finished.emit(value)
        elif kind == "failed":
            self.failed.emit(value)
        else:
            self.cancelled.emit()


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
