"""Entry point of the PyInstaller bundle (packaging/workbench.spec).

The bundle has one executable, `workbench-gui`, and a symbolic link to it named `workbench`: called as
`workbench` it runs the command line (same as `python -m workbench`), under any other name the desktop app
(same as `python main.py`). One executable instead of two keeps a single copy of the embedded Python archive.
"""

import multiprocessing
import os
import runpy
import sys

multiprocessing.freeze_support()    # a bench's worker processes start as this program too
if len(sys.argv) > 2 and sys.argv[1] == "-m":
    # `sys.executable -m MODULE ARGS...`: how the app starts its child processes (a training run, an encode
    # that optimizes). In the bundle sys.executable is this program, so it runs the module as python would.
    module = sys.argv[2]
    sys.argv = [sys.argv[0], *sys.argv[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    sys.exit(0)
if os.path.splitext(os.path.basename(sys.argv[0]))[0] == "workbench":
    from workbench.cli import main
else:
    from workbench.ui.app import main

sys.exit(main())
