"""Compression Workbench: a headless core (`workbench.core`), a CLI and a PySide6 desktop app."""

__version__ = "0.1.0"
