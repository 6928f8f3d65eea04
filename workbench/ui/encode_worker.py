"""Short core calls (load an image, one encode, a small search) off the GUI thread.

The compare view asks for a new encode every time a slider is released, so requests go stale quickly.
Each request belongs to a *channel* ("left", "right", "sweep", ...): a new request on a channel makes the
previous one stale. A stale job (a generator) is closed at its next progress event, and a stale result
is dropped instead of overwriting a newer one, so the screen always shows the latest settings and the
window never waits for an encoder.

Long, user-visible jobs with pause and cancel buttons belong to `job_runner.JobRunner`; this is the
fire-and-forget path for work that takes well under a few seconds.
"""

from __future__ import annotations

import inspect
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from workbench.core.errors import Cancelled, WorkbenchError, out_of_memory
from workbench.core.jobs import Progress, run

log = logging.getLogger(__name__)


@dataclass
class _Request:
    generation: int
    on_done: Callable[[Any], None]
    on_error: Callable[[str], None]
    on_progress: Callable[[Progress], None] | None


class _Relay(QObject):
    """Lives in the GUI thread; signals emitted from workers arrive here as queued calls."""

    event = Signal(str, int, str, object)   # channel, generation, kind ("progress"/"done"/"error"), payload


class _Task(QRunnable):
    def __init__(self, worker: "Worker", channel: str, generation: int, fn: Callable[[], Any]):
        super().__init__()
        self._worker, self._channel, self._generation, self._fn = worker, channel, generation, fn

    def run(self) -> None:
        stale = lambda: self._worker.is_stale(self._channel, self._generation)  # noqa: E731
        relay = self._worker.relay

        def emit(*args) -> None:
            try:
                relay.event.emit(*args)
            except RuntimeError:                    # the window closed while this task ran: nobody to tell
                pass

        try:
            out = self._fn()
            if inspect.isgenerator(out):
                out = run(out, lambda p: emit(self._channel, self._generation, "progress", p), stale)
            emit(self._channel, self._generation, "done", out)
        except Cancelled:
            pass                                    # superseded by a newer request; nobody is waiting
        except WorkbenchError as err:
            emit(self._channel, self._generation, "error", str(err))
        except Exception as err:  # a bug: log the traceback for the developer, show one line to the user
            if out_of_memory(err):              # MemoryError, or torch's allocator failing
                emit(self._channel, self._generation, "error", "there is not enough memory for this image")
                return
            log.exception("background task on channel %s failed", self._channel)
            emit(self._channel, self._generation, "error", f"an unexpected {type(err).__name__} occurred ({err})")


class Worker(QObject):
    """Runs callables in a thread pool; callbacks run in the GUI thread, only for current requests."""

    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.relay = _Relay(self)
        self.relay.event.connect(self._on_event)
        self._pool = QThreadPool(self)
        # three at least, so two interactive encodes never queue behind a background sweep
        self._pool.setMaxThreadCount(max(3, QThreadPool.globalInstance().maxThreadCount()))
        self._lock = threading.Lock()
        self._generation: dict[str, int] = {}
        self._pending: dict[str, _Request] = {}

    def submit(self, channel: str, fn: Callable[[], Any], on_done: Callable[[Any], None],
               on_error: Callable[[str], None], on_progress: Callable[[Progress], None] | None = None) -> None:
        """Run `fn()` (a plain call, or one returning a job generator) and supersede `channel`'s last request."""
        with self._lock:
            generation = self._generation.get(channel, 0) + 1
            self._generation[channel] = generation
        was_busy = self.busy
        self._pending[channel] = _Request(generation, on_done, on_error, on_progress)
        self._pool.start(_Task(self, channel, generation, fn))
        if not was_busy:
            self.busy_changed.emit(True)

    def cancel(self, channel: str) -> None:
        """Forget the channel's request: its result is dropped and its job stops at the next event."""
        with self._lock:
            self._generation[channel] = self._generation.get(channel, 0) + 1
        if self._pending.pop(channel, None) is not None and not self.busy:
            self.busy_changed.emit(False)

    def is_stale(self, channel: str, generation: int) -> bool:
        with self._lock:
            return self._generation.get(channel) != generation

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def is_pending(self, channel: str) -> bool:
        return channel in self._pending

    def shutdown(self, timeout_ms: int = 3000) -> None:
        """Stop every job at its next event and wait briefly for encoders already inside a call."""
        for channel in list(self._pending):
            self.cancel(channel)
        self._pool.clear()
        self._pool.waitForDone(timeout_ms)

    @Slot(str, int, str, object)
    def _on_event(self, channel: str, generation: int, kind: str, payload: object) -> None:
        request = self._pending.get(channel)
        if request is None or request.generation != generation:
            return
        if kind == "progress":
            if request.on_progress is not None:
                request.on_progress(payload)
            return
        del self._pending[channel]
        if not self.busy:
            self.busy_changed.emit(False)
        if kind == "done":
            request.on_done(payload)
        else:
            request.on_error(str(payload))
