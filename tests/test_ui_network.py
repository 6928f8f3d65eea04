"""The Network tab driven like a user would: drop or open a checkpoint, compress, cancel, export, decode back."""

import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QMimeData, QPoint, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QPushButton

from workbench.core.network import demo
from workbench.core.network.checkpoint import load_checkpoint, save_checkpoint
from workbench.core.network.compress import decompress_network
from workbench.core.network.quantizers import NET_QUANTIZERS
from workbench.core.options import specs
from workbench.ui.codec_panel import _FreeSpinBox
from workbench.ui.main_window import MainWindow
from qt_drops import drop

WAIT_MS = 30_000
SHARE = 5  # column "Share of rate"


@pytest.fixture
def view(net_view):
    return net_view


@pytest.fixture
def demo_copy(tmp_path):
    path = tmp_path / "digits.safetensors"
    shutil.copyfile(demo.WEIGHTS, path)
    return path


def open_and_wait(qtbot, view, path):
    with qtbot.waitSignal(view.loaded, timeout=WAIT_MS):
        assert view.open_path(path)
    return view.network


def compress_and_wait(qtbot, view, quantizer="uniform", **values):
    view.set_quantizer(quantizer, values)
    with qtbot.waitSignal(view.compressed, timeout=WAIT_MS):
        assert view.compress()
    return view.result


def cell(view, row, column):
    model = view.table.layer_model
    return model.data(model.index(row, column))


def test_checkpoint_dropped_on_the_window_opens_in_the_network_tab(qtbot, errors, demo_copy, tmp_path):
    window = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.show()
    drop(window, [demo_copy])
    view = window.network
    assert view is not None and window.tabs.currentWidget() is view
    qtbot.waitUntil(lambda: view.network is not None, timeout=WAIT_MS)
    assert window.compare.image is None and window.images == []          # images are not touched
    assert view.table.layer_model.rowCount() == 8
    names = [r.name for r in view.table.layer_model.rows()]
    assert names == list(load_checkpoint(demo_copy)) and "88,028 parameters" in view.file_label.text()
    assert cell(view, names.index("fc1.weight"), 4) == "32"                # float32 before compression
    assert not errors
    view.shutdown()
    window.worker.shutdown()


def test_demo_compresses_and_says_what_it_cost_in_one_sentence(qtbot, view):
    with qtbot.waitSignal(view.compressed, timeout=WAIT_MS):
        assert view.run_demo()
    r = view.result
    assert r.quantizer == demo.DEMO_QUANTIZER and r.options["states"] == 4 and r.accuracy_before is not None
    m = re.fullmatch(r"The network is now (\d+\.\d) times smaller \((\d+ kB) → ([\d.]+ kB)\) and its accuracy "
                     r"(stayed at|went from) .*%\.", view.sentence)
    assert m, view.sentence
    assert float(m.group(1)) == pytest.approx(demo.WEIGHTS.stat().st_size / len(r.data), abs=0.05)
    assert view.sentence_label.text() == view.sentence and view.sentence.count(".") <= 3
    assert abs(r.accuracy_after - r.accuracy_before) < 0.02                   # the default costs (almost) nothing
    # table: bits/param of the coded file, shares adding up to 100 %, SNR per tensor
    rows = view.table.layer_model.rows()
    assert sum(x.share for x in rows) == pytest.approx(1.0)
    assert {x.name for x in rows if x.coding.startswith("tcq")} == {k for k, v in view.network.state.items()
                                                                    if v.ndim >= 2}
    # the histogram follows the selected tensor and shows the quantized levels
    view.table.select("conv2.weight")
    h = view.histogram.histogram()
    assert h is not None and h.after is not None and 2 <= h.levels < 64 and h.total == 9216
    assert view.histogram.title.text().startswith("<b>conv2.weight</b>")
    # the live curves got what the quantizer reports
    assert {"entropy", "bits_per_weight", "snr_db"} <= set(view.live.keys())


def test_table_sorts_by_numbers_and_keeps_the_selected_tensor(qtbot, view, demo_copy):
    open_and_wait(qtbot, view, demo_copy)
    view.table.select("conv1.bias")
    view.table.sortByColumn(3, Qt.SortOrder.DescendingOrder)                # parameters
    assert [cell(view, i, 0) for i in range(3)] == ["fc1.weight", "conv2.weight", "fc2.weight"]
    assert view.table.selected_name() == "conv1.bias"
    view.table.sortByColumn(SHARE, Qt.SortOrder.AscendingOrder)
    shares = [view.table.layer_model.row_at(i).share for i in range(8)]
    assert shares == sorted(shares)
    assert view.table.selected_name() == "conv1.bias" and view.histogram.histogram().after is None
    # a new result keeps the sort order and the selection
    compress_and_wait(qtbot, view, "uniform", bits=6)
    shares = [view.table.layer_model.row_at(i).share for i in range(8)]
    assert shares == sorted(shares) and view.table.selected_name() == "conv1.bias"
    assert view.histogram.histogram().after is not None


def test_quantizer_panel_is_built_from_the_registry(qtbot, view):
    combo = view.quantizer_combo
    assert [combo.itemData(i) for i in range(combo.count())] == NET_QUANTIZERS.names()
    for name in NET_QUANTIZERS.names():
        combo.setCurrentIndex(combo.findData(name))
        assert list(view.options_form.editors) == [s.name for s in specs(NET_QUANTIZERS.get(name).Options)]
    view.set_quantizer("shvq")
    editors = view.options_form.editors
    assert editors["lam"].value() == 0.02                         # not rounded away by a one-decimal box
    assert isinstance(editors["lr"].spin, _FreeSpinBox) and editors["lr"].slider is None
    assert editors["lr"].spin.text() == "0.001"
    editors["lr"].spin.lineEdit().setText("2e-4")
    editors["lr"].spin.interpretText()
    assert editors["lr"].value() == pytest.approx(2e-4)
    view.set_quantizer("uniform")
    editors = view.options_form.editors
    editors["step"].spin.setValue(0.0125)
    assert editors["step"].value() == pytest.approx(0.0125)         # small absolute steps can be typed


def test_cancel_stops_the_run_and_keeps_the_previous_result(qtbot, view, tmp_path):
    big = tmp_path / "big.pt"
    torch.manual_seed(0)
    save_checkpoint({f"layer{i}.weight": torch.randn(128, 256) for i in range(40)}, big)
    open_and_wait(qtbot, view, big)
    first = compress_and_wait(qtbot, view, "uniform", bits=4)
    view.set_quantizer("tcq", {"states": 8, "bits": 8})
    cancel = next(b for b in view.live.findChildren(QPushButton) if b.text() == "Cancel")
    with qtbot.waitSignal(view.runner.progress, timeout=WAIT_MS):
        assert view.compress()
    assert cancel.isEnabled() and not view.compress_button.isEnabled()
    with qtbot.waitSignal(view.runner.cancelled, timeout=WAIT_MS):
        cancel.click()
    assert view.result is first and "cancelled" in view.status_label.text()
    assert view.compress_button.isEnabled() and view.save_wbn_button.isEnabled()
    assert view.sentence.startswith("The network is now") and "not measured" in view.sentence  # no task: said so


def test_export_decode_back_and_save_the_decoded_checkpoint(qtbot, view, demo_copy, tmp_path, monkeypatch):
    open_and_wait(qtbot, view, demo_copy)
    result = compress_and_wait(qtbot, view, "rdoq", bits=5, lam=0.05)
    assert not view.check_button.isEnabled()                       # nothing saved yet
    wbn = tmp_path / "out" / "digits.wbn"
    wbn.parent.mkdir()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(wbn), ""))
    with qtbot.waitSignal(view.checked, timeout=WAIT_MS) as checked:
        view.save_wbn_button.click()                              # saving checks the written file at once
    check = checked.args[0]
    assert wbn.read_bytes() == result.data and check.ok and check.tensors == 8
    assert view.check_label.text().startswith("✔ Decoding digits.wbn gives back all 8 tensors")
    assert view.check_button.isEnabled()
    decoded = decompress_network(wbn.read_bytes())
    assert list(decoded) == list(result.state)
    for k, v in result.state.items():
        assert decoded[k].dtype == v.dtype and decoded[k].shape == v.shape and torch.equal(decoded[k], v)

    # a file changed on disk after saving is caught by the check
    tampered = demo_copy.parent / "tampered.wbn"
    from workbench.core.jobs import run
    from workbench.core.network.compress import compress_network_job
    tampered.write_bytes(run(compress_network_job(view.network.state, "uniform", {"bits": 3})).data)
    view.wbn_path = tampered
    with qtbot.waitSignal(view.checked, timeout=WAIT_MS) as checked:
        view.check_button.click()
    assert not checked.args[0].ok and "NOT restore" in view.check_label.text()
    assert "values" in view.check_label.text()

    for name in ("decoded.safetensors", "decoded.pt"):
        out = tmp_path / "out" / name
        monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
        with qtbot.waitSignal(view.exported, timeout=WAIT_MS):
            view.save_ckpt_button.click()
        back = load_checkpoint(out)
        assert list(back) == list(result.state) or set(back) == set(result.state)
        assert all(torch.equal(back[k], v) and back[k].dtype == v.dtype for k, v in result.state.items())


def test_export_never_overwrites_the_opened_checkpoint(qtbot, view, demo_copy, errors):
    open_and_wait(qtbot, view, demo_copy)
    compress_and_wait(qtbot, view, "uniform", bits=4)
    before = demo_copy.read_bytes()
    with qtbot.waitSignal(view.io_runner.failed, timeout=WAIT_MS):
        view.export_checkpoint(demo_copy)
    assert demo_copy.read_bytes() == before
    assert errors and "refusing to overwrite the input file" in errors[-1][1]


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_bad_files_give_a_clear_message_and_lose_nothing(qtbot, view, demo_copy, tmp_path, errors):
    open_and_wait(qtbot, view, demo_copy)
    result = compress_and_wait(qtbot, view, "uniform", bits=6)
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(2), "x": _Evil(marker)}, evil)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(demo_copy.read_bytes()[:5000])
    text = tmp_path / "notes.pt"
    text.write_text("these are my notes, not a network")
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    cases = [(evil, "could run code"), (corrupt, "not a valid safetensors file"),
             (text, "not a network checkpoint: it is a text file"), (empty, "without model.safetensors"),
             (tmp_path / "missing.pth", "no such file")]
    for path, words in cases:
        with qtbot.waitSignal(view.io_runner.failed, timeout=WAIT_MS):
            assert view.open_path(path)
        title, message = errors[-1]
        assert title == f"Cannot open {path.name}" and words in message, message
        assert "\n" not in message and "Traceback" not in message and message.endswith(".")
        assert view.network.path == demo_copy and view.result is result     # nothing lost
        assert view.table.layer_model.rows()[0].coding                     # the table still shows the result
        assert view.compress_button.isEnabled()
    assert not marker.exists()
    # a non-checkpoint .wbn cannot be "checked" into looking fine either
    junk = tmp_path / "junk.wbn"
    junk.write_bytes(b"not a wbn file at all")
    view.wbn_path = junk
    with qtbot.waitSignal(view.io_runner.failed, timeout=WAIT_MS):
        view.check_decode()
    assert errors[-1][0] == "Cannot decode junk.wbn" and view.last_check is None


def test_drop_on_the_tab_and_a_hugging_face_folder(qtbot, view, demo_copy, tmp_path):
    folder = tmp_path / "hf-model"
    folder.mkdir()
    shutil.copyfile(demo_copy, folder / "model.safetensors")
    with qtbot.waitSignal(view.loaded, timeout=WAIT_MS):
        drop(view, [folder])
    assert view.network.path == folder / "model.safetensors"
    assert view.network.file_bytes == demo_copy.stat().st_size
    # an image dropped on the tab is left to the main window
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(Path(__file__).parent / "data" / "chapel_192x176.png"))])
    enter = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view, enter)
    assert not enter.isAccepted()


def test_open_checkpoint_action_uses_a_file_dialog(qtbot, errors, demo_copy, tmp_path, monkeypatch):
    window = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(demo_copy), ""))
    window.act_open_net.trigger()
    view = window.network
    assert window.tabs.currentWidget() is view
    qtbot.waitUntil(lambda: view.network is not None, timeout=WAIT_MS)
    assert view.network.path == demo_copy and not errors
    view.shutdown()
    window.worker.shutdown()
