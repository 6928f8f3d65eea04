"""The Help page's keyboard table is read off the window's actions, so it lists every shortcut there is."""

from PySide6.QtGui import QAction, QKeySequence

from workbench.ui.main_window import HelpDialog

NATIVE = QKeySequence.SequenceFormat.NativeText


def help_text(qtbot, window) -> str:
    dialog = HelpDialog(window)
    qtbot.addWidget(dialog)
    return dialog.browser.toPlainText()


def test_every_action_shortcut_is_in_the_help_table(qtbot, window):
    text = help_text(qtbot, window)
    actions = [a for a in window.actions() if a.shortcuts()]
    assert len(actions) >= 15
    for action in actions:
        for key in action.shortcuts():
            assert key.toString(NATIVE) in text, f"{action.text()}: {key.toString(NATIVE)} is not in Help"
        assert action.text().replace("&", "").rstrip("…") in text
    assert "Space (hold)" in text                        # the A/B key, handled by the picture itself

    added = QAction("Frobnicate the Widgets", window)   # a new action needs no edit of the Help page
    added.setShortcut(QKeySequence("Ctrl+Alt+F"))
    window.addAction(added)
    text = help_text(qtbot, window)
    assert "Ctrl+Alt+F" in text and "Frobnicate the Widgets" in text
