"""The PySide6 desktop app over the headless core; nothing here is imported by `workbench.core`."""
