"""Histogram of one tensor before and after quantization (the numbers come from `core.network.report`).

The original weights are drawn as a filled outline and the quantized ones as bars on the same bins,
so one sees at a glance how many levels survive, where they sit in the distribution, and how many
weights were pulled to zero. The vertical axis is logarithmic by default: the zero bin of a quantized
tensor often holds most weights and would otherwise flatten everything else. The key sits in the
title line rather than in the plot, where it would cover the bars of a narrow plot.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSizePolicy, QStackedWidget, QVBoxLayout, QWidget

from workbench.core.network.report import TensorHistogram
from workbench.ui.live_curves import is_dark, series_color, style_plot_widget

HINT = "Select a tensor in the table to see its histogram before and after quantization."


class TensorHistogramView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._hist: TensorHistogram | None = None
        self._name = ""
        self.plot_widget = pg.PlotWidget()
        self.plot_widget.setMinimumSize(260, 180)
        plot = self.plot_widget.getPlotItem()
        plot.setMenuEnabled(False)
        plot.hideButtons()
        plot.setMouseEnabled(x=True, y=False)
        plot.setLabel("bottom", "weight value")
        self._before = pg.PlotDataItem(stepMode="center", fillLevel=0)
        self._after = pg.BarGraphItem(x=[], height=[], width=0)
        plot.addItem(self._before)
        plot.addItem(self._after)
        self._placeholder = QLabel(HINT)
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setWordWrap(True)
        self._placeholder.setEnabled(False)
        self._stack = QStackedWidget()
        self._stack.addWidget(self._placeholder)
        self._stack.addWidget(self.plot_widget)
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.log_box = QCheckBox("Log scale")
        self.log_box.setToolTip("Logarithmic vertical axis: shows the rare large weights and the small levels "
                                "beside a tall zero bin.")
        self.log_box.setChecked(True)
        self.log_box.toggled.connect(lambda _: self._draw())
        head = QHBoxLayout()
        head.setContentsMargins(0, 0, 0, 0)
        head.addWidget(self.title, 1)
        head.addWidget(self.log_box, 0, Qt.AlignmentFlag.AlignTop)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(head)
        lay.addWidget(self._stack, 1)
        self._colors = (QColor(), QColor())
        self._apply_palette()
        self.clear()

    def show_histogram(self, name: str, hist: TensorHistogram | None) -> None:
        self._name, self._hist = name, hist
        self._draw()

    def clear(self, text: str = HINT) -> None:
        self._name, self._hist = "", None
        self._before.setData([], [])
        self._after.setOpts(x=[], height=[], width=0)
        self.title.setText("")
        self._placeholder.setText(text)
        self._stack.setCurrentWidget(self._placeholder)

    def histogram(self) -> TensorHistogram | None:
        return self._hist

    def _draw(self) -> None:
        h = self._hist
        if h is None:
            self.clear()
            return
        self._stack.setCurrentWidget(self.plot_widget)
        log = self.log_box.isChecked()
        floor = 0.5 / max(h.sampled, 1)        # half a weight: where empty bins sit on a log axis
        base = float(self._y(np.zeros(1), log, floor)[0])
        self._before.setData(h.edges, self._y(h.before, log, floor))
        self._before.setFillLevel(base)
        if h.after is not None:
            used = h.after > 0
            centers = (h.edges[:-1] + h.edges[1:]) / 2
            self._after.setOpts(x=centers[used], y0=base, height=self._y(h.after[used], log, floor) - base,
                                width=(h.edges[1] - h.edges[0]) * 0.8)
        else:
            self._after.setOpts(x=[], height=[], width=0)
        plot = self.plot_widget.getPlotItem()
        left = plot.getAxis("left")
        if log:
            low = math.floor(math.log10(floor))
            left.setTicks([[(k, _percent(10.0 ** k)) for k in range(low, 1)]])
        else:
            left.setTicks(None)
        plot.setLabel("left", "share of weights" + (" (log scale)" if log else " (%)"))
        plot.enableAutoRange()
        self.title.setText(self._title_html(h))

    def _title_html(self, h: TensorHistogram) -> str:
        before, after = (c.name() for c in self._colors)
        # Non-breaking spaces inside each entry: a narrow panel wraps between the entries, never inside one.
        key = f'<span style="color:{before}">■</span>&nbsp;original'
        if h.levels is not None:
            key += (f' &nbsp; <span style="color:{after}">■</span>&nbsp;quantized&nbsp;({h.levels}&nbsp;'
                    f'value{"s" if h.levels != 1 else ""})')
        else:
            key += " (not compressed yet)"
        sampled = "" if h.sampled == h.total else f" (every {-(-h.total // h.sampled)}th counted)"
        return f"<b>{self._name}</b>, {h.total:,} weights{sampled}<br>{key}"

    @staticmethod
    def _y(shares: np.ndarray, log: bool, floor: float) -> np.ndarray:
        shares = np.asarray(shares, dtype=float)
        return np.log10(np.maximum(shares, floor)) if log else shares * 100.0

    # -- palette ---------------------------------------------------------------------------------
    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_palette()
            if self._hist is not None:
                self.title.setText(self._title_html(self._hist))
        super().changeEvent(event)

    def _apply_palette(self) -> None:
        pal = self.palette()
        style_plot_widget(self.plot_widget, pal)
        dark = is_dark(pal)
        before, after = series_color(0, dark), series_color(1, dark)
        self._colors = (before, after)
        fill = QColor(before)
        fill.setAlpha(60)
        self._before.setPen(pg.mkPen(before, width=1.5))
        self._before.setBrush(pg.mkBrush(fill))
        self._after.setOpts(pen=pg.mkPen(after), brush=pg.mkBrush(after))


def _percent(share: float) -> str:
    """Tick labels of the log axis as percentages people read without thinking: 10 %, 1 %, 0.1 %."""
    return f"{share * 100:g} %"
