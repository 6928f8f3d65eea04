"""Headless core of the workbench.

Everything here runs without a display and never imports Qt: the CLI, the GUI and tests all drive
the same functions. Submodules are imported explicitly by their users so that `import workbench.core`
stays cheap.
"""
