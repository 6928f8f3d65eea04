"""Start the Compression Workbench desktop app: `python main.py [images or folders...]`.

Without a display it explains why and prints the command-line help instead (exit status 0).
"""

import sys

from workbench.ui.app import main

if __name__ == "__main__":
    sys.exit(main())
