"""The main window and Compare tab driven like a user would: drop, pick a codec, read, export, demo."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton

from workbench import cli
from workbench.core.codecs import codec_class, decode_any
from workbench.core.images import load_image
from workbench.ui import main_window as mw
from workbench.ui.codec_panel import CodecPanel
from workbench.ui.export import cli_command
from workbench.ui.main_window import MainWindow

ROOT = Path(__file__).resolve().parents[1]
CHAPEL = ROOT / "tests" / "data" / "chapel_192x176.png"
WAIT_MS = 20_000
STEP_MS = 60_000        # an optimization's first step: its child process imports torch and loads the model first


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, settings, monkeypatch):
    errors = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *a: errors.append(text))
    w = MainWindow(settings)
    w.errors = errors
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    yield w
    w.worker.shutdown()


def drop(widget, paths):
    """A drag that enters the window and drops there (Qt ignores a drop without a drag target)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    rest = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    enter = QDragEnterEvent(QPoint(200, 200), *rest)   # Qt declares QPoint here and QPointF for drops
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(widget, QDropEvent(QPointF(200, 200), *rest))


def choose(panel: CodecPanel, codec: str, quality=None):
    """Pick a codec in the combo box and type a quality, as a user would."""
    panel.combo.setCurrentIndex(panel.combo.findData(codec))
    if quality is not None:
        panel._editors["quality"].spin.setValue(quality)


def wait_encoded(qtbot, window, *sides):
    sides = sides or ("left", "right")
    qtbot.waitUntil(lambda: not window.worker.is_pending("load") and all(
        not window.worker.is_pending(s) and (window.compare.side(s).result is not None
                                             or window.compare.side(s).selection.codec is None) for s in sides),
        timeout=WAIT_MS)


def open_chapel_with_jpeg(qtbot, window, quality=50):
    drop(window, [CHAPEL])
    choose(window.compare.right.panel, "jpeg", quality)
    wait_encoded(qtbot, window)
    return window.compare.right


def test_drop_pick_jpeg_and_read_the_metrics(qtbot, window):
    right = open_chapel_with_jpeg(qtbot, window)
    r = right.result
    assert right.selection.codec == "jpeg" and right.selection.options.quality == 50
    m = right.metrics
    assert m.value("size").startswith(f"{r.size_bytes / 1000:.3g} kB ({r.size_bytes:,} bytes")
    assert m.value("bpp") == f"{8 * r.size_bytes / (192 * 176):.3f}"
    assert m.value("psnr") == f"{r.quality.psnr:.2f} dB"
    assert m.value("ms_ssim") == f"{r.quality.ms_ssim:.4f} ({r.quality.ms_ssim_db:.2f} dB)"
    assert m.value("saved") == f"{100 * (1 - r.size_bytes / CHAPEL.stat().st_size):.1f} %"
    assert m.value("encode").endswith("ms") and m.value("decode").endswith("ms")
    assert window.compare.left.metrics.value("size").endswith("bytes, PNG)")        # left is the original
    assert "chapel_192x176.png" in window.windowTitle()
    assert window.compare.summary_text().startswith("The right image (JPEG, quality 50) is ")
    assert "smaller than the original PNG file" in window.compare.summary_text()
    assert window.compare.view.caption(1).startswith("JPEG · quality 50 · ")
    assert window.recent() == [str(CHAPEL.resolve())]
    assert not window.errors


def test_export_writes_a_real_bitstream_that_decodes_back(qtbot, window, tmp_path):
    right = open_chapel_with_jpeg(qtbot, window)
    written = window.export_side("right", tmp_path / "out.jpg", {"bitstream", "png", "json"})
    assert [p.name for p in written] == ["out.jpg", "out.png", "out.json"]
    data = (tmp_path / "out.jpg").read_bytes()
    assert data == right.result.data
    rgb, cls = decode_any(data)
    assert cls.name == "jpeg"
    assert np.array_equal(rgb, right.result.reconstruction)
    assert np.array_equal(load_image(tmp_path / "out.png").rgb, right.result.reconstruction)
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["bytes"] == len(data) and report["codec"] == "jpeg" and report["options"]["quality"] == 50
    assert report["psnr"] == pytest.approx(right.result.quality.psnr)
    # the dialog proposes a name that says what made the file, next to the input, with all three exports
    from workbench.ui.export import ExportDialog
    sides = {"right": ("JPEG · quality 50", "jpeg", right.selection.options)}
    dialog = ExportDialog(sides, str(CHAPEL), str(tmp_path), window)
    assert dialog.choice() == ("right", tmp_path / "chapel_192x176-jpeg-q50.jpg", {"bitstream", "png", "json"})
    # the input is never overwritten
    before = CHAPEL.read_bytes()
    assert window.export_side("right", CHAPEL, {"bitstream"}) == []
    assert CHAPEL.read_bytes() == before and window.errors


def test_copied_cli_command_reproduces_the_file(qtbot, window, tmp_path, capsys):
    right = open_chapel_with_jpeg(qtbot, window, quality=42)
    choose(window.compare.right.panel, "jpeg")
    window.compare.right.panel._editors["subsampling"].combo.setCurrentText("4:4:4")
    wait_encoded(qtbot, window, "right")
    right.metrics.copy_button.click()
    copied = QGuiApplication.clipboard().text()
    sel = right.selection
    assert copied == cli_command(str(CHAPEL), "jpeg", sel.options)
    assert copied.startswith("workbench compress ") and "-q 42 --subsampling 4:4:4 -o " in copied
    out = tmp_path / "again.jpg"
    argv = shlex.split(cli_command(str(CHAPEL), "jpeg", sel.options, out))
    assert cli.main(argv[1:]) == 0
    assert out.read_bytes() == right.result.data


def test_two_codecs_get_an_equal_quality_sentence(qtbot, window):
    drop(window, [CHAPEL])
    choose(window.compare.left.panel, "jpeg", 60)
    choose(window.compare.right.panel, "webp", 50)
    wait_encoded(qtbot, window)
    qtbot.waitUntil(lambda: not window.worker.is_pending("sweep"), timeout=WAIT_MS)
    text = window.compare.summary_text()
    assert text.startswith("At the same MS-SSIM, the WebP file is ") and "than JPEG's." in text
    assert "The right image (WebP, quality 50) is " in text


def test_unavailable_codec_is_greyed_out_with_the_reason(qtbot, monkeypatch):
    cls = codec_class("webp")
    monkeypatch.setattr(cls, "availability", classmethod(lambda c: (False, "libwebp is missing (test)")))
    panel = CodecPanel("Right side")
    qtbot.addWidget(panel)
    i = panel.combo.findData("webp")
    item = panel.combo.model().item(i)
    assert not item.isEnabled()
    assert "libwebp is missing (test)" in item.toolTip()
    assert "webp" not in panel.available_codecs() and "jpeg" in panel.available_codecs()
    assert panel.set_selection("webp") is False
    assert panel.codec() is None


def test_slider_encodes_on_release_not_on_every_tick(qtbot):
    panel = CodecPanel("Right side")
    qtbot.addWidget(panel)
    panel.set_selection("jpeg")
    changes = []
    panel.changed.connect(lambda: changes.append(panel.selection().options.quality))
    slider = panel._editors["quality"].slider
    slider.setSliderDown(True)
    for v in (10, 20, 30, 40):
        slider.setValue(slider.minimum() + v)
    assert changes == [] and panel._editors["quality"].spin.value() == 41   # the number follows the drag
    slider.setSliderDown(False)                                            # emits sliderReleased
    assert changes == [41]
    slider.setValue(60)                                                    # keyboard/click: final at once
    assert changes == [41, 61]


def test_split_view_zoom_pan_divider_and_heat_map(qtbot, window):
    open_chapel_with_jpeg(qtbot, window, quality=10)
    view = window.compare.view
    view.resize(800, 600)
    window.act_actual.trigger()
    assert view.scale == pytest.approx(1.0)
    window.act_zoom_in.trigger()
    assert view.scale == pytest.approx(1.25)
    window.act_fit.trigger()
    assert view.scale == pytest.approx(min(view.width() / 192, view.height() / 176))
    # dragging at the divider moves the split; dragging elsewhere pans both sides together
    x = int(view.divider * view.width())
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(x, 300))
    qtbot.mouseMove(view, QPoint(x + 100, 300))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(x + 100, 300))
    assert view.divider == pytest.approx((x + 100) / view.width(), abs=0.01)
    window.act_heat.trigger()
    assert view.heat_map
    image = view.grab().toImage()
    inside = view._image_rect().center().toPoint()
    left_px = image.pixelColor(inside.x() - 40, inside.y())   # the original side has no error: darkest colour
    assert (left_px.red(), left_px.green(), left_px.blue()) == (0, 0, 4)
    right_px = image.pixelColor(inside.x() + 140, inside.y())  # JPEG at quality 10 has errors everywhere
    assert right_px.red() + right_px.green() + right_px.blue() > 30
    assert view.caption(0) == "Original"


def test_folder_becomes_a_list_to_step_through(qtbot, window, tmp_path):
    rgb = np.asarray(Image.open(CHAPEL).convert("RGB"))
    for name, arr in (("a.png", rgb), ("b.png", rgb[:, ::-1]), ("notes.txt", None)):
        if arr is None:
            (tmp_path / name).write_text("not an image")
        else:
            Image.fromarray(np.ascontiguousarray(arr)).save(tmp_path / name)
    drop(window, [tmp_path])
    wait_encoded(qtbot, window)
    assert [p.name for p in window.images] == ["a.png", "b.png"]
    assert window.image_combo.isVisible() and window.compare.image.source.endswith("a.png")
    window.act_next.trigger()
    qtbot.waitUntil(lambda: window.compare.image.source.endswith("b.png"), timeout=WAIT_MS)
    assert "2 of 2" in window.image_info.text()
    assert window.recent()[0] == str(tmp_path.resolve())
    qtbot.waitUntil(lambda: window.tabs.count() == 5, timeout=WAIT_MS)     # the other tabs load in the background
    assert [window.tabs.tabText(i) for i in range(5)] == ["Compare", "RD curves", "Live", "Network", "Train"]
    assert [Path(p).name for p in window.rd_view._images] == ["a.png", "b.png"]


def test_demo_matches_the_contender_to_jpegs_size(qtbot, window, monkeypatch):
    monkeypatch.setattr(mw, "DEMO_IMAGE", CHAPEL)          # the real sample is larger and slower to search
    window.act_demo.trigger()
    qtbot.waitUntil(lambda: window.compare.right.result is not None and not window.worker.busy, timeout=WAIT_MS)
    left, right = window.compare.left, window.compare.right
    assert left.selection.codec == "jpeg" and left.selection.options.quality == 50
    assert right.selection.codec in mw.DEMO_CONTENDERS
    assert abs(right.result.size_bytes / left.result.size_bytes - 1) < 0.1
    assert right.panel.selection().options.quality == right.selection.options.quality   # the panel shows it
    assert "(JPEG, quality 50)" in window.compare.summary_text()
    assert "is the closest size to JPEG's file" in window.statusBar().currentMessage()


def test_settings_and_shortcuts_persist(qtbot, window, settings):
    choose(window.compare.right.panel, "webp", 61)
    window.act_heat.setChecked(True)
    window.close()
    again = MainWindow(settings)
    qtbot.addWidget(again)
    assert again.compare.right.panel.codec() == "webp"
    assert again.compare.right.panel.selection().options.quality == 61
    assert again.act_heat.isChecked()
    shortcuts = {a.shortcut().toString() for a in again.actions()}
    assert {"Ctrl+O", "Ctrl+S", "Ctrl+Q", "Ctrl+0", "Ctrl+1", "+", "-", "F1", "PgDown"} <= shortcuts
    assert QKeySequence("Ctrl+O") == again.act_open.shortcut()


def test_main_py_without_a_display_prints_the_cli_help():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    if sys.platform.startswith(("win", "darwin")):
        pytest.skip("a display always exists on Windows and macOS")
    r = subprocess.run([sys.executable, str(ROOT / "main.py")], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("No graphical display is available") and first.count(".") <= 1
    assert "usage: workbench" in r.stdout and "compress" in r.stdout


def test_a_broken_file_gives_one_clear_sentence(qtbot, window, tmp_path):
    bad = tmp_path / "holiday.png"
    bad.write_bytes(b"this is not a PNG")
    drop(window, [bad])
    qtbot.waitUntil(lambda: bool(window.errors), timeout=WAIT_MS)
    (message,) = window.errors
    assert message.startswith(str(bad)) and message.endswith(".") and "\n" not in message
    assert "Traceback" not in message and window.compare.image is None
    assert not window.act_export.isEnabled()              # nothing to export without an image


def test_an_encoder_failure_is_reported_on_its_side(qtbot, window, monkeypatch):
    from workbench.core.errors import ImageError

    def refuse(self, rgb, options):
        raise ImageError("the JPEG encoder refused the image: out of memory (test)")

    monkeypatch.setattr(codec_class("jpeg"), "encode", refuse)
    drop(window, [CHAPEL])
    choose(window.compare.right.panel, "jpeg", 50)
    qtbot.waitUntil(lambda: window.compare.right.failed, timeout=WAIT_MS)
    status = window.compare.right.metrics.status.text()
    assert status == "Encoding failed: the JPEG encoder refused the image: out of memory (test)."
    assert window.compare.summary_text().startswith("No comparison: the right side could not be encoded")
    assert window.compare.right.metrics.value("psnr") == "–"


def test_learned_codec_shows_its_rate_estimate_and_exports_a_wbi(qtbot, window, tmp_path):
    if not codec_class("learned").is_available():
        pytest.skip("no learned model weights")
    drop(window, [CHAPEL])
    choose(window.compare.right.panel, "learned", 3)
    wait_encoded(qtbot, window)
    right = window.compare.right
    r = right.result
    assert right.metrics.value("bpp") == f"{r.bpp:.3f} (model estimate {r.estimated_bpp:.3f})"
    written = window.export_side("right", tmp_path / "out.wbi", {"bitstream", "json"})
    rgb, cls = decode_any((tmp_path / "out.wbi").read_bytes())
    assert cls.name == "learned" and np.array_equal(rgb, r.reconstruction)
    assert json.loads(written[1].read_text())["estimated_bpp"] == pytest.approx(r.estimated_bpp)
    drop(window, [tmp_path / "out.wbi"])                 # the file opens again, decoded, as the original
    qtbot.waitUntil(lambda: window.compare.image is not None and window.compare.image.format == "WBI",
                    timeout=WAIT_MS)
    assert np.array_equal(window.compare.image.rgb, r.reconstruction)
    assert window.compare.left.metrics.value("size").endswith("bytes, WBI)")
    assert not window.errors


# ----- per-image latent optimization: a long encode on the side's JobRunner, plotted in the Live tab

def open_chapel_with_learned(qtbot, window):
    if not codec_class("learned").is_available():
        pytest.skip("no learned model weights")
    drop(window, [CHAPEL])
    choose(window.compare.right.panel, "learned", 3)
    wait_encoded(qtbot, window)
    qtbot.waitUntil(lambda: window.live is not None, timeout=WAIT_MS)     # the tab comes with the libraries
    return window.compare.right


def set_optimize(side, steps):
    side.panel._editors["optimize"].spin.setValue(steps)                 # a typed value commits at once


def test_optimize_is_a_spin_box_that_reads_off_at_zero(qtbot):
    panel = CodecPanel("Right side")
    qtbot.addWidget(panel)
    panel.set_selection("learned", {})
    editor = panel._editors["optimize"]
    assert editor.slider is None and editor.spin.text() == "off"
    editor.spin.setValue(100)
    assert panel.selection().options.optimize == 100 and editor.spin.text() == "100"


def test_optimization_feeds_the_live_tab_and_ends_like_a_normal_encode(qtbot, window):
    right = open_chapel_with_learned(qtbot, window)
    statuses = []
    right.runner.progress.connect(lambda _p: statuses.append(right.metrics.status.text()))
    set_optimize(right, 4)
    assert right.runner.is_running() and right.result is None           # the event loop goes on meanwhile
    assert right.metrics.cancel_button.isVisibleTo(window) and right.metrics.progress.isVisibleTo(window)
    qtbot.waitUntil(lambda: right.result is not None and not right.runner.is_running(), timeout=60_000)
    assert any(s.startswith("Optimizing latents: step ") and "Live tab" in s for s in statuses)
    live = window.live
    assert {"rate_bpp", "entropy", "temperature", "psnr", "ms_ssim", "gap"} <= set(live.keys())
    assert live._bar.format().startswith("done in")
    r = right.result
    assert right.selection.options.optimize == 4
    assert right.metrics.value("bpp").startswith(f"{r.bpp:.3f}")
    assert right.metrics.value("psnr") == f"{r.quality.psnr:.2f} dB"
    assert not right.metrics.status.isVisibleTo(window) and not right.metrics.cancel_button.isVisibleTo(window)
    assert window.compare.view.caption(1).startswith("Learned")
    assert "--optimize 4" in cli_command(str(CHAPEL), "learned", right.selection.options)
    right.metrics.live_requested.emit()                                  # the "Live tab" link
    assert window.tabs.currentWidget() is live
    assert not window.errors


def test_cancel_keeps_the_previous_result_and_its_settings(qtbot, window):
    right = open_chapel_with_learned(qtbot, window)
    previous = right.result
    set_optimize(right, 500)
    qtbot.waitUntil(lambda: "step" in right.metrics.status.text(), timeout=STEP_MS)
    right.metrics.cancel_button.click()
    assert right.result is previous and right.selection.options.optimize == 0   # at once, not after the step
    assert right.panel._editors["optimize"].spin.value() == 0            # the panel shows what is on screen
    assert not right.metrics.cancel_button.isVisibleTo(window)
    assert right.metrics.value("psnr") == f"{previous.quality.psnr:.2f} dB"
    assert "optimization cancelled" in window.statusBar().currentMessage()
    assert window.compare.summary_text().startswith("The right image (Learned")
    qtbot.waitUntil(lambda: not right.runner.is_running(), timeout=WAIT_MS)
    assert window.live._bar.format().startswith("cancelled at step") and right.result is previous

    set_optimize(right, 500)                                             # the Live tab's Cancel does the same
    qtbot.waitUntil(lambda: "step" in right.metrics.status.text(), timeout=STEP_MS)
    next(b for b in window.live.findChildren(QPushButton) if b.text() == "Cancel").click()
    qtbot.waitUntil(lambda: not right.runner.is_running(), timeout=WAIT_MS)
    assert right.result is previous and right.panel._editors["optimize"].spin.value() == 0


def test_optimization_runs_in_a_child_process_that_cancel_kills(qtbot, window, monkeypatch):
    """torch's imports and operations would hold the window's interpreter lock in a thread (stalls of
    0.2 s and more): the optimization runs in a child process, and Cancel ends that process."""
    from workbench.core import compress_child

    right = open_chapel_with_learned(qtbot, window)
    previous = right.result
    children, real = [], subprocess.Popen
    monkeypatch.setattr(compress_child.subprocess, "Popen", lambda *a, **k: children.append(real(*a, **k))
                        or children[-1])
    set_optimize(right, 500)
    qtbot.waitUntil(lambda: "step" in right.metrics.status.text(), timeout=STEP_MS)
    assert len(children) == 1 and children[0].poll() is None
    assert {"rate_bpp", "entropy"} <= set(window.live.keys())            # the child's events reach the plots
    right.metrics.cancel_button.click()
    assert right.result is previous and right.panel._editors["optimize"].spin.value() == 0
    qtbot.waitUntil(lambda: not right.runner.is_running(), timeout=WAIT_MS)
    assert children[0].poll() is not None and children[0].returncode != 0   # killed, not left to finish
    assert right.result is previous and window.compare.view.caption(1).startswith("Learned")


def test_a_new_setting_supersedes_a_running_optimization(qtbot, window):
    right = open_chapel_with_learned(qtbot, window)
    set_optimize(right, 500)
    qtbot.waitUntil(lambda: "step" in right.metrics.status.text(), timeout=STEP_MS)
    set_optimize(right, 3)
    qtbot.waitUntil(lambda: right.result is not None and not right.runner.is_running(), timeout=60_000)
    assert right.selection.options.optimize == 3 and right.panel._editors["optimize"].spin.value() == 3
    assert window.live._bar.format().startswith("done in")
    set_optimize(right, 500)
    qtbot.waitUntil(lambda: "step" in right.metrics.status.text(), timeout=STEP_MS)
    set_optimize(right, 0)                                               # back to a plain encode
    wait_encoded(qtbot, window)
    qtbot.waitUntil(lambda: not right.runner.is_running(), timeout=WAIT_MS)
    qtbot.wait(50)
    assert right.selection.options.optimize == 0 and right.result is not None and not right.runner.is_running()


def test_no_background_sweep_of_an_optimizing_codec(qtbot, window):
    """Measuring an equal-quality curve would repeat the optimization at every setting: minutes of CPU."""
    if not codec_class("learned").is_available():
        pytest.skip("no learned model weights")
    open_chapel_with_jpeg(qtbot, window)
    left = window.compare.left
    left.panel.set_selection("learned", {"quality": 3, "optimize": 3})
    left.panel.changed.emit()                                           # as when a value is entered
    qtbot.waitUntil(lambda: left.result is not None and not left.runner.is_running(), timeout=60_000)
    assert not window.worker.is_pending("sweep")
    assert window.compare.summary_hint.text().startswith("No equal-quality comparison for per-image optimization")
    assert window.compare.summary_text().startswith("The right image (JPEG, quality 50) is ")
