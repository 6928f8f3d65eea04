"""The picture of the Compare tab: both sides in one canvas, split by a draggable divider.

`SplitView` draws both sides in one widget with one zoom and one pan, so the two halves can never drift
apart: the pixel under the divider is the same pixel on both sides. At 100 % and from 200 % up, pixels
are drawn as hard squares, because block edges and ringing are exactly what a user zooms in to look at;
other zooms are smoothed, since uneven square sizes would look like artefacts of their own.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QCursor, QImage, QLinearGradient, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QSizePolicy, QWidget

MIN_SCALE, MAX_SCALE = 1 / 64, 64.0
MARK_BG = "#f0b429"          # amber behind "old result" / "failed" marks on the picture
DIVIDER_GRAB_PX = 8

# The one hard-coded palette in the app: a perceptually ordered dark-to-bright ramp (matplotlib's
# "inferno" at eight stops), so larger errors always read as brighter in light and dark themes alike.
_INFERNO = np.array([(0, 0, 4), (40, 11, 84), (101, 21, 110), (159, 42, 99), (212, 72, 66), (245, 125, 21),
                     (250, 193, 39), (252, 255, 164)], dtype=np.float64)
HEAT_LUT = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_INFERNO)), _INFERNO[:, c])
                     for c in range(3)], axis=1).round().astype(np.uint8)


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
        if self._heat:                              # one scale for both maps: both change
            self._refresh_pixmaps()
        elif self._original is not None:            # the other side's picture is unchanged: not converted again
            self._pixmaps[index] = to_pixmap(self._original if decoded is None else decoded)
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

