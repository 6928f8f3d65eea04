"""A CompressAI checkpoint dropped on the Compare tab becomes that side's learned model (issue 14 item 4):
labelled by architecture, metric and quality, remembered, offered to the RD tab and swept there; another
network's checkpoint still goes to the Network tab, and a damaged one is refused in one line."""

from pathlib import Path

import torch
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from test_compressai_import import compressai_state
from workbench.core.learned import catalog

CHAPEL = Path(__file__).resolve().parent / "data" / "chapel_192x176.png"
WAIT_MS = 60_000


def drop_at(window, paths, x):
    """Drag and drop onto the window at x (window coordinates), as a file manager does."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    rest = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    enter = QDragEnterEvent(QPoint(x, 300), *rest)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(window, QDropEvent(QPointF(x, 300), *rest))


def open_chapel(qtbot, window):
    assert window.open_paths([CHAPEL])
    qtbot.waitUntil(lambda: window.compare.image is not None and window.rd_view is not None, timeout=WAIT_MS)


def wait_model(qtbot, window, side, value):
    s = window.compare.side(side)
    qtbot.waitUntil(lambda: s.selection.codec == "learned" and s.selection.options.model == value
                    and s.result is not None and not window.worker.is_pending(side), timeout=WAIT_MS)


def test_a_dropped_checkpoint_becomes_the_sides_model_with_a_label_and_is_remembered(qtbot, window, tmp_path):
    ckpt = tmp_path / "mbt2018-mean-3-0123abcd.pth.tar"
    torch.save(compressai_state("mbt2018-mean"), ckpt)
    open_chapel(qtbot, window)
    drop_at(window, [ckpt], window.width() - 100)                       # on the right half
    wait_model(qtbot, window, "right", str(ckpt.resolve()))
    right = window.compare.right
    assert window.compare.left.selection.codec != "learned"
    label = "mbt2018-mean (CompressAI, PSNR, quality 3)"
    assert window.compare.view.caption(1).startswith(f"Learned — {label}")
    model_box = right.panel._editors["model"].combo
    assert model_box.currentText() == label
    assert catalog.remembered_models() == [str(ckpt.resolve())]
    assert (label, str(ckpt.resolve())) in catalog.model_choices()
    assert right.result.size_bytes > 0 and window.errors == []


def test_a_zoo_folder_dropped_on_the_left_is_one_model_the_rd_tab_sweeps(qtbot, window, tmp_path):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    for q in (1, 2):
        torch.save(compressai_state("bmshj2018-factorized", seed=q), zoo / f"bmshj2018-factorized-{q}-0a1b2c3d.pth.tar")
    open_chapel(qtbot, window)
    drop_at(window, [zoo], 100)                                          # on the left half
    wait_model(qtbot, window, "left", str(zoo.resolve()))
    label = "bmshj2018-factorized (CompressAI, PSNR, qualities 1–2)"
    assert window.compare.view.caption(0).startswith(f"Learned — {label}")
    rd = window.rd_view
    spec = f"learned:model={zoo.resolve()}"
    assert spec in rd.selected_codecs()
    rd.set_selected_codecs([spec])
    rd.set_scope(all_images=False)
    with qtbot.waitSignal(rd.sweep_finished, timeout=WAIT_MS) as finished:
        rd.run()
    result = finished.args[0]
    assert result.codecs == [spec] and [p.quality for p in result.points] == [1.0, 2.0]
    assert result.points[0].bpp != result.points[1].bpp               # two files, two rate points
    window.tabs.setCurrentWidget(rd)                # a tab not shown draws its plots once it is shown
    qtbot.waitUntil(rd.is_drawn, timeout=WAIT_MS)
    assert label in rd._legend.text()


def test_another_networks_checkpoint_still_goes_to_the_network_tab(qtbot, window, tmp_path):
    other = tmp_path / "classifier.pth"
    torch.save({"fc.weight": torch.randn(4, 8), "fc.bias": torch.zeros(4)}, other)
    open_chapel(qtbot, window)
    drop_at(window, [other], window.width() - 100)
    qtbot.waitUntil(lambda: window.network is not None and window.tabs.currentWidget() is window.network,
                    timeout=WAIT_MS)
    assert window.compare.right.panel.codec() != "learned" and catalog.remembered_models() == []


def test_a_damaged_compressai_checkpoint_is_refused_in_one_line(qtbot, window, tmp_path):
    state = compressai_state("mbt2018-mean")
    del state["g_s.6.weight"]
    bad = tmp_path / "mbt2018-mean-2-0123abcd.pth.tar"
    torch.save(state, bad)
    open_chapel(qtbot, window)
    codec_before = window.compare.right.panel.codec()
    drop_at(window, [bad], window.width() - 100)
    qtbot.waitUntil(lambda: bool(window.errors), timeout=WAIT_MS)
    assert len(window.errors) == 1 and "\n" not in window.errors[0][1]
    assert "g_s.6.weight" in window.errors[0][1]
    assert window.compare.right.panel.codec() == codec_before and catalog.remembered_models() == []
