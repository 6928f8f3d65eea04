"""The Compare tab: two settings of the same image side by side, their numbers, and one sentence.

`SplitView` draws both sides in one widget with one zoom and one pan, split by a draggable divider, so
the two halves can never drift apart: the pixel under the divider is the same pixel on both sides.
At 100 % and from 200 % up, pixels are drawn as hard squares, because block edges and ringing are exactly
what a user zooms in to look at; other zooms are smoothed, since uneven square sizes would look like
artefacts of their own.

`CompareView` wires the two codec panels to background encodes, shows the measured numbers, and asks the
core for the summary sentence; when both sides are different codecs it also sweeps the left codec in the
background, so the sentence can compare at equal quality instead of only point against point.

An encode that optimizes its latents per image runs for tens of seconds, so it is not a fire-and-forget
call: it runs on the side's own `JobRunner`, whose events the Live tab plots and whose Cancel puts the
previous result back, since a cancelled optimization has nothing better to show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction, QColor, QCursor, QFont, QGuiApplication, QImage, QLinearGradient, QPainter, QPalette, QPen, QPixmap,
)
from PySide6.QtWidgets import (
    QFrame, QHBoxLayout, QLabel, QScrollArea, QSizePolicy, QStackedLayout, QToolButton, QVBoxLayout, QWidget,
)

from workbench.core.codecs.learned import LearnedOptions
from workbench.core.errors import WorkbenchError
from workbench.core.images import LoadedImage
from workbench.core.learned.catalog import is_checkpoint_name, model_label, remember_model, zoo_folder
from workbench.core.summary import GLOSSARY, Measurement, RateCurve, format_size, summarize
from workbench.ui.codec_panel import (
    CodecPanel, Selection, SideMetrics, SizeTarget, selection_name, setting_text,
)
from workbench.ui.encode_worker import Worker
from workbench.ui.job_runner import JobRunner
from workbench.ui.export import cli_command

if TYPE_CHECKING:
    from workbench.core.compress import CompressResult
    from workbench.core.target_size import MatchedSize

MIN_SCALE, MAX_SCALE = 1 / 64, 64.0
MARK_BG = "#f0b429"          # amber behind "old result" / "failed" marks on the picture
DIVIDER_GRAB_PX = 8

# The one hard-coded palette in the app: a perceptually ordered dark-to-bright ramp (matplotlib's
# "inferno" at eight stops), so larger errors always read as brighter in light and dark themes alike.
_INFERNO = np.array([(0, 0, 4), (40, 11, 84), (101, 21, 110), (159, 42, 99), (212, 72, 66), (245, 125, 21),
                     (250, 193, 39), (252, 255, 164)], dtype=np.float64)
HEAT_LUT = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_INFERNO)), _INFERNO[:, c])
                     for c in range(3)], axis=1).round().astype(np.uint8)


# The compute modules pull in torch (over a second to import), so they are imported on first use, in the
# worker thread that runs the call: the window appears and stays responsive without waiting for them.
def _compress(*args):
    from workbench.core.compress import compress_image
    return compress_image(*args)


def _compress_job(*args):
    from workbench.core.compress import compress_job
    return compress_job(*args)


def is_long(sel: Selection) -> bool:
    """Encodes that optimize per image take tens of seconds and report every step."""
    return getattr(sel.options, "optimize", 0) > 0


def _match_size(*args):
    from workbench.core.target_size import match_size_job
    return match_size_job(*args)


def _target_size(*args):
    from workbench.core.target_size import target_size_job
    return target_size_job(*args)


def _sweep(*args):
    from workbench.core.target_size import sweep_job
    return sweep_job(*args)


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


def error_map(original: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """Mean absolute error over R, G and B per pixel, in 8-bit levels."""
    diff = np.abs(original.astype(np.int16) - decoded.astype(np.int16)).sum(axis=2, dtype=np.int32)
    return ((diff + 1) // 3).astype(np.uint8)


def heat_scale(*maps: np.ndarray) -> int:
    """The error (in levels) drawn brightest: the 99.5th percentile over both sides, at least 4.

    One shared scale keeps the two sides comparable; a percentile instead of the maximum stops a few
    outlier pixels from turning the rest of the map black.
    """
    counts = sum(np.bincount(m.ravel(), minlength=256) for m in maps)
    cdf = np.cumsum(counts) / max(1, counts.sum())
    return max(4, int(np.searchsorted(cdf, 0.995)))


def legend_labels(scale: int) -> tuple[str, str]:
    """The heat map legend's two ends in plain words: the brightest colour as a share of the full range
    of brightness (0..255), which means something without knowing about 8-bit levels."""
    pct = 100.0 * scale / 255.0
    return "identical", f"off by {pct:.1f} % or more" if pct < 10 else f"off by {pct:.0f} % or more"


def colorize(err: np.ndarray, scale: int) -> np.ndarray:
    idx = np.minimum(err.astype(np.uint32) * 255 // max(1, scale), 255)
    return HEAT_LUT[idx]


def to_pixmap(rgb: np.ndarray) -> QPixmap:
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return QPixmap.fromImage(QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888))


# Short guides at the foot of the two side columns, for people who have never compared codecs.
READING_TIP = ("<b>Reading the numbers</b><br>A smaller size and bpp mean a smaller file; a higher PSNR and "
               "MS-SSIM mean an image closer to the original. Hover over any name for a plain explanation, or "
               "press F1.")
LOOKING_TIP = ("<b>Looking closer</b><br>Drag the divider to move the split, drag the picture to pan and turn the "
               "wheel to zoom; double-click shows 100 %. Ctrl+D colours every pixel by how far it is from the "
               "original.")


class SplitView(QWidget):
    """Both sides of the comparison in one canvas with shared zoom and pan and a draggable divider."""

    zoom_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(240, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setToolTip("Drag the divider to move the split; drag elsewhere to pan; the wheel zooms; "
                        "double-click switches between fit and 100 %.")
        self._original: np.ndarray | None = None
        self._decoded: list[np.ndarray | None] = [None, None]
        self._captions = ["", ""]
        self._marks = ["", ""]                      # "this picture is not of the settings shown", per side
        self._pixmaps: list[QPixmap | None] = [None, None]
        self._heat = False
        self._heat_scale = 0
        self._scale = 1.0
        self._center = QPointF()
        self._fit_mode = True
        self.divider = 0.5
        self._drag: str | None = None               # "divider" | "pan"
        self._last = QPointF()
        self._held_divider: float | None = None     # the divider while the A/B key is held

    # ----- content
    def set_original(self, rgb: np.ndarray) -> None:
        """A new image: both sides show it until their encodes arrive; the view fits it."""
        self._original = rgb
        self._decoded = [None, None]
        self._captions, self._marks = ["", ""], ["", ""]
        self._fit_mode = True
        self._refresh_pixmaps()
        self.fit()

    def set_side(self, index: int, decoded: np.ndarray | None, caption: str) -> None:
        """`decoded` None shows the original on that side."""
        self._decoded[index] = decoded
        self._captions[index] = caption
        self._marks[index] = ""
        self._refresh_pixmaps()
        self.update()

    def caption(self, index: int) -> str:
        return self._captions[index]

    def set_mark(self, index: int, text: str) -> None:
        """Say under a side's caption that its picture is old or failed (empty: it is current)."""
        self._marks[index] = text
        self.update()

    def mark(self, index: int) -> str:
        return self._marks[index]

    def set_heat_map(self, on: bool) -> None:
        self._heat = bool(on)
        self._refresh_pixmaps()
        self.update()

    @property
    def heat_map(self) -> bool:
        return self._heat

    def _refresh_pixmaps(self) -> None:
        if self._original is None:
            self._pixmaps = [None, None]
            return
        if not self._heat:
            self._pixmaps = [to_pixmap(self._original if d is None else d) for d in self._decoded]
            return
        zero = np.zeros(self._original.shape[:2], np.uint8)
        maps = [zero if d is None else error_map(self._original, d) for d in self._decoded]
        self._heat_scale = heat_scale(*maps)
        self._pixmaps = [to_pixmap(colorize(m, self._heat_scale)) for m in maps]

    # ----- zoom and pan
    @property
    def scale(self) -> float:
        return self._scale

    def fit(self) -> None:
        if self._original is None:
            return
        h, w = self._original.shape[:2]
        self._fit_mode = True
        self._set_view(min(self.width() / w, self.height() / h), QPointF(w / 2, h / 2))

    def actual_size(self) -> None:
        self.zoom_to(1.0)

    def zoom_in(self) -> None:
        self.zoom_to(self._scale * 1.25)

    def zoom_out(self) -> None:
        self.zoom_to(self._scale / 1.25)

    def zoom_to(self, scale: float, anchor: QPointF | None = None) -> None:
        """Zoom keeping the image point under `anchor` (default: the centre) where it is on screen."""
        if self._original is None:
            return
        anchor = anchor if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
        fixed = self._to_image(anchor)
        scale = min(MAX_SCALE, max(MIN_SCALE, scale))
        centre = fixed - (anchor - QPointF(self.width() / 2, self.height() / 2)) / scale
        self._fit_mode = False
        self._set_view(scale, centre)

    def _set_view(self, scale: float, centre: QPointF) -> None:
        changed = scale != self._scale
        self._scale, self._center = scale, centre
        self.update()
        if changed:
            self.zoom_changed.emit(scale)

    def _to_image(self, p: QPointF) -> QPointF:
        return self._center + (p - QPointF(self.width() / 2, self.height() / 2)) / self._scale

    def _image_rect(self) -> QRectF:
        h, w = self._original.shape[:2]
        x0 = self.width() / 2 - self._center.x() * self._scale
        y0 = self.height() / 2 - self._center.y() * self._scale
        return QRectF(x0, y0, w * self._scale, h * self._scale)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fit_mode:
            self.fit()

    # ----- painting
    def paintEvent(self, event) -> None:
        p = QPainter(self)
        pal = self.palette()
        p.fillRect(self.rect(), pal.color(QPalette.ColorRole.Window).darker(115))
        if self._original is None or self._pixmaps[0] is None:
            return
        target = self._image_rect().intersected(QRectF(self.rect()))
        if target.isEmpty():
            return
        img = self._image_rect()
        source = QRectF((target.x() - img.x()) / self._scale, (target.y() - img.y()) / self._scale,
                        target.width() / self._scale, target.height() / self._scale)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._scale < 2.0 and self._scale != 1.0)
        split = round(self.divider * self.width())
        for index, clip in ((0, QRectF(0, 0, split, self.height())),
                            (1, QRectF(split, 0, self.width() - split, self.height()))):
            p.setClipRect(clip)
            p.drawPixmap(target, self._pixmaps[index], source)
        p.setClipping(False)
        self._paint_divider(p, split)
        for index in (0, 1):
            self._paint_caption(p, self._caption_text(index), left=index == 0, mark=self._marks[index])
        if self._heat:
            self._paint_legend(p)

    def _caption_text(self, index: int) -> str:
        text = self._captions[index]
        if self._heat and self._decoded[index] is None:
            text += " (no error)"
        return text

    def _paint_divider(self, p: QPainter, x: int) -> None:
        pal = self.palette()
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setPen(QPen(pal.color(QPalette.ColorRole.Highlight), 2))
        p.drawLine(x, 0, x, self.height())
        c = QPointF(x, self.height() / 2)
        p.setBrush(pal.color(QPalette.ColorRole.Highlight))
        p.drawEllipse(c, 14, 14)
        p.setPen(QPen(pal.color(QPalette.ColorRole.HighlightedText), 2))
        for sign in (-1, 1):                                       # two small arrow heads: "drag sideways"
            tip = c + QPointF(sign * 8, 0)
            p.drawLine(tip, tip + QPointF(-sign * 5, -5))
            p.drawLine(tip, tip + QPointF(-sign * 5, 5))

    def _paint_caption(self, p: QPainter, text: str, left: bool, mark: str = "") -> None:
        """The caption in a tooltip-coloured box; a mark below it in amber, the colour of a warning in
        light and dark themes alike, so an old picture cannot pass for the current one."""
        pal = self.palette()
        top = 10.0
        for line, bg, fg in ((text, QColor(pal.color(QPalette.ColorRole.ToolTipBase)),
                              pal.color(QPalette.ColorRole.ToolTipText)),
                             (mark, QColor(MARK_BG), QColor(Qt.GlobalColor.black))):
            if not line:
                continue
            # each side's caption keeps to its half, so two long names never cover each other
            line = p.fontMetrics().elidedText(line, Qt.TextElideMode.ElideMiddle, max(40, self.width() // 2 - 36))
            r = QRectF(p.fontMetrics().boundingRect(line)).adjusted(-8, -4, 8, 4)
            r.moveTop(top)
            if left:
                r.moveLeft(10)
            else:
                r.moveRight(self.width() - 10)
            bg.setAlpha(230)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(bg)
            p.drawRoundedRect(r, 6, 6)
            p.setPen(fg)
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, line)
            top = r.bottom() + 4

    def _paint_legend(self, p: QPainter) -> None:
        pal = self.palette()
        fm = p.fontMetrics()
        lo, hi = legend_labels(self._heat_scale)
        bar_w = 160
        w = fm.horizontalAdvance(lo) + bar_w + fm.horizontalAdvance(hi) + 40
        box = QRectF((self.width() - w) / 2, self.height() - fm.height() - 22, w, fm.height() + 12)
        bg = QColor(pal.color(QPalette.ColorRole.ToolTipBase))
        bg.setAlpha(220)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(bg)
        p.drawRoundedRect(box, 6, 6)
        x = box.left() + 10
        p.setPen(pal.color(QPalette.ColorRole.ToolTipText))
        p.drawText(QRectF(x, box.top(), fm.horizontalAdvance(lo), box.height()), Qt.AlignmentFlag.AlignVCenter, lo)
        x += fm.horizontalAdvance(lo) + 10
        grad = QLinearGradient(x, 0, x + bar_w, 0)
        for i, (r, g, b) in enumerate(_INFERNO):
            grad.setColorAt(i / (len(_INFERNO) - 1), QColor(int(r), int(g), int(b)))
        p.fillRect(QRectF(x, box.top() + 6, bar_w, box.height() - 12), grad)
        x += bar_w + 10
        p.drawText(QRectF(x, box.top(), fm.horizontalAdvance(hi) + 2, box.height()), Qt.AlignmentFlag.AlignVCenter, hi)

    # ----- mouse
    def _near_divider(self, x: float) -> bool:
        return abs(x - self.divider * self.width()) <= DIVIDER_GRAB_PX

    def mousePressEvent(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._original is None:
            return super().mousePressEvent(event)
        pos = event.position()
        self._drag = "divider" if self._near_divider(pos.x()) else "pan"
        self._last = pos
        if self._drag == "pan":
            self.setCursor(Qt.CursorShape.ClosedHandCursor)

    def mouseMoveEvent(self, event) -> None:
        pos = event.position()
        if self._drag == "divider":
            self.divider = min(1.0, max(0.0, pos.x() / max(1, self.width())))
            self.update()
        elif self._drag == "pan":
            self._fit_mode = False
            self._set_view(self._scale, self._center - (pos - self._last) / self._scale)
            self._last = pos
        elif self._original is not None:
            self.setCursor(Qt.CursorShape.SplitHCursor if self._near_divider(pos.x())
                           else Qt.CursorShape.OpenHandCursor)

    def mouseReleaseEvent(self, event) -> None:
        self._drag = None
        if self._original is not None:
            self.setCursor(Qt.CursorShape.SplitHCursor if self._near_divider(event.position().x())
                           else Qt.CursorShape.OpenHandCursor)

    def mouseDoubleClickEvent(self, event) -> None:
        if self._original is None or self._near_divider(event.position().x()):
            return
        if self._fit_mode or abs(self._scale - 1.0) > 1e-6:
            self.zoom_to(1.0, event.position())
        else:
            self.fit()

    # ----- A/B: hold the key to see the other side across the whole view
    AB_KEY = Qt.Key.Key_Space

    def keyPressEvent(self, event) -> None:
        if event.key() == self.AB_KEY and self._original is not None:
            if not event.isAutoRepeat() and self._held_divider is None:
                self.show_full(1 - self.side_under_cursor())
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:
        if event.key() == self.AB_KEY and not event.isAutoRepeat():
            self.end_full()
            return
        super().keyReleaseEvent(event)

    def side_under_cursor(self) -> int:
        """0 (left) or 1 (right): where the mouse is, left when it is not over the view."""
        pos = self.mapFromGlobal(QCursor.pos())
        inside = self.rect().contains(pos)
        return int(inside and pos.x() >= self.divider * self.width())

    def show_full(self, index: int) -> None:
        """Side `index` across the whole view, until `end_full` puts the divider back."""
        if self._held_divider is None:
            self._held_divider = self.divider
        self.divider = 1.0 if index == 0 else 0.0
        self.update()

    def end_full(self) -> None:
        if self._held_divider is not None:
            self.divider, self._held_divider = self._held_divider, None
            self.update()

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps and self._original is not None:
            self.zoom_to(self._scale * 1.25 ** steps, event.position())


@dataclass
class _Side:
    """What one side currently shows; `selection` is what was asked for, `result` what was measured."""

    name: str                       # "left" | "right" (also the worker channel)
    index: int
    panel: CodecPanel
    metrics: SideMetrics
    runner: JobRunner
    selection: Selection = field(default_factory=lambda: Selection(None))
    result: CompressResult | None = None
    failed: bool = False
    # A long encode: `wanted` is the latest one asked for, `running` the one the runner works on; they
    # differ while a superseded job winds down. `shown` is what Cancel puts back: (selection, result),
    # result None for the original, None when nothing of this image was shown yet.
    wanted: Selection | None = None
    running: Selection | None = None
    shown: tuple[Selection, CompressResult | None] | None = None
    size: SizeTarget | None = None
    copy_button: QToolButton | None = None


class CompareView(QWidget):
    """The Compare tab; the main window feeds it images and reads results for export."""

    status_message = Signal(str)
    live_requested = Signal()        # the user asked to see a long encode's curves
    model_opened = Signal(str)       # a side's learned model, opened by a drop (its path)
    not_a_model = Signal(str)        # a dropped checkpoint that holds another network (its path)
    model_failed = Signal(str)       # why a dropped file cannot be a side's model (one line)

    def __init__(self, worker: Worker, parent: QWidget | None = None):
        super().__init__(parent)
        self.worker = worker
        self.image: LoadedImage | None = None
        self._curves: dict[tuple, RateCurve] = {}
        self._sweeping: tuple | None = None          # the curve being measured right now
        self.view = SplitView()
        self.left = self._make_side("left", 0, "Left side")
        self.right = self._make_side("right", 1, "Right side")

        self.summary = QLabel()
        self.summary.setObjectName("summary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setToolTip(GLOSSARY["verdict"])
        font = QFont(self.summary.font())
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.summary.setFont(font)
        self.summary_hint = QLabel()
        self.summary_hint.setWordWrap(True)
        self.summary_hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)

        self.welcome = QWidget()
        self._welcome_buttons = QHBoxLayout()
        self._build_welcome()
        self._stack = QStackedLayout()
        self._stack.addWidget(self.welcome)
        self._stack.addWidget(self.view)

        centre = QVBoxLayout()
        centre.addLayout(self._stack, 1)
        centre.addWidget(self.summary)
        centre.addWidget(self.summary_hint)
        lay = QHBoxLayout(self)
        lay.addWidget(self._column(self.left, READING_TIP), 0)
        lay.addLayout(centre, 1)
        lay.addWidget(self._column(self.right, LOOKING_TIP), 0)
        self._show_summary()

    # ----- construction
    def _make_side(self, name: str, index: int, title: str) -> _Side:
        side = _Side(name, index, CodecPanel(title), SideMetrics(), JobRunner(self), size=SizeTarget())
        side.size.match_requested.connect(partial(self.match_other, side))
        side.size.target_requested.connect(partial(self.make_size, side))
        side.copy_button = QToolButton()
        side.copy_button.setText("Copy settings to the other side")
        side.copy_button.setToolTip("Give the other side this side's codec and settings (and its result).")
        side.copy_button.clicked.connect(partial(self.copy_to_other, side))
        side.panel.changed.connect(partial(self._panel_changed, side))
        side.metrics.copy_button.clicked.connect(partial(self.copy_command, name))
        side.metrics.cancel_button.clicked.connect(partial(self._cancel_job, side))
        side.metrics.live_requested.connect(self.live_requested)
        side.runner.progress.connect(partial(self._job_progress, side))
        side.runner.finished.connect(partial(self._job_finished, side))
        side.runner.failed.connect(partial(self._job_failed, side))
        side.runner.cancelled.connect(partial(self._job_cancelled, side))
        side.runner.paused_changed.connect(partial(self._job_paused, side))
        return side

    def _column(self, side: _Side, tip: str) -> QScrollArea:
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

    def sides(self) -> tuple[_Side, _Side]:
        return self.left, self.right

    def side(self, name: str) -> _Side:
        return self.left if name == "left" else self.right

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
            self._encode(side)

    def _panel_changed(self, side: _Side) -> None:
        if self.worker.is_pending("demo"):
            self.worker.cancel("demo")         # the user took over: encode both sides as they are now
            for s in self.sides():
                self._encode(s)
        else:
            self._encode(side)

    def _encode(self, side: _Side) -> None:
        try:
            side.selection = side.panel.selection()
        except WorkbenchError as err:  # an option the panel could not build; say which, keep the old image
            side.metrics.show_error(f"These settings are not valid: {err}.")
            self._mark_old(side, "Old picture: the new settings are not valid")
            return
        side.result, side.failed = None, False
        if self.image is None:
            return
        image, sel = self.image, side.selection
        if sel.codec is None:
            self.worker.cancel(side.name)
            self._stop_job(side)
            self._show_original(side)
            return
        if is_long(sel):
            self.worker.cancel(side.name)
            side.metrics.show_job(f"Optimizing latents with {selection_name(sel.codec, sel.options)}: starting…", 0,
                                  sel.options.optimize)
            self._mark_old(side, "Old picture: optimizing for the new settings…")
            self._show_summary()
            side.wanted = sel
            if side.runner.is_running():
                side.runner.cancel()                # `wanted` starts once the superseded job has stopped
            else:
                self._start_job(side)
            return
        self._stop_job(side)
        side.metrics.show_busy(f"Encoding with {selection_name(sel.codec, sel.options)}…" + (
            " The greyed numbers are of the previous settings." if side.shown is not None else ""))
        self._mark_old(side, "Old picture: encoding the new settings…")
        self._show_summary()
        self.worker.submit(side.name, partial(_compress, image.rgb, sel.codec, sel.options),
                           on_done=partial(self._encoded, side, sel), on_error=partial(self._failed, side))

    def _mark_old(self, side: _Side, why: str) -> None:
        """The picture and numbers on screen are not of the settings in the panel: say so on both, until a
        result of the panel's settings replaces them."""
        if side.shown is None:                         # nothing of this image encoded yet: the original shows
            self.view.set_side(side.index, None, "Original")
            why = why.replace("Old picture", "Original for now")
        self.view.set_mark(side.index, why)
        side.metrics.set_stale(True)

    def _show_original(self, side: _Side) -> None:
        image = self.image
        side.shown = (side.selection, None)
        self.view.set_side(side.index, None, "Original")
        side.metrics.show_original(image.file_size, image.pixels, image.format)
        self._show_summary()

    # ----- long encodes (per-image optimization) on the side's JobRunner
    def _start_job(self, side: _Side) -> None:
        sel = side.running = side.wanted
        side.runner.start(partial(_compress_job, self.image.rgb, sel.codec, sel.options))

    def _stop_job(self, side: _Side) -> None:
        side.wanted = None
        side.runner.cancel()

    def _cancel_job(self, side: _Side) -> None:
        """The side's Cancel: the previous result is back at once, while the job stops after its current step
        (the Live tab's Cancel restores it on the runner's `cancelled` instead)."""
        if side.wanted is not None:
            self._stop_job(side)
            self._restore(side)

    def _job_progress(self, side: _Side, progress) -> None:
        if side.running is not side.wanted:
            return
        if progress.total and progress.step >= progress.total:
            text = "Optimized; writing the file and measuring it…"
        else:
            text = (progress.message[:1].upper() + progress.message[1:] + "…") if progress.message else "Encoding…"
        side.metrics.show_job(text, progress.step, progress.total)

    def _job_paused(self, side: _Side, paused: bool) -> None:
        """Pause is pressed in the Live tab; the side's progress line says so too."""
        if side.wanted is None or side.running is not side.wanted:
            return
        bar = side.metrics.progress
        text = f"Paused at step {bar.value()} of {bar.maximum()}; Resume is in the Live tab" if paused else \
            "Resuming…"
        side.metrics.show_job(text, bar.value(), bar.maximum() or None)

    def _job_finished(self, side: _Side, result: CompressResult) -> None:
        sel, side.running = side.running, None
        if sel is side.wanted:
            side.wanted = None
            self._encoded(side, sel, result)
        else:
            self._start_wanted_later(side)

    def _job_failed(self, side: _Side, message: str) -> None:
        sel, side.running = side.running, None
        if sel is side.wanted:
            side.wanted = None
            self._failed(side, message)
        else:
            self._start_wanted_later(side)

    def _job_cancelled(self, side: _Side) -> None:
        sel, side.running = side.running, None
        if sel is side.wanted:                      # the user pressed Cancel (here or in the Live tab)
            side.wanted = None
            self._restore(side)
        else:
            self._start_wanted_later(side)

    def _start_wanted_later(self, side: _Side) -> None:
        """After the runner's last signal: starting inside it would let the Live tab's own handler of that
        signal mark the new job as ended."""
        QTimer.singleShot(0, partial(self._start_wanted, side))

    def _start_wanted(self, side: _Side) -> None:
        if side.wanted is not None and not side.runner.is_running():
            self._start_job(side)

    def _restore(self, side: _Side) -> None:
        """Show the last finished result again, with the settings that made it, in the panel too."""
        label = side.name.capitalize()
        if side.shown is None:
            side.failed = True
            side.metrics.show_error("Cancelled before the first result; change a setting to encode again.")
            self._mark_old(side, "Old picture: cancelled")
            self.status_message.emit(f"{label} side: optimization cancelled.")
            self._show_summary()
            return
        sel, result = side.shown
        side.panel.set_selection(sel.codec, sel.values)
        side.selection = sel
        if result is None:
            self._show_original(side)
        else:
            self._encoded(side, sel, result)
        self.status_message.emit(f"{label} side: optimization cancelled; the previous result is shown again.")

    def shutdown(self) -> None:
        """Stop both sides' long encodes (window close)."""
        for side in self.sides():
            self._stop_job(side)
            side.runner.shutdown()

    def _encoded(self, side: _Side, sel: Selection, result: CompressResult) -> None:
        side.selection, side.result = sel, result
        side.shown = (sel, result)
        caption = f"{selection_name(sel.codec, sel.options)} · {setting_text(sel.codec, sel.options.quality)} · " \
                  f"{format_size(result.size_bytes)}"
        self.view.set_side(side.index, result.reconstruction, caption)
        side.metrics.show_result(result, self.image.file_size)
        self._show_summary()
        self._ensure_sweep()

    def _failed(self, side: _Side, message: str) -> None:
        side.failed = True
        side.metrics.show_error(f"Encoding failed: {message}.")
        self._mark_old(side, "Old picture: the new settings failed")
        self.status_message.emit(f"{side.name.capitalize()} side: encoding failed: {message}.")
        self._show_summary()

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

    def _checked_model(self, side: _Side, path: Path, arch: str | None) -> None:
        if arch is None:
            self.not_a_model.emit(str(path))
        else:
            self._use_model(side, path, arch)

    def _use_model(self, side: _Side, path: Path, arch: str, qualities: list[int] | None = None) -> None:
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
    def other(self, side: _Side) -> _Side:
        return self.right if side is self.left else self.left

    def match_other(self, side: _Side) -> bool:
        """This side's quality searched for a file as large as the other side's."""
        other = self.other(side)
        size = other.result.size_bytes if other.result is not None else \
            (self.image.file_size if other.selection.codec is None and self.image is not None else None)
        if size is None:
            self.status_message.emit("The other side has no file yet to match; wait for it or choose a codec there.")
            return False
        return self.make_size(side, size)

    def make_size(self, side: _Side, target_bytes: int) -> bool:
        """Search this side's quality whose file is closest to `target_bytes`, then show that result."""
        sel = side.panel.selection()
        if self.image is None or sel.codec is None:
            self.status_message.emit("Choose a codec on this side first: the original file has one size only.")
            return False
        self.worker.cancel(side.name)
        self._stop_job(side)
        side.selection, side.result, side.failed = sel, None, False
        side.metrics.show_busy(f"Searching the {selection_name(sel.codec, sel.options)} setting closest to "
                               f"{format_size(target_bytes)}…")
        self._mark_old(side, f"Old picture: searching the setting for {format_size(target_bytes)}…")
        self._show_summary()
        self.worker.submit(side.name, partial(_target_size, self.image.rgb, sel.codec, target_bytes, sel.options),
                           on_done=partial(self._sized, side, sel), on_error=partial(self._failed, side),
                           on_progress=lambda p: side.metrics.show_busy(f"Searching: {p.message}…"))
        return True

    def _sized(self, side: _Side, sel: Selection, found) -> None:
        side.panel.set_selection(sel.codec, {**sel.values, "quality": found.quality})
        self._encoded(side, side.panel.selection(), found.result)
        off = found.result.size_bytes / found.target_bytes - 1.0
        self.status_message.emit(f"{side.name.capitalize()} side: {setting_text(sel.codec, found.quality)} gives "
                                 f"{format_size(found.result.size_bytes)} ({off * 100:+.1f} % from the target), "
                                 f"found in {len(found.probes)} trial encodes.")

    def copy_to_other(self, side: _Side) -> None:
        """The other side gets this side's codec and settings, and its result when there is one."""
        other, sel = self.other(side), side.panel.selection()
        other.panel.set_selection(sel.codec, sel.values)
        if side.result is not None and side.selection == sel:
            self.worker.cancel(other.name)
            self._stop_job(other)
            other.failed = False
            self._encoded(other, sel, side.result)
        else:
            self._encode(other)

    def swap_sides(self) -> None:
        """Exchange the two sides' settings and results (no re-encode when both are finished)."""
        left, right = self.left, self.right
        states = left.panel.state(), right.panel.state()
        for side, state in zip((left, right), reversed(states)):
            side.panel.set_selection(state["codec"] or None, state["options"])
        busy = any(self.worker.is_pending(s.name) or s.runner.is_running() or s.failed for s in self.sides())
        if self.image is None or busy:
            for side in self.sides():
                self._encode(side)
            return
        kept = [(s.selection, s.result, s.shown) for s in (right, left)]
        for side, (sel, result, shown) in zip((left, right), kept):
            side.shown = shown
            if sel.codec is None:
                side.selection, side.result = sel, None
                self._show_original(side)
            else:
                self._encoded(side, sel, result)

    # ----- demo: a contender matched to an anchor's file size
    def show_matched(self, image: LoadedImage, anchor: Selection, contender: Selection) -> None:
        """Put `anchor` on the left and search the `contender` setting whose file has the same size."""
        self.set_image_only(image)
        self.left.panel.set_selection(anchor.codec, anchor.values)
        self.right.panel.set_selection(contender.codec, contender.values)
        for side in self.sides():
            self.worker.cancel(side.name)
            self._stop_job(side)
            side.selection, side.result, side.failed = side.panel.selection(), None, False
        self.left.metrics.show_busy(f"Encoding with {selection_name(anchor.codec, anchor.options)}…")
        self.right.metrics.show_busy(f"Searching for the {selection_name(contender.codec, contender.options)} setting whose file is as "
                                     f"large as {selection_name(anchor.codec, anchor.options)}'s…")
        self._mark_old(self.left, "Original for now: encoding…")
        self._mark_old(self.right, "Original for now: searching the setting of equal size…")
        self._show_summary()
        left_opts, right_opts = self.left.selection.options, self.right.selection.options
        self.worker.submit("demo", partial(_match_size, image.rgb, anchor.codec, left_opts, contender.codec,
                                           right_opts),
                           on_done=self._matched, on_error=self._demo_failed, on_progress=self._demo_progress)

    def _demo_progress(self, progress) -> None:
        if "size_bytes" in progress.metrics:               # one trial encode of the size search
            self.right.metrics.show_busy(f"Searching: {progress.message}…")

    def _demo_failed(self, message: str) -> None:
        for side in self.sides():
            side.failed = True
            side.metrics.show_error(f"The comparison failed: {message}.")
            self._mark_old(side, "Old picture: the comparison failed")
        self.status_message.emit(f"The demo comparison failed: {message}.")
        self._show_summary()

    def set_image_only(self, image: LoadedImage) -> None:
        """Show a new image without encoding either side (the caller will supply the results)."""
        self.worker.cancel("demo")
        self.worker.cancel("sweep")                  # a sweep of the previous image must not land on this one
        for side in self.sides():
            self._stop_job(side)
            side.shown = None
        self.image = image
        self._curves.clear()
        self._stack.setCurrentWidget(self.view)
        self.view.set_original(image.rgb)

    def _matched(self, matched: MatchedSize) -> None:
        left, right, found = self.left, self.right, matched.contender
        right.panel.set_selection(right.selection.codec, {**right.selection.values, "quality": found.quality})
        self._encoded(left, left.selection, matched.anchor)
        self._encoded(right, right.panel.selection(), found.result)
        codec = right.selection.codec
        self.status_message.emit(f"Demo: {selection_name(codec, right.selection.options)} at {setting_text(codec, found.quality)} is the closest "
                                 f"size to {selection_name(left.selection.codec, left.selection.options)}'s file "
                                 f"({found.relative_error * 100:+.1f} %), found in {len(found.probes)} trial encodes.")

    # ----- summary
    def _measurement(self, side: _Side) -> Measurement | None:
        image = self.image
        if image is None:
            return None
        if side.selection.codec is None:
            return Measurement(f"the original {image.format} file", image.file_size, image.pixels, is_original=True)
        r = side.result
        if r is None:
            return None
        codec = side.selection.codec
        return Measurement(selection_name(codec, side.selection.options), r.size_bytes, image.pixels, r.quality.psnr, r.quality.ms_ssim_db,
                           setting=setting_text(codec, side.selection.options.quality))

    @staticmethod
    def _curve_key(sel: Selection) -> tuple:
        return (sel.codec,) + tuple(sorted((k, v) for k, v in sel.values.items() if k != "quality"))

    def _ensure_sweep(self) -> None:
        """Sweep the left codec once per image and setting, so the sentence can compare at equal quality."""
        left, right = self.left.selection, self.right.selection
        if self.image is None or left.codec is None or right.codec is None or \
                selection_name(left.codec, left.options) == selection_name(right.codec, right.options):
            return
        if is_long(left):
            self.summary_hint.setText("No equal-quality comparison for per-image optimization: measuring it at "
                                      "several settings would take minutes.")
            self.summary_hint.setVisible(True)
            return
        key = self._curve_key(left)
        if key in self._curves or (key == self._sweeping and self.worker.is_pending("sweep")):
            return
        self._sweeping = key
        name = selection_name(left.codec, left.options)
        self.summary_hint.setText(f"Measuring {name} at several settings to compare at equal quality…")
        self.summary_hint.setVisible(True)
        self.worker.submit("sweep", partial(_sweep, self.image.rgb, left.codec, left.options, name),
                           on_done=partial(self._swept, key), on_error=self._sweep_failed,
                           on_progress=lambda p: self.summary_hint.setText(
                               f"Measuring {name} at several settings to compare at equal quality "
                               f"({p.step} of {p.total})…"))

    def _swept(self, key: tuple, curve: RateCurve) -> None:
        self._curves[key] = curve
        self.summary_hint.setVisible(False)
        self._show_summary()

    def _sweep_failed(self, message: str) -> None:
        self.summary_hint.setText(f"No equal-quality comparison: the sweep failed ({message}).")

    def _show_summary(self) -> None:
        if self.image is None:
            self.summary.setText("")
            self.summary_hint.setVisible(False)
            return
        left, right = self._measurement(self.left), self._measurement(self.right)
        failed = [s.name for s in self.sides() if s.failed]
        if failed:
            which = "the left and right sides" if len(failed) == 2 else f"the {failed[0]} side"
            self.summary.setText(f"No comparison: {which} could not be encoded (the reason is shown beside the "
                                 f"image).")
            return
        if left is None or right is None:
            self.summary.setText("Waiting for both sides to finish encoding…")
            return
        curves = [self._curves.get(self._curve_key(s.selection)) if s.selection.codec else None for s in self.sides()]
        self.summary.setText(summarize(left, right, *curves))
        if not self.worker.is_pending("sweep"):
            self.summary_hint.setVisible(False)

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

