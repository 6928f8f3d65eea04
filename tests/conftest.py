import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _unfreeze_gc():
    """The window's background loader freezes every object then alive out of the garbage collector's reach
    (main_window.preload), which in a test process would keep earlier tests' garbage for good."""
    yield
    import gc
    gc.unfreeze()


# --- fixtures of the window tests (Qt is imported inside them, so headless tests never load it) -----

@pytest.fixture
def errors(monkeypatch):
    """The (title, text) of every warning box the window shows, instead of showing it."""
    from PySide6.QtWidgets import QMessageBox
    seen = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *a: seen.append((title, text)))
    return seen


@pytest.fixture
def net_view(qtbot, errors):
    from workbench.ui.network_view import NetworkView
    v = NetworkView()
    qtbot.addWidget(v)
    v.resize(1300, 800)
    v.show()
    yield v
    v.shutdown()


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """The app's settings, config folder (remembered models) and data folder (RD sweeps, runs) of its own,
    under tmp_path."""
    from PySide6.QtCore import QSettings

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, settings, errors):
    """The main window with its own `settings`; `window.errors` lists the warnings it showed."""
    from workbench.ui.main_window import MainWindow

    w = MainWindow(settings)
    w.errors = errors
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    yield w
    w.compare.shutdown()
    w.worker.shutdown()
    if w.rd_view is not None:
        w.rd_view.runner.shutdown()
    if w.network is not None:
        w.network.shutdown()
