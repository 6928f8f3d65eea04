"""The Train tab at 1024×700 and 1600×1000 while a small hyperprior learns from scratch on the bundled
photographs, paused once its curves include the validation at the photographs' own scale.

    xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/take_train.py docs/screenshots

Uses a throw-away settings file, config and data folder, so it never touches the user's own.
"""

import sys
from pathlib import Path

from take import SIZES, grab_at_sizes, throwaway_window, wait  # the script beside this one

from workbench.core.learned.run_folder import RunSpec
from workbench.ui.train_view import SAMPLES

OPTIONS = dict(model="hyperprior", channels=16, latent_channels=32, lambdas="0.013", steps=400, batch=4, crop=64,
               crops_per_image=16, validate_every=25, checkpoint_every=100, device="cpu")


def main(out: Path) -> None:
    w = throwaway_window(*SIZES[0])
    wait(lambda: w.train is not None, 900)
    view = w.train
    w.tabs.setCurrentWidget(view)
    view.set_spec(RunSpec(OPTIONS, {"tau_steps": 400}, (str(SAMPLES),)))
    view.set_run_folder(view.new_run_folder())
    view.start()
    wait(lambda: view.step >= 200 and "native_psnr_hard" in view.curves.keys(), 900)
    view.pause()
    wait(lambda: not view.is_running(), 900)
    grab_at_sizes(w, out, "train")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
