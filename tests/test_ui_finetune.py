"""Finetuning from the Train tab, driven like a user would, with tiny models finetuned by real `workbench
finetune` processes."""

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog

from workbench.core.learned import preview, run_folder
from workbench.core.learned.catalog import model_choices
from workbench.core.learned.weights import load_codec_model
from workbench.ui.codec_panel import OPEN_MODEL, ModelEditor
from qt_drops import drop
from test_compressai_import import compressai_state
from test_finetune_run import finetuned_ms_ssim_model, tiny_model
from test_ui_train import open_view as open_train_view
from test_ui_train import stop_training_left_running  # noqa: F401  (an autouse fixture: no process is left running)

WAIT_MS = 180_000
TINY = dict(steps=4, batch=2, crop=64, crops_per_image=2, validate_every=2, checkpoint_every=2, lr=1e-3)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return {"hyperprior": tiny_model(folder), "factorized": tiny_model(folder, "factorized")}


def open_view(qtbot, settings, tmp_path):
    view = open_train_view(qtbot, settings, tmp_path)
    view.resize(1024, 700)
    return view


def choose_finetuning(qtbot, view, model=None):
    """Pick "finetune" and (unless None) a model as the user does, and wait for the kind's answer."""
    if not view.finetuning:
        with qtbot.waitSignal(view.finetune.checked, timeout=WAIT_MS):
            view.mode.setCurrentIndex(view.mode.findData("finetune"))
    if model is not None:
        with qtbot.waitSignal(view.finetune.checked, timeout=WAIT_MS):
            view.finetune.set_values({"model": str(model)})


def quantizer_items(view):
    combo = view.finetune.quantizer_combo
    return {combo.itemData(i): (combo.model().item(i).isEnabled(), combo.itemData(i, Qt.ItemDataRole.ToolTipRole))
            for i in range(combo.count())}


def test_a_finetuning_set_up_in_the_window_runs_shows_its_curves_and_becomes_a_model_of_the_compare_tab(
        qtbot, window, models, tmp_path, monkeypatch):
    qtbot.waitUntil(lambda: window.train is not None, timeout=WAIT_MS)
    view = window.train
    choose_finetuning(qtbot, view)
    assert view.form.isHidden() and view.surrogate_box.isHidden() and not view.finetune.isHidden()
    combo = view.finetune.model_editor.combo                    # the Compare tab's model list and "Open…"
    assert [combo.itemData(i) for i in range(combo.count() - 1)] == [v for _, v in model_choices()]
    assert combo.itemText(combo.count() - 1) == OPEN_MODEL
    model = models["hyperprior"]
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(model), ""))
    with qtbot.waitSignal(view.finetune.checked, timeout=WAIT_MS):
        combo.activated.emit(combo.count() - 1)                  # "Open…" a model file
    assert view.finetune.values()["model"] == str(model.resolve())
    assert view.finetune.refused == {} and all(enabled for enabled, _ in quantizer_items(view).values())
    quantizer = view.finetune.quantizer_combo
    assert [quantizer.itemText(i) for i in range(quantizer.count())] == [
        "Plain rounding", "Rounding that weighs size against quality", "Trellis search, 4 states",
        "Trellis search, 8 states"]
    quantizer.setCurrentIndex(quantizer.findData("tcq4"))
    view.finetune.form.set_values(TINY)
    run = tmp_path / "run"
    view.set_run_folder(run)
    line = view.copy_command()
    assert line == run_folder.shell_line(view.spec(), run) == QGuiApplication.clipboard().text()
    assert line.startswith(f"workbench finetune --model {model.resolve()} --quantizer tcq4 --data ")
    assert "--steps=4" in line and "--lr=0.001" in line

    with qtbot.waitSignal(view.run_ended, timeout=WAIT_MS) as ended:
        assert view.start()
    assert ended.args[0] == "finished", view.message.text()
    qtbot.waitUntil(view.curves.is_drawn)
    assert set(view.curves.keys()) == {"loss", "val_psnr", "val_gain_db"}     # the rate is in the caption
    assert view.bar.format() == "step 4 / 4"
    latest = preview.read_previews(run)[-1]
    assert view.preview_caption.text() == (f"Decoded at step 4: {latest['bpp']:.3f} bpp, "
                                           f"PSNR {latest['psnr']:.2f} dB")
    assert "Trellis search, 4 states" in view.preview_caption.toolTip()
    assert view.use_button.isEnabled() and view.start_button.text() == "Resume"

    with qtbot.waitSignal(view.model_ready, timeout=WAIT_MS) as ready:
        assert view.use_model()
    value = ready.args[0]
    assert load_codec_model(value).info["description"].startswith("finetuned in the workbench's Train tab")
    side = window.compare.right
    assert side.panel.set_selection("learned")
    editor = side.panel._editors["model"]
    assert isinstance(editor, ModelEditor) and editor.combo.findData(value) >= 0    # in the Compare tab's list
    assert view.finetune.model_editor.combo.findData(value) >= 0                    # and finetunable again
    assert not window.errors


def test_the_quantizers_a_model_refuses_are_disabled_with_the_kinds_reason(qtbot, settings, models, tmp_path):
    view = open_view(qtbot, settings, tmp_path)
    autoregressive = tmp_path / "mbt2018-3-0123abcd.pth.tar"
    torch.save(compressai_state("mbt2018"), autoregressive)
    choose_finetuning(qtbot, view, autoregressive)
    items = quantizer_items(view)
    assert items["round"][0] and not any(items[q][0] for q in ("rdoq", "tcq4", "tcq8"))
    assert items["tcq8"][1] == "Not available: the mbt2018 model codes its latents with round only, not tcq8."
    assert view.finetune.values()["quantizer"] == "round"          # the default tcq8 is not offered
    assert view.finetune.note.text().startswith("Only plain rounding for this model: the mbt2018 model codes")

    choose_finetuning(qtbot, view, models["factorized"])
    assert not any(enabled for enabled, _ in quantizer_items(view).values())
    assert view.finetune.note.text() == ("This model cannot be finetuned: decoder finetuning is not available "
                                         "for the factorized model.")
    assert not view.start() and not view.is_running()
    assert view.message.text() == "decoder finetuning is not available for the factorized model."


def test_a_finetuning_pauses_resumes_cancels_and_reopens_in_its_folder(qtbot, settings, models, tmp_path):
    view = open_view(qtbot, settings, tmp_path)
    choose_finetuning(qtbot, view, models["hyperprior"])
    view.finetune.form.set_values({**TINY, "quantizer": "round", "steps": 5000, "checkpoint_every": 1,
                                   "validate_every": 1000})
    run = tmp_path / "run"
    view.set_run_folder(run)
    assert view.start()
    qtbot.waitUntil(lambda: view.step >= 1, timeout=WAIT_MS)
    with qtbot.waitSignal(view.run_ended, timeout=WAIT_MS) as ended:
        view.pause_button.click()
    assert ended.args[0] == "paused" and view.message.text().startswith("Paused at step")
    paused_at = torch.load(run / "last.pt", weights_only=True)["step"]
    assert view.start_button.text() == "Resume"
    assert view.start()
    qtbot.waitUntil(lambda: view.step > paused_at, timeout=WAIT_MS)
    with qtbot.waitSignal(view.run_ended, timeout=10_000) as ended:
        view.cancel_button.click()
    assert ended.args[0] == "cancelled" and "Cancelled at step" in view.message.text()
    assert torch.load(run / "last.pt", weights_only=True)["step"] > paused_at

    again = open_view(qtbot, settings, tmp_path)               # the window reopened shows the finetuning
    assert again.run_dir == run and again.finetuning and not again.finetune.isHidden()
    assert again.finetune.values()["model"] == str(models["hyperprior"])
    assert again.finetune.values()["steps"] == 5000 and again.start_button.text() == "Resume"
    other = open_view(qtbot, settings, tmp_path)
    drop(other, [run])                                          # as does the folder dropped on the tab
    assert other.run_dir == run and other.finetuning


def test_a_diverging_finetuning_stops_with_a_plain_message(qtbot, settings, models, tmp_path):
    view = open_view(qtbot, settings, tmp_path)
    choose_finetuning(qtbot, view, models["hyperprior"])
    view.finetune.form.set_values({**TINY, "quantizer": "round", "steps": 60, "lr": 1.0, "offset_lr": 1.0,
                                   "checkpoint_every": 1})
    view.set_run_folder(tmp_path / "run")
    with qtbot.waitSignal(view.run_ended, timeout=WAIT_MS) as ended:
        assert view.start()
    assert ended.args[0] == "failed"
    assert view.message.text().startswith("Finetuning stopped: finetuning diverged: 21 steps with non-finite "
                                          "gradients (try a lower --lr).")


def test_a_finetuning_of_an_ms_ssim_model_shows_its_held_out_ms_ssim(qtbot, settings, tmp_path):
    run, _ = finetuned_ms_ssim_model(tmp_path)
    view = open_view(qtbot, settings, tmp_path)
    drop(view, [run])
    assert view.run_dir == run and view.finetuning
    view.poll()
    qtbot.waitUntil(view.curves.is_drawn)
    assert set(view.curves.keys()) == {"loss", "val_psnr", "val_gain_db", "val_ms_ssim"}
