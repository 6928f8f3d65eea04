"""The Compare tab: two settings of the same image side by side, their numbers, and one sentence.

The tab composes three parts and coordinates what involves both sides: each `CompareSide` owns its
settings, its one background job and what it shows; `SplitView` draws both pictures with one zoom and a
divider; `SummaryBox` says what the numbers mean. Matching one side's size to the other's, copying and
swapping sides, the demo and a CompressAI model dropped on a side are arranged here.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QFont, QGuiApplication
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QScrollArea, QStackedLayout, QToolButton, QVBoxLayout, QWidget

from workbench.core.codecs.learned import LearnedOptions
from workbench.core.errors import WorkbenchError
from workbench.core.images import LoadedImage
from workbench.core.learned.catalog import is_checkpoint_name, model_label, remember_model, zoo_folder
from workbench.ui.codec_panel import Selection, selection_name, setting_text
from workbench.ui.compare_side import CompareSide
from workbench.ui.compare_summary import SummaryBox
from workbench.ui.encode_worker import Worker
from workbench.ui.export import cli_command
from workbench.ui.split_view import SplitView

if TYPE_CHECKING:
    from workbench.core.compress import CompressResult
    from workbench.core.target_size import TargetSizeResult


def _architecture(path):
    from workbench.core.learned.weights import compressai_architecture
    return compressai_architecture(path)


def is_model_drop(path) -> bool:
    """What a drop on the Compare tab may make a side's model, by name alone: a CompressAI checkpoint file
    (whose keys then decide), or a folder of zoo-named checkpoints (an image folder has none)."""
    p = Path(path)
    if p.is_dir():
        try:
            return zoo_folder(p) is not None
        except WorkbenchError:
            return True                          # zoo files of several models: opening it says so
        except OSError:
            return False
    return p.is_file() and is_checkpoint_name(p)


# Short guides at the foot of the two side columns, for people who have never compared codecs.
READING_TIP = ("<b>Reading the numbers</b><br>A smaller size and bpp mean a smaller file; a higher PSNR and "
               "MS-SSIM mean an image closer to the original. Hover over any name for a plain explanation, or "
               "press F1.")
LOOKING_TIP = ("<b>Looking closer</b><br>Drag the divider to move the split, drag the picture to pan and turn the "
               "wheel to zoom; double-click shows 100 %. Ctrl+D colours every pixel by how far it is from the "
               "original.")


class CompareView(QWidget):
    """The Compare tab; the main window feeds it images and reads results for export."""

    status_message = Signal(str)
    live_requested = Signal()        # the user asked to see a long encode's curves
    model_opened = Signal(str)       # a side's learned model, opened by a drop (its path)
    not_a_model = Signal(str)        # a dropped checkpoint that holds another network (its path)
    model_failed = Signal(str)       # why a dropped file cannot be a side's model (one line)
    busy_changed = Signal(bool)      # a side's work was asked for / the last outcome arrived

    def __init__(self, worker: Worker, parent: QWidget | None = None):
        super().__init__(parent)
        self.worker = worker
        self.image: LoadedImage | None = None
        self._demo = False                           # the demo's contender waits for the anchor's size
        self.view = SplitView()
        self.left = self._make_side("left", 0, "Left side")
        self.right = self._make_side("right", 1, "Right side")
        self.sentence = SummaryBox(worker, self.left, self.right)
        self.summary, self.summary_hint = self.sentence.summary, self.sentence.hint

        self.welcome = QWidget()
        self._welcome_buttons = QHBoxLayout()
        self._build_welcome()
        self._stack = QStackedLayout()
        self._stack.addWidget(self.welcome)
        self._stack.addWidget(self.view)

        centre = QVBoxLayout()
        centre.addLayout(self._stack, 1)
        centre.addWidget(self.sentence)
        lay = QHBoxLayout(self)
        lay.addWidget(self._column(self.left, READING_TIP), 0)
        lay.addLayout(centre, 1)
        lay.addWidget(self._column(self.right, LOOKING_TIP), 0)

    # ----- construction
    def _make_side(self, name: str, index: int, title: str) -> CompareSide:
        side = CompareSide(name, index, title, self.view, self)
        side.size.match_requested.connect(partial(self.match_other, side))
        side.copy_button.clicked.connect(partial(self.copy_to_other, side))
        side.panel.changed.connect(partial(self._panel_changed, side))
        side.metrics.copy_button.clicked.connect(partial(self.copy_command, name))
        side.metrics.live_requested.connect(self.live_requested)
        side.status_message.connect(self.status_message)
        side.changed.connect(lambda: self.sentence.refresh())
        side.encoded.connect(lambda: self.sentence.ensure_sweep())
        side.busy_changed.connect(lambda _busy: self.busy_changed.emit(self.busy()))
        return side

    def _column(self, side: CompareSide, tip: str) -> QScrollArea:
        host = QWidget()
        v = QVBoxLayout(host)
        v.setContentsMargins(0, 0, 0, 0)
        v.addWidget(side.panel)
        v.addWidget(side.copy_button)
        v.addWidget(side.size)
        box = QFrame()
        box.setFrameShape(QFrame.Shape.StyledPanel)
        inner = QVBoxLayout(box)
        inner.addWidget(side.metrics)
        v.addWidget(box)
        v.addStretch(1)
        hint = QLabel(tip)
        hint.setWordWrap(True)
        hint.setContentsMargins(4, 0, 4, 4)
        v.addWidget(hint)
        scroll = QScrollArea()
        scroll.setWidget(host)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(280)                 # two columns and the picture fit a 1024 px window
        scroll.setMaximumWidth(360)
        return scroll

    def _build_welcome(self) -> None:
        v = QVBoxLayout(self.welcome)
        v.addStretch(2)
        title = QLabel("Compare image codecs side by side")
        font = QFont(title.font())
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        title.setFont(font)
        text = QLabel("Drop an image or a folder of images anywhere on this window, or open one. Each side can "
                      "show the original or any codec setting; drag the divider to compare, and read the numbers "
                      "and the summary sentence underneath. New here? The demo compares JPEG with a modern codec "
                      "at the same file size.")
        text.setWordWrap(True)                      # wraps to the window; 560 px at most, for reading
        text.setMaximumWidth(560)
        text.setMinimumWidth(200)
        for w in (title, text):
            w.setAlignment(Qt.AlignmentFlag.AlignHCenter)
            v.addWidget(w, 0, Qt.AlignmentFlag.AlignHCenter)
        v.addSpacing(12)
        self._welcome_buttons.addStretch(1)
        v.addLayout(self._welcome_buttons)
        v.addStretch(3)

    def set_welcome_actions(self, actions: list[QAction]) -> None:
        """Big buttons for the first things a new user can do, backed by the main window's actions."""
        for action in actions:
            button = QToolButton()
            button.setDefaultAction(action)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            button.setMinimumHeight(36)
            self._welcome_buttons.insertWidget(self._welcome_buttons.count() - 1, button)
        self._welcome_buttons.insertStretch(0, 1)

    def sides(self) -> tuple[CompareSide, CompareSide]:
        return self.left, self.right

    def side(self, name: str) -> CompareSide:
        return self.left if name == "left" else self.right

    def other(self, side: CompareSide) -> CompareSide:
        return self.right if side is self.left else self.left

    def busy(self) -> bool:
        return any(s.busy for s in self.sides())

    # ----- state
    def state(self) -> dict[str, Any]:
        return {"left": self.left.panel.state(), "right": self.right.panel.state(), "heat_map": self.view.heat_map}

    def restore_state(self, state: dict[str, Any]) -> None:
        for side in self.sides():
            saved = state.get(side.name) or {}
            if not side.panel.set_selection(saved.get("codec") or None, saved.get("options") or {}):
                side.panel.set_selection(None)
        self.view.set_heat_map(bool(state.get("heat_map", False)))

    # ----- images and encodes
    def set_image(self, image: LoadedImage) -> None:
        """Show a new image and encode it with both sides' current settings."""
        self.set_image_only(image)
        for side in self.sides():
            side.encode()

    def set_image_only(self, image: LoadedImage) -> None:
        """Show a new image without encoding either side (the caller will supply the results)."""
        self._demo = False
        self.image = image
        for side in self.sides():
            side.set_image(image)
        self.sentence.set_image(image)
        self._stack.setCurrentWidget(self.view)
        self.view.set_original(image.rgb)

    def _panel_changed(self, side: CompareSide) -> None:
        if self._demo:
            self._demo = False                  # the user took over: encode both sides as they are now
            for s in self.sides():
                s.encode()
        else:
            side.encode()

    def shutdown(self) -> None:
        """Stop both sides' jobs (window close)."""
        for side in self.sides():
            side.shutdown()

    # ----- a CompressAI checkpoint (or a folder of the zoo's) dropped on a side
    def open_model(self, side_name: str, path: str | Path) -> None:
        """Make `path` the side's learned model once its keys show a CompressAI image model (read off the
        GUI thread: torch and a checkpoint of hundreds of MB); another network goes on to `not_a_model`."""
        path = Path(path)
        side = self.side(side_name)
        if path.is_dir():
            try:
                stated = zoo_folder(path)
            except WorkbenchError as err:
                self.model_failed.emit(str(err))
                return
            if stated is None:
                self.model_failed.emit(f"{path} holds no checkpoints named like CompressAI's zoo files")
                return
            self._use_model(side, path, "", sorted(stated[2]))
            return
        self.status_message.emit(f"Reading {path.name}…")
        self.worker.submit(f"{side.name}-model", partial(_architecture, str(path)),
                           on_done=partial(self._checked_model, side, path), on_error=self.model_failed.emit)

    def _checked_model(self, side: CompareSide, path: Path, arch: str | None) -> None:
        if arch is None:
            self.not_a_model.emit(str(path))
        else:
            self._use_model(side, path, arch)

    def _use_model(self, side: CompareSide, path: Path, arch: str, qualities: list[int] | None = None) -> None:
        """`qualities`: a zoo folder's, of which the side gets the one nearest its quality so far."""
        try:
            value, note = remember_model(path), ""
        except WorkbenchError as err:               # usable now, just not offered next time
            value, note = str(path.resolve()), f" ({err})"
        current = side.panel.selection()
        values = dict(current.values) if isinstance(current.options, LearnedOptions) else {}
        if qualities:
            q = values.get("quality", LearnedOptions().quality)
            values["quality"] = float(min(qualities, key=lambda v: abs(v - q)))
        if not side.panel.set_selection("learned", {**values, "model": value}):
            self.model_failed.emit("the learned codec is not available on this computer")
            return
        label = model_label(value)
        kind = f", a CompressAI {arch}" if arch and not label.startswith(arch) else ""
        self.status_message.emit(f"{side.name.capitalize()} side: learned model {label}{kind}{note}.")
        self.model_opened.emit(value)
        self._panel_changed(side)

    # ----- sizes on request, swapping and copying sides
    def match_other(self, side: CompareSide) -> bool:
        """This side's quality searched for a file as large as the other side's."""
        other = self.other(side)
        size = other.result.size_bytes if other.result is not None else \
            (self.image.file_size if other.selection.codec is None and self.image is not None else None)
        if size is None:
            self.status_message.emit("The other side has no file yet to match; wait for it or choose a codec there.")
            return False
        return side.make_size(size)

    def copy_to_other(self, side: CompareSide) -> None:
        """The other side gets this side's codec and settings, and its result when there is one."""
        other, sel = self.other(side), side.panel.selection()
        other.panel.set_selection(sel.codec, sel.values)
        if side.result is not None and side.selection == sel:
            other.begin(sel)
            other.show_result(sel, side.result)
        else:
            other.encode()

    def swap_sides(self) -> None:
        """Exchange the two sides' settings and results (no re-encode when both are finished)."""
        left, right = self.left, self.right
        states = left.panel.state(), right.panel.state()
        for side, state in zip((left, right), reversed(states)):
            side.panel.set_selection(state["codec"] or None, state["options"])
        if self.image is None or any(s.busy or s.runner.is_running() or s.failed for s in self.sides()):
            for side in self.sides():
                side.encode()
            return
        kept = [(s.selection, s.result, s.shown) for s in (right, left)]
        for side, (sel, result, shown) in zip((left, right), kept):
            side.shown = shown
            if sel.codec is None:
                side.selection, side.result = sel, None
                side.show_original()
            else:
                side.show_result(sel, result)

    # ----- demo: a contender matched to an anchor's file size
    def show_matched(self, image: LoadedImage, anchor: Selection, contender: Selection) -> None:
        """Put `anchor` on the left, then search the `contender` setting whose file has the same size."""
        self.set_image_only(image)
        self.left.panel.set_selection(anchor.codec, anchor.values)
        self.right.panel.set_selection(contender.codec, contender.values)
        self.right.begin(self.right.panel.selection())
        self.right.metrics.show_busy(f"Searching for the {selection_name(contender.codec, contender.options)} setting "
                                     f"whose file is as large as {selection_name(anchor.codec, anchor.options)}'s…")
        self.right.mark_old("Original for now: searching the setting of equal size…")
        self._demo = True
        self.left.encode(then=self._demo_anchor, on_error=self._demo_failed)

    def _demo_anchor(self, result: CompressResult) -> None:
        if self._demo:
            self.right.make_size(result.size_bytes, then=self._matched)

    def _demo_failed(self, message: str) -> None:
        self._demo = False
        for side in self.sides():
            side.failed = True
            side.metrics.show_error(f"The comparison failed: {message}.")
            side.mark_old("Old picture: the comparison failed")
        self.status_message.emit(f"The demo comparison failed: {message}.")
        self.sentence.refresh()

    def _matched(self, found: TargetSizeResult) -> None:
        self._demo = False
        left, right = self.left.selection, self.right.selection
        self.status_message.emit(f"Demo: {selection_name(right.codec, right.options)} at "
                                 f"{setting_text(right.codec, found.quality)} is the closest size to "
                                 f"{selection_name(left.codec, left.options)}'s file "
                                 f"({found.relative_error * 100:+.1f} %), found in {len(found.probes)} trial encodes.")

    def summary_text(self) -> str:
        return self.summary.text()

    # ----- clipboard
    def copy_command(self, side_name: str) -> None:
        side = self.side(side_name)
        if self.image is None or side.result is None or side.selection.codec is None:
            self.status_message.emit("Nothing to copy: this side shows the original or has not finished encoding.")
            return
        cmd = cli_command(self.image.source, side.selection.codec, side.selection.options)
        QGuiApplication.clipboard().setText(cmd)
        self.status_message.emit(f"Copied to the clipboard: {cmd}")
