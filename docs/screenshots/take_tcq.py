"""The Compare tab at 1024×700 and 1600×1000 with the MS-SSIM checkerboard model against its decoder finetuned
on trellis-coded latents (labelled "decoder for tcq8" in the model chooser), both at quality 2.

    xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/take_tcq.py docs/screenshots

Uses a throw-away settings file, config and data folder, so it never touches the user's own.
"""

import sys
from pathlib import Path

from take import SIZES, grab_at_sizes, throwaway_window, wait  # the script beside this one


def main(out: Path) -> None:
    from workbench.ui.main_window import DEMO_IMAGE

    w = throwaway_window(*SIZES[0])
    w.open_paths([DEMO_IMAGE])
    wait(lambda: w.compare.image is not None)
    left, right = w.compare.left, w.compare.right
    left.panel.set_selection("learned-msssim", {"quality": 2})
    right.panel.set_selection("learned-msssim", {"quality": 2, "model": "dct-checkerboard-msssim-tcq",
                                                 "quantizer": "tcq8"})
    w.compare.set_image(w.compare.image)
    wait(lambda: left.result is not None and right.result is not None and not w.worker.is_pending("sweep"), 600)
    grab_at_sizes(w, out, "compare-tcq")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
