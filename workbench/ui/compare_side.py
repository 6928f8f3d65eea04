"""One side of the Compare tab: the settings asked for, the one job that turns them into a result, and
what the side shows meanwhile.

Every piece of a side's work (a plain encode, a per-image optimization, a search for a file size) runs
on the side's own `JobRunner`, one job at a time. Asking for new work supersedes the old: the old job is
cancelled at its next event and the new one starts once it has stopped, so a result that arrives is
always of the latest request or dropped, and there is one place that decides what is on screen. The
Live tab follows the runner for long jobs only, and its Pause and Cancel act on the same job.

Whatever the side shows is either the result of the settings in its panel or visibly marked as old or
failed (on the picture and on the numbers) until such a result replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QToolButton

from workbench.core.errors import WorkbenchError
from workbench.core.summary import format_size
from workbench.ui.codec_panel import CodecPanel, Selection, SideMetrics, SizeTarget, selection_name, setting_text
from workbench.ui.job_runner import JobRunner

if TYPE_CHECKING:
    from workbench.core.compress import CompressResult
    from workbench.core.images import LoadedImage
    from workbench.core.jobs import Progress
    from workbench.core.target_size import TargetSizeResult
    from workbench.ui.split_view import SplitView


# The compute modules pull in torch (over a second to import), so they are imported on first use, in the
# worker thread that runs the call: the window appears and stays responsive without waiting for them.
def _compress(*args):
    from workbench.core.compress import compress_image
    return compress_image(*args)


def _compress_job(*args):
    """A per-image optimization runs in a child process: its torch imports and operations hold the
    interpreter lock for up to hundreds of milliseconds, which in a thread here would freeze the window."""
    from workbench.core.compress_child import compress_job_in_child
    return compress_job_in_child(*args)


def _target_size(*args):
    from workbench.core.target_size import target_size_job
    return target_size_job(*args)


def is_long(sel: Selection) -> bool:
    """Encodes that optimize per image take tens of seconds and report every step."""
    return getattr(sel.options, "optimize", 0) > 0


@dataclass(eq=False)
class _Request:
    """A piece of work asked of the side, and what to do with its outcome if it is still wanted then."""

    factory: Callable[[], Any]
    on_done: Callable[[Any], None]
    on_error: Callable[[str], None]
    on_progress: Callable[[Progress], None] | None = None
    live: bool = False


class CompareSide(QObject):
    """`selection` is what was asked for, `result` what was measured of it (None while it is computed)."""

    changed = Signal()               # the side's state changed: the sentence under the picture is out of date
    encoded = Signal()               # a result of the side's settings arrived
    busy_changed = Signal(bool)      # work was asked for / its outcome arrived
    status_message = Signal(str)

    def __init__(self, name: str, index: int, title: str, view: SplitView, parent: QObject | None = None):
        super().__init__(parent)
        self.name, self.index, self.view = name, index, view
        self.panel = CodecPanel(title)
        self.metrics = SideMetrics()
        self.size = SizeTarget()
        self.copy_button = QToolButton()
        self.copy_button.setText("Copy settings to the other side")
        self.copy_button.setToolTip("Give the other side this side's codec and settings (and its result).")
        self.runner = JobRunner(self)
        self.image: LoadedImage | None = None
        self.selection = Selection(None)
        self.result: CompressResult | None = None
        self.failed = False
        # What Cancel puts back: (selection, result), result None for the original; None when nothing of
        # this image was shown yet.
        self.shown: tuple[Selection, CompressResult | None] | None = None
        # `_wanted` is the latest request, `_running` the one the runner works on; they differ while a
        # superseded job winds down.
        self._wanted: _Request | None = None
        self._running: _Request | None = None
        self.size.target_requested.connect(self.make_size)
        self.metrics.cancel_button.clicked.connect(self.cancel)
        self.runner.progress.connect(self._job_progress)
        self.runner.finished.connect(partial(self._job_ended, "done"))
        self.runner.failed.connect(partial(self._job_ended, "error"))
        self.runner.cancelled.connect(partial(self._job_ended, "cancelled", None))
        self.runner.paused_changed.connect(self._job_paused)

    # ----- the one job mechanism
    @property
    def busy(self) -> bool:
        """Work was asked for and its outcome has not arrived."""
        return self._wanted is not None

    def _set_wanted(self, request: _Request | None) -> None:
        was = self.busy
        self._wanted = request
        if self.busy != was:
            self.busy_changed.emit(self.busy)

    def run(self, factory: Callable[[], Any], on_done: Callable[[Any], None], on_error: Callable[[str], None],
            on_progress: Callable[[Progress], None] | None = None, live: bool = False) -> None:
        """Run `factory()` (a plain call or a job) instead of whatever the side was doing; `live`: a long job
        that the Live tab shows and can pause or cancel."""
        self._set_wanted(_Request(factory, on_done, on_error, on_progress, live))
        if self.runner.is_running():
            self.runner.cancel()                # the request starts once the superseded job has stopped
        else:
            self._start()

    def stop(self) -> None:
        """Forget the request: its outcome is dropped and its job stops at the next event."""
        self._set_wanted(None)
        self.runner.cancel()

    def _start(self) -> None:
        if self._wanted is not None and not self.runner.is_running():
            self._running = self._wanted
            self.runner.start(self._running.factory, live=self._running.live)

    def _job_progress(self, progress: Progress) -> None:
        request = self._running
        if request is self._wanted and request.on_progress is not None:
            request.on_progress(progress)

    def _job_ended(self, kind: str, value: Any) -> None:
        request, self._running = self._running, None
        if request is None or request is not self._wanted:
            # After the runner's last signal: starting inside it would let the Live tab's own handler of
            # that signal mark the new job as ended.
            QTimer.singleShot(0, self._start)
            return
        self._set_wanted(None)
        if kind == "done":
            request.on_done(value)
        elif kind == "error":
            request.on_error(value)
        else:                                   # the Live tab's Cancel
            self.restore()

    def _job_paused(self, paused: bool) -> None:
        """Pause is pressed in the Live tab; the side's progress line says so too."""
        if self._wanted is None or self._running is not self._wanted:
            return
        bar = self.metrics.progress
        text = f"Paused at step {bar.value()} of {bar.maximum()}; Resume is in the Live tab" if paused else \
            "Resuming…"
        self.metrics.show_job(text, bar.value(), bar.maximum() or None)

    def shutdown(self) -> None:
        """Stop the side's job and wait briefly for it (window close)."""
        self.stop()
        self.runner.shutdown()

    # ----- what the side shows
    def set_image(self, image: LoadedImage) -> None:
        """A new image: nothing of it was shown yet; the caller encodes or supplies results."""
        self.stop()
        self.image, self.shown = image, None

    def begin(self, sel: Selection) -> None:
        """`sel` is asked for from now on: the old result no longer counts, whatever was running stops."""
        self.stop()
        self.selection, self.result, self.failed = sel, None, False

    def encode(self, then: Callable[[CompressResult], None] | None = None,
               on_error: Callable[[str], None] | None = None) -> None:
        """Encode the image with the panel's settings (the original needs none); `then` follows the result
        on screen, `on_error` replaces the side's own report of a failure."""
        try:
            self.selection = self.panel.selection()
        except WorkbenchError as err:  # an option the panel could not build; say which, keep the old image
            self.metrics.show_error(f"These settings are not valid: {err}.")
            self.mark_old("Old picture: the new settings are not valid")
            return
        self.result, self.failed = None, False
        if self.image is None:
            return
        image, sel = self.image, self.selection
        if sel.codec is None:
            self.stop()
            self.show_original()
            return
        if is_long(sel):
            self.metrics.show_job(f"Optimizing latents with {selection_name(sel.codec, sel.options)}: starting…", 0,
                                  sel.options.optimize)
            self.mark_old("Old picture: optimizing for the new settings…")
            self.changed.emit()
            self.run(partial(_compress_job, image.rgb, sel.codec, sel.options), partial(self._encoded, sel, then),
                     on_error or self.fail, self._long_progress, live=True)
            return
        self.metrics.show_busy(f"Encoding with {selection_name(sel.codec, sel.options)}…" + (
            " The greyed numbers are of the previous settings." if self.shown is not None else ""))
        self.mark_old("Old picture: encoding the new settings…")
        self.changed.emit()
        self.run(partial(_compress, image.rgb, sel.codec, sel.options), partial(self._encoded, sel, then),
                 on_error or self.fail)

    def _long_progress(self, progress: Progress) -> None:
        if progress.total and progress.step >= progress.total:
            text = "Optimized; writing the file and measuring it…"
        else:
            text = (progress.message[:1].upper() + progress.message[1:] + "…") if progress.message else "Encoding…"
        self.metrics.show_job(text, progress.step, progress.total)

    def mark_old(self, why: str) -> None:
        """The picture and numbers on screen are not of the settings in the panel: say so on both, until a
        result of the panel's settings replaces them."""
        if self.shown is None:                         # nothing of this image encoded yet: the original shows
            self.view.set_side(self.index, None, "Original")
            why = why.replace("Old picture", "Original for now")
        self.view.set_mark(self.index, why)
        self.metrics.set_stale(True)

    def show_original(self) -> None:
        image = self.image
        self.shown = (self.selection, None)
        self.view.set_side(self.index, None, "Original")
        self.metrics.show_original(image.file_size, image.pixels, image.format)
        self.changed.emit()

    def show_result(self, sel: Selection, result: CompressResult) -> None:
        self.selection, self.result = sel, result
        self.shown = (sel, result)
        caption = f"{selection_name(sel.codec, sel.options)} · {setting_text(sel.codec, sel.options.quality)} · " \
                  f"{format_size(result.size_bytes)}"
        self.view.set_side(self.index, result.reconstruction, caption)
        self.metrics.show_result(result, self.image.file_size)
        self.changed.emit()
        self.encoded.emit()

    def _encoded(self, sel: Selection, then: Callable[[CompressResult], None] | None, result: CompressResult) -> None:
        self.show_result(sel, result)
        if then is not None:
            then(result)

    def fail(self, message: str) -> None:
        self.failed = True
        self.metrics.show_error(f"Encoding failed: {message}.")
        self.mark_old("Old picture: the new settings failed")
        self.status_message.emit(f"{self.name.capitalize()} side: encoding failed: {message}.")
        self.changed.emit()

    def cancel(self) -> None:
        """The side's Cancel: the previous result is back at once, while the job stops after its current step
        (the Live tab's Cancel restores it when the job has stopped)."""
        if self._wanted is not None:
            self.stop()
            self.restore()

    def restore(self) -> None:
        """Show the last finished result again, with the settings that made it, in the panel too."""
        label = self.name.capitalize()
        if self.shown is None:
            self.failed = True
            self.metrics.show_error("Cancelled before the first result; change a setting to encode again.")
            self.mark_old("Old picture: cancelled")
            self.status_message.emit(f"{label} side: optimization cancelled.")
            self.changed.emit()
            return
        sel, result = self.shown
        self.panel.set_selection(sel.codec, sel.values)
        self.selection = sel
        if result is None:
            self.show_original()
        else:
            self.show_result(sel, result)
        self.status_message.emit(f"{label} side: optimization cancelled; the previous result is shown again.")

    # ----- a file size on request
    def make_size(self, target_bytes: int, then: Callable[[TargetSizeResult], None] | None = None) -> bool:
        """Search this side's quality whose file is closest to `target_bytes`, then show that result (and
        call `then` with what was found)."""
        sel = self.panel.selection()
        if self.image is None or sel.codec is None:
            self.status_message.emit("Choose a codec on this side first: the original file has one size only.")
            return False
        self.begin(sel)
        self.metrics.show_busy(f"Searching the {selection_name(sel.codec, sel.options)} setting closest to "
                               f"{format_size(target_bytes)}…")
        self.mark_old(f"Old picture: searching the setting for {format_size(target_bytes)}…")
        self.changed.emit()
        self.run(partial(_target_size, self.image.rgb, sel.codec, target_bytes, sel.options),
                 partial(self._sized, sel, then), self.fail,
                 lambda p: self.metrics.show_busy(f"Searching: {p.message}…"))
        return True

    def _sized(self, sel: Selection, then: Callable[[TargetSizeResult], None] | None,
               found: TargetSizeResult) -> None:
        self.panel.set_selection(sel.codec, {**sel.values, "quality": found.quality})
        self.show_result(self.panel.selection(), found.result)
        self.status_message.emit(f"{self.name.capitalize()} side: {setting_text(sel.codec, found.quality)} gives "
                                 f"{format_size(found.result.size_bytes)} ({found.relative_error * 100:+.1f} % from "
                                 f"the target), found in {len(found.probes)} trial encodes.")
        if then is not None:
            then(found)
