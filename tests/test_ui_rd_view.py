"""RDView: a real (small) JPEG/WebP sweep through the GUI, its live points, BD-rate table and exports."""

import csv
import json
import math
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from workbench.core.codecs import codec_class
from workbench.ui.rd_view import RDProgress, RDView, rd_sweep_job

CHAPEL = Path(__file__).parent / "data" / "chapel_192x176.png"
SWEEPS = {"jpeg": (20, 50, 80), "webp": (30, 70)}


@pytest.fixture
def view(qtbot):
    v = RDView(sweeps=SWEEPS)
    qtbot.addWidget(v)
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


def test_sweep_job_yields_one_attributed_point_per_setting():
    job = rd_sweep_job([CHAPEL], ["jpeg"], {"jpeg": (30, 60)})
    events = []
    try:
        while True:
            events.append(next(job))
    except StopIteration as stop:
        result = stop.value
    assert [e.step for e in events] == [1, 2] and events[-1].total == 2
    assert all(isinstance(e, RDProgress) for e in events)
    assert [e.point.quality for e in events] == [30, 60]
    assert result.points == [e.point for e in events] and result.images == [CHAPEL.name]
    assert events[0].metrics["bpp"] == events[0].point.bpp < events[1].point.bpp


def test_points_appear_while_the_sweep_runs(qtbot, view):
    seen = []

    def count_plotted(events):
        xs, _ = view._curves[("jpeg", "psnr")].getData() if ("jpeg", "psnr") in view._curves else ([], [])
        seen.append((events[-1].step, len(xs)))

    view.runner.progress_batch.connect(count_plotted)   # runs after the view's own handler
    with qtbot.waitSignal(view.sweep_finished, timeout=30000):
        view.run()
    assert seen and seen[0][1] >= 1                     # the first batch was plotted at once
    assert seen[-1] == (5, 3)


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
    assert "At the same PSNR, WebP files are" in swept._summary.text()
    assert swept._status.text() == "Done: 5 points on 1 image."
    assert swept._run.isEnabled() and not swept._cancel.isEnabled()


def test_changing_the_anchor_recomputes_the_table(swept):
    swept.set_anchor("webp")
    assert swept._table.rowCount() == 1
    assert swept._table.item(0, 0).text() == codec_class("jpeg").label
    assert swept._table.item(0, 1).text().startswith("+")


def test_export_buttons_write_csv_json_and_png(swept, tmp_path, monkeypatch):
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(tmp_path / "curves.csv"), "CSV files (*.csv)")))
    swept._export_csv.click()
    rows = list(csv.DictReader((tmp_path / "curves.csv").open()))
    assert [(r["codec"], r["quality"]) for r in rows][:3] == [("jpeg", "20"), ("jpeg", "50"), ("jpeg", "80")]
    assert len(rows) == 5 and float(rows[0]["bpp"]) == pytest.approx(swept.result().curve("jpeg").bpp[0])

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(tmp_path)))
    swept._export_json.click()
    doc = json.loads((tmp_path / "webp.json").read_text())
    assert doc["name"] == "webp" and len(doc["results"]["bpp"]) == 2
    assert set(doc["results"]) >= {"bpp", "psnr-rgb", "ms-ssim-rgb"}
    assert json.loads((tmp_path / "jpeg.json").read_text())["results"]["quality"] == [20, 50, 80]

    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(tmp_path / "rd.png"), "PNG images (*.png)")))
    swept._export_png.click()
    assert (tmp_path / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.csv", "jpeg.json", "rd.png", "webp.json"]
    assert swept._status.text() == f"Saved rd.png in {tmp_path}."


def test_dialog_cancel_writes_nothing(swept, tmp_path, monkeypatch):
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: ("", "")))
    swept._export_csv.click()
    swept._export_png.click()
    assert list(tmp_path.iterdir()) == []


def test_cancel_stops_the_sweep_and_keeps_exports_off(qtbot, view):
    view.set_selected_codecs(["jpeg"])
    view._sweeps["jpeg"] = tuple(range(5, 96, 3))
    batches = []
    view.runner.progress_batch.connect(batches.append)
    view.run()
    qtbot.waitUntil(lambda: bool(batches), timeout=10000)
    with qtbot.waitSignal(view.runner.cancelled, timeout=5000):
        view._cancel.click()
    assert view.result() is None and not view._export_csv.isEnabled()
    assert view._status.text().startswith("Cancelled after")
    assert view._run.isEnabled()


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
