"""Screenshots of every tab at 1024×700 and 1600×1000, as a new user would see them after a demo.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshots/take.py docs/screenshots

Uses a throw-away settings file, config and data folder, so it never touches the user's own.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

SIZES = ((1024, 700), (1600, 1000))


def wait(predicate, timeout=120.0):
    """Run the event loop until `predicate()`. Sleeps in Python between passes: `QTest.qWait` keeps the
    interpreter lock while it waits, which starved the window's background import of torch (the
    Network tab came after 200 s instead of 3 s)."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError
        pause(0.05)


def pause(seconds: float) -> None:
    end = time.monotonic() + seconds
    while True:
        QApplication.processEvents()
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.01))


_app = None


def throwaway_window(width: int, height: int):
    """The app's window, shown at `width` x `height`, with settings, config and data folders of its own."""
    tmp = Path(tempfile.mkdtemp())
    os.environ["XDG_CONFIG_HOME"] = str(tmp / "config")
    os.environ["XDG_DATA_HOME"] = str(tmp / "data")        # the RD tab's sweep folders, the Train tab's runs
    global _app
    _app = QApplication.instance() or QApplication(sys.argv)  # kept alive while the window is shown
    from workbench.ui.main_window import MainWindow

    w = MainWindow(QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat))
    w.resize(width, height)
    w.show()
    return w


def grab_at_sizes(w, out: Path, name: str) -> None:
    """`name`-WIDTHxHEIGHT.png of the window as it is now, at each of SIZES, then close it."""
    for width, height in SIZES:
        w.resize(width, height)
        pause(1.5)
        w.grab().save(str(out / f"{name}-{width}x{height}.png"))
    w.close()


def main(out: Path) -> None:
    from workbench.ui.main_window import DEMO_IMAGE

    w = throwaway_window(*SIZES[1])
    wait(lambda: w.network is not None)
    w.open_paths([DEMO_IMAGE])
    wait(lambda: w.compare.image is not None)
    left, right = w.compare.left, w.compare.right
    left.panel.set_selection("jpeg", {"quality": 40})
    right.panel.set_selection("learned", {"quality": 2})
    w.compare.set_image(w.compare.image)
    wait(lambda: left.result is not None and right.result is not None and not w.worker.is_pending("sweep"))
    pause(0.3)
    shots = {"compare": w.compare}
    rd = w.rd_view
    rd.set_selected_codecs(["jpeg", "webp", "learned"])
    rd.set_anchor("jpeg")
    rd.run()
    wait(lambda: not rd.is_running(), 600)
    shots["rd"] = rd
    shots["live"] = w.live
    net = w.network
    net.run_demo()
    wait(lambda: net.result is not None)
    shots["network"] = net
    for width, height in SIZES:
        w.resize(width, height)
        for name, tab in shots.items():
            w.tabs.setCurrentWidget(tab)
            pause(0.4)
            w.grab().save(str(out / f"{name}-{width}x{height}.png"))
        w.tabs.setCurrentWidget(w.compare)
        w.act_heat.setChecked(True)
        pause(0.3)
        w.grab().save(str(out / f"compare-heatmap-{width}x{height}.png"))
        w.act_heat.setChecked(False)
    w.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
