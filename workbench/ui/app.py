"""Starting the desktop app: display check, QApplication setup, the main window, files to open.

Without a display Qt would abort with a platform-plugin error; a user who typed `python main.py` on a
server gets a one-sentence explanation and the command-line help instead, which does the same work.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from typing import Sequence

EXIT_WHEN_SHOWN = "WORKBENCH_EXIT_WHEN_SHOWN"   # benchmarks/launch_time.py: quit as soon as the window is up
#: How long a thread may hold the interpreter lock while another waits for it (Python's default: 5 ms).
#: A job thread running Python (rendering the RD report's plot, a trellis search) makes the GUI thread wait
#: up to this long at every call Qt makes into Python while painting (each pyqtgraph item). At 1 ms (down
#: from 5 ms, the worst event-loop gap at the end of an RD sweep fell from 77-118 ms to under 60 ms) a pass
#: painting four plots beside the report's drawing still waited 12-13 ms for the lock (median; p90 18-24 ms);
#: at 0.2 ms 3.5-3.8 ms (p90 9 ms), and the drawing thread did its work in no more CPU time
#: (benchmarks/gil_convoy.py, two rounds on a busy machine).
GIL_SWITCH_S = 0.0002


def display_available() -> bool:
    """Qt needs X11 or Wayland on Linux and other Unixes, unless a platform (e.g. offscreen) is forced."""
    if sys.platform.startswith(("win", "darwin")) or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workbench-gui", description="Compression Workbench desktop app: compare "
                                "image codecs side by side. Without arguments the window opens empty.")
    p.add_argument("paths", nargs="*", help="images or folders of images to open")
    return p


def _report_unexpected(exc_type, exc, tb) -> None:
    """Last resort for a bug in a slot: the traceback goes to stderr, the user gets one sentence."""
    traceback.print_exception(exc_type, exc, tb)
    from PySide6.QtWidgets import QApplication, QMessageBox
    if QApplication.instance() is not None:
        QMessageBox.critical(None, "Unexpected error", f"Something went wrong inside the workbench "
                             f"({exc_type.__name__}: {exc}); the details were written to the terminal.")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not display_available():
        print("No graphical display is available (neither DISPLAY nor WAYLAND_DISPLAY is set), so here is the "
              "command-line interface, which does the same work:")
        from workbench.cli import main as cli_main
        cli_main(["--help"])
        return 0
    t0 = time.perf_counter()
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0] or "workbench-gui", *argv])
    args = _parser().parse_args(app.arguments()[1:])      # Qt has removed its own options (-platform, ...)
    app.setApplicationName("Compression Workbench")
    app.setOrganizationName("Compression Workbench")
    app.setApplicationDisplayName("Compression Workbench")
    app.setDesktopFileName("workbench")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.excepthook = _report_unexpected
    sys.setswitchinterval(GIL_SWITCH_S)

    from workbench.ui.main_window import MainWindow, app_icon
    app.setWindowIcon(app_icon())
    window = MainWindow()
    window.show()
    if args.paths:                      # once the loop runs, so any error dialog has the window behind it
        QTimer.singleShot(0, lambda: window.open_paths(args.paths))
    if os.environ.get(EXIT_WHEN_SHOWN):
        _exit_after_first_paint(window, t0)
    return app.exec()


def _exit_after_first_paint(window, t0: float) -> None:
    """For benchmarks/launch_time.py: report when the window has painted for the first time, then close it."""
    from PySide6.QtCore import QEvent, QObject, QTimer

    class FirstPaint(QObject):
        def eventFilter(self, obj, event) -> bool:
            if event.type() == QEvent.Type.Paint:
                window.removeEventFilter(self)
                print(f"window painted {time.perf_counter() - t0:.3f} s after Qt started loading; "
                      f"shown-at {time.time():.6f}", flush=True)
                QTimer.singleShot(0, window.close)
            return False

    window.installEventFilter(FirstPaint(window))
