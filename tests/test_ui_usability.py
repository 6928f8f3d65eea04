"""What a non-programmer meets in the window (issue 16): buttons that work when the text says so, results
that are never shown as current when they are not, and names and words a newcomer can read."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from workbench.core.network import demo
from workbench.ui.network_view import NetworkView

ROOT = Path(__file__).resolve().parents[1]
CHAPEL = ROOT / "tests" / "data" / "chapel_192x176.png"
WAIT_MS = 30_000


@pytest.fixture
def errors(monkeypatch):
    seen = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *a: seen.append((title, text)))
    return seen


@pytest.fixture
def net_view(qtbot, errors):
    v = NetworkView()
    qtbot.addWidget(v)
    v.resize(1300, 800)
    v.show()
    yield v
    v.shutdown()


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
