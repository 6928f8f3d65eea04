"""The Train tab at 1024×700 set up to finetune the shipped dct-hyperprior-mse on trellis-coded (tcq8) latents,
paused once the run has validated twice.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshots/take_finetune.py docs/screenshots

Uses a throw-away settings file, config and data folder, so it never touches the user's own.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication


def wait(predicate, timeout=900.0):
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError
        QTest.qWait(100)


def main(out: Path) -> None:
    tmp = Path(tempfile.mkdtemp())
    os.environ["XDG_CONFIG_HOME"] = str(tmp / "config")
    os.environ["XDG_DATA_HOME"] = str(tmp / "data")
    _app = QApplication.instance() or QApplication(sys.argv)  # kept alive while the window is shown
    from workbench.ui.main_window import MainWindow

    w = MainWindow(QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat))
    w.resize(1024, 700)
    w.show()
    wait(lambda: w.train is not None)
    view = w.train
    w.tabs.setCurrentWidget(view)
    view.mode.setCurrentIndex(view.mode.findData("finetune"))
    view.finetune.set_values({"model": "dct-hyperprior-mse", "quantizer": "tcq8", "validate_every": 10,
                              "checkpoint_every": 10})
    wait(lambda: view.finetune.note.isHidden())
    view.set_run_folder(view.new_run_folder())
    view.start()
    wait(lambda: view.step >= 20 and len(view.curves.keys()) >= 3)
    view.pause()
    wait(lambda: not view.is_running())
    w.resize(1024, 700)
    QTest.qWait(1500)
    print("window", w.size().width(), "x", w.size().height())
    w.grab().save(str(out / "train-finetune-1024x700.png"))
    w.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
