"""Entry point of the PyInstaller bundle (packaging/workbench.spec).

The bundle has one executable, `workbench-gui`, and a symbolic link to it named `workbench`: called as
`workbench` it runs the command line (same as `python -m workbench`), under any other name the desktop app
(same as `python main.py`). One executable instead of two keeps a single copy of the embedded Python archive.
"""

import os
import sys

if os.path.splitext(os.path.basename(sys.argv[0]))[0] == "workbench":
    from workbench.cli import main
else:
    from workbench.ui.app import main

sys.exit(main())
