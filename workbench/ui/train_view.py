"""The "Train" tab: set up a training run, watch the codec learn, pause, resume or cancel it, use the result.

The training itself is `workbench train` (or, to finetune a model's decoder, `workbench finetune`: its
set-up is `finetune_setup.py`), run as a child process with the command line that "Copy CLI command"
shows (`run_folder.train_command`): one implementation for the CLI and the app, and a process
of its own, so a training step never competes with the window for Python's interpreter lock. The tab
only reads the run folder (`core/learned/run_folder.py`): new lines of `progress.jsonl` and the latest
preview, a few times a second, in small non-blocking reads. The folder is the whole state: pausing asks
the process to stop after a checkpoint, resuming runs the same command again, and a window opened later
on the folder shows everything the run did and continues it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import deque
from pathlib import Path

from PySide6.QtCore import QProcess, QProcessEnvironment, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QPixmap
from PySide6.QtWidgets import (
    QComboBox, QFileDialog, QFormLayout, QFrame, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton,
    QScrollArea, QSizePolicy, QSplitter, QVBoxLayout, QWidget,
)

from workbench.core.errors import OptionError, WorkbenchError
from workbench.core.jobs import Job, Progress, duration_text
from workbench.core.learned import preview, run_folder
from workbench.core.learned.catalog import remember_model
from workbench.core.learned.kinds.shvq import parse_vq_options
from workbench.core.learned.quantizers import SURROGATES
from workbench.core.learned.run_folder import RunSpec
from workbench.core.learned.shvq import SHVQOptions
from workbench.core.learned.train import TrainOptions
from workbench.core.options import build, specs
from workbench.ui.codec_panel import OptionsForm, make_editor
from workbench.ui.finetune_setup import FINETUNE_COLUMNS, FINETUNE_CURVES, QUANTIZER_LABELS, FinetuneSetup
from workbench.ui.job_runner import JobRunner
from workbench.ui.live_curves import LiveCurves

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"
POLL_MS = 250
#: The preview pictures' side: the held-out crop's usual 192 pixels at 1:1, which leaves the curves a row
#: at 1024×700 (a larger crop is shown scaled down).
PICTURE = 192
#: What the curves show, in this order (progress.jsonl holds more: mse, skipped steps, soft PSNR ...).
CURVES = ("loss", "bpp", "entropy", "psnr", "ms_ssim", "temperature", "sigma", "gap", "val_bpp_hard",
          "val_psnr_hard", "native_bpp_hard", "native_psnr_hard", "mismatch_bpp", "mismatch_psnr")
#: Options that mean something for dct-shvq only; its `vq_options` text is edited as a form of SHVQOptions.
SHVQ_ROWS = ("vq_dim", "vq_centers")
SHVQ_OWN = ("dim", "centers")          # SHVQOptions' fields that TrainOptions has as vq_dim and vq_centers
#: "Watch a codec learn": a small hyperprior trained from scratch at one λ on the bundled photograph. A step
#: with its share of the validations costs 38 ms of one CPU core (200 steps: 7.6 s), so 3000 steps take about
#: two minutes on two cores; the tab's time per step and ETA say how long they really take.
DEMO_OPTIONS = dict(model="hyperprior", channels=32, latent_channels=64, lambdas="0.013", steps=3000, batch=8,
                    crop=64, crops_per_image=32, lr=1e-3, validate_every=150, checkpoint_every=500, device="cpu")
DEMO_SURROGATE = ("sua", {"tau_steps": 3000})
DEMO_THREADS = 2


def default_runs_folder() -> Path:
    """$XDG_DATA_HOME/workbench/runs (~/.local/share when unset), where the tab starts new runs."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "workbench" / "runs"


def default_models_folder() -> Path:
    """$XDG_DATA_HOME/workbench/models: where "Use this model" writes a run's model file."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "workbench" / "models"


def _export_job(run: Path, models: Path, done: str = "trained") -> Job[str]:
    """The run's checkpoint as a model file named after the run and its step (a later export never replaces
    a model that files may have been compressed with), remembered for the model lists."""
    import torch

    from workbench.core.learned.weights import export_checkpoint

    yield Progress(0, None, "exporting the model")
    checkpoint = run / run_folder.CHECKPOINT
    step = int(torch.load(checkpoint, map_location="cpu", weights_only=True)["step"])
    output = models / f"{run.name}-step{step}.safetensors"
    models.mkdir(parents=True, exist_ok=True)
    export_checkpoint(checkpoint, output, f"{done} in the workbench's Train tab ({run.name}, {step} steps)")
    return remember_model(output)


class TrainView(QWidget):
    """`settings` keeps the last run folder and whether it was training when the window closed."""

    status_message = Signal(str)
    model_ready = Signal(str)             # "Use this model": the exported model's value for the model lists
    run_ended = Signal(str)               # "finished", "paused", "cancelled" or "failed"

    def __init__(self, settings: QSettings | None = None, runs_folder: str | Path | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings
        self.runs_folder = Path(runs_folder) if runs_folder else default_runs_folder()
        self.run_dir: Path | None = None
        self.process: QProcess | None = None
        self.outcome: str | None = None            # how the last process ended
        self.summary = ""                          # the demo's sentence
        self._tail: run_folder.ProgressTail | None = None
        self._step = 0
        self._step_times: deque[float] = deque(maxlen=30)
        self._intent: str | None = None            # "pause" or "cancel" while the user asked for one
        self._output: deque[str] = deque(maxlen=40)
        self._preview_mtime = 0
        self._demo_started: float | None = None
        self._threads: int | None = None
        self._what = "Training"                    # or "Finetuning", for the messages of the running process
        self.setAcceptDrops(True)
        self._poll = QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self.poll)
        self._exporter = JobRunner(self)
        self._exporter.finished.connect(self._exported)
        self._exporter.failed.connect(lambda msg: self._say(f"Cannot export the model: {msg}.", error=True))

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self._build_setup())
        splitter.addWidget(self._build_watch())
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([380, 1000])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(splitter)
        self.set_images(SAMPLES)
        self._model_changed()
        self._quantizer_changed()
        self._restore()

    # ----- construction
    def _build_setup(self) -> QWidget:
        box = QWidget()
        v = QVBoxLayout(box)
        data = QGroupBox("Images to learn from")
        f = QFormLayout(data)
        self.images_edit = QLineEdit()
        self.images_edit.setToolTip("A folder of photographs (drop one on this tab). The Kodak set is refused: "
                                    "it is what codecs are evaluated on.")
        pick = QPushButton("Choose…")
        pick.clicked.connect(self._choose_images)
        samples = QPushButton("Sample images")
        samples.setToolTip("The photograph that comes with the workbench")
        samples.clicked.connect(lambda: self.set_images(SAMPLES))
        row = QHBoxLayout()
        row.addWidget(self.images_edit, 1)
        row.addWidget(pick)
        row.addWidget(samples)
        f.addRow("Folder", row)
        self.run_edit = QLineEdit()
        self.run_edit.setReadOnly(True)
        self.run_edit.setToolTip("The run folder holds the checkpoint, the log and the previews; the same folder "
                                 "opened again continues the run.")
        new = QPushButton("New")
        new.setToolTip("Start a fresh run in a new folder")
        new.clicked.connect(lambda: self.set_run_folder(self.new_run_folder()))
        open_run = QPushButton("Open…")
        open_run.setToolTip("Open a run folder (from this tab or from `workbench train --out`)")
        open_run.clicked.connect(self._choose_run)
        row = QHBoxLayout()
        row.addWidget(self.run_edit, 1)
        row.addWidget(new)
        row.addWidget(open_run)
        f.addRow("Run", row)
        v.addWidget(data)

        what = QGroupBox("What to train")
        w = QVBoxLayout(what)
        self.mode = QComboBox()
        self.mode.addItem("A new codec, learned from scratch", "train")
        self.mode.addItem("The decoder of a trained model (finetuning)", "finetune")
        self.mode.setToolTip("Train a codec from its starting point, or retrain the decoder of a shipped or "
                             "imported model on the latents its coder really sends (`workbench finetune`)")
        self.mode.currentIndexChanged.connect(self._mode_changed)
        w.addWidget(self.mode)
        self.form = OptionsForm()
        device = lambda spec: make_editor(dataclasses.replace(spec, choices=("auto", "cpu", "cuda"), choice_labels=(
            "GPU when present, else CPU", "CPU", "GPU (CUDA)")))
        self.form.build(TrainOptions, editors={"device": device})
        self.form.editors["model"].committed.connect(self._model_changed)
        self.form.editors["quantizer"].committed.connect(self._quantizer_changed)
        w.addWidget(self.form)
        self.surrogate_box = QGroupBox("Surrogate options")
        s = QVBoxLayout(self.surrogate_box)
        self.surrogate_form = OptionsForm()
        s.addWidget(self.surrogate_form)
        w.addWidget(self.surrogate_box)
        self.shvq_box = QGroupBox("Soft-to-hard VQ: σ schedule")
        self.shvq_form = OptionsForm()
        self.shvq_form.build(SHVQOptions)
        for name in SHVQ_OWN:
            self.shvq_form.layout().setRowVisible(self.shvq_form.editors[name], False)
        self.form.layout().setRowVisible(self.form.editors["vq_options"], False)
        QVBoxLayout(self.shvq_box).addWidget(self.shvq_form)
        w.addWidget(self.shvq_box)
        self.finetune = FinetuneSetup()
        self.finetune.setVisible(False)
        w.addWidget(self.finetune)
        v.addWidget(what)
        v.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(box)
        scroll.setMinimumWidth(340)
        return scroll

    def _build_watch(self) -> QWidget:
        host = QWidget()
        v = QVBoxLayout(host)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Stop after the next checkpoint; Resume continues from it.")
        self.pause_button.clicked.connect(self.pause)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop now; the last checkpoint stays, so Resume continues from it.")
        self.cancel_button.clicked.connect(self.cancel)
        self.copy_button = QPushButton("Copy CLI command")
        self.copy_button.setToolTip("The `workbench train` (or `finetune`) command that runs this in a terminal")
        self.copy_button.clicked.connect(self.copy_command)
        self.use_button = QPushButton("Use this model")
        self.use_button.setToolTip("Turn the last checkpoint into a model file and add it to the Compare and RD "
                                   "curves tabs")
        self.use_button.clicked.connect(self.use_model)
        self.demo_button = QPushButton("Watch a codec learn")
        self.demo_button.setToolTip("Train a small codec from scratch on the sample photograph for about two "
                                    "minutes on two CPU cores")
        self.demo_button.clicked.connect(self.run_demo)
        # Two rows, so that the tab still fits beside the set-up column on a 1024-pixel-wide screen.
        for b in (self.start_button, self.pause_button, self.cancel_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.demo_button)
        v.addLayout(buttons)
        results = QHBoxLayout()
        results.addWidget(self.copy_button)
        results.addWidget(self.use_button)
        results.addStretch(1)
        v.addLayout(results)

        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("no run")
        self.timing = QLabel()
        row = QHBoxLayout()
        row.addWidget(self.bar, 1)
        row.addWidget(self.timing)
        v.addLayout(row)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        v.addWidget(self.message)

        pictures = QHBoxLayout()
        self.original_label, self.original_caption = self._picture(pictures, "Held-out crop (original)")
        self.preview_label, self.preview_caption = self._picture(pictures, "Decoded: no preview yet")
        pictures.addStretch(1)
        v.addLayout(pictures)
        self._watch = v
        self._train_curves = LiveCurves(columns=4, controls=False)
        self._finetune_curves: LiveCurves | None = None
        v.addWidget(self._train_curves, 1)
        self._set_running(False)
        # Pictures and three or four rows of curves are taller than a 700-pixel screen leaves the tab: the pane
        # scrolls there instead of pushing the window past the screen's bottom edge.
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(host)
        return scroll

    def _picture(self, row: QHBoxLayout, caption: str) -> tuple[QLabel, QLabel]:
        col = QVBoxLayout()
        label = QLabel()
        label.setFixedSize(PICTURE, PICTURE)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        text = QLabel(caption)
        col.addWidget(label)
        col.addWidget(text)
        row.addLayout(col)
        return label, text

    # ----- setting up
    def set_images(self, folder: str | Path) -> None:
        self.images_edit.setText(str(folder))

    def new_run_folder(self) -> Path:
        what = f"{self.finetune.model_name()}-finetune-{self.finetune.values()['quantizer']}" if self.finetuning \
            else self.form.values()["model"]
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{what}"
        path, n = self.runs_folder / name, 1
        while path.exists():
            n += 1
            path = self.runs_folder / f"{name}-{n}"
        return path

    def set_run_folder(self, folder: str | Path) -> bool:
        """Show a run folder: an existing run's settings, curves and preview, or an empty new one."""
        if self.is_running():
            self._say("Pause or cancel the running training first.", error=True)
            return False
        folder = Path(folder)
        spec = None
        if run_folder.is_run_folder(folder):
            try:
                spec = run_folder.load_spec(folder)
            except OptionError as err:
                self._say(f"{err}.", error=True)
                return False
        self.run_dir = folder
        self.run_edit.setText(str(folder))
        self._demo_started = self._threads = None          # the demo sets them again for its own folder
        self._reset_watch()
        if spec is not None:
            self.set_spec(spec)
            self.poll()
            self._say(f"Opened the run in {folder.name} at step {self._step}.")
        self._remember(running=False)
        self._set_running(False)
        return True

    def set_spec(self, spec: RunSpec) -> None:
        """Show a run's settings in the form (values outside today's ranges keep their defaults)."""
        self.mode.setCurrentIndex(self.mode.findData(spec.command))
        if spec.data:
            self.set_images(spec.data[0] if len(spec.data) == 1 else os.pathsep.join(spec.data))
        if spec.command == "finetune":
            self.finetune.set_values(spec.options)
            return
        self.form.set_values(spec.options)
        self._model_changed()
        self._quantizer_changed()
        self.surrogate_form.set_values(spec.surrogate_options)
        try:
            self.shvq_form.set_values(dataclasses.asdict(parse_vq_options(spec.options.get("vq_options", ""), 1, 64)))
        except WorkbenchError:
            pass                                     # a stale option string: the schedule's defaults

    @property
    def finetuning(self) -> bool:
        return self.mode.currentData() == "finetune"

    @property
    def curves(self) -> LiveCurves:
        """The curves of the kind of run shown. A finetuning's few curves get a grid of their own, with fewer
        columns so their titles fit; it is built the first time it is shown."""
        if not self.finetuning:
            return self._train_curves
        if self._finetune_curves is None:
            self._finetune_curves = LiveCurves(columns=FINETUNE_COLUMNS, controls=False)
            self._finetune_curves.setVisible(False)
            self._watch.insertWidget(self._watch.indexOf(self._train_curves), self._finetune_curves, 1)
        return self._finetune_curves

    def spec(self) -> RunSpec:
        """The run the form describes; OptionError names a value that does not build."""
        folders = tuple(p for p in self.images_edit.text().split(os.pathsep) if p.strip())
        if not folders:
            raise OptionError("choose a folder of images to learn from")
        if self.finetuning:
            return self.finetune.spec(folders)
        values = self.form.values()
        if values["model"] == "dct-shvq":
            vq = build(SHVQOptions, self.shvq_form.values())
            values["vq_options"] = ",".join(f"{f.name}={getattr(vq, f.name)!r}" for f in dataclasses.fields(vq)
                                            if f.name not in SHVQ_OWN and getattr(vq, f.name) != f.default)
        opts = build(TrainOptions, values)
        sur = build(SURROGATES.get(opts.quantizer).Options, self.surrogate_form.values())
        return RunSpec(dataclasses.asdict(opts), dataclasses.asdict(sur), folders)

    def _mode_changed(self) -> None:
        """Show the set-up and curves of the chosen kind of run; a run of the other kind on show is left
        for a new folder (its checkpoint could not continue as this kind)."""
        if self.run_dir is not None and run_folder.is_run_folder(self.run_dir) and not self.is_running():
            try:
                other = run_folder.load_spec(self.run_dir).command != self.mode.currentData()
            except OptionError:
                other = True
            if other:
                self.set_run_folder(self.new_run_folder())
        self.form.setVisible(not self.finetuning)
        self.finetune.setVisible(self.finetuning)
        self._train_curves.setVisible(not self.finetuning)
        self.curves.setVisible(True)
        self._model_changed()
        self.surrogate_box.setVisible(bool(self.surrogate_form.editors) and not self.finetuning)
        if self.finetuning:
            self.finetune.check_model()

    def _model_changed(self) -> None:
        shvq = self.form.values()["model"] == "dct-shvq"
        layout: QFormLayout = self.form.layout()
        for name in SHVQ_ROWS:
            layout.setRowVisible(self.form.editors[name], shvq)
        self.shvq_box.setVisible(shvq and not self.finetuning)

    def _quantizer_changed(self) -> None:
        cls = SURROGATES.get(self.form.values()["quantizer"])
        self.surrogate_form.build(cls.Options)
        self.surrogate_box.setTitle(f"{cls.label}: options")
        self.surrogate_box.setVisible(bool(self.surrogate_form.editors) and not self.finetuning)

    def _choose_images(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A folder of training images", self.images_edit.text())
        if folder:
            self.set_images(folder)

    def _choose_run(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a training run folder", str(self.runs_folder))
        if folder:
            self.set_run_folder(folder)

    def dragEnterEvent(self, event) -> None:
        if any(u.isLocalFile() and Path(u.toLocalFile()).is_dir() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        folders = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        folders = [f for f in folders if f.is_dir()]
        if folders:
            event.acceptProposedAction()
            if run_folder.is_run_folder(folders[0]):
                self.set_run_folder(folders[0])
            else:
                self.set_images(folders[0])

    # ----- running
    def is_running(self) -> bool:
        return self.process is not None

    @property
    def step(self) -> int:
        """The last step the run folder's progress file reached."""
        return self._step

    def start(self) -> bool:
        """Run (or resume) the training the form describes in the run folder, as a child process."""
        if self.is_running():
            return False
        try:
            spec = self.spec()
        except WorkbenchError as err:
            self._say(f"{err}.", error=True)
            return False
        if self.run_dir is None:
            self.set_run_folder(self.new_run_folder())
        self.run_dir.mkdir(parents=True, exist_ok=True)
        run_folder.clear_pause(self.run_dir)
        argv = run_folder.train_command(spec, self.run_dir)
        process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        if self._threads:
            env.insert("OMP_NUM_THREADS", str(self._threads))
        process.setProcessEnvironment(env)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        process.readyReadStandardOutput.connect(self._read_output)
        process.finished.connect(self._process_finished)
        process.errorOccurred.connect(self._process_error)
        self.process, self.outcome, self._intent = process, None, None
        self._output.clear()
        self._step_times.clear()
        self.bar.setMaximum(max(1, spec.options["steps"]))
        process.start(argv[0], argv[1:])
        self._poll.start()
        self._set_running(True)
        self._remember(running=True)
        self._what = "Finetuning" if spec.command == "finetune" else "Training"
        self._say(f"{self._what} in {self.run_dir}…" if self._step == 0 else f"Resuming from step {self._step}…")
        return True

    def pause(self) -> None:
        if self.is_running() and self._intent is None:
            self._intent = "pause"
            run_folder.request_pause(self.run_dir)
            self.pause_button.setEnabled(False)
            self._say("Pausing after the next checkpoint…")

    def cancel(self) -> None:
        """Stop at once: the checkpoint last written stays (it is replaced atomically), so nothing is lost
        that Resume cannot compute again."""
        if self.is_running():
            self._intent = "cancel"
            self.process.kill()

    def shutdown(self, wait_ms: int = 20_000) -> None:
        """On closing the window: pause a running training (a checkpoint, then the process ends) and mark
        it to be continued when the window opens again; killed if it does not stop in time."""
        process = self.process
        if process is None:
            return
        self.pause()
        if not process.waitForFinished(wait_ms):
            process.kill()
            process.waitForFinished(5000)
        if self.outcome != "finished":
            self._remember(running=True)

    def _read_output(self) -> None:
        if self.process is not None:
            text = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace")
            self._output.extend(line for line in text.replace("\r", "\n").splitlines() if line.strip())

    def _process_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self.process is not None:
            self._output.append(f"error: the training process could not start ({self.process.errorString()})")
            self._process_finished(-1, QProcess.ExitStatus.CrashExit)

    def _process_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        process = self.process
        if process is None:
            return
        self._read_output()
        self.process = None
        self._poll.stop()
        self.poll()
        total = self.bar.maximum()
        if self._intent == "cancel":
            self.outcome = "cancelled"
            self._say(f"Cancelled at step {self._step}; Resume continues from the last checkpoint.")
        elif code == 0 and status == QProcess.ExitStatus.NormalExit and self._step < total:
            self.outcome = "paused"
            self._say(f"Paused at step {self._step} of {total}; Resume continues.")
        elif code == 0 and status == QProcess.ExitStatus.NormalExit:
            self.outcome = "finished"
            self._finished_message()
        else:
            self.outcome = "failed"
            errors = [line[len("error: "):] for line in self._output if line.startswith("error: ")]
            why = errors[-1] if errors else (self._output[-1] if self._output else f"exit status {code}")
            kept = " The last checkpoint was kept." if (self.run_dir / run_folder.CHECKPOINT).exists() else ""
            self._say(f"{self._what} stopped: {why}.{kept}", error=True)
        process.deleteLater()
        self._intent = None
        self._remember(running=False)
        self._set_running(False)
        self.run_ended.emit(self.outcome)

    def _finished_message(self) -> None:
        shots = preview.read_previews(self.run_dir)
        if self._demo_started is not None and len(shots) >= 2:
            self.summary = run_folder.learning_summary(shots[0], shots[-1], time.monotonic() - self._demo_started)
            self._say(self.summary)
        else:
            self._say(f"Finished: {self._step} steps. “Use this model” makes it a codec of the Compare tab.")
        self._demo_started = None

    # ----- watching
    def poll(self) -> None:
        """New progress lines and a new preview, if any; cheap when there is nothing new."""
        if self.run_dir is None:
            return
        if self._tail is None:
            self._tail = run_folder.ProgressTail(self.run_dir)
        records = self._tail.read()
        if self._tail.restarted:
            self.curves.reset()
        if records:
            total = self.bar.maximum()
            keys = FINETUNE_CURVES if self.finetuning else CURVES
            events = [Progress(r["step"], total, metrics={k: r[k] for k in keys if k in r}) for r in records]
            self.curves.add_events(events)
            self._step = records[-1]["step"]
            self._step_times.extend(r["step_seconds"] for r in records if "step_seconds" in r)
            self._show_step()
        self._show_preview()

    def _show_step(self) -> None:
        total = self.bar.maximum()
        self.bar.setValue(min(self._step, total))
        self.bar.setFormat(f"step {self._step} / {total}")
        if self._step_times and self.is_running():
            per = sum(self._step_times) / len(self._step_times)
            left = max(0, total - self._step) * per
            self.timing.setText(f"{per * 1000:.0f} ms per step · about {duration_text(left)} left")
        elif not self.is_running():
            self.timing.setText("")

    def _show_preview(self) -> None:
        index = self.run_dir / preview.FOLDER / preview.INDEX
        try:
            mtime = index.stat().st_mtime_ns
        except OSError:
            return
        if mtime == self._preview_mtime:
            return
        shots = preview.read_previews(self.run_dir)
        if not shots:
            return
        latest = shots[-1]
        decoded = QPixmap(str(self.run_dir / preview.FOLDER / latest["file"]))
        original = QPixmap(str(self.run_dir / preview.FOLDER / "original.png"))
        if decoded.isNull() or original.isNull():
            return                                   # being replaced; the next poll shows it
        self._preview_mtime = mtime
        for label, pixmap in ((self.original_label, original), (self.preview_label, decoded)):
            label.setPixmap(pixmap.scaled(label.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                          Qt.TransformationMode.FastTransformation))
        self.original_caption.setText(f"Held-out crop, {original.width()}×{original.height()} (original)")
        self.preview_caption.setText(f"Decoded at step {latest['step']}: {latest['bpp']:.3f} bpp, "
                                     f"PSNR {latest['psnr']:.2f} dB")
        if "quantizer" in latest:                   # a finetuning's preview
            self.preview_caption.setToolTip(
                f"Decoded from the latents that “{QUANTIZER_LABELS.get(latest['quantizer'], latest['quantizer'])}” "
                "decides, by the decoder being finetuned; the rate is the size of the file it writes, which stays "
                "since the encoder does not change.")
        else:
            self.preview_caption.setToolTip("Decoded from the rounded latents, as the coder sends them; the rate "
                                            "is the entropy model's for those latents.")

    def _reset_watch(self) -> None:
        self._tail = None
        self._step = 0
        self._preview_mtime = 0
        self._step_times.clear()
        for curves in (self._train_curves, self._finetune_curves):
            if curves is not None:
                curves.reset()
        self.bar.setValue(0)
        self.bar.setFormat("no steps yet")
        self.timing.setText("")
        self.summary = ""
        for label in (self.original_label, self.preview_label):
            label.clear()
        self.preview_caption.setText("Decoded: no preview yet")
        if self.run_dir is not None and run_folder.is_run_folder(self.run_dir):
            try:
                self.bar.setMaximum(max(1, run_folder.load_spec(self.run_dir).options.get("steps", 1)))
            except OptionError:
                pass

    def _set_running(self, running: bool) -> None:
        has_checkpoint = self.run_dir is not None and (self.run_dir / run_folder.CHECKPOINT).exists()
        self.start_button.setEnabled(not running)
        self.start_button.setText("Resume" if has_checkpoint and not running else "Start")
        self.pause_button.setEnabled(running)
        self.cancel_button.setEnabled(running)
        self.use_button.setEnabled(has_checkpoint and not running and not self._exporter.is_running())
        self.demo_button.setEnabled(not running)
        for form in (self.mode, self.form, self.surrogate_form, self.shvq_form, self.finetune):
            form.setEnabled(not running)

    # ----- the result
    def copy_command(self) -> str:
        try:
            line = run_folder.shell_line(self.spec(), self.run_dir or self.new_run_folder())
        except WorkbenchError as err:
            self._say(f"{err}.", error=True)
            return ""
        QGuiApplication.clipboard().setText(line)
        self._say(f"Copied the command line that runs this {'finetuning' if self.finetuning else 'training'} in a "
                  "terminal.")
        return line

    def use_model(self) -> bool:
        """Export the run's last checkpoint into the user's models (off the GUI thread); `model_ready`
        follows with the model's value."""
        if self.run_dir is None or self.is_running() or self._exporter.is_running():
            return False
        if not (self.run_dir / run_folder.CHECKPOINT).exists():
            self._say("This run has no checkpoint yet.", error=True)
            return False
        run, models = self.run_dir, default_models_folder()
        done = "finetuned" if self.finetuning else "trained"
        self._exporter.start(lambda: _export_job(run, models, done))
        self.use_button.setEnabled(False)
        self._say("Exporting the model…")
        return True

    def _exported(self, value: str) -> None:
        self._set_running(self.is_running())
        self.finetune.offer_model(value)                 # and a starting point for finetuning
        self._say(f"Saved the model as {value}; it is in the Compare tab's model list and the RD curves tab.")
        self.model_ready.emit(value)

    # ----- the demo
    def run_demo(self) -> bool:
        """Train a small codec from scratch on the sample photograph and say in one sentence what it learned."""
        if self.is_running():
            return False
        name, sur = DEMO_SURROGATE
        self.mode.setCurrentIndex(self.mode.findData("train"))
        self.set_images(SAMPLES)
        self.form.set_values({**{s.name: s.default for s in specs(TrainOptions)}, **DEMO_OPTIONS,
                              "quantizer": name})
        self._model_changed()
        self._quantizer_changed()
        self.surrogate_form.set_values(sur)
        folder = self.runs_folder / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
        if not self.set_run_folder(folder):
            return False
        self._demo_started = time.monotonic()
        self._threads = DEMO_THREADS
        return self.start()

    # ----- messages and settings
    def _say(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #c62828;" if error else "")
        self.status_message.emit(text)

    def _remember(self, running: bool) -> None:
        if self.settings is not None and self.run_dir is not None:
            self.settings.setValue("train/run", str(self.run_dir))
            self.settings.setValue("train/running", running)

    def _restore(self) -> None:
        """The run shown when the window closed; continued at once if it was training then."""
        if self.settings is None:
            return
        path = self.settings.value("train/run", "")
        if path and run_folder.is_run_folder(path):
            running = str(self.settings.value("train/running", False)).lower() == "true"
            if self.set_run_folder(path) and running:
                self.start()

