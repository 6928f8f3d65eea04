"""The main window: opening images, menus and shortcuts, settings, the demo, and the tabs.

The window owns *which* images are open (a single file, several files, or a folder to step through)
and hands the current one to the tabs; the tabs own what is done with it. Everything slow runs through
the background worker, so opening a 50-megapixel photo or switching codecs never freezes the window.
"""

from __future__ import annotations

import gc
import importlib
import json
from functools import partial
from pathlib import Path
from typing import Iterable

from PySide6.QtCore import QByteArray, QSettings, Qt
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QComboBox, QDialog, QDialogButtonBox, QFileDialog, QHBoxLayout, QLabel, QMainWindow, QMessageBox,
    QProgressBar, QStyle, QTabWidget, QTextBrowser, QToolButton, QVBoxLayout, QWidget,
)

from workbench import __version__
from workbench.core.codecs import codec_class
from workbench.core.errors import WorkbenchError
from workbench.core.images import IMAGE_SUFFIXES, LoadedImage, list_images, load_image
from workbench.core.network.paths import is_network_path
from workbench.core.summary import GLOSSARY, format_size
from workbench.ui.codec_panel import Selection
from workbench.ui.compare_view import CompareView, is_model_drop
from workbench.ui.encode_worker import Worker
from workbench.ui.export import ExportDialog, planned_paths, write_exports
from workbench.ui.split_view import SplitView

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
DEMO_IMAGE = RESOURCES / "samples" / "endeavour.png"
ICONS = (RESOURCES / "icons" / "workbench.svg", RESOURCES / "icons" / "workbench-256.png")
#: Codecs the demo pits against JPEG, best first; the first one available here is used.
DEMO_CONTENDERS = ("bpg", "hevc", "avif", "jxl", "webp", "jpeg2000")
DEMO_ANCHOR, DEMO_ANCHOR_QUALITY = "jpeg", 50
MAX_RECENT = 10
#: Slow imports that the first encode and the RD and Live tabs need. They are imported in the background once
#: the window is up, so the window appears about two seconds sooner. matplotlib draws the RD report's plot at
#: the end of a sweep: imported there, in the sweep's thread, it held the interpreter lock for 0.4-0.55 s.
#: torch and the modules built on it come first: the Network tab, built once these are in, needs them, and
#: imported there, in the window's thread, torch froze the window for its whole import (over a second); in
#: this thread it holds the lock only while its libraries load, and no learned encode or network job
#: started later imports it in the middle of its work. The Network tab's demo reads its digits with
#: scikit-learn: imported by the demo's first run in its job thread (361 modules, 0.8 s of CPU), the import
#: held the lock in turn and set off a full garbage collection there of 0.12 s (0.7-0.9 s before the
#: loader froze what it imported), both freezing the window (benchmarks/gui_thread_work.py --job network).
PRELOAD = ("torch", "workbench.core.network.compress", "workbench.core.network.verify", "workbench.core.learned.coding",
           "workbench.core.compress", "workbench.core.bench", "scipy.signal", "matplotlib.backends.backend_agg",
           "matplotlib.figure", "sklearn.datasets")
APP_NAME = "Compression Workbench"


def app_icon() -> QIcon:
    """The SVG for sharp scaling, the PNG for Qt builds without the SVG plugin."""
    icon = QIcon()
    for path in ICONS:
        if path.is_file():
            icon.addFile(str(path))
    return icon


class MainWindow(QMainWindow):
    """`settings` is injectable so tests and benchmarks never touch the user's own QSettings."""

    def __init__(self, settings: QSettings | None = None):
        super().__init__()
        self.settings = settings if settings is not None else QSettings()
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.resize(1400, 860)
        self.images: list[Path] = []
        self.index = -1
        self.worker = Worker(self)
        self.compare = CompareView(self.worker)
        self.compare.status_message.connect(lambda text: self.show_status(text, 20_000))
        self.compare.live_requested.connect(self.show_live)
        self.compare.not_a_model.connect(self.open_checkpoint)        # another network: compress its weights
        self.compare.model_failed.connect(lambda text: self.show_error("Cannot use this model", f"{text}."))
        self.compare.model_opened.connect(lambda value: self.rd_view is not None and self.rd_view.add_model(value))
        self.rd_view = None
        self.live = None
        self.network = None
        self.train = None
        self._tabs_requested = False

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.compare, "Compare")
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(6, 4, 6, 0)
        lay.addWidget(self._build_image_bar())
        lay.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_status_bar()
        self.compare.set_welcome_actions([self.act_open, self.act_open_folder, self.act_demo])
        self.compare.view.zoom_changed.connect(lambda s: self.zoom_label.setText(f"Zoom {s * 100:.0f} %"))
        self._restore_settings()

    # ----- construction
    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._tabs_requested:
            self._tabs_requested = True
            self.show_status("Loading the compression libraries…")
            self.worker.submit("preload", partial(preload, PRELOAD), on_done=lambda _: self._add_optional_tabs(),
                               on_error=lambda _: self._add_optional_tabs())

    def _add_optional_tabs(self) -> None:
        """RD curves and Live plots need torch/scipy/pyqtgraph, so they are added after the first paint."""
        from workbench.ui.live_curves import LiveCurves
        from workbench.ui.rd_view import RDView

        if self.statusBar().currentMessage() == "Loading the compression libraries…":
            self.statusBar().clearMessage()
        self.rd_view = RDView()
        self.tabs.addTab(self.rd_view, "RD curves")
        if self.images:
            self.rd_view.set_images([str(f) for f in self.images])
        if self.compare.image is not None:
            self.rd_view.set_current(self.compare.image.source)
        self.live = LiveCurves()
        self.live.follow(self.rd_view.runner)   # the Live tab follows whatever sweep or optimization runs
        for side in self.compare.sides():
            self.live.follow(side.runner)
        self.tabs.addTab(self.live, "Live")
        self.network_view()
        from workbench.ui.train_view import TrainView

        self.train = TrainView(self.settings)
        self.train.status_message.connect(lambda text: self.show_status(text, 20_000))
        self.train.model_ready.connect(self._model_trained)
        self.tabs.addTab(self.train, "Train")

    def _model_trained(self, value: str) -> None:
        """A model made in the Train tab joins both sides' model lists and the RD tab's codecs at once."""
        for side in self.compare.sides():
            side.panel.offer_model(value)
        if self.rd_view is not None:
            self.rd_view.add_model(value)

    def show_live(self) -> None:
        if self.live is not None:                # the tab arrives with the compression libraries
            self.tabs.setCurrentWidget(self.live)

    def network_view(self):
        """The Network tab, created on first use: it needs torch, which the window does not load up front."""
        if self.network is None:
            from workbench.ui.network_view import NetworkView

            self.network = NetworkView()
            self.network.status_message.connect(lambda text: self.show_status(text, 20_000))
            self.tabs.addTab(self.network, "Network")
        return self.network

    def open_checkpoint(self, path: str | Path | None = None) -> bool:
        """Show the Network tab and open `path` there (a file dialog without one)."""
        view = self.network_view()
        self.tabs.setCurrentWidget(view)
        if path is None:
            view.open_dialog()
            return True
        return view.open_path(path)

    def run_network_demo(self) -> bool:
        view = self.network_view()
        self.tabs.setCurrentWidget(view)
        return view.run_demo()

    def _build_image_bar(self) -> QWidget:
        bar = QWidget()
        h = QHBoxLayout(bar)
        h.setContentsMargins(0, 0, 0, 0)
        self.prev_button = QToolButton()
        self.prev_button.setArrowType(Qt.ArrowType.LeftArrow)
        self.prev_button.setToolTip("Previous image (Page Up)")
        self.prev_button.clicked.connect(lambda: self.step_image(-1))
        self.next_button = QToolButton()
        self.next_button.setArrowType(Qt.ArrowType.RightArrow)
        self.next_button.setToolTip("Next image (Page Down)")
        self.next_button.clicked.connect(lambda: self.step_image(1))
        self.image_combo = QComboBox()
        self.image_combo.setMinimumContentsLength(24)
        self.image_combo.setToolTip("The images opened together; pick one to compare it.")
        self.image_combo.activated.connect(self.load_index)
        self.image_info = QLabel()
        self.image_info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        for w in (self.prev_button, self.image_combo, self.next_button):
            h.addWidget(w)
        h.addWidget(self.image_info, 1)
        self.image_bar = bar
        bar.setVisible(False)
        return bar

    def _action(self, text: str, slot, shortcut=None, tip: str = "", icon: QStyle.StandardPixmap | None = None,
                checkable: bool = False) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            keys = shortcut if isinstance(shortcut, list) else [shortcut]
            act.setShortcuts([QKeySequence(k) for k in keys])
        if tip:
            act.setStatusTip(tip)
            act.setToolTip(tip)
        if icon is not None:
            act.setIcon(self.style().standardIcon(icon))
        act.setCheckable(checkable)
        (act.toggled if checkable else act.triggered).connect(slot)   # toggled also follows setChecked()
        self.addAction(act)
        return act

    def _build_actions(self) -> None:
        SP = QStyle.StandardPixmap
        view = self.compare.view
        self.act_open = self._action("&Open Images…", self.open_dialog, QKeySequence.StandardKey.Open,
                                     "Open one or more images", SP.SP_DialogOpenButton)
        self.act_open_folder = self._action("Open &Folder…", self.open_folder_dialog, "Ctrl+Shift+O",
                                            "Open every image in a folder and step through them", SP.SP_DirOpenIcon)
        self.act_export = self._action("&Export…", self.export_dialog, QKeySequence.StandardKey.Save,
                                       "Save the compressed file, the decoded PNG and the metrics",
                                       SP.SP_DialogSaveButton)
        self.act_copy_cli = self._action("Copy &CLI Command", lambda: self.compare.copy_command("right"),
                                         "Ctrl+Shift+C", "Copy the command line that reproduces the right side's file")
        self.act_quit = self._action("&Quit", self.close, "Ctrl+Q", "Quit the workbench")
        self.act_prev = self._action("&Previous Image", lambda: self.step_image(-1), "PgUp")
        self.act_next = self._action("&Next Image", lambda: self.step_image(1), "PgDown")
        self.act_fit = self._action("&Fit to Window", view.fit, "Ctrl+0", "Show the whole image")
        self.act_actual = self._action("&Actual Size (100 %)", view.actual_size, "Ctrl+1",
                                       "One image pixel per screen pixel")
        self.act_zoom_200 = self._action("Zoom 200 %", partial(view.zoom_to, 2.0), "Ctrl+2",
                                         "Two screen pixels per image pixel: block edges and ringing show")
        self.act_zoom_400 = self._action("Zoom 400 %", partial(view.zoom_to, 4.0), "Ctrl+4",
                                         "Four screen pixels per image pixel")
        self.act_swap = self._action("&Swap Sides", self.compare.swap_sides, "Ctrl+Shift+X",
                                     "Exchange the left and right sides' settings and results")
        self.act_zoom_in = self._action("Zoom &In", view.zoom_in, ["+", "=", QKeySequence.StandardKey.ZoomIn],
                                        "Zoom in (also the mouse wheel)")
        self.act_zoom_out = self._action("Zoom &Out", view.zoom_out, ["-", QKeySequence.StandardKey.ZoomOut],
                                         "Zoom out (also the mouse wheel)")
        self.act_heat = self._action("&Difference Heat Map", view.set_heat_map, "Ctrl+D", GLOSSARY["heat_map"],
                                     checkable=True)
        self.act_demo = self._action("Run the &Demo", self.run_demo, None,
                                     "Compare JPEG with a modern codec at the same file size on a sample photo",
                                     SP.SP_MediaPlay)
        self.act_open_net = self._action("Open &Checkpoint…", lambda: self.open_checkpoint(), "Ctrl+Shift+N",
                                         "Open a network checkpoint (.pt, .pth, .safetensors or a Hugging Face "
                                         "folder) or a compressed .wbn network in the Network tab",
                                         SP.SP_FileDialogStart)
        self.act_demo_net = self._action("Demo &Network", self.run_network_demo, None,
                                         "Compress the bundled digits network and see what it costs in accuracy",
                                         SP.SP_MediaSeekForward)
        self.act_help = self._action("Workbench &Help", self.show_help, QKeySequence.StandardKey.HelpContents,
                                     "What the numbers mean and how to use the workbench", SP.SP_DialogHelpButton)
        self.act_about = self._action("&About", self.show_about)
        for act in self._image_actions():
            act.setEnabled(False)

    def _image_actions(self) -> list[QAction]:
        """Actions that need an open image; disabled until there is one."""
        return [self.act_fit, self.act_actual, self.act_zoom_200, self.act_zoom_400, self.act_zoom_in,
                self.act_zoom_out, self.act_heat, self.act_export, self.act_copy_cli, self.act_swap]

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addActions([self.act_open, self.act_open_folder, self.act_open_net])
        self.recent_menu = m.addMenu("Open &Recent")
        m.addSeparator()
        m.addActions([self.act_export, self.act_copy_cli])
        m.addSeparator()
        m.addAction(self.act_quit)
        m = mb.addMenu("&View")
        m.addActions([self.act_fit, self.act_actual, self.act_zoom_200, self.act_zoom_400, self.act_zoom_in,
                      self.act_zoom_out])
        m.addSeparator()
        m.addActions([self.act_heat, self.act_swap])
        m.addSeparator()
        m.addActions([self.act_prev, self.act_next])
        m = mb.addMenu("&Help")
        m.addActions([self.act_help, self.act_demo, self.act_demo_net])
        m.addSeparator()
        m.addAction(self.act_about)

    def _build_toolbar(self) -> None:
        tb = self.addToolBar("Main")
        tb.setObjectName("main-toolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tb.addActions([self.act_open, self.act_open_folder, self.act_demo, self.act_demo_net])
        tb.addSeparator()
        for act, text in ((self.act_fit, "Fit"), (self.act_actual, "1:1"), (self.act_zoom_200, "200 %"),
                          (self.act_zoom_400, "400 %"), (self.act_swap, "Swap"), (self.act_zoom_in, "Zoom +"),
                          (self.act_zoom_out, "Zoom −"), (self.act_heat, "Heat map"), (self.act_help, "Help")):
            act.setIconText(text)                  # short toolbar labels; menus keep the full text
        tb.addActions([self.act_fit, self.act_actual, self.act_zoom_200, self.act_zoom_400, self.act_heat,
                       self.act_swap])
        tb.addSeparator()
        tb.addActions([self.act_export, self.act_help])

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(120)
        self.busy.setTextVisible(False)
        self.busy.setToolTip("Working in the background (loading, encoding or measuring); the window stays usable.")
        self.busy.setVisible(False)
        self.zoom_label = QLabel()
        sb.addPermanentWidget(self.busy)
        sb.addPermanentWidget(self.zoom_label)
        self.worker.busy_changed.connect(self._show_busy)
        self.compare.busy_changed.connect(self._show_busy)

    def _show_busy(self, _busy: bool) -> None:
        self.busy.setVisible(self.worker.busy or self.compare.busy())

    # ----- settings
    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        try:
            state = json.loads(str(self.settings.value("compare/state", "") or "{}"))
        except ValueError:
            state = {}
        if not state:
            state = {"left": {"codec": ""}, "right": {"codec": "jpeg"}}
        self.compare.restore_state(state)
        self.act_heat.setChecked(self.compare.view.heat_map)
        self._rebuild_recent_menu()

    def save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("compare/state", json.dumps(self.compare.state()))
        self.settings.sync()

    def recent(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):                       # QSettings stores a one-item list as a string
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, paths: Iterable[Path]) -> None:
        items = self.recent()
        for p in paths:
            s = str(Path(p).resolve())
            if s in items:
                items.remove(s)
            items.insert(0, s)
        self.settings.setValue("recent", items[:MAX_RECENT])
        self._rebuild_recent_menu()

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        items = self.recent()
        for i, path in enumerate(items, 1):
            label = f"&{i % 10}  {Path(path).name or path}" + ("  (folder)" if Path(path).is_dir() else "")
            act = self.recent_menu.addAction(label)
            act.setToolTip(path)
            act.triggered.connect(partial(self.open_paths, [path]))
        if items:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear the List", self._clear_recent)
        self.recent_menu.setEnabled(bool(items))

    def _forget_recent(self, path: Path) -> None:
        items = self.recent()
        if str(path) in items:
            items.remove(str(path))
            self.settings.setValue("recent", items)
            self._rebuild_recent_menu()

    def _clear_recent(self) -> None:
        self.settings.setValue("recent", [])
        self._rebuild_recent_menu()

    # ----- opening
    def open_dialog(self) -> None:
        pattern = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        paths, _ = QFileDialog.getOpenFileNames(self, "Open images", self._dialog_folder(),
                                                f"Images ({pattern});;All files (*)")
        if paths:
            self.open_paths(paths)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of images", self._dialog_folder())
        if folder:
            self.open_paths([folder])

    def _dialog_folder(self) -> str:
        items = self.recent()
        if items:
            p = Path(items[0])
            return str(p if p.is_dir() else p.parent)
        return str(Path.home())

    def open_paths(self, paths: Iterable[str | Path]) -> bool:
        """Open files and folders (a folder adds its images); False when nothing could be opened.

        Problems are collected and reported in one message, so dropping twenty files of which three are
        broken does not mean clicking away three dialogs.
        """
        paths = [Path(p) for p in paths]
        nets = [p for p in paths if p.exists() and is_network_path(p)]
        if nets:                                  # networks go to the Network tab, images stay in Compare
            opened = self.open_checkpoint(nets[0])
            paths = [p for p in paths if p not in nets]
            if not paths:
                return opened
        files: list[Path] = []
        named: list[Path] = []
        problems: list[str] = []
        for raw in paths:
            p = Path(raw)
            if p.is_dir():
                try:
                    files.extend(list_images(p))
                except WorkbenchError as err:
                    problems.append(str(err))
                    continue
                named.append(p)
            elif p.exists():
                files.append(p)
                named.append(p)
            else:
                self._forget_recent(p)
                problems.append(f"{p} does not exist")
        if problems:
            self.show_error("Cannot open everything", "; ".join(problems) + ".")
        if not files:
            return False
        self._add_recent(named)
        self.images = files
        self.image_combo.clear()
        self.image_combo.addItems([f.name for f in files])
        for w in (self.prev_button, self.next_button, self.image_combo):
            w.setVisible(len(files) > 1)
        if self.rd_view is not None:
            self.rd_view.set_images([str(f) for f in files])
        self.load_index(0)
        return True

    def step_image(self, delta: int) -> None:
        if len(self.images) > 1:
            self.load_index((self.index + delta) % len(self.images))

    def load_index(self, index: int) -> None:
        self.index = index
        self.image_combo.setCurrentIndex(index)
        path = self.images[index]
        self.show_status(f"Opening {path.name}…")
        self.worker.submit("load", partial(load_image, path), on_done=self._image_loaded,
                           on_error=lambda msg: self.show_error("Cannot open the image", f"{msg}."))

    def _image_loaded(self, image: LoadedImage) -> None:
        self.compare.set_image(image)
        self._show_image(image)

    def _show_image(self, image: LoadedImage) -> None:
        name = Path(image.source).name
        self.setWindowTitle(f"{name} — {APP_NAME}")
        position = f"{self.index + 1} of {len(self.images)} · " if len(self.images) > 1 else ""
        self.image_info.setText(f"{position}{name} · {image.width}×{image.height} · {image.format} · "
                                f"{format_size(image.file_size)}")
        self.image_bar.setVisible(True)
        if self.rd_view is not None:
            self.rd_view.set_current(image.source)
        for act in self._image_actions():
            act.setEnabled(True)
        self.tabs.setCurrentWidget(self.compare)
        if image.notes:
            self.show_status(f"Note: {'; '.join(image.notes)}.")
        else:
            self.show_status(f"Opened {name}.", 4000)

    # ----- drag and drop
    def dragEnterEvent(self, event) -> None:
        if any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            if self.tabs.currentWidget() is self.compare:
                models = [p for p in paths if is_model_drop(p)]
                if models:                      # a CompressAI model becomes the side it was dropped on
                    x = self.compare.mapFrom(self, event.position().toPoint()).x()
                    self.compare.open_model("left" if x < self.compare.width() / 2 else "right", models[0])
                    paths = [p for p in paths if p not in models]
            if paths:
                self.open_paths(paths)

    # ----- demo
    def run_demo(self) -> None:
        """JPEG at quality 50 against the best codec here, searched to produce a file of the same size."""
        if not DEMO_IMAGE.is_file():
            self.show_error("The demo cannot start",
                            f"The sample image {DEMO_IMAGE} is missing from this installation.")
            return
        available = self.compare.right.panel.available_codecs()
        contender = next((c for c in DEMO_CONTENDERS if c in available), None)
        if DEMO_ANCHOR not in available or contender is None:
            self.show_error("The demo cannot start", "The demo needs JPEG and one more codec, but this computer "
                            "lacks them (see the greyed-out codecs for the reasons).")
            return
        anchor = Selection(DEMO_ANCHOR, codec_class(DEMO_ANCHOR).options(quality=DEMO_ANCHOR_QUALITY))
        rival = Selection(contender, codec_class(contender).options())
        self.images, self.index = [DEMO_IMAGE], 0
        for w in (self.prev_button, self.next_button, self.image_combo):
            w.setVisible(False)
        if self.rd_view is not None:
            self.rd_view.set_images([str(DEMO_IMAGE)])
        self.show_status("Demo: loading the sample photo…")
        self.worker.submit("load", partial(load_image, DEMO_IMAGE),
                           on_done=lambda image: self._demo_loaded(image, anchor, rival),
                           on_error=lambda msg: self.show_error("The demo cannot start", f"{msg}."))

    def _demo_loaded(self, image: LoadedImage, anchor: Selection, rival: Selection) -> None:
        self.compare.show_matched(image, anchor, rival)
        self._show_image(image)
        self.show_status(f"Demo: finding the {codec_class(rival.codec).label} setting whose file is as large as "
                         f"JPEG's at quality {DEMO_ANCHOR_QUALITY}…")

    # ----- export
    def export_dialog(self) -> None:
        image = self.compare.image
        sides = {}
        for side in self.compare.sides():
            if side.result is not None and side.selection.codec is not None:
                sides[side.name] = (self.compare.view.caption(side.index), side.selection.codec, side.selection.options)
        if image is None or not sides:
            self.show_status("Nothing to export yet: open an image and choose a codec on one side.")
            return
        folder = str(self.settings.value("export/folder", "") or Path(image.source).parent)
        dialog = ExportDialog(sides, image.source, folder, self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        side_name, path, what = dialog.choice()
        existing = [p for p in planned_paths(path, what).values() if p.exists()]
        if existing and QMessageBox.question(
                self, "Replace files?", f"{', '.join(p.name for p in existing)} already exist"
                f"{'s' if len(existing) == 1 else ''} in {path.parent}. Replace?") != QMessageBox.StandardButton.Yes:
            return
        self.export_side(side_name, path, what)

    def export_side(self, side_name: str, path: Path, what: set[str]) -> list[Path]:
        side = self.compare.side(side_name)
        try:
            written = write_exports(self.compare.image, side.selection.codec, side.selection.options, side.result,
                                    path, what)
        except WorkbenchError as err:
            self.show_error("Export failed", f"{err}.")
            return []
        self.settings.setValue("export/folder", str(path.parent))
        self.show_status(f"Exported {', '.join(p.name for p in written)} to {path.parent}.")
        return written

    # ----- messages, help
    def show_status(self, text: str, timeout_ms: int = 0) -> None:
        self.statusBar().showMessage(text, timeout_ms)

    def show_error(self, title: str, text: str) -> None:
        self.show_status(text)
        QMessageBox.warning(self, title, text)

    def show_help(self) -> None:
        HelpDialog(self).exec()

    def show_about(self) -> None:
        QMessageBox.about(self, f"About {APP_NAME}",
                          f"<b>{APP_NAME}</b> {__version__}<br>Compare learned and classical image codecs on your "
                          "own images: real file sizes, decoded quality and reproducible command lines.")

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_settings()
        self.worker.shutdown()
        self.compare.shutdown()
        if self.network is not None:
            self.network.shutdown()
        if self.train is not None:
            self.train.shutdown()          # a running training pauses and continues when the window reopens
        super().closeEvent(event)


def preload(names: Iterable[str]) -> None:
    """Import `names`, then freeze every object the process holds out of the cyclic garbage collector's
    reach (`gc.freeze`): the modules live as long as the process, and a full collection walked their
    325 000 objects for 184 ms of CPU, holding the interpreter lock in whichever thread had allocated:
    one in an RD sweep's thread held the window for 0.85 s on a busy machine (benchmarks/gui_thread_work.py).
    Once they are frozen, a full collection takes well under a millisecond."""
    for name in names:
        importlib.import_module(name)
    gc.freeze()


def shortcut_rows(actions: Iterable[QAction]) -> list[tuple[str, str]]:
    """The Help page's keyboard table, read off the actions themselves (so it cannot miss or misstate one),
    and the A/B key that the picture handles itself."""
    rows = [(" / ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in act.shortcuts()),
             act.text().replace("&", "").rstrip("…")) for act in actions if act.shortcuts()]
    ab_key = QKeySequence(SplitView.AB_KEY).toString(QKeySequence.SequenceFormat.NativeText)
    return rows + [(f"{ab_key} (hold)", "Show the other side across the whole picture")]


class HelpDialog(QDialog):
    """How to use the window, what each number means, and the shortcuts, in one page."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"{APP_NAME} help")
        browser = self.browser = QTextBrowser()
        browser.setOpenExternalLinks(True)
        g = GLOSSARY
        terms = [("Size", g["size"]), ("bpp (bits per pixel)", g["bpp"]), ("Saved", g["saved"]), ("PSNR", g["psnr"]),
                 ("MS-SSIM", g["ms_ssim"]), ("Visibly better, slightly worse, about the same", g["verdict"]),
                 ("BD-rate", g["bd_rate"]), ("Encode / decode time",
                 f"{g['encode']} {g['decode']}"), ("Difference heat map", g["heat_map"])]
        keys = shortcut_rows(parent.actions() if parent is not None else [])
        html = ["<h2>Comparing codecs</h2>",
                "<p>Open an image (or drop it, or a folder of images, onto the window). Each side of the compare view "
                "shows the original or the image after compression with the codec chosen in that side's panel. "
                "Drag the divider to move the split, drag the image to pan, and use the wheel to zoom; both sides "
                "always stay aligned. Moving a slider re-encodes when you let go of it.</p>",
                "<p>The sentence under the image sums up the comparison. When the two sides use different codecs, "
                "the workbench also encodes the image at several settings of the left codec, so it can say how much "
                "smaller the right file is <i>at the same quality</i>.</p>",
                "<p><b>Demo</b> (toolbar or Help menu) compares JPEG at quality 50 with the best other codec here, "
                "set to produce a file of the same size, on a sample photo.</p>",
                "<h2>Compressing a network</h2>",
                "<p>Drag a checkpoint (.pt, .pth, .safetensors, or a Hugging Face folder with model.safetensors) onto "
                "the window, or use File ▸ Open Checkpoint; it opens in the <b>Network</b> tab. Files that would run "
                "code when loaded are refused. Choose a quantizer and its settings on the left and click "
                "<b>Compress</b>: the table shows what each tensor costs, and clicking a row shows its weights "
                "before and after as a histogram. A CompressAI image model (.pth.tar, .pth, .pt, or a folder of the "
                "zoo's checkpoints, one per quality) dropped on one half of the <b>Compare</b> tab becomes that "
                "side's learned codec instead, and a ticked entry of the RD curves tab.</p>",
                "<p><b>Demo Network</b> (toolbar or Help menu) compresses the bundled digits network and reports its "
                "accuracy before and after. <b>Save compressed .wbn</b> writes the compressed file and then decodes "
                "it back from disk to check that every tensor comes back as expected; <b>Save decoded "
                "checkpoint</b> writes the decoded weights as an ordinary checkpoint.</p>",
                "<h2>Training a codec</h2>",
                "<p>The <b>Train</b> tab trains a learned codec on a folder of images (drop one on the tab) while you "
                "watch its curves and a held-out crop decoded as the coder would send it. <b>Pause</b> stops after a "
                "checkpoint and <b>Resume</b> continues; closing the window pauses a running training and it "
                "continues when the window opens again. <b>Copy CLI command</b> gives the same training as a "
                "<code>workbench train</code> line; <b>Use this model</b> adds the result to the Compare tab's model "
                "list. <b>Watch a codec learn</b> trains a small codec from scratch on the sample photograph.</p>",
                "<h2>What the numbers mean</h2><dl>"]
        html += [f"<dt><b>{title}</b></dt><dd>{text}</dd>" for title, text in terms]
        html += ["</dl><h2>Keyboard</h2><table>"]
        html += [f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{v}</td></tr>" for k, v in keys]
        html += ["</table>"]
        browser.setHtml("".join(html))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(browser)
        lay.addWidget(buttons)
        self.resize(640, 640)
