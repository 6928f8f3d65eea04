"""Exporting a result: the codec's real file, the decoded PNG, the metrics, and the CLI command.

The compressed file is written byte for byte as measured (its length *is* the size shown), so another
program, or `workbench decompress`, reads exactly what was compared. The CLI command reproduces the same
file from the same input, which is what makes a screenshot of the GUI reproducible in a paper.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLineEdit,
    QPushButton, QVBoxLayout, QWidget,
)

from workbench.core.atomic import write_bytes_atomic
from workbench.core.codecs import codec_class
from workbench.core.images import LoadedImage, encode_png
from workbench.core.options import specs

if TYPE_CHECKING:
    from workbench.core.compress import CompressResult

WHAT = ("bitstream", "png", "json")


def default_name(source: str, codec: str, quality: Any) -> str:
    """"photo-jpeg-q50.jpg": says what made the file and never collides with the input."""
    return f"{Path(source).stem}-{codec}-q{quality:g}{codec_class(codec).extension}"


def cli_command(source: str, codec: str, options: Any, output: str | Path | None = None) -> str:
    """The `workbench compress` line that writes the same file; options at their default are left out."""
    out = Path(output) if output is not None else Path(source).with_name(default_name(source, codec, options.quality))
    parts = ["workbench", "compress", shlex.quote(str(source)), "-c", codec, "-q", str(options.quality)]
    values = asdict(options)
    for spec in specs(codec_class(codec).Options):
        if spec.name == "quality" or values[spec.name] == spec.default:
            continue
        value = values[spec.name]
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        parts += [f"--{spec.name.replace('_', '-')}", shlex.quote(text)]
    parts += ["-o", shlex.quote(str(out))]
    return " ".join(parts)


def metrics_report(image: LoadedImage, codec: str, options: Any, result: CompressResult,
                   output: str | Path | None = None) -> dict[str, Any]:
    """The same fields as `workbench compress --json`, plus the input size and the command."""
    return {
        "input": image.source, "output": None if output is None else str(output), "codec": codec,
        "options": asdict(options), "width": image.width, "height": image.height, "bytes": result.size_bytes,
        "bpp": result.bpp, "estimated_bpp": result.estimated_bpp, "psnr": result.quality.psnr,
        "ms_ssim": result.quality.ms_ssim, "ms_ssim_db": result.quality.ms_ssim_db, "encode_s": result.encode_s, "decode_s": result.decode_s,
        "input_bytes": image.file_size, "saved_percent": 100.0 * (1 - result.size_bytes / image.file_size),
        "input_notes": list(image.notes), "command": cli_command(image.source, codec, options, output),
    }


def planned_paths(bitstream: Path, what: set[str]) -> dict[str, Path]:
    """Where each chosen export goes: the PNG and JSON share the compressed file's name."""
    paths = {"bitstream": bitstream, "png": bitstream.with_suffix(".png"), "json": bitstream.with_suffix(".json")}
    if bitstream.suffix.lower() == ".png":             # never let the decoded PNG replace the bitstream
        paths["png"] = bitstream.with_name(bitstream.stem + "-decoded.png")
    return {k: v for k, v in paths.items() if k in what}


def write_exports(image: LoadedImage, codec: str, options: Any, result: CompressResult, bitstream: Path,
                  what: set[str]) -> list[Path]:
    """Write the chosen files atomically, never over the input image; raises OutputError with the reason."""
    paths = planned_paths(bitstream, what)
    written = []
    for kind, path in paths.items():
        if kind == "bitstream":
            data = result.data
        elif kind == "png":
            data = encode_png(result.reconstruction)
        else:
            report = metrics_report(image, codec, options, result, bitstream if "bitstream" in what else None)
            data = (json.dumps(report, indent=1) + "\n").encode()
        written.append(write_bytes_atomic(path, data, protect=[image.source]))
    return written


class ExportDialog(QDialog):
    """Choose a side, what to export and where; `choice()` returns (side name, compressed file path, what)."""

    def __init__(self, sides: dict[str, tuple[str, str, Any]], source: str, folder: str,
                 parent: QWidget | None = None):
        """`sides` maps "left"/"right" to (description, codec, options) for the sides that have a result."""
        super().__init__(parent)
        self.setWindowTitle("Export")
        self._sides, self._source, self._folder = sides, source, folder
        self.side = QComboBox()
        for name, (text, _codec, _opts) in sides.items():
            self.side.addItem(f"{name.capitalize()} side: {text}", name)
        self.side.setCurrentIndex(self.side.count() - 1)        # the right side is usually the candidate
        self.checks = {
            "bitstream": QCheckBox("Compressed file, in the codec's own format"),
            "png": QCheckBox("Decoded image (PNG, exactly what the comparison showed)"),
            "json": QCheckBox("Metrics (JSON: size, bpp, PSNR, MS-SSIM, times, CLI command)"),
        }
        for box in self.checks.values():
            box.setChecked(True)
            box.toggled.connect(self._update_ok)
        self.path = QLineEdit()
        self.path.textChanged.connect(self._update_ok)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Export", self.side)
        form.addRow("File name", row)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        for box in self.checks.values():
            lay.addWidget(box)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        self.side.currentIndexChanged.connect(self._side_changed)
        self._side_changed()
        self.resize(620, self.sizeHint().height())

    def _codec(self) -> tuple[str, Any]:
        _text, codec, options = self._sides[self.side.currentData()]
        return codec, options

    def _side_changed(self) -> None:
        codec, options = self._codec()
        self.path.setText(str(Path(self._folder) / default_name(self._source, codec, options.quality)))
        self.checks["bitstream"].setText(f"Compressed file ({codec_class(codec).extension}, the codec's own format)")

    def _browse(self) -> None:
        codec, _ = self._codec()
        ext = codec_class(codec).extension
        path, _ = QFileDialog.getSaveFileName(self, "Export as", self.path.text(), f"{codec} files (*{ext})")
        if path:
            self.path.setText(path if Path(path).suffix else path + ext)

    def _update_ok(self) -> None:
        ok = bool(self.path.text().strip()) and any(b.isChecked() for b in self.checks.values())
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(ok)

    def choice(self) -> tuple[str, Path, set[str]]:
        return (self.side.currentData(), Path(self.path.text().strip()).expanduser(),
                {k for k, b in self.checks.items() if b.isChecked()})
