"""The Train tab driven like a user would, with a tiny model trained by real `workbench train` processes."""

import json
import math

import pytest
import torch
from PySide6.QtGui import QGuiApplication

from workbench.core.learned import preview, run_folder
from workbench.core.learned.catalog import model_choices
from workbench.core.learned.run_folder import RunSpec
from workbench.ui.codec_panel import ModelEditor
from workbench.ui.train_view import SAMPLES, TrainView
from qt_drops import drop

WAIT_MS = 180_000
TINY = dict(model="hyperprior", channels=8, latent_channels=8, lambdas="0.01,0.05", steps=4, batch=2, crop=64,
            crops_per_image=2, validate_every=2, checkpoint_every=2, device="cpu")


def tiny(**options) -> RunSpec:
    return RunSpec({**TINY, **options}, {"tau_steps": 10}, (str(SAMPLES),))


@pytest.fixture(autouse=True)
def stop_training_left_running():
    """A failed test must not leave a training process behind."""
    yield
    for view in OPENED:
        process = view.process
        if process is not None:
            view.cancel()
            process.waitForFinished(10_000)
    OPENED.clear()


OPENED: list[TrainView] = []


def open_view(qtbot, settings, tmp_path):
    view = TrainView(settings, tmp_path / "runs")
    qtbot.addWidget(view)
    view.resize(1300, 800)
    view.show()
    OPENED.append(view)
    return view


def run_to_end(qtbot, view):
    with qtbot.waitSignal(view.run_ended, timeout=WAIT_MS) as ended:
        assert view.start()
    return ended.args[0]


def logged_steps(run):
    return [json.loads(line)["step"] for line in (run / run_folder.PROGRESS_FILE).read_text().splitlines()]


def test_a_run_set_up_in_the_window_trains_shows_its_curves_and_becomes_a_model_of_the_compare_tab(qtbot, window,
                                                                                                    tmp_path):
    qtbot.waitUntil(lambda: window.train is not None, timeout=WAIT_MS)
    view = window.train
    view.set_spec(tiny())
    assert not view.surrogate_box.isHidden() and "tau_steps" in view.surrogate_form.editors     # SUA's options
    assert not view.form.layout().isRowVisible(view.form.editors["vq_centers"])             # SHVQ's are hidden
    assert view.shvq_box.isHidden()
    view.set_run_folder(tmp_path / "run")
    line = view.copy_command()
    assert line == run_folder.shell_line(view.spec(), tmp_path / "run") == QGuiApplication.clipboard().text()
    assert line.startswith("workbench train --model hyperprior --quantizer sua --lambda 0.01,0.05 --data ")
    assert run_to_end(qtbot, view) == "finished"
    qtbot.waitUntil(view.curves.is_drawn)
    for key in ("loss", "bpp", "entropy", "psnr", "temperature", "val_bpp_hard", "val_psnr_hard", "native_bpp_hard",
                "native_psnr_hard", "mismatch_bpp", "mismatch_psnr"):
        assert key in view.curves.keys(), key
    assert view.bar.value() == 4 and view.bar.format() == "step 4 / 4"
    latest = preview.read_previews(tmp_path / "run")[-1]
    assert view.preview_caption.text() == (f"Decoded at step 4: {latest['bpp']:.3f} bpp, "
                                           f"PSNR {latest['psnr']:.2f} dB")
    assert not view.preview_label.pixmap().isNull() and not view.original_label.pixmap().isNull()
    assert view.start_button.text() == "Resume" and view.use_button.isEnabled()

    side = window.compare.right
    assert side.panel.set_selection("learned")
    with qtbot.waitSignal(view.model_ready, timeout=WAIT_MS) as ready:
        assert view.use_model()
    value = ready.args[0]
    editor = side.panel._editors["model"]
    assert isinstance(editor, ModelEditor) and editor.combo.findData(value) >= 0   # in the list shown now
    assert value in [v for _, v in model_choices()]                                 # and in lists built later
    spec = window.rd_view.add_model(value)              # already there, ticked, swept at its two levels
    assert spec == f"learned:model={value}" and window.rd_view._sweep(spec) == (1, 2)
    assert not window.errors


def test_pause_close_reopen_and_resume_continue_one_run(qtbot, settings, tmp_path):
    view = open_view(qtbot, settings, tmp_path)
    view.set_spec(tiny(steps=60, checkpoint_every=30, validate_every=30))
    run = view.new_run_folder()
    view.set_run_folder(run)
    assert view.start()
    qtbot.waitUntil(lambda: view.step >= 1, timeout=WAIT_MS)
    view.shutdown()                   # what closing the window does: pause the run after a checkpoint ...
    assert not view.is_running() and view.outcome == "paused"
    paused_at = torch.load(run / "last.pt", weights_only=True)["step"]
    assert 1 <= paused_at < 60 and logged_steps(run)[-1] == paused_at

    again = open_view(qtbot, settings, tmp_path)          # ... and the reopened window continues it
    assert again.run_dir == run and again.is_running() and again.bar.value() == paused_at
    with qtbot.waitSignal(again.run_ended, timeout=WAIT_MS) as ended:
        qtbot.waitUntil(lambda: again.step > paused_at, timeout=WAIT_MS)
        again.pause_button.click()
    assert ended.args[0] == "paused" and again.start_button.text() == "Resume"
    assert "Paused at step" in again.message.text()
    assert run_to_end(qtbot, again) == "finished"
    assert logged_steps(run) == list(range(61))          # every step once, across three processes
    assert again.summary == ""


def test_cancel_stops_at_once_and_keeps_the_checkpoint(qtbot, settings, tmp_path):
    view = open_view(qtbot, settings, tmp_path)
    view.set_spec(tiny(steps=5000, checkpoint_every=1))
    view.set_run_folder(tmp_path / "run")
    assert view.start()
    qtbot.waitUntil(lambda: view.step >= 2, timeout=WAIT_MS)
    with qtbot.waitSignal(view.run_ended, timeout=10_000) as ended:
        view.cancel_button.click()
    assert ended.args[0] == "cancelled" and "Cancelled at step" in view.message.text()
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["step"] >= 1
    assert view.start_button.text() == "Resume" and view.start_button.isEnabled()


def test_a_diverging_run_stops_with_a_plain_message_and_keeps_a_good_checkpoint(qtbot, settings, tmp_path):
    view = open_view(qtbot, settings, tmp_path)
    view.set_spec(RunSpec({**TINY, "steps": 60, "lr": 1.0, "checkpoint_every": 1, "quantizer": "noise"}, {},
                          (str(SAMPLES),)))
    view.set_run_folder(tmp_path / "run")
    assert run_to_end(qtbot, view) == "failed"
    assert view.message.text() == ("Training stopped: training diverged: 21 steps with non-finite gradients "
                                   "(try a lower --lr). The last checkpoint was kept.")
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    assert view.use_button.isEnabled() and math.isfinite(view.bar.value())


def test_bad_settings_are_refused_in_one_line_before_anything_starts(qtbot, settings, tmp_path):
    view = open_view(qtbot, settings, tmp_path)
    view.images_edit.setText("")
    assert not view.start() and view.message.text() == "choose a folder of images to learn from."
    assert not view.is_running() and view.run_dir is None
    drop(view, [tmp_path])                               # a folder of images dropped on the tab is learned from
    assert view.images_edit.text() == str(tmp_path) and view.run_dir is None


def test_watch_a_codec_learn_says_in_one_sentence_how_size_and_quality_changed(qtbot, settings, tmp_path,
                                                                                monkeypatch):
    from workbench.ui import train_view
    monkeypatch.setattr(train_view, "DEMO_OPTIONS", {**TINY, "lambdas": "0.013", "validate_every": 3})
    monkeypatch.setattr(train_view, "DEMO_SURROGATE", ("sua", {"tau_steps": 4}))
    view = open_view(qtbot, settings, tmp_path)
    with qtbot.waitSignal(view.run_ended, timeout=WAIT_MS) as ended:
        assert view.run_demo()
    assert ended.args[0] == "finished" and view.run_dir.parent == tmp_path / "runs"
    first, *_, last = preview.read_previews(view.run_dir)
    assert (first["step"], last["step"]) == (0, 4)
    assert view.summary.startswith("In ") and view.message.text() == view.summary
    assert f"(4 steps) the held-out crop went from {first['bpp']:.3f} bpp at {first['psnr']:.1f} dB to " \
           f"{last['bpp']:.3f} bpp at {last['psnr']:.1f} dB: " in view.summary


def test_the_soft_to_hard_vq_schedule_is_a_form_that_becomes_the_cli_option(qtbot, settings, tmp_path):
    view = open_view(qtbot, settings, tmp_path)
    run = tmp_path / "shvq-run"
    run.mkdir()
    run_folder.save_spec(run, tiny(model="dct-shvq", vq_centers=16, vq_options="sigma_growth=0.05,gap_decay_steps=100"))
    drop(view, [run])                                    # a run folder dropped on the tab opens that run
    assert view.run_dir == run and view.start_button.text() == "Start"     # no checkpoint yet
    assert not view.shvq_box.isHidden() and view.form.layout().isRowVisible(view.form.editors["vq_centers"])
    assert view.shvq_form.values()["sigma_growth"] == 0.05 and view.shvq_form.values()["gap_decay_steps"] == 100
    view.shvq_form.set_values({"gap_end": 0.01})
    spec = view.spec()
    assert spec.options["vq_centers"] == 16
    assert spec.options["vq_options"] == "sigma_growth=0.05,gap_end=0.01,gap_decay_steps=100"
    assert "--vq-options=sigma_growth=0.05,gap_end=0.01,gap_decay_steps=100" in run_folder.shell_line(spec, "r")
