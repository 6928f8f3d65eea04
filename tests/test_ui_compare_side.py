"""One Compare side: every piece of its work runs on its one runner, and a newer request supersedes an older."""

import threading
from pathlib import Path

from qt_drops import drop

from workbench.ui import compare_side

CHAPEL = Path(__file__).parent / "data" / "chapel_192x176.png"
WAIT_MS = 20_000


def choose(panel, codec, quality):
    panel.combo.setCurrentIndex(panel.combo.findData(codec))
    panel._editors["quality"].spin.setValue(quality)


def test_a_side_runs_encodes_and_size_searches_on_its_one_runner(qtbot, window, monkeypatch):
    drop(window, [CHAPEL])
    right = window.compare.right
    choose(right.panel, "jpeg", 50)
    qtbot.waitUntil(lambda: right.result is not None, timeout=WAIT_MS)

    gate, started = threading.Event(), []
    real = compare_side._compress

    def held(rgb, codec, options):                       # the first encode waits until the second is asked for
        started.append(options.quality)
        if options.quality == 20:
            gate.wait(10)
        return real(rgb, codec, options)
    monkeypatch.setattr(compare_side, "_compress", held)
    choose(right.panel, "jpeg", 20)
    qtbot.waitUntil(lambda: started == [20], timeout=WAIT_MS)
    assert right.runner.is_running() and right.busy and window.busy.isVisibleTo(window)
    assert not window.worker.is_pending("right")
    choose(right.panel, "jpeg", 30)
    assert started == [20]                               # the newer encode waits for the superseded one
    gate.set()
    qtbot.waitUntil(lambda: right.result is not None, timeout=WAIT_MS)
    assert started == [20, 30] and right.result.options["quality"] == 30     # the superseded result never shows
    assert right.selection.options.quality == 30 and not right.busy
    qtbot.waitUntil(lambda: not window.busy.isVisibleTo(window), timeout=WAIT_MS)

    right.size.target.setValue(2.0)
    right.size.target_button.click()                     # a size search is the side's job too
    assert right.runner.is_running() and not window.worker.is_pending("right")
    qtbot.waitUntil(lambda: right.result is not None and not right.busy, timeout=WAIT_MS)
    assert abs(right.result.size_bytes / 2000 - 1) < 0.15
