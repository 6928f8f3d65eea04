"""Long work as generators of progress events.

A job is a generator that yields `Progress` events and returns its result (`StopIteration.value`).
Consumers decide how to show progress and when to stop: the CLI draws a progress bar, the GUI runs the
generator in a worker thread and throttles plot updates. Stopping is done by the consumer closing the
generator (`GeneratorExit` inside it), so a job needs no cancellation plumbing beyond `try/finally`
for cleanup, and it can never be left half-running.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Mapping, TypeVar

import numpy as np

from workbench.core.errors import Cancelled

R = TypeVar("R")


@dataclass(frozen=True)
class Progress:
    step: int
    total: int | None = None
    message: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    preview: np.ndarray | None = None

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, max(0.0, self.step / self.total))


Job = Generator[Progress, None, R]


def run(job: Job[R], on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None) -> R:
    """Drive a job to completion; raises `Cancelled` (after closing the job) when `should_stop()` turns true."""
    try:
        while True:
            if should_stop is not None and should_stop():
                job.close()
                raise Cancelled("cancelled")
            event = next(job)
            if on_progress is not None:
                on_progress(event)
    except StopIteration as stop:
        return stop.value


class TextProgressBar:
    """A dependency-free terminal progress bar for the CLI (redraws at most 10 times a second)."""

    def __init__(self, stream: Any = None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width = width
        self._last = 0.0
        self._shown = False

    def __call__(self, event: Progress) -> None:
        now = time.monotonic()
        final = event.total is not None and event.step >= event.total
        tty = self.stream.isatty()
        # A terminal is redrawn in place; a log file gets a line every few seconds instead.
        if not final and now - self._last < (0.1 if tty else 5.0):
            return
        self._last = now
        frac = event.fraction
        if frac is None:
            bar = f"[{event.step}]"
        else:
            filled = int(round(frac * self.width))
            bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {event.step}/{event.total}"
        text = f"\r{bar} {event.message}"[:160]
        if tty:
            self.stream.write(text.ljust(120))
            self._shown = True
        else:
            self.stream.write(text.strip("\r") + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


def duration_text(seconds: float) -> str:
    """A job's elapsed or remaining time as people read it ("7.5 s", "3 min 05 s", "2 h 10 min"); one
    wording for the CLI's ETA, the Live tab and the Train tab."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    m, s = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"
