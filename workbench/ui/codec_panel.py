"""One side of the comparison: which codec with which options, and what that produced.

The option widgets are generated from each codec's options dataclass (`core.options.specs`), so a codec
added to the registry gets its controls here without any GUI code. Numbers become a slider with a spin
box, choices a combo box, flags a check box. A change is *committed* (and triggers an encode) when a
slider is released or a value is entered, never on every slider tick: encodes take tenths of a second
and would pile up behind a dragged slider.
"""

from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QStandardItemModel, QValidator
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QProgressBar,
    QSlider, QSpinBox, QToolButton, QVBoxLayout, QWidget,
)

from workbench.core.codecs import all_codecs, codec_class
from workbench.core.codecs.learned import LearnedOptions
from workbench.core.errors import WorkbenchError
from workbench.core.learned.catalog import MODEL_SUFFIXES, model_choices, model_label, remember_model
from workbench.core.options import OptionSpec, build, specs
from workbench.core.presets import PRESETS, preset
from workbench.core.summary import GLOSSARY, format_size, is_lossless

INT_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class Selection:
    """A side's choice: `codec` None means the original image itself."""

    codec: str | None
    options: Any = None

    @property
    def values(self) -> dict[str, Any]:
        return asdict(self.options) if self.options is not None else {}


def short_name(codec: str) -> str:
    """The codec's label without the library in parentheses: "JPEG (libjpeg-turbo)" -> "JPEG"."""
    return codec_class(codec).label.split(" (")[0]


def selection_name(codec: str, options: Any = None) -> str:
    """The codec's short label and, for a codec with a choice of models, which model: two learned models
    must never read alike ("Learned — dct-hyperprior-mse (PSNR)")."""
    model = getattr(options, "model", None)
    return f"{short_name(codec)} — {model_label(model)}" if model else short_name(codec)


def setting_text(codec: str, quality: Any) -> str:
    """How a quality setting reads in sentences and captions, in the codec's own terms ("QP 30")."""
    q_spec = next(s for s in specs(codec_class(codec).Options) if s.name == "quality")
    return f"{q_spec.title.lower() if q_spec.label is None else q_spec.title} {quality:g}"


class _Editor(QWidget):
    """Base of the per-option editors: `value()`, `set_value()` and a `committed` signal."""

    committed = Signal()

    def __init__(self, spec: OptionSpec):
        super().__init__()
        self.spec = spec
        self.setToolTip(spec.help)

    def value(self) -> Any:
        raise NotImplementedError

    def set_value(self, value: Any) -> None:
        raise NotImplementedError


class _NumberEditor(_Editor):
    """A slider for ranges (released = committed) beside a spin box for exact values."""

    def __init__(self, spec: OptionSpec):
        super().__init__(spec)
        self._is_int = spec.type is int
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        if self._is_int:
            self.spin: QSpinBox | QDoubleSpinBox = QSpinBox()
            self._step = int(spec.step or 1)
            self.spin.setRange(int(spec.minimum if spec.minimum is not None else -INT_LIMIT),
                               int(spec.maximum if spec.maximum is not None else INT_LIMIT))
            self.spin.setSingleStep(self._step)
            if _is_wide(spec):
                self.spin.setStepType(QSpinBox.StepType.AdaptiveDecimalStepType)
            if _off_at_zero(spec):
                self.spin.setSpecialValueText("off")
        elif _is_wide(spec):
            self.spin = _FreeSpinBox()
            self._step = 1.0
            self.spin.setRange(spec.minimum, spec.maximum)
        else:
            self.spin = QDoubleSpinBox()
            span = (spec.maximum - spec.minimum) if spec.minimum is not None and spec.maximum is not None else 100.0
            self._step = float(spec.step or _nice_step(span / 200.0))
            decimals = max(0, -math.floor(math.log10(self._step))) if self._step < 1 else 0
            self.spin.setDecimals(_decimals_to_show(decimals, spec.default, spec.minimum))
            self.spin.setRange(spec.minimum if spec.minimum is not None else -1e12,
                               spec.maximum if spec.maximum is not None else 1e12)
            self.spin.setSingleStep(self._step)
        self.spin.setKeyboardTracking(False)       # typing "75" must not encode at 7 first
        self.spin.setToolTip(spec.help)
        self.slider: QSlider | None = None
        if spec.minimum is not None and spec.maximum is not None and not _is_wide(spec):
            self.slider = QSlider(Qt.Orientation.Horizontal)
            self.slider.setRange(0, self._to_ticks(spec.maximum))
            self.slider.setPageStep(max(1, self.slider.maximum() // 10))
            self.slider.setToolTip(spec.help)
            self.slider.valueChanged.connect(self._slider_moved)
            self.slider.sliderReleased.connect(self.committed)
            lay.addWidget(self.slider, 1)
        lay.addWidget(self.spin)
        self.spin.valueChanged.connect(self._spin_changed)
        self.set_value(spec.default)

    def _to_ticks(self, v: float) -> int:
        return int(round((v - (self.spec.minimum or 0)) / self._step))

    def _from_ticks(self, t: int) -> float:
        v = (self.spec.minimum or 0) + t * self._step
        return int(round(v)) if self._is_int else round(v, 10)

    def _slider_moved(self, ticks: int) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(self._from_ticks(ticks))
        self.spin.blockSignals(False)
        if not self.slider.isSliderDown():           # keyboard or a click on the groove: final at once
            self.committed.emit()

    def _spin_changed(self, value: float) -> None:
        if self.slider is not None:
            self.slider.blockSignals(True)
            self.slider.setValue(self._to_ticks(value))
            self.slider.blockSignals(False)
        self.committed.emit()

    def value(self) -> Any:
        return int(self.spin.value()) if self._is_int else float(self.spin.value())

    def set_value(self, value: Any) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(value)
        self.spin.blockSignals(False)
        if self.slider is not None:
            self.slider.blockSignals(True)
            self.slider.setValue(self._to_ticks(self.spin.value()))
            self.slider.blockSignals(False)


#: A float option whose range spans this many times its default step (or this ratio between its
#: bounds) gets a free-form number box instead of a slider: a slider over 0..10⁶ moves in steps of
#: thousands, useless for a quantization step of 0.01 or a learning rate of 10⁻⁴.
WIDE_RANGE = 1e4
#: The same for whole numbers: a slider over 0..5000 optimization steps jumps by dozens per pixel, and
#: releasing it where it happens to stop would start a minutes-long encode.
WIDE_INT_RANGE = 1000


def _is_wide(spec: OptionSpec) -> bool:
    if spec.type not in (int, float) or spec.step is not None or spec.minimum is None or spec.maximum is None:
        return False
    span = spec.maximum - spec.minimum
    if spec.type is int:
        return span > WIDE_INT_RANGE
    return span >= WIDE_RANGE or (spec.minimum > 0 and spec.maximum / spec.minimum >= WIDE_RANGE)


def _off_at_zero(spec: OptionSpec) -> bool:
    """Options whose help declares "0: off" (latent optimization steps) read "off" at 0 instead of a bare
    number, so nobody wonders whether 0 steps is a setting or a missing value."""
    text = f"{spec.help} {spec.label or ''}"
    return spec.type is int and spec.minimum == 0 and ("0: off" in text or "0 = off" in text)


def _decimals_to_show(decimals: int, *values: float | None) -> int:
    """At least `decimals`, and enough that the default and the minimum are shown (and kept) exactly:
    a λ of 0.02 in a box with one decimal would silently become 0.0."""
    for v in values:
        while v is not None and decimals < 8 and abs(round(v, decimals) - v) > 1e-12 * max(1.0, abs(v)):
            decimals += 1
    return decimals


class _FreeSpinBox(QDoubleSpinBox):
    """A number box for values spanning orders of magnitude: shows them in %g form (1e-05, 2000,
    0.013) and steps by about a tenth of the current value's magnitude."""

    def __init__(self) -> None:
        super().__init__()
        self.setDecimals(12)
        self.setStepType(QDoubleSpinBox.StepType.AdaptiveDecimalStepType)

    def textFromValue(self, value: float) -> str:
        return f"{value:.6g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text.replace(",", "."))
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        try:
            v = float(text.replace(",", "."))
        except ValueError:
            ok = text.strip() in ("", "-", "+", ".") or text.lower().endswith(("e", "e-", "e+"))
            return (QValidator.State.Intermediate if ok else QValidator.State.Invalid), text, pos
        state = QValidator.State.Acceptable if self.minimum() <= v <= self.maximum() else QValidator.State.Intermediate
        return state, text, pos


def _nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten: steps people can type."""
    exp = math.floor(math.log10(raw)) if raw > 0 else 0
    for m in (1, 2, 5, 10):
        if raw <= m * 10**exp:
            return m * 10**exp
    return 10 ** (exp + 1)


def _compact_combo() -> QComboBox:
    """A combo box whose long plain labels do not widen the side column."""
    combo = QComboBox()
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(8)
    return combo


class _ChoiceEditor(_Editor):
    def __init__(self, spec: OptionSpec):
        super().__init__(spec)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.combo = _compact_combo()
        for c, text in zip(spec.choices, spec.choice_labels or map(str, spec.choices)):
            self.combo.addItem(text, c)
        self.combo.setToolTip(spec.help)
        lay.addWidget(self.combo)
        self.set_value(spec.default)
        self.combo.currentIndexChanged.connect(self.committed)

    def value(self) -> Any:
        return self.combo.currentData()

    def set_value(self, value: Any) -> None:
        self.combo.blockSignals(True)
        self.combo.setCurrentIndex(max(0, self.combo.findData(value)))
        self.combo.blockSignals(False)


class _BoolEditor(_Editor):
    def __init__(self, spec: OptionSpec):
        super().__init__(spec)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.check = QCheckBox()
        self.check.setToolTip(spec.help)
        lay.addWidget(self.check)
        self.set_value(spec.default)
        self.check.toggled.connect(self.committed)

    def value(self) -> Any:
        return self.check.isChecked()

    def set_value(self, value: Any) -> None:
        self.check.blockSignals(True)
        self.check.setChecked(bool(value))
        self.check.blockSignals(False)


class _TextEditor(_Editor):
    def __init__(self, spec: OptionSpec):
        super().__init__(spec)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.edit = QLineEdit()
        self.edit.setToolTip(spec.help)
        lay.addWidget(self.edit)
        self.set_value(spec.default)
        self.edit.editingFinished.connect(self.committed)

    def value(self) -> Any:
        return self.spec.type(self.edit.text())

    def set_value(self, value: Any) -> None:
        self.edit.setText(str(value))


#: What the model chooser's file dialog offers (which file really is a model is decided when it is used).
MODEL_FILTER = f"Learned models ({' '.join('*' + s for s in MODEL_SUFFIXES)});;All files (*)"
OPEN_MODEL = "Open…"


class ModelEditor(_Editor):
    """The learned codec's model: a list of the shipped and the imported models, and "Open…" for a model
    file, which is remembered (not copied) for next time. Whether the file is a model is found out by
    the encode, whose error message says so beside the picture."""

    #: Where the file dialog starts; shared by both sides and kept for the session.
    last_folder = str(Path.home())

    def __init__(self, spec: OptionSpec):
        super().__init__(spec)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.combo = _compact_combo()
        self.combo.setToolTip("Which trained model codes the image: the shipped ones, models opened before, or "
                              "Open… for a .safetensors file or a CompressAI checkpoint (.pth.tar, .pth, .pt).")
        for label, value in model_choices():
            self._add(label, value)
        self.combo.addItem(OPEN_MODEL, None)
        lay.addWidget(self.combo)
        self._current = 0
        self.set_value(spec.default)
        self.combo.activated.connect(self._activated)

    def _add(self, label: str, value: str) -> int:
        """Insert before "Open…"; the full value (a path) is the item's tooltip."""
        index = self.combo.count() - (1 if self.combo.findData(None) >= 0 else 0)
        self.combo.insertItem(index, label, value)
        self.combo.setItemData(index, value, Qt.ItemDataRole.ToolTipRole)
        return index

    def _activated(self, index: int) -> None:
        if self.combo.itemData(index) is None:
            path, _ = QFileDialog.getOpenFileName(self, "Open a learned model", ModelEditor.last_folder,
                                                  MODEL_FILTER)
            if not path:
                self.combo.setCurrentIndex(self._current)      # back to the model that was chosen
                return
            ModelEditor.last_folder = str(Path(path).parent)
            try:
                value = remember_model(path)
            except WorkbenchError:
                value = str(Path(path).resolve())              # usable now, just not offered next time
            self.set_value(value)
        elif index == self._current:
            return
        self._current = self.combo.currentIndex()
        self.committed.emit()

    def value(self) -> Any:
        return self.combo.itemData(self._current)

    def showEvent(self, event) -> None:
        """A list built before a model was opened elsewhere in the window (the other side, the Train tab's
        set-up) offers it once shown again."""
        super().showEvent(event)
        for _, value in model_choices():
            self.offer(value)

    def offer(self, value: str) -> None:
        """List a model that became available (trained in the app) without choosing it."""
        if self.combo.findData(value) < 0:
            self._add(model_label(value), value)

    def set_value(self, value: Any) -> None:
        index = self.combo.findData(value)
        if index < 0:                                     # a path from the settings or the CLI
            index = self._add(model_label(str(value)), str(value))
        self.combo.blockSignals(True)
        self.combo.setCurrentIndex(index)
        self.combo.blockSignals(False)
        self._current = index


def make_editor(spec: OptionSpec) -> _Editor:
    if spec.choices:
        return _ChoiceEditor(spec)
    if spec.type is bool:
        return _BoolEditor(spec)
    if spec.type in (int, float):
        return _NumberEditor(spec)
    return _TextEditor(spec)


class OptionsForm(QWidget):
    """Editors for one frozen options dataclass, one row per field; `committed` when a value is final.

    Shared by the codec panels and the network quantizer panel, so a quantizer, like a codec, gets its
    controls from its `Options` declaration alone.
    """

    committed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._form = QFormLayout(self)
        self._form.setContentsMargins(0, 4, 0, 0)
        self._form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.editors: dict[str, _Editor] = {}

    def build(self, options_cls: type | None, tooltips: dict[str, str] | None = None,
              editors: dict[str, type[_Editor]] | None = None) -> None:
        """Replace the rows with editors for `options_cls` (None: no rows), at their defaults; `editors`
        names options that need a special editor (the learned codec's model chooser)."""
        while self._form.rowCount():
            self._form.removeRow(0)
        self.editors.clear()
        if options_cls is None:
            return
        for spec in specs(options_cls):
            editor = (editors or {}).get(spec.name, make_editor)(spec)
            if tooltips and spec.name in tooltips:
                editor.setToolTip(tooltips[spec.name])
            editor.committed.connect(self.committed)
            label = QLabel(spec.title)
            label.setToolTip(editor.toolTip())
            self._form.addRow(label, editor)
            self.editors[spec.name] = editor

    def values(self) -> dict[str, Any]:
        return {name: ed.value() for name, ed in self.editors.items()}

    def set_values(self, values: dict[str, Any]) -> None:
        """Show `values` without emitting `committed`; values outside today's ranges keep the default."""
        for name, value in values.items():
            if name in self.editors:
                try:
                    self.editors[name].set_value(self.editors[name].spec.convert(value))
                except WorkbenchError:
                    pass


class CodecPanel(QGroupBox):
    """Codec chooser plus generated option widgets; emits `changed` when a new encode is due."""

    changed = Signal()

    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(title, parent)
        lay = QVBoxLayout(self)
        self.preset = QComboBox()
        self.preset.setToolTip("Ready-made settings for what the picture is for; any setting changed below "
                               "makes them your own.")
        self.preset.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.preset.setMinimumContentsLength(16)
        self.preset.addItem("Preset: none (choose below)", None)
        self.preset_note = QLabel()
        self.preset_note.setWordWrap(True)
        self.preset_note.setVisible(False)
        lay.addWidget(self.preset)
        lay.addWidget(self.preset_note)
        self.combo = QComboBox()
        self.combo.setToolTip("What this side shows: the original image, or the image after compressing it "
                              "with a codec. Greyed-out codecs are not available on this computer; hover "
                              "over one to see why.")
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(16)
        self.combo.addItem("Original (no compression)", "")
        model: QStandardItemModel = self.combo.model()
        for cls in all_codecs():
            ok, why = cls.availability()
            self.combo.addItem(cls.label, cls.name)
            item = model.item(self.combo.count() - 1)
            if ok:
                item.setToolTip(cls.quality_help or cls.label)
            else:
                item.setEnabled(False)
                item.setToolTip(f"Not available here: {why}")
        lay.addWidget(self.combo)
        self._form_host = OptionsForm()
        self._form_host.committed.connect(self.changed)
        lay.addWidget(self._form_host)
        self._editors = self._form_host.editors
        self.combo.currentIndexChanged.connect(self._codec_changed)
        for p in PRESETS:                       # after the codec list: a preset needs its codec available
            self.preset.addItem(p.title, p.name)
            item = self.preset.model().item(self.preset.count() - 1)
            index = self.combo.findData(p.codec)
            if index >= 0 and model.item(index).isEnabled():
                item.setToolTip(p.explanation)
            else:
                item.setEnabled(False)
                item.setToolTip(f"Not available here: {model.item(index).toolTip() if index >= 0 else p.codec}")
        self.preset.activated.connect(self._preset_chosen)
        self.changed.connect(self._check_preset)

    def codec(self) -> str | None:
        return self.combo.currentData() or None

    def available_codecs(self) -> list[str]:
        model: QStandardItemModel = self.combo.model()
        return [self.combo.itemData(i) for i in range(1, self.combo.count()) if model.item(i).isEnabled()]

    def selection(self) -> Selection:
        codec = self.codec()
        if codec is None:
            return Selection(None)
        return Selection(codec, build(codec_class(codec).Options, self._form_host.values()))

    def set_selection(self, codec: str | None, values: dict[str, Any] | None = None) -> bool:
        """Show `codec` with `values` without emitting `changed`; False when the codec cannot be chosen."""
        index = self.combo.findData(codec or "")
        if index < 0 or not self.combo.model().item(index).isEnabled():
            return False
        self.combo.blockSignals(True)
        self.combo.setCurrentIndex(index)
        self.combo.blockSignals(False)
        self._rebuild(codec)
        self._form_host.set_values(values or {})   # a stale saved value outside today's range keeps the default
        self._check_preset()
        return True

    def _preset_chosen(self, index: int) -> None:
        name = self.preset.itemData(index)
        if name is None:
            self._check_preset()
            return
        p = preset(name)
        if self.set_selection(p.codec, p.values):
            self.preset_note.setText(p.explanation)
            self.preset_note.setVisible(True)
            self.changed.emit()

    def _check_preset(self) -> None:
        """Back to "none" once the settings shown are no longer the chosen preset's."""
        name = self.preset.currentData()
        try:
            if name is not None and preset(name).matches(self.codec(), self.selection().values):
                return
        except WorkbenchError:                          # settings that do not build are no preset's
            pass
        self.preset.setCurrentIndex(0)
        self.preset_note.setVisible(False)

    def offer_model(self, value: str) -> None:
        """A new learned model joins the model list shown now; lists built later read it from the catalog."""
        editor = self._editors.get("model")
        if isinstance(editor, ModelEditor):
            editor.offer(value)

    def state(self) -> dict[str, Any]:
        """What QSettings stores, so the next session starts where this one ended."""
        sel = self.selection()
        return {"codec": sel.codec or "", "options": sel.values}

    def _codec_changed(self) -> None:
        self._rebuild(self.codec())
        self.changed.emit()

    def _rebuild(self, codec: str | None) -> None:
        if codec is None:
            self._form_host.build(None)
            self._form_host.setVisible(False)
            return
        cls = codec_class(codec)
        self._form_host.build(cls.Options, {"quality": cls.quality_help} if cls.quality_help else None,
                              {"model": ModelEditor} if issubclass(cls.Options, LearnedOptions) else None)
        self._form_host.setVisible(True)


class SizeTarget(QGroupBox):
    """One side's file size on request: as large as the other side's file, or a size typed in kB. The
    codec's quality is searched (`core.target_size`); the other options stay as they are."""

    match_requested = Signal()              # as large as the other side's file
    target_requested = Signal(int)          # bytes

    def __init__(self, parent: QWidget | None = None):
        super().__init__("File size", parent)
        self.match_button = QToolButton()
        self.match_button.setText("Match the other side")
        self.match_button.setToolTip("Search this codec's quality setting whose file is as close as possible to "
                                     "the other side's file size, for a comparison at equal size.")
        self.match_button.clicked.connect(self.match_requested)
        self.target = QDoubleSpinBox()
        self.target.setRange(0.1, 1e6)
        self.target.setDecimals(1)
        self.target.setValue(20.0)
        self.target.setSuffix(" kB")
        self.target.setToolTip("A file size to aim at, in kilobytes (1 kB = 1000 bytes).")
        self.target_button = QToolButton()
        self.target_button.setText("Make it this size")
        self.target_button.setToolTip("Search this codec's quality setting whose file is closest to the size "
                                      "typed beside it.")
        self.target_button.clicked.connect(lambda: self.target_requested.emit(round(self.target.value() * 1000)))
        row = QHBoxLayout()
        row.addWidget(self.target, 1)
        row.addWidget(self.target_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.match_button)
        lay.addLayout(row)


class SideMetrics(QWidget):
    """The numbers under one side, each with a plain-word tooltip, and a copy-command button; during a long
    encode also its progress, a link to its curves and a Cancel button."""

    live_requested = Signal()        # the "Live tab" link in a job's progress line was clicked

    ROWS = (("size", "Size"), ("bpp", "Bits per pixel"), ("saved", "Saved"), ("psnr", "PSNR"),
            ("ms_ssim", "MS-SSIM"), ("encode", "Encode time"), ("decode", "Decode time"))

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self._values: dict[str, QLabel] = {}
        for key, title in self.ROWS:
            name = QLabel(title)
            value = QLabel("–")
            value.setObjectName(key)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setWordWrap(True)
            for w in (name, value):
                w.setToolTip(GLOSSARY[key])
            form.addRow(name, value)
            self._values[key] = value
        outer.addLayout(form)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setVisible(False)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse)
        self.status.linkActivated.connect(lambda _link: self.live_requested.emit())
        outer.addWidget(self.status)
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(10)
        self.progress.setVisible(False)
        outer.addWidget(self.progress)
        self.copy_button = QToolButton()
        self.copy_button.setText("Copy CLI command")
        self.copy_button.setToolTip("Put the `workbench compress ...` command that reproduces this file on "
                                    "the clipboard.")
        self.copy_button.setEnabled(False)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Stop after the current step and show the previous result again.")
        self.cancel_button.setVisible(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        outer.addLayout(buttons)

    def value(self, key: str) -> str:
        return self._values[key].text()

    def set_stale(self, stale: bool) -> None:
        """Grey the numbers while they belong to older settings than the panel shows."""
        for label in self._values.values():
            label.setEnabled(not stale)

    def is_stale(self) -> bool:
        return not next(iter(self._values.values())).isEnabled()

    def show_busy(self, text: str) -> None:
        self._set_status(text)

    def show_job(self, text: str, step: int, total: int | None) -> None:
        """A long encode under way: its progress, where its curves are, and a way to stop it."""
        self._set_status(f'{html.escape(text)} <a href="live">Curves in the Live tab</a>', job=True)
        self.progress.setRange(0, total or 0)             # no total: a busy bar
        self.progress.setValue(min(step, total or 0))

    def show_error(self, text: str) -> None:
        for label in self._values.values():
            label.setText("–")
        self.set_stale(False)
        self.copy_button.setEnabled(False)
        self._set_status(text)

    def show_original(self, file_size: int, pixels: int, file_format: str) -> None:
        self._fill(size=f"{format_size(file_size)} ({file_size:,} bytes, {file_format})",
                   bpp=f"{8.0 * file_size / pixels:.3f}", saved="– (this is the original file)",
                   psnr="– (reference)", ms_ssim="– (reference)", encode="–", decode="–")
        self.copy_button.setEnabled(False)

    def show_result(self, result, original_file_size: int) -> None:
        """`result` is a core CompressResult; "saved" is measured against the file that was opened."""
        q = result.quality
        saved = 1.0 - result.size_bytes / original_file_size
        psnr = "lossless (identical pixels)" if is_lossless(q.psnr) else f"{q.psnr:.2f} dB"
        if q.ms_ssim is None:
            ms = "n/a (image under 161 px)"
        elif is_lossless(q.ms_ssim_db):
            ms = "1 (identical)"
        else:
            ms = f"{q.ms_ssim:.4f} ({q.ms_ssim_db:.2f} dB)"
        bpp = f"{result.bpp:.3f}"
        if result.estimated_bpp is not None:      # a learned model's own estimate, beside the real size
            bpp += f" (model estimate {result.estimated_bpp:.3f})"
        self._fill(size=f"{format_size(result.size_bytes)} ({result.size_bytes:,} bytes)", bpp=bpp,
                   saved=f"{saved * 100:.1f} %" if saved >= 0 else f"{-saved * 100:.1f} % larger than the original",
                   psnr=psnr, ms_ssim=ms, encode=_ms(result.encode_s), decode=_ms(result.decode_s))
        self.copy_button.setEnabled(True)

    def _fill(self, **texts: str) -> None:
        for key, text in texts.items():
            self._values[key].setText(text)
        self.set_stale(False)
        self._set_status("")

    def _set_status(self, text: str, job: bool = False) -> None:
        self.status.setTextFormat(Qt.TextFormat.RichText if job else Qt.TextFormat.PlainText)
        self.status.setText(text)
        self.status.setVisible(bool(text))
        self.progress.setVisible(job)
        self.cancel_button.setVisible(job)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"
