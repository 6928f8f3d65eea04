"""The "Network" tab: open a checkpoint, choose a quantizer, compress, read the cost, export, check.

Everything measured here comes from the core: `compress_network_job` quantizes, codes and decodes,
`core.network.report` turns its result into table rows and histograms, `core.summary` says it in one
sentence and `core.network.verify` re-reads a saved file. This module only wires those to widgets.

Two job runners keep the window responsive: one for compressions, whose progress feeds the live
curves and which Cancel stops; one for the short file work (loading, saving, the decode check), so
that saving a result never clears the curves of the run that produced it. Nothing the user has is
replaced until the new thing has fully arrived: a failed load keeps the open network, a cancelled or
failed compression keeps the previous result.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QMessageBox, QPushButton, QScrollArea, QSizePolicy,
    QSplitter, QVBoxLayout, QWidget,
)

from workbench.core.atomic import write_bytes_atomic
from workbench.core.errors import WorkbenchError
from workbench.core.jobs import Job, Progress
from workbench.core.network import demo
from workbench.core.network.checkpoint import OpenedCheckpoint, open_checkpoint, save_checkpoint
from workbench.core.network.compress import NetResult, compress_network_job, decompress_network
from workbench.core.network.paths import COMPRESSED_SUFFIX, SUFFIXES, is_network_path
from workbench.core.network.quantizers import NET_QUANTIZERS
from workbench.core.network.report import layer_rows, tensor_histogram
from workbench.core.network.verify import DecodeCheck, check_file_job
from workbench.core.options import build, specs
from workbench.core.summary import format_size, network_sentence
from workbench.ui.codec_panel import OptionsForm
from workbench.ui.job_runner import JobRunner
from workbench.ui.live_curves import LiveCurves
from workbench.ui.network_histogram import TensorHistogramView
from workbench.ui.network_table import LayerTable

WELCOME = ("Drop a network checkpoint here (.pt, .pth, .safetensors, or a Hugging Face folder with "
           "model.safetensors) or a compressed .wbn network, open one, or click “Demo network”.")
CHECKPOINT_FILTER = (f"Checkpoints and compressed networks ({' '.join('*' + s for s in SUFFIXES)} "
                     f"*{COMPRESSED_SUFFIX});;All files (*)")


def _call_job(message: str, fn: Callable[..., Any], *args: Any) -> Job[Any]:
    """A one-step job, so short file work runs off the GUI thread like everything else."""
    yield Progress(0, None, message)
    return fn(*args)


def _open_network(path: Path) -> OpenedCheckpoint:
    """A checkpoint, or a `.wbn` file decoded back to the weights it codes (so it can be inspected,
    saved as an ordinary checkpoint or compressed again)."""
    if path.suffix.lower() != COMPRESSED_SUFFIX:
        return open_checkpoint(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise WorkbenchError(f"cannot read {path}: {err.strerror}") from None
    return OpenedCheckpoint(path=path, state=decompress_network(data), file_bytes=len(data),
                            notes=["decoded from a compressed network; its sizes are of the decoded weights"])


def _write_wbn(data: bytes, path: Path, protect: list[Path]) -> Path:
    return write_bytes_atomic(path, data, protect=protect)


def _write_decoded(data: bytes, path: Path, protect: list[Path]) -> Path:
    """The checkpoint is decoded from the `.wbn` bytes themselves, so it is what any receiver gets."""
    return save_checkpoint(decompress_network(data), path, protect=protect)


def _description(cls: type) -> str:
    """What a quantizer does, in plain words: its `description`, else its docstring's first paragraph."""
    text = getattr(cls, "description", "")
    return text or inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0].replace("\n", " ")


class NetworkView(QWidget):
    status_message = Signal(str)
    #: The network that is now open (an `OpenedCheckpoint`).
    loaded = Signal(object)
    #: A compression finished (its `NetResult`).
    compressed = Signal(object)
    #: A file was written (its `Path`).
    exported = Signal(object)
    #: A decode-back check finished (its `DecodeCheck`).
    checked = Signal(object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.network: OpenedCheckpoint | None = None
        self.result: NetResult | None = None
        self.sentence = ""
        self.last_check: DecodeCheck | None = None
        self.wbn_path: Path | None = None       # the .wbn last saved for the current result
        self._then: Callable[[], None] | None = None   # what the demo does once its network is open
        self._io_done: Callable[[Any], None] | None = None
        self._io_title = ""
        self._dialog_folder = str(Path.home())

        self.runner = JobRunner(self)
        self.runner.started.connect(self._update_enabled)
        self.runner.finished.connect(self._compressed)
        self.runner.failed.connect(lambda msg: self._fail("Compression failed", msg))
        self.runner.cancelled.connect(self._compress_cancelled)
        self.io_runner = JobRunner(self)
        self.io_runner.started.connect(self._update_enabled)
        self.io_runner.progress.connect(lambda ev: self._set_status(ev.message[:1].upper() + ev.message[1:] + "…"))
        self.io_runner.finished.connect(self._io_finished)
        self.io_runner.failed.connect(self._io_failed)
        self.io_runner.cancelled.connect(self._update_enabled)

        self._build()
        self._update_enabled()

    # -- construction ----------------------------------------------------------------------------
    def _build(self) -> None:
        self.open_button = QPushButton("Open checkpoint…")
        self.open_button.setToolTip("Open a .pt/.pth state dict, a .safetensors file, a Hugging Face folder, or "
                                    "a compressed .wbn network (shown decoded). Pickled code is never run: such "
                                    "files are refused.")
        self.open_button.clicked.connect(self.open_dialog)
        self.demo_button = QPushButton("Demo network")
        demo_cls = NET_QUANTIZERS.get(demo.DEMO_QUANTIZER)
        titles = {s.name: s.title for s in specs(demo_cls.Options)}
        settings = ", ".join(f"{titles.get(k, k)} {v}" for k, v in demo.DEMO_OPTIONS.items())
        self.demo_button.setToolTip(f"Load the bundled digits CNN and compress it with the "
                                    f"{demo_cls.label} quantizer ({settings}), "
                                    "measuring its accuracy before and after.")
        self.demo_button.clicked.connect(self.run_demo)
        self.file_label = QLabel("No network open.")
        self.file_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.file_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        top = QHBoxLayout()
        top.addWidget(self.open_button)
        top.addWidget(self.demo_button)
        top.addWidget(self.file_label, 1)

        self.sentence_label = QLabel(WELCOME)
        self.sentence_label.setWordWrap(True)
        font = QFont(self.sentence_label.font())
        font.setPointSizeF(font.pointSizeF() * 1.25)
        self.sentence_label.setFont(font)
        self.sentence_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail_label = QLabel()
        self.detail_label.setWordWrap(True)
        self.detail_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail_label.setVisible(False)

        self.table = LayerTable()
        self.table.tensor_selected.connect(self._show_histogram)
        self.histogram = TensorHistogramView()
        # Four plots in a row: every quantizer reports four metrics. No smoothing by default: a scalar
        # quantizer reports one point per tensor, where an average over neighbours means nothing.
        self.live = LiveCurves(columns=4)
        self.live.set_smoothing(0.0)
        self.live.attach(self.runner)

        tensors = QSplitter(Qt.Orientation.Horizontal)
        tensors.addWidget(self.table)
        tensors.addWidget(self.histogram)
        tensors.setChildrenCollapsible(False)
        tensors.setSizes([690, 320])
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(tensors)
        right.addWidget(self.live)
        right.setChildrenCollapsible(False)
        right.setSizes([420, 260])

        main = QVBoxLayout()
        main.addWidget(self.sentence_label)
        main.addWidget(self.detail_label)
        main.addWidget(right, 1)
        body = QHBoxLayout()
        body.addWidget(self._build_side())
        body.addLayout(main, 1)
        outer = QVBoxLayout(self)
        outer.addLayout(top)
        outer.addLayout(body, 1)

    def _build_side(self) -> QWidget:
        box = QGroupBox("Quantizer")
        lay = QVBoxLayout(box)
        self.quantizer_combo = QComboBox()
        for cls in NET_QUANTIZERS:
            self.quantizer_combo.addItem(cls.label, cls.name)
            self.quantizer_combo.setItemData(self.quantizer_combo.count() - 1, _description(cls),
                                             Qt.ItemDataRole.ToolTipRole)
        self.quantizer_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.quantizer_combo.setMinimumContentsLength(20)
        self.quantizer_combo.currentIndexChanged.connect(self._quantizer_changed)
        # Ordinary text in the palette's own colours (readable in dark mode too), not a disabled label.
        self.quantizer_help = QLabel()
        self.quantizer_help.setWordWrap(True)
        self.quantizer_help.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.options_form = OptionsForm()
        lay.addWidget(self.quantizer_combo)
        lay.addWidget(self.quantizer_help)
        lay.addWidget(self.options_form)
        self.compress_button = QPushButton("Compress")
        self.compress_button.setToolTip("Quantize and entropy-code the open network into a .wbn file in memory; "
                                        "sizes and accuracy are measured on that file decoded back.")
        self.compress_button.setDefault(True)
        self.compress_button.clicked.connect(self.compress)
        lay.addWidget(self.compress_button)

        out = QGroupBox("Export")
        ol = QVBoxLayout(out)
        self.save_wbn_button = QPushButton("Save compressed .wbn…")
        self.save_wbn_button.setToolTip("Write the compressed file, then decode it back from disk to check it.")
        self.save_wbn_button.clicked.connect(self.export_wbn_dialog)
        self.save_ckpt_button = QPushButton("Save decoded checkpoint…")
        self.save_ckpt_button.setToolTip("Decode the compressed file and write the weights as .safetensors or "
                                         ".pt, with the original names, shapes and dtypes.")
        self.save_ckpt_button.clicked.connect(self.export_checkpoint_dialog)
        self.check_button = QPushButton("Decode back and check")
        self.check_button.setToolTip("Read the saved .wbn file, decode it and compare every tensor with the "
                                     "encoder's reconstruction.")
        self.check_button.clicked.connect(self.check_decode)
        self.check_label = QLabel("Save the .wbn file to check that it decodes back.")
        self.check_label.setWordWrap(True)
        self.check_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        for w in (self.save_wbn_button, self.save_ckpt_button, self.check_button, self.check_label):
            ol.addWidget(w)

        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        side = QWidget()
        sl = QVBoxLayout(side)
        sl.setContentsMargins(0, 0, 0, 0)
        sl.addWidget(box)
        sl.addWidget(out)
        sl.addWidget(self.status_label)
        sl.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFixedWidth(330)
        self._quantizer_changed()
        return scroll

    # -- choosing the quantizer ------------------------------------------------------------------
    def set_quantizer(self, name: str, values: dict[str, Any] | None = None) -> None:
        """Show quantizer `name` with `values` (the rest at their defaults)."""
        index = self.quantizer_combo.findData(name)
        if index < 0:
            raise KeyError(name)
        self.quantizer_combo.setCurrentIndex(index)
        self.options_form.build(NET_QUANTIZERS.get(name).Options)
        self.options_form.set_values(values or {})

    def quantizer(self) -> str:
        return self.quantizer_combo.currentData()

    def _quantizer_changed(self) -> None:
        cls = NET_QUANTIZERS.get(self.quantizer())
        self.options_form.build(cls.Options)
        self.quantizer_combo.setToolTip(cls.label)      # the full name, should a narrow panel elide it
        self.quantizer_help.setText(_description(cls))

    # -- opening ---------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a network checkpoint", self._dialog_folder,
                                              CHECKPOINT_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str | Path, then: Callable[[], None] | None = None) -> bool:
        """Load `path` in the background; False (with a message) when busy. The open network stays
        until the new one has loaded, and stays for good when it cannot be loaded."""
        if self._busy():
            self._set_status("Wait for the running work to finish, or cancel it, before opening another network.")
            return False
        p = Path(path)
        self._then = then
        self._start_io(f"Cannot open {p.name}", _call_job(f"reading {p.name}", _open_network, p),
                       self._network_loaded)
        return True

    def run_demo(self) -> bool:
        """Open the bundled digits CNN and compress it with the demo's quantizer."""
        if not demo.WEIGHTS.is_file():
            self._fail("The demo cannot start", f"The demo network {demo.WEIGHTS} is missing from this installation.")
            return False

        def compress_demo() -> None:
            self.set_quantizer(demo.DEMO_QUANTIZER, demo.DEMO_OPTIONS)
            self.compress()

        return self.open_path(demo.WEIGHTS, then=compress_demo)

    def _network_loaded(self, net: OpenedCheckpoint) -> None:
        self.network, self.result, self.wbn_path, self.last_check = net, None, None, None
        if net.path.resolve().parent != demo.WEIGHTS.resolve().parent:   # never propose the app's own folder
            self._dialog_folder = str(net.path.parent)
        self.file_label.setText(f"<b>{net.path.name}</b> · {len(net.state)} tensors · {net.parameters:,} "
                                f"parameters · {format_size(net.file_bytes)}")
        self.file_label.setToolTip(str(net.path))
        self.table.set_rows(layer_rows(net.state))
        self.sentence = ""
        self.sentence_label.setText(f"{net.path.name} is open. Choose a quantizer and click Compress.")
        self.detail_label.setVisible(False)
        self.check_label.setText("Save the .wbn file to check that it decodes back.")
        notes = f" Note: {'; '.join(net.notes)}." if net.notes else ""
        self._set_status(f"Opened {net.path.name}.{notes}")
        self.loaded.emit(net)
        then, self._then = self._then, None
        if then is not None:
            then()

    # -- compressing -----------------------------------------------------------------------------
    def compress(self) -> bool:
        if self.network is None:
            self._set_status("Open a checkpoint first.")
            return False
        if self._busy():
            self._set_status("A compression or a file operation is already running.")
            return False
        name = self.quantizer()
        try:
            options = build(NET_QUANTIZERS.get(name).Options, self.options_form.values())
        except WorkbenchError as err:
            self._fail("Invalid options", str(err))
            return False
        state = self.network.state
        self._set_status(f"Compressing with {name}…")
        self.runner.start(lambda: compress_network_job(state, name, options, task=demo.task_for(state)))
        return True

    def cancel(self) -> None:
        self.runner.cancel()

    def _compressed(self, result: NetResult) -> None:
        net = self.network
        self.result, self.wbn_path, self.last_check = result, None, None
        self.table.set_rows(layer_rows(net.state, result))
        self.sentence = network_sentence(net.file_bytes, len(result.data), result.accuracy_before,
                                         result.accuracy_after)
        self.sentence_label.setText(self.sentence)
        cls = NET_QUANTIZERS.get(result.quantizer)
        defaults = {s.name: s.default for s in specs(cls.Options)}
        changed = {k: v for k, v in result.options.items() if k in defaults and v != defaults[k]}
        opts = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in changed.items())
        self.detail_label.setText(
            f"{cls.label}{f' ({opts})' if opts else ''}: {len(result.data):,} bytes, "
            f"{result.bits_per_weight:.2f} bits per parameter; encoded in {result.encode_s:.2f} s, "
            f"decoded in {result.decode_s:.2f} s.")
        self.detail_label.setVisible(True)
        self.check_label.setText("Save the .wbn file to check that it decodes back.")
        self._set_status(f"Compressed {net.path.name} to {format_size(len(result.data))}.")
        self._update_enabled()
        self.compressed.emit(result)

    def _compress_cancelled(self) -> None:
        kept = " The previous result is kept." if self.result is not None else ""
        self._set_status(f"Compression cancelled.{kept}")
        self._update_enabled()

    # -- exporting and checking ------------------------------------------------------------------
    def export_wbn_dialog(self) -> None:
        if self.result is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save the compressed network",
                                              str(Path(self._dialog_folder) / (self.network.path.stem + ".wbn")),
                                              "Compressed network (*.wbn)")
        if path:
            self.export_wbn(Path(path))

    def export_checkpoint_dialog(self) -> None:
        if self.result is None:
            return
        default = Path(self._dialog_folder) / f"{self.network.path.stem}-decoded.safetensors"
        path, _ = QFileDialog.getSaveFileName(self, "Save the decoded checkpoint", str(default),
                                              "safetensors (*.safetensors);;PyTorch state dict (*.pt *.pth)")
        if path:
            self.export_checkpoint(Path(path))

    def export_wbn(self, path: Path) -> bool:
        """Write the `.wbn` file, then decode it back from disk (the check follows on its own)."""
        if self.result is None or self.io_runner.is_running():
            return False
        path = Path(path) if Path(path).suffix else Path(path).with_suffix(".wbn")
        result = self.result

        def written(p: Path) -> None:
            if self.result is result:
                self.wbn_path = p
            self._dialog_folder = str(p.parent)
            self._set_status(f"Saved {p.name} ({format_size(len(result.data))}) to {p.parent}.")
            self.exported.emit(p)
            self.check_decode()

        return self._start_io("Cannot save the compressed file", _call_job(
            f"writing {path.name}", _write_wbn, result.data, path, self._inputs()), written)

    def export_checkpoint(self, path: Path) -> bool:
        if self.result is None or self.io_runner.is_running():
            return False
        path = Path(path)

        def written(p: Path) -> None:
            self._dialog_folder = str(p.parent)
            self._set_status(f"Saved the decoded checkpoint {p.name} to {p.parent}.")
            self.exported.emit(p)

        return self._start_io("Cannot save the decoded checkpoint", _call_job(
            f"decoding and writing {path.name}", _write_decoded, self.result.data, path, self._inputs()), written)

    def check_decode(self) -> bool:
        """Decode the saved `.wbn` file and compare it with the encoder's reconstruction."""
        if self.result is None or self.wbn_path is None or self.io_runner.is_running():
            return False
        result, path = self.result, self.wbn_path

        def done(check: DecodeCheck) -> None:
            if self.result is result:
                self.last_check = check
                mark = "✔" if check.ok else "✘"
                self.check_label.setText(f"{mark} {check.sentence()}")
            self.status_label.setText("")         # the check label beside the buttons already says it
            self.status_message.emit(check.sentence())
            self._update_enabled()
            self.checked.emit(check)

        return self._start_io(f"Cannot decode {path.name}", check_file_job(path, result.state), done)

    def _inputs(self) -> list[Path]:
        return [self.network.path] if self.network is not None else []

    # -- job plumbing ----------------------------------------------------------------------------
    def _start_io(self, title: str, job: Job[Any], done: Callable[[Any], None]) -> bool:
        self._io_title, self._io_done = title, done
        self.io_runner.start(lambda: job)
        return True

    def _io_finished(self, value: Any) -> None:
        done, self._io_done = self._io_done, None
        if done is not None:
            done(value)
        self._update_enabled()       # after `done`: it is what stores a loaded network (enabling Compress)

    def _io_failed(self, message: str) -> None:
        self._io_done = None
        self._then = None
        self._update_enabled()
        self._fail(self._io_title, message)

    def _busy(self) -> bool:
        return self.runner.is_running() or self.io_runner.is_running()

    def _update_enabled(self) -> None:
        compressing, io = self.runner.is_running(), self.io_runner.is_running()
        idle = not (compressing or io)
        for w in (self.open_button, self.demo_button):
            w.setEnabled(idle)
        self.compress_button.setEnabled(idle and self.network is not None)
        self.quantizer_combo.setEnabled(not compressing)
        self.options_form.setEnabled(not compressing)
        has = self.result is not None and not io
        self.save_wbn_button.setEnabled(has)
        self.save_ckpt_button.setEnabled(has)
        self.check_button.setEnabled(has and self.wbn_path is not None)

    def _show_histogram(self, name: str) -> None:
        if self.network is None or name not in self.network.state:
            self.histogram.clear()
            return
        after = self.result.state.get(name) if self.result is not None else None
        self.histogram.show_histogram(name, tensor_histogram(self.network.state[name], after))

    # -- messages --------------------------------------------------------------------------------
    def _set_status(self, text: str) -> None:
        self.status_label.setText(text)
        self.status_message.emit(text)

    def _fail(self, title: str, text: str) -> None:
        text = text if text.endswith(".") else text + "."
        self._set_status(text)
        self._update_enabled()
        QMessageBox.warning(self, title, text)

    def shutdown(self) -> None:
        self.runner.shutdown()
        self.io_runner.shutdown()

    # -- drag and drop ---------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if any(u.isLocalFile() and is_network_path(u.toLocalFile()) for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()                      # images go on to the main window, which opens them in Compare

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        nets = [p for p in paths if is_network_path(p)]
        if nets:
            event.acceptProposedAction()
            self.open_path(nets[0])
