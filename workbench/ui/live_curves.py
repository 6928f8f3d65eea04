"""Live plots of whatever scalar metrics a running job reports.

Jobs differ in what they measure (an annealing quantizer reports entropy, sigma and the soft-hard
gap; a sweep reports bpp and PSNR), so the widget does not know the keys in advance: one small plot
appears for every key the first time it is seen. Raw values are noisy during training, hence an
exponential moving average drawn on top of the faint raw series, with the smoothing under the
user's control. Plots keep every point; pyqtgraph's peak downsampling and clip-to-view keep
redraws cheap however long the run gets.
"""

from __future__ import annotations

import html
import math
import time
import weakref
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, QTimer, Slot
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QHBoxLayout, QLabel, QProgressBar, QPushButton, QSizePolicy, QSlider, QVBoxLayout, QWidget,
)
from scipy.signal import lfilter

from workbench.core.codecs import codec_class
from workbench.core.errors import WorkbenchError
from workbench.core.jobs import Progress, duration_text
from workbench.ui.job_runner import JobRunner, any_job_running


@dataclass(frozen=True)
class MetricInfo:
    title: str
    unit: str
    help: str


# Titles, units and plain-language explanations for the keys the core's jobs emit. Unknown keys
# still get a plot, titled from the key itself.
KNOWN_METRICS: dict[str, MetricInfo] = {
    "loss": MetricInfo("Loss", "", "The training objective R + λ·D; lower is better."),
    "rate": MetricInfo("Rate", "bpp", "Estimated bits per pixel from the entropy model."),
    "bpp": MetricInfo("Rate", "bpp", "Bits per pixel: file size in bits divided by the number of pixels."),
    "est_bpp": MetricInfo("Estimated rate", "bpp", "Bits per pixel the entropy model predicts."),
    "entropy": MetricInfo("Entropy", "bits/symbol", "Average information per coded symbol; what an ideal "
                          "entropy coder would spend."),
    "bits_per_weight": MetricInfo("Rate", "bits/weight", "Compressed size of the network per parameter."),
    "distortion": MetricInfo("Distortion", "", "The distortion term D of the loss."),
    "mse": MetricInfo("MSE", "", "Mean squared error between original and reconstruction (0..255 scale)."),
    "psnr": MetricInfo("PSNR", "dB", "Peak signal-to-noise ratio; higher means closer to the original. "
                       "+1 dB is a clearly visible step at low quality."),
    "ms_ssim": MetricInfo("MS-SSIM", "", "Multi-scale structural similarity, 0..1; closer to 1 means the "
                          "structure of the image is better preserved."),
    "ms_ssim_db": MetricInfo("MS-SSIM", "dB", "MS-SSIM as −10·log10(1 − MS-SSIM), so small gains near 1 "
                             "stay visible."),
    "sigma": MetricInfo("Softness σ", "", "Sharpness of the soft assignment to codebook centres; annealed "
                        "upwards so the soft quantizer approaches the hard one."),
    "temperature": MetricInfo("Temperature", "", "How far the stochastic rounding surrogate is from hard "
                              "rounding; falls during training."),
    "soft_hard_gap": MetricInfo("Soft–hard gap", "", "Difference between the soft and the hard quantized "
                                "values; should shrink as σ grows."),
    "gap": MetricInfo("Soft–hard gap", "", "Difference between the soft (trained) and the hard (coded) "
                      "quantization's values or loss; should shrink during annealing."),
    "rate_bpp": MetricInfo("Rate (soft)", "bpp", "Bits per pixel the entropy model estimates for the softly "
                           "rounded latents being optimized."),
    "hard_bpp": MetricInfo("Rate (hard)", "bpp", "Bits per pixel of the latents rounded as they will be coded."),
    "hard_loss": MetricInfo("Loss (hard)", "", "The objective R + λ·D with the latents rounded as they will be "
                            "coded; the encoder keeps the step where it was lowest."),
    "val_bpp_hard": MetricInfo("Held-out rate", "bpp", "Bits per pixel of held-out crops with the latents "
                               "rounded as the coder rounds them (mean over the quality levels)."),
    "val_psnr_hard": MetricInfo("Held-out PSNR", "dB", "PSNR of held-out crops decoded from rounded latents."),
    "native_bpp_hard": MetricInfo("Own-scale rate", "bpp", "Bits per pixel of crops of held-out "
                                  "photographs at their own size, not scaled down as the training crops are: "
                                  "what a change has to hold at too (latents rounded as the coder rounds them)."),
    "native_psnr_hard": MetricInfo("Own-scale PSNR", "dB", "PSNR of crops of held-out photographs at "
                                   "their own size, decoded from rounded latents."),
    "mismatch_bpp": MetricInfo("Soft–hard gap, rate", "bpp", "Held-out rate through the training surrogate "
                               "minus through real rounding; near 0 means training sees what the coder does."),
    "mismatch_psnr": MetricInfo("Soft–hard gap, PSNR", "dB", "Held-out PSNR through the training surrogate "
                                "minus through real rounding."),
    "val_psnr": MetricInfo("PSNR", "dB", "PSNR of held-out crops decoded by the decoder "
                           "being finetuned from the latents its quantizer decides (mean over the quality levels)."),
    "val_gain_db": MetricInfo("Gain", "dB", "Held-out PSNR of the finetuned decoder minus the "
                              "original's, at the same file size (the encoder does not change)."),
    "val_ms_ssim": MetricInfo("MS-SSIM", "", "MS-SSIM of held-out crops decoded by the decoder being finetuned "
                              "(models trained for MS-SSIM only; the original decoder's is in progress.jsonl)."),
    "lambda": MetricInfo("λ", "", "Rate-distortion trade-off weight of the loss."),
    "lr": MetricInfo("Learning rate", "", "Optimizer step size."),
    "accuracy": MetricInfo("Accuracy", "", "Share of test samples the network classifies correctly "
                           "(1 = all of them)."),
    "snr_db": MetricInfo("SNR", "dB", "Signal-to-noise ratio of the quantized weights: how far they moved, "
                         "in dB; higher means closer to the original weights."),
    "total_rate": MetricInfo("Rate so far", "bits", "Estimated bits of all weights quantized so far "
                             "(their entropy times their number)."),
    "step_size": MetricInfo("Step Δ", "", "Quantization step size."),
}

_COLUMNS = 3
_DEFAULT_SMOOTHING = 0.6
#: Each plot is refreshed at most 10 times a second, and plots take turns: one plot per event-loop
#: pass, at least MIN_TICK_MS apart. Repainting a plot costs several milliseconds, and Qt repaints
#: every dirty widget of a window in one pass, so updating the whole grid at once would freeze the
#: window for the sum of them. The progress bar and status line still follow every delivered event.
REDRAW_INTERVAL_MS = 100
MIN_TICK_MS = 15
#: Plot widgets built ahead, one every SPARE_BUILD_MS while no job runs: building one takes 7 ms of
#: Python, two to five times that while a job's thread competes for the interpreter lock, and a job
#: brings its metrics (up to nine) just when it is busiest, at its start and its end.
SPARE_PLOTS = 9
SPARE_BUILD_MS = 100

_turn = {"start": 0.0, "over": 0.0}      # when the last plot's turn began, and when the passes after it were over


def take_turn() -> bool:
    """Whether a plot may be brought up to date now; a plot refused asks again MIN_TICK_MS later.

    Qt paints every changed widget of a window in one pass, whichever view it is in. The RD tab's PSNR plot
    and the Live tab's two sweep plots, all set where a sweep's points were received, made that slot take
    11-14 ms of the GUI thread's CPU and the paint pass after it 14-16 ms (busy machine); taking turns
    across views, 2-4 ms and 11-13 ms (benchmarks/gui_thread_work.py). A turn is over when the event loop
    has handled what the new data set off (pyqtgraph's layout and repaint, 5-20 ms of queued work on a busy
    machine), and the next plot waits a little after that, so the loop's other timers come in between.
    """
    now = time.monotonic()
    pending = _turn["over"] < _turn["start"] and now - _turn["start"] < 0.5   # (no loop running: go on)
    if pending or now - max(_turn["over"], _turn["start"]) < MIN_TICK_MS / 2000.0:
        return False
    _turn["start"] = now
    QTimer.singleShot(0, _turn_over)
    return True


def _turn_over() -> None:
    _turn["over"] = time.monotonic()


class PlotTurns:
    """The plots of one view that wait for data that arrived, brought up to date one per turn (`take_turn`)
    by `redraw(which)`, `interval()` ms apart, and by default only while the view is shown: a hidden tab
    catches up when it is shown again (the view calls `schedule` from its showEvent).

    The view owns its turns, so they hold it and its methods weakly: a strong reference back would put the
    widget in a reference cycle, which Python's collector frees at an arbitrary moment (a collection
    during a sweep) instead of when Qt drops the widget."""

    def __init__(self, view: QWidget, redraw: Callable[[str], None], *,
                 interval: Callable[[], int] | None = None, while_hidden: bool = False):
        self._view, self._redraw = weakref.ref(view), weakref.WeakMethod(redraw)
        self._interval = None if interval is None else weakref.WeakMethod(interval)
        self._while_hidden = while_hidden
        self._pending: dict[str, None] = {}         # in the order they were asked for
        self._timer = QTimer(view)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._next)

    def request(self, *which: str) -> None:
        self._pending.update(dict.fromkeys(which))
        self.schedule()

    def clear(self) -> None:
        self._pending.clear()
        self._timer.stop()

    def is_drawn(self) -> bool:
        return not self._pending

    def _shown(self) -> bool:
        view = self._view()
        return view is not None and (self._while_hidden or view.isVisible())

    def schedule(self) -> None:
        if self._pending and self._shown() and not self._timer.isActive():
            self._timer.start(self._delay())

    def _delay(self) -> int:
        interval = None if self._interval is None else self._interval()
        return MIN_TICK_MS if interval is None else interval()

    def _next(self) -> None:
        if not self._pending or not self._shown():
            return
        if not take_turn():
            self._timer.start(MIN_TICK_MS)
            return
        redraw = self._redraw()
        if redraw is None:
            return
        which = next(iter(self._pending))
        del self._pending[which]
        redraw(which)
        self.schedule()


def metric_info(key: str) -> MetricInfo:
    info = KNOWN_METRICS.get(key)
    if info is not None:
        return info
    return MetricInfo(key.replace("_", " ").strip().capitalize() or key, "", "")


class _Series:
    """Growing x/y/EMA arrays (capacity doubles) so appending stays O(1) amortised.

    The smoothing weight is per step of the job, not per point: a metric measured every tenth step
    (the PSNR of the hard-rounded latents during an optimization) would otherwise be averaged over ten
    times as many steps as the rate beside it, and its smoothed line would trail far behind the data.
    """

    def __init__(self) -> None:
        self.n = 0
        self.x = np.empty(256)
        self.y = np.empty(256)
        self.ema = np.empty(256)
        self.spacing: float | None = None       # steps between the first two points

    def append(self, xs: np.ndarray, ys: np.ndarray, alpha: float) -> None:
        need = self.n + len(xs)
        if need > len(self.x):
            cap = max(need, 2 * len(self.x))
            for name in ("x", "y", "ema"):
                arr = np.empty(cap)
                arr[: self.n] = getattr(self, name)[: self.n]
                setattr(self, name, arr)
        self.x[self.n:need] = xs
        self.y[self.n:need] = ys
        if self.spacing is None and need >= 2:
            self.spacing = max(1.0, float(self.x[1] - self.x[0]))
        self.ema[self.n:need] = _ema(ys, self._per_point(alpha), self.ema[self.n - 1] if self.n else None)
        self.n = need

    def resmooth(self, alpha: float) -> None:
        self.ema[: self.n] = _ema(self.y[: self.n], self._per_point(alpha), None)

    def _per_point(self, alpha: float) -> float:
        return alpha ** (self.spacing or 1.0)


def _ema(values: np.ndarray, alpha: float, previous: float | None) -> np.ndarray:
    """EMA with weight `alpha` on the past, seeded with the first value so the curve starts on the data."""
    if len(values) == 0:
        return values
    seed = values[0] if previous is None else previous
    out, _ = lfilter([1.0 - alpha], [1.0, -alpha], values, zi=[alpha * seed])
    return out


class _MetricPlot:
    def __init__(self, key: str, widget: pg.PlotWidget, index: int, series: _Series):
        self.info = metric_info(key)
        self.widget = widget
        self.plot = plot = widget.getPlotItem()
        self.index = index
        self.series = series
        plot.setDownsampling(auto=True, mode="peak")
        plot.setClipToView(True)
        plot.setMenuEnabled(False)
        plot.hideButtons()
        self.raw = plot.plot([], [])
        self.smooth = plot.plot([], [])
        self.dots = False
        plot.setToolTip(f"{self.info.help}\n\nHorizontal axis: step of the job." if self.info.help
                        else "Horizontal axis: step of the job.")

    def redraw(self) -> None:
        n = self.series.n
        # A metric measured every few steps (an optimization's PSNR) would leave its chart empty until its
        # second value and then draw a faint line: dots show every value from the first one on.
        dots = n < 2 or (self.series.spacing or 1) > 1
        if dots != self.dots:                       # dots on thousands of dense points would cost redraws
            self.dots = dots
            self.raw.setSymbol("o" if dots else None)
            self.raw.setSymbolSize(5)
        self.raw.setData(self.series.x[:n], self.series.y[:n])
        self.smooth.setData(self.series.x[:n], self.series.ema[:n])

    def title(self) -> str:
        unit = f" ({self.info.unit})" if self.info.unit else ""
        if not self.series.n:
            return f"{self.info.title}{unit}"
        return f"{self.info.title}{unit}: {_fmt(self.series.y[self.series.n - 1])}"


def _fmt(v: float) -> str:
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 1000 or a < 0.01:
        return f"{v:.3g}"
    return f"{v:.4g}" if a < 1 else f"{v:.2f}"


class RDPointsView(QWidget):
    """A sweep as it goes: every measured point (one image at one setting) placed at its rate and quality,
    per codec, and the time each point took. Plotting a sweep's bpp and PSNR against the point number
    would draw a sawtooth per setting that means nothing to anyone."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.rd_plot, self.time_plot = pg.PlotWidget(), pg.PlotWidget()
        for widget, bottom, left, tip in (
                (self.rd_plot, "bits per pixel (bpp)", "PSNR (dB)",
                 "Each dot is one image at one setting; up and to the left is better."),
                (self.time_plot, "point", "seconds", "Encode plus decode time of each point, in the order "
                 "they were measured.")):
            plot = widget.getPlotItem()
            plot.setLabel("bottom", bottom)
            plot.setLabel("left", left)
            plot.setMenuEnabled(False)
            plot.hideButtons()
            widget.setToolTip(tip)
            widget.setMinimumSize(200, 150)
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        row = QHBoxLayout()
        row.addWidget(self.rd_plot, 3)
        row.addWidget(self.time_plot, 2)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row, 1)
        lay.addWidget(self.legend)
        self._data: dict[str, tuple[list[float], list[float], list[float], list[float]]] = {}
        self._items: dict[str, tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}
        self._turns = PlotTurns(self, self._redraw_plot)      # "rd" and "time"
        self.restyle()

    def clear(self) -> None:
        for rd, t in self._items.values():
            self.rd_plot.removeItem(rd)
            self.time_plot.removeItem(t)
        self._items.clear()
        self._data.clear()
        self._turns.clear()
        self.legend.setText("")

    def add(self, numbered_points: Iterable[tuple[int, object]]) -> None:
        """(point number, RDPoint) pairs; a point names its codec, rate, PSNR and times. The plots follow
        on the next passes of the event loop, one plot per pass."""
        for step, p in numbered_points:
            bpp, psnr, secs, steps = self._data.setdefault(p.codec, ([], [], [], []))
            bpp.append(p.bpp)
            psnr.append(p.psnr)
            secs.append(p.encode_s + p.decode_s)
            steps.append(step)
        self._turns.request("rd", "time")

    def is_drawn(self) -> bool:
        """True when both plots show every point received so far."""
        return self._turns.is_drawn()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self._turns.schedule()

    def _redraw_plot(self, which: str) -> None:
        dark = is_dark(self.palette())
        for i, (codec, (bpp, psnr, secs, steps)) in enumerate(self._data.items()):
            if codec not in self._items:
                self._items[codec] = (self.rd_plot.plot([], [], pen=None, symbol="o", symbolSize=6),
                                      self.time_plot.plot([], [], pen=None, symbol="o", symbolSize=5))
                self._color(codec, i, dark)
            rd, t = self._items[codec]
            if which == "rd":
                rd.setData(bpp, psnr)
            else:
                t.setData(steps, secs)
        if which == "rd":
            self._legend(dark)

    def codecs(self) -> list[str]:
        return list(self._data)

    def restyle(self) -> None:
        pal = self.palette()
        for widget in (self.rd_plot, self.time_plot):
            style_plot_widget(widget, pal)
        dark = is_dark(pal)
        for i, codec in enumerate(self._items):
            self._color(codec, i, dark)
        self._legend(dark)

    def _color(self, codec: str, index: int, dark: bool) -> None:
        color = series_color(index, dark)
        for item in self._items[codec]:
            item.setSymbolBrush(color)
            item.setSymbolPen(pg.mkPen(color))

    def _legend(self, dark: bool) -> None:
        """Below the plots, so it never covers a point: codec, points so far, mean time per point."""
        parts = []
        for i, (codec, (_, _, secs, _)) in enumerate(self._data.items()):
            color = series_color(i, dark).name()
            parts.append(f'<span style="color:{color}">●</span> {html.escape(codec_name(codec))}: '
                         f'{len(secs)} point{"s" * (len(secs) != 1)}, {duration_text(sum(secs) / len(secs))} each')
        self.legend.setText("&nbsp;&nbsp; ".join(parts))


def codec_name(spec: str) -> str:
    """A codec as people read it; a codec spec with options ("learned:quantizer=tcq8") keeps them."""
    name, _, opts = spec.partition(":")
    try:
        label = codec_class(name).label
    except (KeyError, WorkbenchError):
        return spec
    return f"{label} ({opts})" if opts else label


class _PlotGrid(QWidget):
    """The plots in cells of one size, `columns` to a row and room for up to `rows` rows from the first
    plot on (as many as fit), each placed by hand. In a QGridLayout a plot that arrives resizes the
    others (a new row lowers them, a new column narrows them) and Qt repaints every resized plot in that
    pass: 20-40 ms of GUI time whenever a job brought a new metric. Here a new plot moves no other
    unless it needs a row that was not kept free."""

    SPACING = 6
    MIN_CELL = 120                           # four in a row still fit beside a side panel at 1024 px

    def __init__(self, columns: int, rows: int):
        super().__init__()
        self._columns, self._rows = columns, rows
        self._cells: dict[int, QWidget] = {}
        self._fit_minimum()

    def place(self, widget: QWidget, index: int) -> None:
        rows = self._rows_shown()
        self._cells[index] = widget
        widget.setParent(self)
        self._fit_minimum()
        if self._rows_shown() != rows:
            self._place_all()
        else:
            self._place(index, widget)
        widget.show()

    def clear(self) -> None:
        for widget in self._cells.values():
            widget.hide()
            widget.deleteLater()
        self._cells.clear()
        self._fit_minimum()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._place_all()

    def _used(self) -> tuple[int, int]:
        """Columns and rows that plots occupy."""
        last = max(self._cells, default=-1)
        return min(self._columns, last + 1), -(-(last + 1) // self._columns)

    def _rows_shown(self) -> int:
        fit = int((self.height() + self.SPACING) // (self.MIN_CELL + self.SPACING))
        return max(1, self._used()[1], min(self._rows, fit))

    def _fit_minimum(self) -> None:
        columns, rows = self._used()
        span = lambda cells: cells * self.MIN_CELL + max(0, cells - 1) * self.SPACING
        self.setMinimumSize(span(columns), max(180, span(rows)))

    def _place_all(self) -> None:
        for index, widget in self._cells.items():
            self._place(index, widget)

    def _place(self, index: int, widget: QWidget) -> None:
        step_x = (self.width() + self.SPACING) / self._columns
        step_y = (self.height() + self.SPACING) / self._rows_shown()
        row, column = divmod(index, self._columns)
        x, y = round(column * step_x), round(row * step_y)
        widget.setGeometry(x, y, round((column + 1) * step_x) - self.SPACING - x,
                           round((row + 1) * step_y) - self.SPACING - y)


class LiveCurves(QWidget):
    """Progress of one job: a grid of metric plots, a progress bar, a status line, Pause and Cancel.

    Feed it with `attach(runner)` (it then resets itself on every start) or directly with
    `add_events(events)`; `controls=False` leaves out the progress bar and buttons, for a view that
    controls its job itself (the Train tab's training process).
    """

    def __init__(self, parent: QWidget | None = None, *, columns: int = _COLUMNS, controls: bool = True):
        super().__init__(parent)
        self._columns = max(1, columns)              # plots per row: a wide, short pane wants more
        self._runner: JobRunner | None = None
        self._series: dict[str, _Series] = {}       # data, in the order the keys first appeared
        self._plots: dict[str, _MetricPlot] = {}     # their plots, created on their first turn
        self._alpha = _DEFAULT_SMOOTHING
        self._started_at: float | None = None
        self._last: Progress | None = None
        # keys waiting for their turn, oldest first; drawn hidden too, spread over REDRAW_INTERVAL_MS
        self._turns = PlotTurns(self, self._redraw_metric, while_hidden=True, interval=self._redraw_interval)
        self._spare: list[pg.PlotWidget] = []
        self._spare_timer = QTimer(self)
        self._spare_timer.setInterval(SPARE_BUILD_MS)
        self._spare_timer.timeout.connect(self._build_spare)
        self._spare_timer.start()

        # One PlotWidget per metric in a grid rather than one GraphicsLayoutWidget: separate widgets
        # are repainted separately, which is what lets the plots take turns (see REDRAW_INTERVAL_MS).
        self._canvas = _PlotGrid(self._columns, -(-SPARE_PLOTS // self._columns))
        self._empty = QLabel("Curves appear here while a job runs.")
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setEnabled(False)

        self._bar = QProgressBar()
        self._bar.setRange(0, 1)
        self._bar.setValue(0)
        self._bar.setTextVisible(True)
        self._bar.setFormat("idle")
        self._status = QLabel("")
        self._status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._pause = QPushButton("Pause")
        self._pause.setToolTip("Hold the job after the current step; nothing is lost.")
        self._pause.setEnabled(False)
        self._pause.clicked.connect(self._toggle_pause)
        self._cancel = QPushButton("Cancel")
        self._cancel.setToolTip("Stop the job after the current step.")
        self._cancel.setEnabled(False)
        self._cancel.clicked.connect(self._on_cancel_clicked)

        self._slider = QSlider(Qt.Orientation.Horizontal)
        self._slider.setRange(0, 99)
        self._slider.setValue(round(_DEFAULT_SMOOTHING * 100))
        self._slider.setFixedWidth(140)
        self._slider.setToolTip("Exponential moving average drawn over the faint raw values: 0 shows the raw "
                                "curve, 0.99 averages over about the last hundred steps.")
        self._slider.valueChanged.connect(self._on_smoothing)
        self._slider_label = QLabel()
        self._slider_label.setMinimumWidth(32)
        self._update_slider_label()

        top = QHBoxLayout()
        top.addWidget(self._bar, 1)
        top.addWidget(self._pause)
        top.addWidget(self._cancel)
        for w in (self._bar, self._pause, self._cancel):
            w.setVisible(controls)
        bottom = QHBoxLayout()
        bottom.addWidget(self._status, 1)
        bottom.addWidget(QLabel("Smoothing"))
        bottom.addWidget(self._slider)
        bottom.addWidget(self._slider_label)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(bottom)
        layout.addWidget(self._empty, 1)
        layout.addWidget(self._canvas, 1)
        self._canvas.hide()
        self.rd_points = RDPointsView()
        layout.addWidget(self.rd_points, 1)
        self.rd_points.hide()
        self._apply_palette()

    # -- public API ------------------------------------------------------------------------------
    def attach(self, runner: JobRunner | None) -> None:
        """Follow `runner`: its events feed the plots and the buttons control it.

        Attached while its job runs, the plots start empty from the next event on.
        """
        if runner is self._runner:
            return
        if self._runner is not None:
            for signal, slot in self._connections():
                signal.disconnect(slot)
        self._runner = runner
        if runner is not None:
            for signal, slot in self._connections():
                signal.connect(slot)
        if runner is not None and runner.is_running():
            self._on_started()
        else:
            self._set_running(False)

    def follow(self, runner: JobRunner) -> None:
        """Switch to `runner` whenever it starts a job: with several runners (the RD sweep, each Compare
        side's optimization) the tab shows the job started last, the one the user just asked for."""
        runner.started.connect(partial(self._followed_started, runner))
        if runner.live and (self._runner is None or (runner.is_running() and not self._runner.is_running())):
            self.attach(runner)

    def _followed_started(self, runner: JobRunner) -> None:
        if runner.live:
            self.attach(runner)
        elif runner is self._runner:             # a short job: keep the last long job's curves, stop listening
            self.attach(None)

    def reset(self) -> None:
        """Forget all curves and progress (a new job starts from an empty grid)."""
        self._canvas.clear()
        self._plots.clear()
        self._series.clear()
        self._turns.clear()
        self._spare_timer.start()
        self._canvas.hide()
        self.rd_points.clear()
        self.rd_points.hide()
        self._empty.show()
        self._last = None
        self._started_at = None
        self._bar.setRange(0, 1)
        self._bar.setValue(0)
        self._bar.setFormat("idle")
        self._status.setText("")

    def add_events(self, events: Iterable[Progress]) -> None:
        events = list(events)
        if not events:
            return
        if self._started_at is None:
            self._started_at = time.monotonic()
        points = [(ev.step, ev.point) for ev in events if getattr(ev, "point", None) is not None]
        if points:                                   # a sweep: its points, not its numbers against steps
            self.rd_points.add(points)
            self._empty.hide()
            self.rd_points.show()
            self._show_progress(events[-1])
            return
        columns: dict[str, tuple[list[float], list[float]]] = {}
        for ev in events:
            for key, value in ev.metrics.items():
                try:
                    v = float(value)
                except (TypeError, ValueError):
                    continue
                if math.isfinite(v):
                    xs, ys = columns.setdefault(key, ([], []))
                    xs.append(float(ev.step))
                    ys.append(v)
        for key, (xs, ys) in columns.items():
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _Series()
            series.append(np.asarray(xs), np.asarray(ys), self._alpha)
        self._show_progress(events[-1])
        self._turns.request(*columns)

    def keys(self) -> list[str]:
        """Metric keys seen so far (each gets a plot), in the order they first appeared."""
        return list(self._series)

    def is_drawn(self) -> bool:
        """True when every received value is in the plots (no redraw is pending)."""
        return self._turns.is_drawn() and self.rd_points.is_drawn()

    def smoothing(self) -> float:
        return self._alpha

    def set_smoothing(self, alpha: float) -> None:
        self._slider.setValue(round(min(0.99, max(0.0, alpha)) * 100))

    # -- internals -------------------------------------------------------------------------------
    def _connections(self):
        r = self._runner
        return ((r.started, self._on_started), (r.progress_batch, self.add_events),
                (r.finished, self._on_finished), (r.failed, self._on_failed),
                (r.cancelled, self._on_cancelled), (r.paused_changed, self._on_paused_changed))

    def _redraw_interval(self) -> int:
        return max(MIN_TICK_MS, REDRAW_INTERVAL_MS // max(1, len(self._series)))

    def _redraw_metric(self, key: str) -> None:
        """Bring one plot up to date (its turn has come), then let the event loop paint it."""
        mp = self._plots.get(key) or self._add_plot(key)
        mp.redraw()
        mp.plot.setTitle(mp.title(), color=self._fg_hex(), size="9pt")

    def _add_plot(self, key: str) -> _MetricPlot:
        i = list(self._series).index(key)
        widget = self._spare.pop() if self._spare else pg.PlotWidget()
        self._canvas.place(widget, i)
        mp = _MetricPlot(key, widget, i, self._series[key])
        self._plots[key] = mp
        self._style_plot(mp)
        if len(self._plots) == 1:
            self._empty.hide()
            self._canvas.show()
        return mp

    @Slot()
    def _build_spare(self) -> None:
        if len(self._spare) >= SPARE_PLOTS:
            self._spare_timer.stop()
        elif self._turns.is_drawn() and not any_job_running():
            # A plot widget takes 20-30 ms of the GUI thread to build: never while any job runs (a Live tab
            # that had finished its own job built its spares in the gaps of another's, which then crossed
            # 50 ms; benchmarks/event_loop_latency.py --stalls).
            self._spare.append(pg.PlotWidget())

    def _show_progress(self, ev: Progress) -> None:
        self._last = ev
        elapsed = time.monotonic() - (self._started_at or time.monotonic())
        if ev.total:
            # QProgressBar.setValue repaints at once, outside the window's one paint pass (0.7 ms on an idle
            # core, 4 ms beside a busy job, on every delivered batch): with updates off it only marks the bar.
            self._bar.setUpdatesEnabled(False)
            self._bar.setRange(0, ev.total)
            self._bar.setValue(min(ev.step, ev.total))
            self._bar.setUpdatesEnabled(True)
            text = f"{ev.step} / {ev.total}"
            frac = ev.fraction or 0.0
            if 0 < frac < 1 and elapsed > 2:
                text += f" · about {duration_text(elapsed * (1 - frac) / frac)} left"
            self._bar.setFormat(text)
        else:
            self._bar.setRange(0, 0)            # busy indicator: the job does not know its length
            self._bar.setFormat(f"step {ev.step}")
        self._status.setText(ev.message)
        self._status.setToolTip(ev.message)
        if self._runner is not None and self._runner.is_paused():    # events computed before the pause
            self._show_paused()

    def _show_paused(self) -> None:
        """Paused, said in the progress bar itself, where people look for what the job is doing."""
        step = self._last.step if self._last is not None else 0
        total = self._last.total if self._last is not None else None
        self._bar.setFormat(f"paused at {step} / {total}" if total else f"paused at step {step}")
        self._status.setText("Paused (the current step finishes first); Resume continues.")

    def _set_running(self, running: bool) -> None:
        self._pause.setEnabled(running)
        self._cancel.setEnabled(running)
        self._pause.setText("Resume" if running and self._runner.is_paused() else "Pause")

    @Slot()
    def _on_started(self) -> None:
        self.reset()
        self._started_at = time.monotonic()
        self._bar.setRange(0, 0)
        self._bar.setFormat("starting…")
        self._status.setText("Starting…")
        self._set_running(True)

    @Slot(object)
    def _on_finished(self, _result: object) -> None:
        self._set_running(False)
        if self._bar.maximum() == 0:
            self._bar.setRange(0, 1)
        self._bar.setValue(self._bar.maximum())
        self._bar.setFormat(f"done in {duration_text(self._elapsed())}")

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._set_running(False)
        self._stop_busy()
        self._bar.setFormat("failed")
        self._status.setText(f"Failed: {message}")
        self._status.setToolTip(message)

    @Slot()
    def _on_cancelled(self) -> None:
        self._set_running(False)
        self._stop_busy()
        step = self._last.step if self._last is not None else 0
        self._bar.setFormat(f"cancelled at step {step}")
        self._status.setText(f"Cancelled after {duration_text(self._elapsed())}.")

    @Slot(bool)
    def _on_paused_changed(self, paused: bool) -> None:
        self._pause.setText("Resume" if paused else "Pause")
        if paused:
            self._show_paused()
        elif self._last is not None:
            self._show_progress(self._last)

    @Slot()
    def _toggle_pause(self) -> None:
        if self._runner is None:
            return
        if self._runner.is_paused():
            self._runner.resume()
        else:
            self._runner.pause()

    @Slot()
    def _on_cancel_clicked(self) -> None:
        if self._runner is not None:
            self._cancel.setEnabled(False)
            self._status.setText("Cancelling after the current step…")
            self._runner.cancel()

    @Slot(int)
    def _on_smoothing(self, value: int) -> None:
        self._alpha = value / 100.0
        self._update_slider_label()
        for series in self._series.values():
            series.resmooth(self._alpha)
        self._turns.request(*self._series)

    def _update_slider_label(self) -> None:
        self._slider_label.setText(f"{self._alpha:.2f}")

    def _stop_busy(self) -> None:
        if self._bar.maximum() == 0:
            self._bar.setRange(0, 1)
            self._bar.setValue(0)

    def _elapsed(self) -> float:
        return 0.0 if self._started_at is None else time.monotonic() - self._started_at

    # -- palette ---------------------------------------------------------------------------------
    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_palette()
        super().changeEvent(event)

    def _fg_hex(self) -> str:
        return self.palette().color(QPalette.ColorRole.WindowText).name()

    def _apply_palette(self) -> None:
        for mp in self._plots.values():
            self._style_plot(mp)
        self.rd_points.restyle()

    def _style_plot(self, mp: _MetricPlot) -> None:
        pal = self.palette()
        fg = style_plot_widget(mp.widget, pal)
        color = series_color(mp.index, is_dark(pal))
        faint = QColor(color)
        faint.setAlpha(70)
        mp.raw.setPen(pg.mkPen(faint, width=1))
        mp.raw.setSymbolBrush(color)
        mp.raw.setSymbolPen(pg.mkPen(color))
        mp.smooth.setPen(pg.mkPen(color, width=2))
        mp.plot.setTitle(mp.title(), color=fg.name(), size="9pt")


def style_plot_widget(widget: pg.PlotWidget, pal: QPalette) -> QColor:
    """Give a plot the palette's colours (light or dark theme) and a grid; returns the foreground colour.

    The grid is drawn at major ticks only, in an opaque colour mixed from background and foreground:
    pyqtgraph's default translucent grid with minor lines makes every repaint about three times as
    expensive, which is what decides whether the window stays fluid while a job streams points.
    """
    fg = pal.color(QPalette.ColorRole.WindowText)
    bg = pal.color(QPalette.ColorRole.Base)
    widget.setBackground(bg)
    plot = widget.getPlotItem()
    plot.showGrid(x=True, y=True, alpha=1.0)
    grid = QColor.fromRgbF(*(b + 0.13 * (f - b) for f, b in zip(fg.getRgbF()[:3], bg.getRgbF()[:3])))
    for name in ("left", "bottom"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen(fg))
        axis.setTextPen(pg.mkPen(fg))
        axis.setTickPen(pg.mkPen(grid))
        axis.setStyle(tickAlpha=255, maxTickLevel=0)
        axis.setZValue(-100)                    # grid behind the data (and behind a legend)
        axis.enableAutoSIPrefix(False)          # "(x0.001)" beside an axis means nothing to most people
    return fg


def is_dark(pal: QPalette) -> bool:
    return pal.color(QPalette.ColorRole.Base).lightness() < 128


def series_color(index: int, dark: bool) -> QColor:
    """Well separated hues (golden-angle steps), brighter on dark backgrounds so lines stay legible."""
    hue = int((index * 137.508 + 210) % 360)
    return QColor.fromHsv(hue, 170 if dark else 220, 245 if dark else 185)

