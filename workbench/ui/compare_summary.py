"""The sentence under the Compare tab's picture: what the two sides' numbers mean, with a verdict.

The words come from the core (`summary.summarize`); this widget decides when there is something to say
(both sides measured, neither failed) and, when the sides are different codecs, sweeps the left codec in
the background once per image and setting, so the sentence can compare at equal quality instead of only
point against point.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from workbench.core.summary import GLOSSARY, Measurement, RateCurve, summarize
from workbench.ui.codec_panel import Selection, selection_name, setting_text
from workbench.ui.compare_side import is_long

if TYPE_CHECKING:
    from workbench.core.images import LoadedImage
    from workbench.ui.compare_side import CompareSide
    from workbench.ui.encode_worker import Worker

SWEEP = "sweep"                  # the worker channel of the equal-quality sweep


def _sweep(*args):
    from workbench.core.target_size import sweep_job
    return sweep_job(*args)


def _measurement(image: LoadedImage, side: CompareSide) -> Measurement | None:
    if side.selection.codec is None:
        return Measurement(f"the original {image.format} file", image.file_size, image.pixels, is_original=True)
    r = side.result
    if r is None:
        return None
    codec = side.selection.codec
    return Measurement(selection_name(codec, side.selection.options), r.size_bytes, image.pixels, r.quality.psnr,
                       r.quality.ms_ssim_db, setting=setting_text(codec, side.selection.options.quality))


def _curve_key(sel: Selection) -> tuple:
    return (sel.codec,) + tuple(sorted((k, v) for k, v in sel.values.items() if k != "quality"))


class SummaryBox(QWidget):
    """`summary` holds the sentence, `hint` what is being measured for it (or why it cannot be)."""

    def __init__(self, worker: Worker, left: CompareSide, right: CompareSide, parent: QWidget | None = None):
        super().__init__(parent)
        self.worker, self.left, self.right = worker, left, right
        self.image: LoadedImage | None = None
        self._curves: dict[tuple, RateCurve] = {}
        self._sweeping: tuple | None = None          # the curve being measured right now
        self.summary = QLabel()
        self.summary.setObjectName("summary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setToolTip(GLOSSARY["verdict"])
        font = QFont(self.summary.font())
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.summary.setFont(font)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.summary)
        lay.addWidget(self.hint)
        self.refresh()

    def set_image(self, image: LoadedImage) -> None:
        """A sweep of the previous image must not land on this one."""
        self.worker.cancel(SWEEP)
        self.image = image
        self._curves.clear()

    def ensure_sweep(self) -> None:
        """Sweep the left codec once per image and setting, so the sentence can compare at equal quality."""
        left, right = self.left.selection, self.right.selection
        if self.image is None or left.codec is None or right.codec is None or \
                selection_name(left.codec, left.options) == selection_name(right.codec, right.options):
            return
        if is_long(left):
            self.hint.setText("No equal-quality comparison for per-image optimization: measuring it at several "
                              "settings would take minutes.")
            self.hint.setVisible(True)
            return
        key = _curve_key(left)
        if key in self._curves or (key == self._sweeping and self.worker.is_pending(SWEEP)):
            return
        self._sweeping = key
        name = selection_name(left.codec, left.options)
        self.hint.setText(f"Measuring {name} at several settings to compare at equal quality…")
        self.hint.setVisible(True)
        self.worker.submit(SWEEP, partial(_sweep, self.image.rgb, left.codec, left.options, name),
                           on_done=partial(self._swept, key), on_error=self._sweep_failed,
                           on_progress=lambda p: self.hint.setText(
                               f"Measuring {name} at several settings to compare at equal quality "
                               f"({p.step} of {p.total})…"))

    def _swept(self, key: tuple, curve: RateCurve) -> None:
        self._curves[key] = curve
        self.hint.setVisible(False)
        self.refresh()

    def _sweep_failed(self, message: str) -> None:
        self.hint.setText(f"No equal-quality comparison: the sweep failed ({message}).")

    def refresh(self) -> None:
        if self.image is None:
            self.summary.setText("")
            self.hint.setVisible(False)
            return
        sides = self.left, self.right
        failed = [s.name for s in sides if s.failed]
        if failed:
            which = "the left and right sides" if len(failed) == 2 else f"the {failed[0]} side"
            self.summary.setText(f"No comparison: {which} could not be encoded (the reason is shown beside the "
                                 f"image).")
            return
        left, right = (_measurement(self.image, s) for s in sides)
        if left is None or right is None:
            self.summary.setText("Waiting for both sides to finish encoding…")
            return
        curves = [self._curves.get(_curve_key(s.selection)) if s.selection.codec else None for s in sides]
        self.summary.setText(summarize(left, right, *curves))
        if not self.worker.is_pending(SWEEP):
            self.hint.setVisible(False)
