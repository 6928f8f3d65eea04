"""The Train tab at 1024×700 set up to finetune the shipped dct-hyperprior-mse on trellis-coded (tcq8) latents,
paused once the run has validated twice.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshots/take_finetune.py docs/screenshots

Uses a throw-away settings file, config and data folder, so it never touches the user's own.
"""

import sys
from pathlib import Path

from take import pause, throwaway_window, wait  # the script beside this one


def main(out: Path) -> None:
    w = throwaway_window(1024, 700)
    wait(lambda: w.train is not None, 900)
    view = w.train
    w.tabs.setCurrentWidget(view)
    view.mode.setCurrentIndex(view.mode.findData("finetune"))
    view.finetune.set_values({"model": "dct-hyperprior-mse", "quantizer": "tcq8", "validate_every": 10,
                              "checkpoint_every": 10})
    wait(lambda: view.finetune.note.isHidden(), 900)
    view.set_run_folder(view.new_run_folder())
    view.start()
    wait(lambda: view.step >= 20 and len(view.curves.keys()) >= 3, 900)
    view.pause()
    wait(lambda: not view.is_running(), 900)
    w.resize(1024, 700)
    pause(1.5)
    print("window", w.size().width(), "x", w.size().height())
    w.grab().save(str(out / "train-finetune-1024x700.png"))
    w.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
