"""What a non-programmer meets in the window (issue 16): buttons that work when the text says so, results
that are never shown as current when they are not, and names and words a newcomer can read."""

import json
import math
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from workbench.core.network import demo
from qt_drops import drop

ROOT = Path(__file__).resolve().parents[1]
CHAPEL = ROOT / "tests" / "data" / "chapel_192x176.png"
WAIT_MS = 30_000


def test_compress_is_enabled_as_soon_as_a_checkpoint_has_opened(qtbot, net_view, tmp_path):
    path = tmp_path / "digits.safetensors"
    shutil.copyfile(demo.WEIGHTS, path)
    with qtbot.waitSignal(net_view.loaded, timeout=WAIT_MS):
        assert net_view.open_path(path)
    assert "click Compress" in net_view.sentence_label.text()
    assert net_view.compress_button.isEnabled()
    with qtbot.waitSignal(net_view.compressed, timeout=WAIT_MS):
        net_view.compress_button.click()
    assert net_view.result is not None


# ----- the Compare tab
def choose(panel, codec, **values):
    panel.combo.setCurrentIndex(panel.combo.findData(codec))
    for name, value in values.items():
        editor = panel._editors[name]
        if hasattr(editor, "combo"):
            editor.combo.setCurrentIndex(editor.combo.findData(value))
        else:
            editor.spin.setValue(value)


def wait_encoded(qtbot, window, *sides):
    sides = sides or ("left", "right")
    qtbot.waitUntil(lambda: not window.worker.is_pending("load") and window.compare.image is not None and all(
        not window.worker.is_pending(s) and (window.compare.side(s).result is not None
                                             or window.compare.side(s).selection.codec is None) for s in sides),
        timeout=WAIT_MS)


def open_chapel(qtbot, window, left=None, right=("jpeg", {"quality": 50})):
    assert window.open_paths([CHAPEL])
    qtbot.waitUntil(lambda: window.compare.image is not None, timeout=WAIT_MS)
    for side, choice in (("left", left), ("right", right)):
        if choice is not None:
            choose(window.compare.side(side).panel, choice[0], **choice[1])
    wait_encoded(qtbot, window)


def test_a_result_being_replaced_or_that_failed_is_marked_old(qtbot, window, monkeypatch):
    from workbench.core.errors import WorkbenchError
    from workbench.ui import compare_side

    open_chapel(qtbot, window)
    compare, right = window.compare, window.compare.right
    caption = compare.view.caption(1)
    assert caption.startswith("JPEG · quality 50") and compare.view.mark(1) == "" and not right.metrics.is_stale()
    choose(right.panel, "jpeg", quality=20)                 # the encode runs; the old picture is still shown
    assert compare.view.caption(1) == caption and compare.view.mark(1).startswith("Old picture")
    assert right.metrics.is_stale() and "previous settings" in right.metrics.status.text()
    assert compare.summary_text().startswith("Waiting")
    wait_encoded(qtbot, window, "right")
    assert compare.view.caption(1).startswith("JPEG · quality 20") and compare.view.mark(1) == ""
    assert not right.metrics.is_stale()

    def broken(*args):
        raise WorkbenchError("the encoder ran out of patience")
    monkeypatch.setattr(compare_side, "_compress", broken)
    choose(right.panel, "jpeg", quality=30)
    qtbot.waitUntil(lambda: right.failed, timeout=WAIT_MS)
    assert compare.view.caption(1).startswith("JPEG · quality 20")      # the old picture stays, marked failed
    assert compare.view.mark(1) == "Old picture: the new settings failed"
    assert right.metrics.value("size") == "–" and "ran out of patience" in right.metrics.status.text()
    assert compare.summary_text().startswith("No comparison")


def test_every_label_names_the_learned_model(qtbot, window):
    open_chapel(qtbot, window, left=("learned", {"quality": 2}), right=("learned-msssim", {"quality": 2}))
    compare = window.compare
    assert compare.view.caption(0).startswith("Learned — dct-checkerboard-mse (PSNR) · quality 2 · ")
    assert compare.view.caption(1).startswith("Learned — dct-checkerboard-msssim (MS-SSIM) · quality 2 · ")
    text = compare.summary_text()
    assert "(Learned — dct-checkerboard-msssim (MS-SSIM), quality 2)" in text
    assert "(Learned — dct-checkerboard-mse (PSNR), quality 2)" in text


def test_the_model_is_chosen_from_a_list_or_opened_from_a_file(qtbot, window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from workbench.core.learned.catalog import MODEL_DIR, models_file
    from workbench.ui.codec_panel import OPEN_MODEL, ModelEditor

    open_chapel(qtbot, window, right=("learned", {"quality": 1}))
    right = window.compare.right
    editor = right.panel._editors["model"]
    assert isinstance(editor, ModelEditor)
    combo = editor.combo
    earlier = ModelEditor(editor.spec)                   # a list made before the model is opened (not shown yet)
    qtbot.addWidget(earlier)
    items = [combo.itemText(i) for i in range(combo.count())]
    assert items[-1] == OPEN_MODEL and "dct-hyperprior-msssim (MS-SSIM)" in items
    assert combo.currentText() == "dct-checkerboard-mse (PSNR)"
    # a model file of our own kind, opened from anywhere: remembered by path, not copied
    mine = tmp_path / "models" / "mine.safetensors"
    mine.parent.mkdir()
    shutil.copyfile(MODEL_DIR / "dct-hyperprior-msssim.safetensors", mine)
    asked = []

    def dialog(parent, title, folder, filters):
        asked.append(filters)
        return str(mine), ""
    monkeypatch.setattr(QFileDialog, "getOpenFileName", dialog)
    combo.activated.emit(combo.count() - 1)
    assert "*.safetensors" in asked[0] and "*.pth.tar" in asked[0] and "*.pth" in asked[0] and "*.pt" in asked[0]
    assert right.selection.options.model == str(mine.resolve())
    wait_encoded(qtbot, window, "right")
    assert window.compare.view.caption(1).startswith("Learned — mine.safetensors (MS-SSIM) · quality 1")
    assert json.loads(models_file().read_text())["models"] == [str(mine.resolve())]
    assert not any(p.name == "mine.safetensors" for p in MODEL_DIR.iterdir())
    # the next panel offers it without asking, and a list made before offers it once shown again
    fresh = ModelEditor(editor.spec)
    assert fresh.combo.findData(str(mine.resolve())) >= 0
    assert earlier.combo.findData(str(mine.resolve())) < 0
    earlier.show()
    assert earlier.combo.findData(str(mine.resolve())) >= 0
    # a file that is not a model: the encode says why, beside the old picture
    junk = tmp_path / "junk.pth.tar"
    junk.write_bytes(b"not a checkpoint at all")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a: (str(junk), ""))
    combo.activated.emit(combo.count() - 1)
    qtbot.waitUntil(lambda: right.failed, timeout=WAIT_MS)
    assert right.metrics.status.text().startswith("Encoding failed: ")
    assert "internal error" not in right.metrics.status.text()
    assert window.compare.view.mark(1) == "Old picture: the new settings failed"


def test_plain_words_for_quantizers_heat_map_and_the_verdict(qtbot, window):
    from workbench.core import summary
    from workbench.ui.split_view import legend_labels

    open_chapel(qtbot, window, left=("jpeg", {"quality": 20}), right=("learned", {"quality": 1}))
    combo = window.compare.right.panel._editors["quantizer"].combo
    texts = [combo.itemText(i) for i in range(combo.count())]
    assert texts[0] == "Plain rounding (fastest)" and "Trellis search, 8 states (smallest files, slowest)" in texts
    assert not {"round", "rdoq", "tcq4", "tcq8"} & set(texts)
    assert [combo.itemData(i) for i in range(combo.count())] == ["round", "rdoq", "tcq4", "tcq8"]
    # the sentence judges the quality difference, with the thresholds on its tooltip and in Help
    text = window.compare.summary_text()
    assert any(w in text for w in ("visibly better", "visibly worse", "slightly better", "slightly worse",
                                   "about the same")), text
    assert f"{summary.ABOUT_SAME_DB:g} dB" in window.compare.summary.toolTip()
    assert legend_labels(19) == ("identical", "off by 7.5 % or more")
    assert legend_labels(64) == ("identical", "off by 25 % or more")


def test_plot_axes_show_plain_numbers(qtbot):
    import pyqtgraph as pg

    from workbench.ui.live_curves import style_plot_widget

    w = pg.PlotWidget()
    qtbot.addWidget(w)
    style_plot_widget(w, w.palette())
    w.getPlotItem().setLabel("left", "learning rate")
    axis = w.getPlotItem().getAxis("left")
    axis.setRange(0.0001, 0.0003)             # pyqtgraph would add "(x1e-06)" to the label
    assert "(x" not in axis.labelString() and "learning rate" in axis.labelString()


def test_a_wbn_dropped_on_the_window_opens_in_the_network_tab_and_saves_go_to_the_users_folder(
        qtbot, window, tmp_path, monkeypatch):
    import torch
    from PySide6.QtWidgets import QFileDialog

    from workbench.core.jobs import run
    from workbench.core.network.checkpoint import load_checkpoint
    from workbench.core.network.compress import compress_network_job, decompress_network
    from workbench.core.network.quantizers import NET_QUANTIZERS

    state = load_checkpoint(demo.WEIGHTS)
    result = run(compress_network_job(state, "uniform", NET_QUANTIZERS.get("uniform").Options()))
    wbn = tmp_path / "mine" / "digits.wbn"
    wbn.parent.mkdir()
    wbn.write_bytes(result.data)
    drop(window, [wbn])
    view = window.network
    assert window.tabs.currentWidget() is view
    qtbot.waitUntil(lambda: view.network is not None, timeout=WAIT_MS)
    decoded = decompress_network(result.data)
    assert list(view.network.state) == list(decoded)
    assert all(torch.equal(view.network.state[k], decoded[k]) for k in decoded)
    assert window.compare.image is None and not window.errors
    # the demo network lives in the app's folder: saving proposes the folder the user last used
    with qtbot.waitSignal(view.compressed, timeout=WAIT_MS):
        assert view.run_demo()
    proposed = []

    def save_dialog(parent, title, path, *rest):
        proposed.append(path)
        return "", ""
    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_dialog)
    view.export_wbn_dialog()
    assert Path(proposed[0]).parent == wbn.parent


def test_pause_shows_in_the_progress_text(qtbot):
    import time

    from workbench.core.jobs import Progress
    from workbench.ui.job_runner import JobRunner
    from workbench.ui.live_curves import LiveCurves

    def slow():
        for i in range(200):
            time.sleep(0.01)
            yield Progress(i, 200, "measuring", {"psnr": 30.0 + i / 100})
        return None

    runner = JobRunner()
    live = LiveCurves()
    qtbot.addWidget(live)
    live.attach(runner)
    runner.start(slow)
    qtbot.waitUntil(lambda: live._last is not None, timeout=WAIT_MS)
    runner.pause()
    assert live._bar.format().startswith("paused at ") and "Paused" in live._status.text()
    qtbot.wait(150)                                   # events computed before the pause keep the text
    assert live._bar.format().startswith("paused at ")
    with qtbot.waitSignal(runner.cancelled, timeout=WAIT_MS):
        runner.cancel()


# ----- the RD tab
def _point(codec, quality, image, bpp, psnr):
    from workbench.core.bench import RDPoint
    return RDPoint(codec, quality, image, bpp, psnr, None, None, 0.01, 0.01)


def sweep_events(points, sweeps, monkeypatch, tmp_path):
    """The events the RD tab's sweep job yields for `points` arriving in this order (the sweep's thread
    adds the BD-rate table over the images every codec has finished)."""
    from workbench.core.bench import BenchProgress
    from workbench.ui import rd_view

    def bench_job(images, codecs, sweeps, **kw):
        for i, p in enumerate(points):
            yield BenchProgress(i + 1, 10, "", point=p)
        raise AssertionError("not reached")

    monkeypatch.setattr(rd_view, "bench_job", bench_job)
    job = rd_view.sweep_job(["a.png", "b.png"], list(sweeps), sweeps, jobs=1, out_dir=tmp_path, anchor="jpeg")
    events = [next(job) for _ in points]
    job.close()
    return events


def test_rd_table_is_visible_compares_the_same_images_and_names_every_codec(qtbot, monkeypatch, tmp_path):
    from workbench.core.bench import BenchResult
    from workbench.ui.rd_view import RDView, _summary_sentence

    view = RDView(sweeps={"jpeg": (20, 50, 80), "webp": (30, 70)})
    qtbot.addWidget(view)
    view.set_selected_codecs(["jpeg", "webp"])
    view.set_anchor("jpeg")
    view.resize(1000, 560)
    view.show()
    qtbot.waitExposed(view)
    header = view._table.horizontalHeader().height()
    assert view._table.height() >= header + 3 * view._table.verticalHeader().defaultSectionSize()
    # a sweep part-way into its second image: only the first image counts, for every codec
    view._live, view._total_images = BenchResult(codecs=["jpeg", "webp"]), 2
    a = [_point("jpeg", 20, "a.png", 0.5, 28.0), _point("jpeg", 50, "a.png", 1.0, 32.0),
         _point("jpeg", 80, "a.png", 2.0, 36.0), _point("webp", 30, "a.png", 0.4, 29.0),
         _point("webp", 70, "a.png", 0.9, 33.0)]
    b = [_point("jpeg", 20, "b.png", 3.0, 20.0), _point("jpeg", 50, "b.png", 6.0, 24.0)]
    events = sweep_events(a + b, {"jpeg": (20, 50, 80), "webp": (30, 70)}, monkeypatch, tmp_path)
    assert [getattr(ev, "table", None) is not None for ev in events] == [False] * 4 + [True, False, False]
    view._on_batch(events)
    expected = BenchResult(images=["a.png"], points=a, codecs=["jpeg", "webp"]).bd_table("jpeg")[0]["psnr"]
    assert view._table.item(0, 1).text() == f"{expected:+.1f} %".replace("-", "−")
    assert view._summary.text().startswith("So far: 1 of 2 images. At the same PSNR, WebP files are on average")
    # the sentence covers every codec, a learned one by its model
    rows = [{"codec": "webp", "psnr": -23.0}, {"codec": "learned", "psnr": -41.0},
            {"codec": "jpeg2000", "psnr": math.nan}]
    assert _summary_sentence(rows, "jpeg") == (
        "At the same PSNR, Learned — dct-checkerboard-mse (PSNR) files are on average 41 % smaller than JPEG files, "
        "WebP files 23 % smaller. No comparison yet for JPEG 2000 (too few points overlapping in quality).")


# ----- the Live tab
def test_live_tab_shows_a_sweeps_points_per_codec_not_numbers_against_steps(qtbot):
    from workbench.ui.live_curves import LiveCurves
    from workbench.core.bench import BenchProgress

    live = LiveCurves()
    qtbot.addWidget(live)
    live.resize(900, 500)
    live.show()
    pts = [_point("jpeg", 20, "a.png", 0.5, 28.0), _point("jpeg", 50, "a.png", 1.0, 32.0),
           _point("webp", 30, "a.png", 0.4, 29.0)]
    live.add_events([BenchProgress(i + 1, 6, "measuring", metrics={"bpp": p.bpp, "psnr": p.psnr}, point=p)
                     for i, p in enumerate(pts)])
    qtbot.wait(300)
    assert live.rd_points.isVisible() and not live._canvas.isVisible() and not live._plots
    assert live.rd_points.codecs() == ["jpeg", "webp"]
    xs, ys = live.rd_points._items["jpeg"][0].getData()
    assert list(xs) == [0.5, 1.0] and list(ys) == [28.0, 32.0]
    _, secs = live.rd_points._items["webp"][1].getData()
    assert list(secs) == [pytest.approx(0.02)]
    legend = live.rd_points.legend.text()
    assert "JPEG" in legend and "2 points" in legend and "WebP" in legend and "1 point," in legend


def test_live_tab_charts_show_their_first_value(qtbot):
    from workbench.core.jobs import Progress
    from workbench.ui.live_curves import LiveCurves

    live = LiveCurves()
    qtbot.addWidget(live)
    live.show()
    # an optimization: rate every step, PSNR measured every fifth step
    live.add_events([Progress(s, 100, "", {"rate_bpp": 1.0 / s, **({"psnr": 30.0} if s % 5 == 0 else {})})
                     for s in range(1, 6)])
    qtbot.waitUntil(live.is_drawn, timeout=WAIT_MS)
    psnr = live._plots["psnr"]
    assert psnr.raw.opts["symbol"] == "o" and list(psnr.raw.getData()[1]) == [30.0]     # a dot, not nothing
    assert live._plots["rate_bpp"].raw.opts["symbol"] is None                             # dense: a line
    live.add_events([Progress(s, 100, "", {"rate_bpp": 1.0 / s, **({"psnr": 31.0} if s % 5 == 0 else {})})
                     for s in range(6, 11)])
    qtbot.waitUntil(live.is_drawn, timeout=WAIT_MS)
    assert psnr.raw.opts["symbol"] == "o" and list(psnr.raw.getData()[1]) == [30.0, 31.0]


# ----- what a comparison tool should have
def test_match_size_and_target_size(qtbot, window):
    open_chapel(qtbot, window, left=("jpeg", {"quality": 60}), right=("webp", {"quality": 90}))
    left, right = window.compare.left, window.compare.right
    right.size.match_button.click()
    assert window.compare.view.mark(1).startswith("Old picture: searching")
    wait_encoded(qtbot, window, "right")
    assert abs(right.result.size_bytes / left.result.size_bytes - 1) < 0.1
    assert right.panel.selection() == right.selection                   # the panel shows the quality found
    right.size.target.setValue(2.5)
    right.size.target_button.click()
    wait_encoded(qtbot, window, "right")
    assert abs(right.result.size_bytes / 2500 - 1) < 0.15
    assert window.compare.view.caption(1).startswith(f"WebP · quality {right.selection.options.quality:g}")


def test_swap_copy_ab_key_and_zoom_presets(qtbot, window):
    from PySide6.QtTest import QTest

    open_chapel(qtbot, window, left=("jpeg", {"quality": 30}), right=("webp", {"quality": 70}))
    compare = window.compare
    left, right = compare.left, compare.right
    before = left.result, right.result
    window.act_swap.trigger()
    assert (left.result, right.result) == before[::-1] and not compare.worker.is_pending("left")
    assert left.panel.codec() == "webp" and right.panel.codec() == "jpeg"
    assert compare.view.caption(0).startswith("WebP · quality 70")
    right.copy_button.click()
    assert left.panel.codec() == "jpeg" and left.result is right.result
    assert compare.view.caption(0) == compare.view.caption(1)
    # A/B: hold Space to see the other side in full, release to get the split back
    view = compare.view
    view.divider = 0.4
    QTest.keyPress(view, Qt.Key.Key_Space)
    assert view.divider in (0.0, 1.0)
    QTest.keyRelease(view, Qt.Key.Key_Space)
    assert view.divider == 0.4
    window.act_zoom_200.trigger()
    assert view.scale == 2.0
    window.act_zoom_400.trigger()
    assert view.scale == 4.0
    window.act_fit.trigger()
    assert view.scale == pytest.approx(min(view.width() / 192, view.height() / 176))


# ----- fitting a 1024×700 screen
def test_every_tab_fits_1024_by_700_and_rd_legend_is_outside_the_plots(qtbot, window):
    qtbot.waitUntil(lambda: window.network is not None, timeout=WAIT_MS)
    with qtbot.waitSignal(window.network.compressed, timeout=WAIT_MS):   # its live plots take room too
        window.network.run_demo()
    window.resize(1024, 700)
    qtbot.wait(100)
    assert window.width() == 1024 and window.height() == 700
    for i in range(window.tabs.count()):
        tab = window.tabs.widget(i)
        assert tab.minimumSizeHint().width() <= 1000, window.tabs.tabText(i)
    # the side columns show their controls without clipping them at the right edge
    for side in window.compare.sides():
        column = side.panel.parentWidget()
        assert column.minimumSizeHint().width() <= column.width(), side.name
    rd = window.rd_view
    assert not rd._psnr_plot.getPlotItem().legend.isVisible() and rd._legend.isVisibleTo(rd)
