"""Rate-distortion sweeps in the GUI: pick codecs, run, watch the curves grow, read the BD-rate table.

The sweep is the CLI's: `bench.bench_job` into a results folder, whose events carry each measured
point, then `bench_report.write_report` into the same folder, so the tab leaves exactly the files
`workbench bench --out FOLDER` leaves, and a sweep run again reuses the points stored there. Each
sweep has a folder of its own under the results folder, named after its images and codecs
(`run_folder`), so running the same sweep again finds its points, and a different one never
overwrites another's report.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
from collections import Counter
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Mapping, Sequence

import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView, QButtonGroup, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout,
    QHeaderView, QLabel, QListWidget, QListWidgetItem, QProgressBar, QPushButton,
    QRadioButton, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from workbench.core.bench import BenchProgress, BenchResult, bench_job, default_jobs, default_sweep, parse_codec_spec
from workbench.core.bench_report import write_report
from workbench.core.codecs import all_codecs, codec_class
from workbench.core.errors import WorkbenchError
from workbench.core.jobs import Job
from workbench.core.options import build
from workbench.core.summary import GLOSSARY, size_phrase
from workbench.ui.codec_panel import selection_name
from workbench.ui.job_runner import JobRunner
from workbench.ui.live_curves import PlotTurns, is_dark, series_color, style_plot_widget

#: Codecs ticked when the view opens: the usual anchor and its most common challenger.
DEFAULT_CODECS = ("jpeg", "webp")


def default_results_folder() -> Path:
    """$XDG_DATA_HOME/workbench/rd-sweeps (~/.local/share when unset): the app's own data, not the
    user's image folder, which may be read-only or a collection the user would not want written into."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "workbench" / "rd-sweeps"


def run_folder(images: Sequence[str | Path], codecs: Sequence[str], sweeps: Mapping[str, Sequence[float]]) -> str:
    """The folder name of a sweep: readable (first image or its folder, the codecs) and unique to the
    images, codec specs and settings (a hash), so the same sweep run again lands where its points are.

    >>> run_folder(["/photos/a.png"], ["jpeg", "learned:model=/m/x.pt"], {"jpeg": (20, 50)})[:-9]
    'a-jpeg-learned'
    """
    paths = [str(Path(p).resolve()) for p in images]
    scope = Path(paths[0]).stem if len(paths) == 1 else f"{Path(paths[0]).parent.name}-{len(paths)}"
    names = dict.fromkeys(parse_codec_spec(c)[0] for c in codecs)
    ident = json.dumps([paths, list(codecs), {c: list(sweeps.get(c, ())) for c in codecs}], default=str)
    readable = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in f"{scope}-{'-'.join(names)}")
    return f"{readable}-{hashlib.sha256(ident.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class SweepProgress(BenchProgress):
    """A sweep's event that also brings the BD-rate rows against the anchor over the images every codec has
    finished, when one more image was finished: the table is computed in the sweep's thread, not the window's."""
    table: tuple[str | None, int, list[dict]] | None = None     # anchor, images compared, rows


def sweep_job(images: Sequence[str | Path], codecs: Sequence[str], sweeps: Mapping[str, Sequence[float]], *,
              jobs: int, out_dir: Path, anchor: str | None
              ) -> Job[tuple[BenchResult, list[Path], tuple[str | None, list[dict]]]]:
    """The CLI's sweep and report, both off the GUI thread (drawing the report's plot takes a while), and
    the BD-rate rows against `anchor` for the tab's table, so far and at the end; the points are measured
    in worker processes, never in the window's interpreter."""
    need = {c: len(sweeps.get(c) or _default_sweep(c)) for c in codecs}
    live, compared = BenchResult(codecs=list(codecs)), 0
    job = bench_job(images, codecs, sweeps, jobs=jobs, out_dir=out_dir, isolated=True)
    try:
        while True:
            try:
                ev = next(job)
            except StopIteration as stop:
                result = stop.value
                break
            if isinstance(ev, BenchProgress) and ev.point is not None:
                live.points.append(ev.point)
                if ev.point.image not in live.images:
                    live.images.append(ev.point.image)
                done = compared_images(live, need)
                if len(done.images) != compared:
                    compared = len(done.images)
                    rows = done.bd_table(anchor) if anchor in codecs else []
                    ev = SweepProgress(**{f.name: getattr(ev, f.name) for f in fields(ev)},
                                       table=(anchor, compared, rows))
            yield ev
    finally:
        job.close()                 # a cancelled sweep stops its worker processes now
    rows = result.bd_table(anchor) if anchor in result.codecs else []
    return result, write_report(result, out_dir, anchor), (anchor, rows)


def compared_images(live: BenchResult, need: Mapping[str, int]) -> BenchResult:
    """The points of the images that every codec has finished (`need`: points per image of each codec).
    While a sweep runs, the next image's first codecs are measured before its last ones, and means over
    different sets of images would compare codecs on different pictures."""
    counts = Counter((p.image, p.codec) for p in live.points)
    done = [im for im in live.images if all(counts[(im, c)] >= n for c, n in need.items())]
    return BenchResult(images=done, points=[p for p in live.points if p.image in done], codecs=list(live.codecs))


class RDView(QWidget):
    """The "RD curves" tab.

    The main window calls `set_images(paths)` when a folder is opened and `set_current(path)` when the
    shown image changes; everything else is driven by the user (or by `run()` / `cancel()`).
    """

    #: Emitted with the finished `BenchResult` of every completed sweep.
    sweep_finished = Signal(object)

    def __init__(self, parent: QWidget | None = None, *, sweeps: Mapping[str, Sequence[float]] | None = None,
                 results: str | Path | None = None, jobs: int | None = None):
        """`results`: where each sweep's folder goes (`default_results_folder()` when None); `jobs`:
        processes measuring points. When None, a folder's sweep uses every core as the CLI does, and
        one image's sweep stays in this process: starting the workers took longer (about 3 s on two
        busy cores) than its 16 default points."""
        super().__init__(parent)
        self._sweeps = dict(sweeps or {})
        self._results = Path(results) if results is not None else default_results_folder()
        self._jobs = jobs
        self._images: list[Path] = []
        self._current: Path | None = None
        self._live = BenchResult()             # the sweep in progress, or the last finished one
        self._result: BenchResult | None = None  # the last finished sweep (what the folder's report holds)
        self._final_rows: tuple[str | None, list[dict]] = (None, [])   # its BD-rate rows and their anchor
        self._partial_rows: tuple[str | None, int, list[dict]] = (None, 0, [])   # so far: anchor, images, rows
        self._folder: Path | None = None       # the folder of the last sweep started
        self._resumed = 0
        self._total_images = 0
        self._colors: dict[str, int] = {}
        self._turns = PlotTurns(self, self._redraw_plot)      # "psnr" and "ms_ssim_db"
        self.runner = JobRunner(self)
        self.runner.progress_batch.connect(self._on_batch)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)

        self._build_controls()
        self._build_plots()
        self._build_table()

        # The table must never collapse behind the splitter: a newcomer does not look for a handle.
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self._plots_box)
        right.addWidget(self._table_box)
        right.setChildrenCollapsible(False)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 1)
        self._splitter = right
        layout = QHBoxLayout(self)
        layout.addWidget(self._controls)
        layout.addWidget(right, 1)
        self._apply_palette()
        self._on_codecs_changed()
        self._refresh_scope()

    # -- construction ----------------------------------------------------------------------------
    def _build_controls(self) -> None:
        self._codec_list = QListWidget()
        self._codec_list.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        for index, cls in enumerate(all_codecs()):
            self._colors[cls.name] = index
            ok, why = cls.availability()
            item = QListWidgetItem(cls.label)
            item.setData(Qt.ItemDataRole.UserRole, cls.name)
            if ok:
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if cls.name in DEFAULT_CODECS else Qt.CheckState.Unchecked)
                settings = self._sweeps.get(cls.name) or cls.sweep
                tip = f"{cls.name}: {len(settings)} settings ({', '.join(f'{q:g}' for q in settings)})"
                item.setToolTip(tip + (f"\n{cls.quality_help}" if cls.quality_help else ""))
            else:
                item.setFlags(Qt.ItemFlag.ItemIsUserCheckable)   # shown, but greyed out and not tickable
                item.setCheckState(Qt.CheckState.Unchecked)
                item.setText(f"{cls.label} (not available)")
                item.setToolTip(why)
            self._codec_list.addItem(item)
        self._codec_list.itemChanged.connect(self._on_codecs_changed)
        rows = self._codec_list.sizeHintForRow(0) * self._codec_list.count()
        self._codec_list.setFixedHeight(rows + 2 * self._codec_list.frameWidth() + 4)

        self._anchor = QComboBox()
        self._anchor.setToolTip("The codec the others are measured against in the BD-rate table. The saved "
                                "table uses the anchor of the run: run the sweep again (its points are reused) "
                                "to save it against another.")
        self._anchor.currentIndexChanged.connect(self._update_table)

        self._scope_current = QRadioButton("Current image")
        self._scope_folder = QRadioButton("All images of the folder")
        self._scope = QButtonGroup(self)
        self._scope.addButton(self._scope_current)
        self._scope.addButton(self._scope_folder)
        self._scope_current.setChecked(True)
        self._scope.buttonToggled.connect(self._refresh_buttons)

        self._run = QPushButton("Run sweep")
        self._run.setDefault(True)
        self._run.clicked.connect(self.run)
        self._cancel = QPushButton("Cancel")
        self._cancel.setToolTip("Stop after the point being measured; the points so far stay on the plots and "
                                "are reused when the same sweep runs again.")
        self._cancel.clicked.connect(self.cancel)
        self._bar = QProgressBar()
        self._bar.setRange(0, 1)
        self._bar.setValue(0)
        self._bar.setFormat("")
        self._status = QLabel("")
        self._status.setWordWrap(True)
        self._status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self._results_label = QLabel()
        self._results_label.setWordWrap(True)
        self._results_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._choose_results = QPushButton("Change…")
        self._choose_results.setToolTip("Choose the folder each sweep's results folder is made in.")
        self._choose_results.clicked.connect(self._ask_results_folder)
        self._open_results = QPushButton("Open folder")
        self._open_results.setToolTip("Show the last sweep's files: one CompressAI results JSON per codec, "
                                      "per-image and per-setting CSV, the BD-rate table and the RD plot, as "
                                      "`workbench bench` writes them.")
        self._open_results.clicked.connect(self._show_results)

        codecs_box = QGroupBox("Codecs")
        QVBoxLayout(codecs_box).addWidget(self._codec_list)
        self._scope_box = scope_box = QGroupBox("Images")
        scope_layout = QVBoxLayout(scope_box)
        scope_layout.addWidget(self._scope_current)
        scope_layout.addWidget(self._scope_folder)
        form = QFormLayout()
        form.addRow("Anchor", self._anchor)
        buttons = QHBoxLayout()
        buttons.addWidget(self._run)
        buttons.addWidget(self._cancel)
        results_box = QGroupBox("Results")
        results = QVBoxLayout(results_box)
        results.addWidget(self._results_label)
        results_buttons = QHBoxLayout()
        results_buttons.addWidget(self._choose_results)
        results_buttons.addWidget(self._open_results)
        results.addLayout(results_buttons)

        self._controls = QWidget()
        self._controls.setFixedWidth(290)
        col = QVBoxLayout(self._controls)
        col.setContentsMargins(0, 0, 0, 0)
        col.addWidget(codecs_box)
        col.addLayout(form)
        col.addWidget(scope_box)
        col.addLayout(buttons)
        col.addWidget(self._bar)
        col.addWidget(self._status)
        col.addWidget(results_box)
        col.addStretch(1)

    def _build_plots(self) -> None:
        self._psnr_plot = pg.PlotWidget()
        self._msssim_plot = pg.PlotWidget()
        axes = ((self._psnr_plot, "PSNR (dB)", "PSNR vs rate", GLOSSARY["psnr"]),
                (self._msssim_plot, "MS-SSIM (dB)", "MS-SSIM vs rate", GLOSSARY["ms_ssim"]))
        for widget, ylabel, title, tip in axes:
            plot = widget.getPlotItem()
            plot.setLabel("bottom", "bits per pixel (bpp)")
            plot.setLabel("left", ylabel)
            plot.setMenuEnabled(False)
            plot.addLegend(offset=(-10, -10))
            plot.legend.setVisible(False)          # the legend is below the plots: inside, it covers curves
            plot.setTitle(title, size="10pt")
            widget.setToolTip(f"{tip}\n\n{GLOSSARY['bpp']}\n\nUp and to the left is better: more quality "
                              f"for fewer bits. Each point is the mean over the images measured so far.")
            widget.setMinimumSize(260, 220)
        self._curves: dict[tuple[str, str], pg.PlotDataItem] = {}
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self._psnr_plot)
        row.addWidget(self._msssim_plot)
        self._legend = QLabel()
        self._legend.setWordWrap(True)
        self._legend.setTextFormat(Qt.TextFormat.RichText)
        box = QVBoxLayout()
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(row, 1)
        box.addWidget(self._legend)
        self._plots_box = QWidget()
        self._plots_box.setLayout(box)

    def _build_table(self) -> None:
        self._table = QTableWidget(0, 3)
        self._table.setHorizontalHeaderLabels(["Codec", "BD-rate (PSNR)", "BD-rate (MS-SSIM)"])
        for col, tip in enumerate(("", GLOSSARY["bd_rate"] + " Quality measured in PSNR.",
                                   GLOSSARY["bd_rate"] + " Quality measured in MS-SSIM (dB)."), start=0):
            if tip:
                self._table.horizontalHeaderItem(col).setToolTip(tip)
        self._table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2):
            self._table.horizontalHeader().setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self._table.verticalHeader().setVisible(False)
        self._table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self._table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self._summary = QLabel("")
        self._summary.setWordWrap(True)
        self._summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # Header and three rows at least, so the table shows content however the window is sized.
        self._table.setMinimumHeight(self._table.horizontalHeader().sizeHint().height()
                                     + 3 * self._table.verticalHeader().defaultSectionSize() + 4)
        self._table_box = QWidget()
        col = QVBoxLayout(self._table_box)
        col.setContentsMargins(0, 0, 0, 0)
        col.addWidget(self._table, 1)
        col.addWidget(self._summary)

    # -- public API ------------------------------------------------------------------------------
    def set_images(self, paths: Sequence[str | Path]) -> None:
        """The images of the opened folder (the "all images" scope)."""
        self._images = [Path(p) for p in paths]
        self._refresh_scope()

    def set_current(self, path: str | Path | None) -> None:
        """The image shown in the main window (the "current image" scope)."""
        self._current = None if path is None else Path(path)
        self._refresh_scope()

    def selected_codecs(self) -> list[str]:
        return [self._codec_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self._codec_list.count())
                if self._codec_list.item(i).checkState() == Qt.CheckState.Checked]

    def set_selected_codecs(self, names: Sequence[str]) -> None:
        """Tick exactly `names` (unavailable codecs stay unticked)."""
        for i in range(self._codec_list.count()):
            item = self._codec_list.item(i)
            if item.flags() & Qt.ItemFlag.ItemIsEnabled:
                wanted = item.data(Qt.ItemDataRole.UserRole) in names
                item.setCheckState(Qt.CheckState.Checked if wanted else Qt.CheckState.Unchecked)

    def add_model(self, model: str) -> str:
        """Offer a learned model (a CompressAI checkpoint or zoo folder opened on the Compare tab, a model
        made in the Train tab) as a codec of its own, ticked, so its curve is swept beside the others; returns its entry."""
        spec = f"learned:model={model}"
        for i in range(self._codec_list.count()):
            if self._codec_list.item(i).data(Qt.ItemDataRole.UserRole) == spec:
                self._codec_list.item(i).setCheckState(Qt.CheckState.Checked)
                return spec
        self._colors[spec] = len(self._colors)
        qualities = _default_sweep(spec)
        item = QListWidgetItem(_label(spec))
        item.setData(Qt.ItemDataRole.UserRole, spec)
        item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
        item.setToolTip(f"{model}\n" + (f"qualities {', '.join(f'{q:g}' for q in qualities)}" if len(qualities) > 1
                                        else "one rate point (CompressAI trains one model per quality): open a "
                                             "folder of the zoo's checkpoints for a curve"))
        item.setCheckState(Qt.CheckState.Checked)
        self._codec_list.addItem(item)
        self._codec_list.setFixedHeight(self._codec_list.sizeHintForRow(0) * self._codec_list.count()
                                        + 2 * self._codec_list.frameWidth() + 4)
        return spec

    def _sweep(self, codec: str) -> tuple:
        return self._sweeps.get(codec) or _default_sweep(codec)

    def anchor(self) -> str | None:
        return self._anchor.currentData()

    def set_anchor(self, name: str) -> None:
        index = self._anchor.findData(name)
        if index < 0:
            raise ValueError(f"{name} is not one of the ticked codecs")
        self._anchor.setCurrentIndex(index)

    def set_scope(self, all_images: bool) -> None:
        (self._scope_folder if all_images else self._scope_current).setChecked(True)

    def result(self) -> BenchResult | None:
        """The last completed sweep, or None."""
        return self._result

    def results_folder(self) -> Path:
        """Where each sweep's folder is made."""
        return self._results

    def set_results_folder(self, folder: str | Path) -> None:
        self._results = Path(folder)
        self._refresh_buttons()

    def sweep_folder(self) -> Path | None:
        """The folder of the last sweep started: its stored points and, once it finished, its report."""
        return self._folder

    def is_running(self) -> bool:
        return self.runner.is_running()

    @Slot()
    def run(self) -> None:
        """Start a sweep of the ticked codecs over the chosen images."""
        images = self._scope_images()
        codecs = self.selected_codecs()
        if self.runner.is_running() or not images or not codecs:
            return
        per_image = sum(len(self._sweep(c)) for c in codecs)
        self._total_images = len(images)
        self._live = BenchResult(codecs=list(codecs))
        self._result = None
        self._resumed = 0
        self._partial_rows = (None, 0, [])
        self._clear_plots()
        self._update_table()
        self._bar.setRange(0, per_image * len(images))
        self._bar.setValue(0)
        self._bar.setFormat("%v / %m points")
        self._status.setText(f"Measuring {len(codecs)} codec{'s' * (len(codecs) > 1)} on "
                             f"{_count(len(images), 'image')}…")
        sweeps = {c: tuple(self._sweeps[c]) for c in codecs if c in self._sweeps}
        self._folder = folder = self._results / run_folder(images, codecs, sweeps)
        jobs, anchor = self._jobs or (default_jobs() if len(images) > 1 else 1), self.anchor()
        self.runner.start(lambda: sweep_job(images, codecs, sweeps, jobs=jobs, out_dir=folder, anchor=anchor))
        self._refresh_buttons()

    @Slot()
    def cancel(self) -> None:
        if self.runner.is_running():
            self._cancel.setEnabled(False)
            self._status.setText("Stopping after the point being measured…")
            self.runner.cancel()

    # -- running ---------------------------------------------------------------------------------
    @Slot(list)
    def _on_batch(self, events: list) -> None:
        table = None
        for ev in events:
            if isinstance(ev, BenchProgress) and ev.point is not None:
                self._live.points.append(ev.point)
                self._resumed += ev.resumed
                if ev.point.image not in self._live.images:
                    self._live.images.append(ev.point.image)
            table = getattr(ev, "table", None) or table
        last = events[-1]
        self._bar.setValue(last.step)
        self._status.setText(last.message)
        self._redraw()
        if table is not None:              # one more image finished by every codec
            self._partial_rows = table
            self._update_table()

    @Slot(object)
    def _on_finished(self, outcome: tuple[BenchResult, list[Path], tuple[str | None, list[dict]]]) -> None:
        result, written, self._final_rows = outcome
        same = set(result.points) == set(self._live.points)   # in plan order now, but the plots show them all
        self._live = result
        self._result = result
        if not same:
            self._redraw()
        self._update_table()
        self._bar.setValue(self._bar.maximum())
        reused = f" ({self._resumed} measured before)" if self._resumed else ""
        self._status.setText(f"Done: {_count(len(result.points), 'point')}{reused} on "
                             f"{_count(len(result.images), 'image')}; saved {len(written)} files in "
                             f"{written[0].parent}.")
        self._refresh_buttons()
        self.sweep_finished.emit(result)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._status.setText(f"The sweep stopped: {message}")
        self._refresh_buttons()

    @Slot()
    def _on_cancelled(self) -> None:
        self._status.setText(f"Cancelled after {_count(len(self._live.points), 'point')}; the plots show them, "
                             f"and running the same sweep again goes on from them.")
        self._refresh_buttons()

    # -- drawing ---------------------------------------------------------------------------------
    def _clear_plots(self) -> None:
        self._turns.clear()
        for (_, which), item in self._curves.items():
            plot = self._psnr_plot if which == "psnr" else self._msssim_plot
            plot.getPlotItem().legend.removeItem(item)
            plot.removeItem(item)
        self._curves.clear()
        self._legend.setText("")
        self._set_title(self._msssim_plot, "MS-SSIM vs rate")

    def _redraw(self) -> None:
        """Bring the PSNR plot and then the MS-SSIM plot up to date, each on a later pass of the event loop.

        Qt repaints every changed plot of a window in one go: updating them where the points are received
        made that pass paint both (and the Live tab's), after a batch that had set all their data.
        """
        self._turns.request("psnr", "ms_ssim_db")

    def is_drawn(self) -> bool:
        """True when both plots show every point received so far."""
        return self._turns.is_drawn()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self._turns.schedule()

    def _redraw_plot(self, which: str) -> None:
        dark = is_dark(self.palette())
        missing = False
        for codec in self._live.codecs:
            curve = self._live.curve(codec)
            if not curve.bpp:
                continue
            if which == "psnr":
                xs, ys = curve.bpp, curve.psnr
            else:
                pairs = [(r, m) for r, m in zip(curve.bpp, curve.ms_ssim_db) if m is not None and math.isfinite(m)]
                missing = missing or len(pairs) < len(curve.bpp)
                xs, ys = [r for r, _ in pairs], [m for _, m in pairs]
            item = self._curves.get((codec, which)) or self._make_curve(codec, which, dark)
            item.setData(list(xs), list(ys))
        if which == "psnr":
            self._update_legend(dark)
        if missing:
            self._set_title(self._msssim_plot, "MS-SSIM vs rate (not measured for images under 161 pixels on a side)")

    def _update_legend(self, dark: bool) -> None:
        drawn = [c for c in self._live.codecs if self._live.curve(c).bpp]
        self._legend.setText("&nbsp;&nbsp; ".join(
            f'<span style="color:{series_color(self._colors.get(c, 0), dark).name()}">●━</span> '
            f'{html.escape(_label(c))}' for c in drawn))

    def _make_curve(self, codec: str, which: str, dark: bool) -> pg.PlotDataItem:
        color = series_color(self._colors.get(codec, 0), dark)
        plot = self._psnr_plot if which == "psnr" else self._msssim_plot
        item = plot.plot([], [], pen=pg.mkPen(color, width=2), symbol="o", symbolSize=7,
                         symbolBrush=color, symbolPen=pg.mkPen(color), name=_label(codec))
        self._curves[(codec, which)] = item
        return item

    def _compared(self) -> BenchResult:
        """The finished sweep, or the points of the images every codec has finished so far."""
        if self._result is not None:
            return self._result
        return compared_images(self._live, {c: len(self._sweep(c)) for c in self._live.codecs})

    @Slot()
    def _update_table(self) -> None:
        source = self._compared()
        anchor = self.anchor()
        self._table.setRowCount(0)
        if not source.points or anchor is None:
            waiting = self._result is None and self._live.points
            self._summary.setText(f"So far: 0 of {_count(self._total_images, 'image')} measured with every codec."
                                  if waiting else "")
            return
        if anchor not in source.codecs:
            self._summary.setText(f"{_label(anchor)} was not part of this sweep; run it again with "
                                  f"it ticked to compare against it.")
            return
        if self._result is not None and self._final_rows[0] == anchor:
            rows = self._final_rows[1]           # computed in the sweep's thread
        elif self._result is None and self._partial_rows[:2] == (anchor, len(source.images)):
            rows = self._partial_rows[2]         # so far, computed there too
        else:                                    # another anchor chosen: 1-4 ms here (960 points, 5 codecs)
            rows = source.bd_table(anchor)
        self._table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            self._table.setItem(r, 0, QTableWidgetItem(_label(row["codec"])))
            curve = source.curve(row["codec"])
            for col, key, metric in ((1, "psnr", "PSNR"), (2, "ms_ssim_db", "MS-SSIM")):
                value = row[key]
                item = QTableWidgetItem(_pct(value))
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if not math.isfinite(value):
                    item.setToolTip("No comparison: the two curves need at least two points each and must "
                                    "overlap in quality.")
                else:
                    item.setToolTip(_ratios_tip(curve, row[f"{key}_ratios"], _label(anchor), metric))
                self._table.setItem(r, col, item)
        sentence = _summary_sentence(rows, anchor)
        if self._result is None:                # running, or cancelled part-way
            sentence = f"So far: {len(source.images)} of {_count(self._total_images, 'image')}. {sentence}"
        self._summary.setText(sentence)

    # -- helpers ---------------------------------------------------------------------------------
    def _scope_images(self) -> list[Path]:
        if self._scope_folder.isChecked():
            return list(self._images)
        return [self._current] if self._current is not None else []

    def _refresh_scope(self) -> None:
        name = self._current.name if self._current is not None else "none open"
        self._scope_current.setText(f"Current image ({name})")
        self._scope_current.setEnabled(self._current is not None)
        if self._images:
            folder = self._images[0].parent.name or str(self._images[0].parent)
            self._scope_folder.setText(f"All {_count(len(self._images), 'image')} in {folder}")
        else:
            self._scope_folder.setText("All images of the folder (no folder open)")
        self._scope_folder.setEnabled(bool(self._images))
        if self._current is None and self._images:
            self._scope_folder.setChecked(True)
        elif not self._images and self._current is not None:
            self._scope_current.setChecked(True)
        self._refresh_buttons()

    @Slot()
    def _on_codecs_changed(self, *_args) -> None:
        keep = self._anchor.currentData()
        self._anchor.blockSignals(True)
        self._anchor.clear()
        for name in self.selected_codecs():
            self._anchor.addItem(_label(name), name)
        index = self._anchor.findData(keep)
        if index < 0:
            index = self._anchor.findData("jpeg")
        self._anchor.setCurrentIndex(max(index, 0))
        self._anchor.blockSignals(False)
        self._update_table()
        self._refresh_buttons()

    @Slot()
    def _refresh_buttons(self, *_args) -> None:
        running = self.runner.is_running()
        images = self._scope_images()
        codecs = self.selected_codecs()
        self._run.setEnabled(not running and bool(images) and bool(codecs))
        if not running:
            if not images:
                self._run.setToolTip("Open an image (or a folder) first.")
            elif not codecs:
                self._run.setToolTip("Tick at least one codec.")
            else:
                points = len(images) * sum(len(self._sweep(c)) for c in codecs)
                self._run.setToolTip(f"Encode and decode {_count(points, 'time')}, measuring every result.")
        self._cancel.setEnabled(running)
        self._codec_list.setEnabled(not running)
        self._scope_box.setEnabled(not running)
        self._choose_results.setEnabled(not running)
        self._results_label.setText(f"Each sweep gets a folder in {self._results}")
        self._open_results.setEnabled(self._result is not None and not running)

    def _ask_results_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the sweeps' results", str(self._results))
        if folder:
            self.set_results_folder(folder)

    def _show_results(self) -> None:
        if self._folder is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self._folder)))

    # -- palette ---------------------------------------------------------------------------------
    def _set_title(self, widget: pg.PlotWidget, text: str) -> None:
        fg = self.palette().color(QPalette.ColorRole.WindowText)
        widget.getPlotItem().setTitle(text, color=fg.name(), size="10pt")

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_palette()
        super().changeEvent(event)

    def _apply_palette(self) -> None:
        pal = self.palette()
        dark = is_dark(pal)
        for widget in (self._psnr_plot, self._msssim_plot):
            fg = style_plot_widget(widget, pal)
            plot = widget.getPlotItem()
            self._set_title(widget, plot.titleLabel.text)
            plot.legend.setLabelTextColor(fg)
            plot.legend.setBrush(pg.mkBrush(pal.color(QPalette.ColorRole.Base)))
            plot.legend.setPen(pg.mkPen(pal.color(QPalette.ColorRole.Mid)))
        for (codec, _), item in self._curves.items():
            color = series_color(self._colors.get(codec, 0), dark)
            item.setPen(pg.mkPen(color, width=2))
            item.setSymbolBrush(color)
            item.setSymbolPen(pg.mkPen(color))


def _summary_sentence(rows: list[dict], anchor: str) -> str:
    """Every codec against the anchor, best first: "At the same PSNR, compared with JPEG files: AVIF files
    are on average 41 % smaller, WebP files 23 % smaller." Codecs without an answer are named too."""
    usable = sorted((r for r in rows if math.isfinite(r["psnr"])), key=lambda r: r["psnr"])
    if not usable:
        return "" if not rows else "Not enough overlapping points yet for a BD-rate comparison."
    parts = []
    for i, r in enumerate(usable):
        phrase = size_phrase(1.0, 1.0 + r["psnr"] / 100.0)
        phrase = "about the same size as" if phrase == "the same size as" else phrase
        if i == 0:
            parts.append(f"{_short_label(r['codec'])} files are on average {phrase} {_short_label(anchor)} files")
        else:
            parts.append(f"{_short_label(r['codec'])} files {phrase.removesuffix(' than').removesuffix(' as')}")
    text = f"At the same PSNR, {', '.join(parts)}."
    missing = [_short_label(r["codec"]) for r in rows if not math.isfinite(r["psnr"])]
    if missing:
        text += f" No comparison yet for {', '.join(missing)} (too few points overlapping in quality)."
    return text


def _short_label(codec: str) -> str:
    """"WebP" rather than "WebP (libwebp, lossy)": the library detail is noise in a sentence; a learned
    codec is named with its model, so two learned codecs never read alike."""
    name, fixed = parse_codec_spec(codec)
    return selection_name(name, build(codec_class(name).Options, fixed))


def _default_sweep(codec: str) -> tuple:
    """What the sweep of a list entry measures by default; an entry whose model no longer opens counts as the
    codec's usual sweep here, and the sweep itself reports why it cannot run."""
    try:
        return default_sweep(codec)
    except WorkbenchError:
        return _cls(codec).sweep


def _cls(codec: str):
    """The codec class of a list entry: a codec's name, or `learned:model=PATH` for a model added from
    the Compare tab (the bench's own codec spec, so the sweep and its files name it as the CLI does)."""
    return codec_class(parse_codec_spec(codec)[0])


def _label(codec: str) -> str:
    """The codec's label; an entry with a model also names the model ("Learned — mbt2018-mean (...)")."""
    name, fixed = parse_codec_spec(codec)
    return codec_class(name).label if not fixed else _short_label(codec)


def _ratios_tip(curve, ratios: list[float] | None, anchor: str, metric: str) -> str:
    """Where the BD-rate's mean comes from: each quality setting's size against the anchor's at its quality."""
    lines = [f"File size against {anchor} at the same {metric}, per quality setting (below 1×: smaller):"]
    for q, bpp, ratio in zip(curve.quality, curve.bpp, ratios or ()):
        shown = "outside the anchor's range" if not math.isfinite(ratio) else f"{ratio:.2f}×"
        lines.append(f"quality {q:g} ({bpp:.3f} bpp): {shown}")
    return "\n".join(lines)


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:+.1f} %".replace("-", "−")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"
