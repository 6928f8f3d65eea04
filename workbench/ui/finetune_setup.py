"""The Train tab's set-up of a finetuning: which model's decoder, on which quantizer's latents, for how long.

Every control is generated from `FinetuneOptions`, the dataclass `workbench finetune` reads, so the app
offers what the command line offers. The model list is the Compare tab's (shipped models, imported ones and
"Open…"); the quantizers carry the Compare tab's plain words. Which quantizers a model can be finetuned on
is asked of the model's kind through the job's own check (`finetune.refused_quantizers`), in the
background since it loads the model; the ones it refuses stay listed, disabled, with the reason.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from workbench.core.codecs.learned import LearnedOptions
from workbench.core.errors import OptionError
from workbench.core.learned.finetune import QUANTIZERS, FinetuneOptions, refused_quantizers
from workbench.core.learned.run_folder import RunSpec
from workbench.core.options import build, specs
from workbench.ui.codec_panel import ModelEditor, OptionsForm, make_editor
from workbench.ui.job_runner import JobRunner

#: The Compare tab's words for the quantizers (the learned codec's `quantizer` option).
QUANTIZER_LABELS: dict[str, str] = next(dict(zip(s.choices, s.choice_labels)) for s in specs(LearnedOptions)
                                        if s.name == "quantizer")

#: What a finetuning's curves show, in rows of FINETUNE_COLUMNS, wide enough for their titles at 1024×700
#: (the held-out MS-SSIM only for a model trained for it: a second row). The rate is not a curve: it stays
#: what the frozen encoder writes (a flat line), and the preview's caption says it; the original decoder's
#: held-out PSNR (in progress.jsonl too) is the gain's baseline.
FINETUNE_CURVES = ("loss", "val_psnr", "val_gain_db", "val_ms_ssim")
FINETUNE_COLUMNS = 3


def _quantizer_editor(spec):
    """The labels without their parenthesis, which would be cut off in the set-up column; the full ones are
    the items' tooltips."""
    editor = make_editor(dataclasses.replace(spec, choice_labels=tuple(QUANTIZER_LABELS[c].split(" (")[0]
                                                                       for c in spec.choices)))
    for i, choice in enumerate(spec.choices):
        editor.combo.setItemData(i, QUANTIZER_LABELS[choice], Qt.ItemDataRole.ToolTipRole)
    return editor


class FinetuneSetup(QWidget):
    """`checked` emits when the chosen model's allowed quantizers are known (`refused` then holds the
    reasons for the others)."""

    checked = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.form = OptionsForm()
        self.form.build(FinetuneOptions, editors={"model": ModelEditor, "quantizer": _quantizer_editor})
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setVisible(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        intro = QLabel("The encoder stays as it is, so the files keep their size; the decoder learns to make "
                       "more of the latents the chosen quantizer sends.")
        intro.setWordWrap(True)
        lay.addWidget(intro)
        lay.addWidget(self.form)
        lay.addWidget(self.note)
        self.refused: dict[str, str] = {}
        self._asked: str | None = None              # the model the running check is about
        self._asker = JobRunner(self)
        self._asker.finished.connect(self._known)
        self._asker.failed.connect(self._failed)
        self.form.editors["model"].committed.connect(self.check_model)

    @property
    def model_editor(self) -> ModelEditor:
        return self.form.editors["model"]

    @property
    def quantizer_combo(self):
        return self.form.editors["quantizer"].combo

    def values(self) -> dict:
        return self.form.values()

    def set_values(self, values: dict) -> None:
        self.form.set_values(values)
        self.check_model()

    def offer_model(self, value: str) -> None:
        self.model_editor.offer(value)

    def spec(self, folders: tuple[str, ...]) -> RunSpec:
        """The `workbench finetune` run the form describes; OptionError when the model's kind refuses the
        chosen quantizer (known once the check has answered; the job refuses it in any case)."""
        opts = build(FinetuneOptions, self.form.values())
        if opts.quantizer in self.refused and self._asked is None:
            raise OptionError(self.refused[opts.quantizer])
        return RunSpec(dataclasses.asdict(opts), {}, folders, "finetune")

    # ----- which quantizers the model's kind takes
    def check_model(self) -> None:
        """Ask, in the background, which quantizers the chosen model can be finetuned on; a check already
        running is answered first and then asked again for the model chosen since."""
        if self._asker.is_running():
            return
        model = self._asked = self.form.values()["model"]
        self.note.setText("Checking which quantizers this model can be finetuned on…")
        self.note.setVisible(True)
        self._asker.start(lambda: refused_quantizers(model), live=False)

    def _known(self, refused: dict[str, str]) -> None:
        asked, self._asked = self._asked, None
        if asked != self.form.values()["model"]:      # chosen again meanwhile
            self.check_model()
            return
        self._show(refused)
        self.checked.emit()

    def _failed(self, message: str) -> None:
        asked, self._asked = self._asked, None
        if asked != self.form.values()["model"]:
            self.check_model()
            return
        self._show({q: message for q in QUANTIZERS})
        self.checked.emit()

    def _show(self, refused: dict[str, str]) -> None:
        self.refused = refused
        combo = self.quantizer_combo
        items: QStandardItemModel = combo.model()
        for i in range(combo.count()):
            choice = combo.itemData(i)
            reason = refused.get(choice)
            items.item(i).setEnabled(reason is None)
            combo.setItemData(i, f"Not available: {reason}." if reason else QUANTIZER_LABELS[choice],
                              Qt.ItemDataRole.ToolTipRole)
        allowed = [q for q in QUANTIZERS if q not in refused]
        if combo.currentData() in refused and allowed:
            combo.setCurrentIndex(combo.findData(allowed[0]))
        self.note.setVisible(bool(refused))
        if not refused:
            self.note.setText("")
        elif not allowed:
            self.note.setText(f"This model cannot be finetuned: {next(iter(refused.values()))}.")
        else:
            names = "; ".join(combo.itemText(combo.findData(q)).lower() for q in allowed)
            self.note.setText(f"Only {names} for this model: {next(iter(refused.values()))}.")

    def model_name(self) -> str:
        """A short name of the chosen model for run folders."""
        model = self.form.values()["model"]
        name = Path(model).name
        for suffix in (".safetensors", ".pth.tar", ".pth", ".pt"):
            name = name.removesuffix(suffix)
        return name
