"""Guards against a Qt binding that corrupts Python's reference counts on signal emission.

PySide6 6.12.0 drops a reference to True/None on every `Signal.emit()`; after a few thousand emits
(pyqtgraph emits many per repaint) the interpreter aborts with `bool_dealloc`. pyproject.toml excludes
that release; this test catches any other release with the same fault before users do.
"""

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    plain = Signal()
    carrying = Signal(object)


def test_signal_emit_keeps_reference_counts(qapp):
    e = _Emitter()
    before_true, before_none = sys.getrefcount(True), sys.getrefcount(None)
    for _ in range(50):
        e.plain.emit()
        e.carrying.emit(None)
    assert abs(sys.getrefcount(True) - before_true) < 10
    assert abs(sys.getrefcount(None) - before_none) < 10
