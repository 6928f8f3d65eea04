"""RDView: a real (small) JPEG/WebP sweep through the GUI, its live points, BD-rate table and results folder."""

import json
import math
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog

from workbench.cli import main as cli
from workbench.core.codecs import codec_class
from workbench.ui.rd_view import RDView, run_folder

CHAPEL = Path(__file__).parent / "data" / "chapel_192x176.png"
SWEEPS = {"jpeg": (20, 50, 80), "webp": (30, 70)}


@pytest.fixture
def view(qtbot, tmp_path):
    v = RDView(sweeps=SWEEPS, results=tmp_path / "results", jobs=1)
    qtbot.addWidget(v)
    v.show()                                            # plots are brought up to date only while shown
    v.set_current(CHAPEL)
    v.set_selected_codecs(["jpeg", "webp"])
    v.set_anchor("jpeg")
    yield v
    v.runner.shutdown(5000)


@pytest.fixture
def swept(qtbot, view):
    with qtbot.waitSignal(view.sweep_finished, timeout=30000):
        view.run()
    qtbot.waitUntil(view.is_drawn, timeout=2000)
    return view


def test_each_sweep_has_its_own_folder_and_the_same_sweep_the_same_one(tmp_path):
    a, b = tmp_path / "x" / "a.png", tmp_path / "y" / "a.png"
    name = run_folder([a], ["jpeg", "webp"], SWEEPS)
    assert name.startswith("a-jpeg-webp-") and name == run_folder([a], ["jpeg", "webp"], dict(SWEEPS))
    assert name != run_folder([b], ["jpeg", "webp"], SWEEPS)                    # another picture of that name
    assert name != run_folder([a], ["jpeg", "webp"], {"jpeg": (20, 50)})       # other settings
    assert run_folder([a, b], ["learned:model=/m/x.pt"], {}).startswith("x-2-learned-")


def test_points_appear_while_the_sweep_runs(qtbot, view):
    seen = []

    def count_plotted(events):
        xs, _ = view._curves[("jpeg", "psnr")].getData() if ("jpeg", "psnr") in view._curves else ([], [])
        seen.append((events[-1].step, len(xs)))

    view.runner.progress_batch.connect(count_plotted)   # runs after the view's own handler
    with qtbot.waitSignal(view.sweep_finished, timeout=30000):
        view.run()
    assert seen[-1][0] == 5
    qtbot.waitUntil(view.is_drawn, timeout=2000)
    assert len(view._curves[("jpeg", "psnr")].getData()[0]) == 3


def _events(n: int):
    from workbench.core.bench import BenchProgress, RDPoint
    return [BenchProgress(i + 1, n, "", point=RDPoint(("jpeg", "webp")[i % 2], 10 * i, "a.png", 0.1 * (i + 1),
                                                       30.0 + i, 0.95, 13.0 + i, 0.01, 0.01)) for i in range(n)]


def test_the_rd_and_live_tabs_plots_take_turns_on_passes_after_the_points_arrived(qtbot, monkeypatch):
    """Qt paints every changed widget of a window in one pass: the plots that show a sweep (two on the RD
    tab, two on the Live tab) change one per pass, and none in the pass that receives the points."""
    import time

    import pyqtgraph as pg

    from workbench.ui.live_curves import MIN_TICK_MS, LiveCurves

    rd, live = RDView(sweeps=SWEEPS), LiveCurves()
    for w in (rd, live):
        qtbot.addWidget(w)
        w.show()
    changed = []
    set_data = pg.PlotDataItem.setData

    def recording(item, *a, **kw):
        if item.getViewBox() is not None:               # not an item being made, before it is in a plot
            changed.append((time.monotonic(), id(item.getViewBox())))
        return set_data(item, *a, **kw)

    monkeypatch.setattr(pg.PlotDataItem, "setData", recording)
    events = _events(4)
    rd._live.codecs = ["jpeg", "webp"]
    rd._on_batch(events)                                # as JobRunner delivers a batch to both tabs
    live.add_events(events)
    assert changed == []
    qtbot.waitUntil(lambda: rd.is_drawn() and live.is_drawn(), timeout=3000)
    plots = {box for _, box in changed}
    assert len(plots) == 4
    # each plot changed in a pass of its own: its items together, the next plot at least a pass later
    starts = [t for i, (t, box) in enumerate(changed) if i == 0 or changed[i - 1][1] != box]
    assert len(starts) == 4
    assert min(b - a for a, b in zip(starts, starts[1:])) >= MIN_TICK_MS / 2000.0


def test_a_hidden_tab_draws_a_sweeps_points_when_shown(qtbot):
    from workbench.ui.live_curves import LiveCurves

    rd, live = RDView(sweeps=SWEEPS), LiveCurves()
    for w in (rd, live):
        qtbot.addWidget(w)
    rd._live.codecs = ["jpeg", "webp"]
    rd._on_batch(_events(4))
    live.add_events(_events(4))
    qtbot.wait(100)
    assert not rd._curves and not live.rd_points._items          # no GUI time spent on what nobody sees
    for w in (rd, live):
        w.show()
    qtbot.waitUntil(lambda: rd.is_drawn() and live.is_drawn(), timeout=3000)
    assert len(rd._curves[("jpeg", "psnr")].getData()[0]) == 2
    assert len(live.rd_points._items["webp"][0].getData()[0]) == 2


def test_the_bd_rate_tables_are_computed_in_the_sweeps_thread(qtbot, view, monkeypatch):
    import threading

    from workbench.core.bench import BenchResult

    threads = []
    bd_table = BenchResult.bd_table

    def recording(result, *a, **kw):
        threads.append(threading.current_thread() is threading.main_thread())
        return bd_table(result, *a, **kw)

    monkeypatch.setattr(BenchResult, "bd_table", recording)
    with qtbot.waitSignal(view.sweep_finished, timeout=30000):
        view.run()
    assert view._table.rowCount() == 1 and "%" in view._table.item(0, 1).text()
    assert threads and not any(threads)                 # the window's thread computed none of them
    view.set_anchor("webp")                             # another anchor: computed at once, here
    assert threads[-1] and view._table.item(0, 0).text() == codec_class("jpeg").label


def test_finished_sweep_shows_means_table_and_sentence(swept):
    result = swept.result()
    assert result.codecs == ["jpeg", "webp"] and len(result.points) == 5
    xs, ys = swept._curves[("webp", "psnr")].getData()
    curve = result.curve("webp")
    assert list(xs) == pytest.approx(curve.bpp) and list(ys) == pytest.approx(curve.psnr)
    xs, ys = swept._curves[("jpeg", "ms_ssim_db")].getData()
    assert list(ys) == pytest.approx(result.curve("jpeg").ms_ssim_db)

    table = swept._table
    assert table.rowCount() == 1
    assert table.item(0, 0).text() == codec_class("webp").label
    expected = result.bd_table("jpeg")[0]
    assert math.isfinite(expected["psnr"])
    assert table.item(0, 1).text() == f"{expected['psnr']:+.1f} %".replace("-", "−")
    tip = table.item(0, 1).toolTip().splitlines()       # where the mean comes from, per quality setting
    assert tip[0] == f"File size against {codec_class('jpeg').label} at the same PSNR, per quality setting (below 1×: smaller):"
    assert len(tip) == 3 and tip[1].startswith("quality 30 (") and tip[2].startswith("quality 70 (")
    ratio = expected["psnr_ratios"][0]
    assert tip[1].endswith(f"{ratio:.2f}×" if math.isfinite(ratio) else "outside the anchor's range")
    assert "At the same PSNR, WebP files are" in swept._summary.text()
    assert swept._status.text() == f"Done: 5 points on 1 image; saved 8 files in {swept.sweep_folder()}."
    assert swept._run.isEnabled() and not swept._cancel.isEnabled()


def test_changing_the_anchor_recomputes_the_table(swept):
    swept.set_anchor("webp")
    assert swept._table.rowCount() == 1
    assert swept._table.item(0, 0).text() == codec_class("jpeg").label
    assert swept._table.item(0, 1).text().startswith("+")


def test_the_tab_leaves_the_files_workbench_bench_leaves(swept, tmp_path, capsys):
    """The CLI run on the tab's folder reuses every point the tab stored and rewrites its report: were
    the tab writing files of its own, or not storing its points, some file would differ."""
    folder = swept.sweep_folder()
    assert folder.parent == tmp_path / "results"
    written = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert set(written) >= {"jpeg.json", "webp.json", "per_image.csv", "curves.csv", "bdrate.md", "rd.png",
                            "points.jsonl"}
    assert json.loads(written["jpeg.json"])["results"]["quality"] == [20, 50, 80]
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(CHAPEL, images)
    assert cli(["bench", str(images), "--codecs", "jpeg,webp", "--anchor", "jpeg", "--qualities", "jpeg=20,50,80",
                "--qualities", "webp=30,70", "--jobs", "1", "--out", str(folder)]) == 0
    assert "5 point(s) measured before were reused" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == written


def test_the_same_sweep_again_reuses_its_points_and_a_new_one_gets_a_new_folder(qtbot, swept, tmp_path):
    first = swept.sweep_folder()
    with qtbot.waitSignal(swept.sweep_finished, timeout=30000):
        swept.run()
    assert swept.sweep_folder() == first and swept._status.text().startswith("Done: 5 points (5 measured before)")
    swept.set_selected_codecs(["jpeg"])
    with qtbot.waitSignal(swept.sweep_finished, timeout=30000):
        swept.run()
    assert swept.sweep_folder() != first and (swept.sweep_folder() / "jpeg.json").exists()
    assert not (swept.sweep_folder() / "webp.json").exists()
    assert swept._status.text().startswith("Done: 3 points on 1 image")    # another folder, measured anew


def test_results_folder_can_be_changed_and_opened(qtbot, swept, tmp_path, monkeypatch):
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", staticmethod(lambda url: opened.append(url.toLocalFile())))
    swept._open_results.click()
    assert opened == [str(swept.sweep_folder())]
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(tmp_path / "mine")))
    swept._choose_results.click()
    assert swept.results_folder() == tmp_path / "mine" and str(tmp_path / "mine") in swept._results_label.text()
    with qtbot.waitSignal(swept.sweep_finished, timeout=30000):
        swept.run()
    assert swept.sweep_folder().parent == tmp_path / "mine" and (swept.sweep_folder() / "rd.png").exists()


def test_dialog_cancel_changes_nothing(swept, monkeypatch):
    before = swept.results_folder()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: ""))
    swept._choose_results.click()
    assert swept.results_folder() == before


def test_cancel_stops_the_sweep_and_a_rerun_goes_on_from_its_points(qtbot, view):
    view.set_selected_codecs(["jpeg"])
    view._sweeps["jpeg"] = tuple(range(5, 96, 3))
    batches = []
    view.runner.progress_batch.connect(batches.append)
    view.run()
    qtbot.waitUntil(lambda: bool(batches), timeout=10000)
    with qtbot.waitSignal(view.runner.cancelled, timeout=5000):
        view._cancel.click()
    assert view.result() is None and not view._open_results.isEnabled()
    assert view._status.text().startswith("Cancelled after")
    assert view._run.isEnabled()
    stored = len((view.sweep_folder() / "points.jsonl").read_text().splitlines())
    assert stored >= 1
    resumed = []
    view.runner.progress_batch.connect(lambda events: resumed.extend(e for e in events if e.resumed))
    view.run()
    qtbot.waitUntil(lambda: len(resumed) == stored, timeout=10000)
    with qtbot.waitSignal(view.runner.cancelled, timeout=5000):
        view.cancel()


def test_failure_is_one_sentence_in_the_status_line(qtbot, view, tmp_path):
    view.set_current(tmp_path / "gone.png")
    with qtbot.waitSignal(view.runner.failed, timeout=10000):
        view.run()
    assert view._status.text() == f"The sweep stopped: {tmp_path / 'gone.png'}: no such file"


def test_unavailable_codecs_are_greyed_out_with_the_reason(qtbot, monkeypatch):
    monkeypatch.setattr(codec_class("jxl"), "availability", classmethod(lambda cls: (False, "libjxl is missing")))
    v = RDView()
    qtbot.addWidget(v)
    items = {v._codec_list.item(i).data(Qt.ItemDataRole.UserRole): v._codec_list.item(i)
             for i in range(v._codec_list.count())}
    assert not items["jxl"].flags() & Qt.ItemFlag.ItemIsEnabled
    assert items["jxl"].toolTip() == "libjxl is missing"
    assert items["jpeg"].flags() & Qt.ItemFlag.ItemIsEnabled
    v.set_selected_codecs(["jpeg", "jxl"])
    assert v.selected_codecs() == ["jpeg"]


def test_scope_follows_what_the_main_window_opened(qtbot, tmp_path):
    v = RDView()
    qtbot.addWidget(v)
    assert not v._run.isEnabled()                       # nothing open yet
    folder = [tmp_path / "a.png", tmp_path / "b.png"]
    v.set_images(folder)
    assert v._scope_folder.isChecked() and v._scope_folder.text() == f"All 2 images in {tmp_path.name}"
    assert not v._scope_current.isEnabled() and v._run.isEnabled()
    v.set_current(folder[1])
    v.set_scope(all_images=False)
    assert v._scope_images() == [folder[1]]
    v.set_selected_codecs([])
    assert not v._run.isEnabled() and v.anchor() is None


def _freed_by_its_last_reference(views: list) -> bool:
    """Drops the one reference `views` holds, with the garbage collector off: True when that freed the view."""
    import gc
    import weakref

    gone = weakref.ref(views[0])
    gc.disable()
    try:
        views.clear()
        return gone() is None
    finally:
        gc.enable()


def test_a_view_with_plot_turns_is_freed_when_its_last_reference_goes(qtbot):
    """The turns hold their view weakly: no reference cycle, so the garbage collector never frees the
    widget at a moment of its own choosing (a collection during a sweep)."""
    from PySide6.QtWidgets import QWidget

    from workbench.ui.live_curves import PlotTurns

    class View(QWidget):
        def __init__(self):
            super().__init__()
            self.drawn = []
            self.turns = PlotTurns(self, self.redraw)

        def redraw(self, which):
            self.drawn.append(which)

    view = View()
    view.show()
    view.turns.request("a")
    qtbot.waitUntil(view.turns.is_drawn, timeout=2000)
    assert view.drawn == ["a"]
    views = [view]
    del view
    assert _freed_by_its_last_reference(views)


def test_the_live_tab_is_freed_when_its_last_reference_goes_after_drawing(qtbot):
    from workbench.core.jobs import Progress
    from workbench.ui.live_curves import LiveCurves

    view = LiveCurves()
    view.show()
    view.add_events([Progress(i, 10, "", metrics={"loss": 1.0 / (i + 1), "psnr": 20.0 + i}) for i in range(5)])
    qtbot.waitUntil(view.is_drawn, timeout=3000)
    views = [view]
    del view
    assert _freed_by_its_last_reference(views)
