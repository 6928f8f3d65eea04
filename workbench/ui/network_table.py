"""The layer table: one row per tensor, sortable, so the few layers that cost most stand out.

Sorting is done by the model on the raw numbers (not on the displayed text, where "9.5" would sort
after "10.2"), and the view keeps the selected tensor selected across sorts and new results, because
the histogram beside the table follows the selection.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from PySide6.QtCore import QAbstractTableModel, QItemSelectionModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from workbench.core.network.report import LayerRow


def _snr_text(r: LayerRow) -> str:
    if r.snr_db is None:
        return "–"
    return "exact" if math.isinf(r.snr_db) and r.snr_db > 0 else f"{r.snr_db:.1f}"


def _snr_key(r: LayerRow) -> float:
    return -math.inf if r.snr_db is None else r.snr_db


# title, tooltip, display text, sort key, right-aligned
_COLUMNS: tuple[tuple[str, str, Callable[[LayerRow], str], Callable[[LayerRow], Any], bool], ...] = (
    ("Tensor", "The tensor's name in the checkpoint.", lambda r: r.name, lambda r: r.name, False),
    ("Shape", "Its dimensions (output channels first); sorted by number of parameters.",
     lambda r: "×".join(map(str, r.shape)) or "scalar", lambda r: (r.parameters, r.shape), False),
    ("Type", "Its data type in the checkpoint; decoding restores the same type.", lambda r: r.dtype,
     lambda r: r.dtype, False),
    ("Params", "Number of values (parameters) in the tensor.", lambda r: f"{r.parameters:,}", lambda r: r.parameters, True),
    ("Bits/param", "Bits per parameter: in the checkpoint before compression (32 for float32), in the .wbn "
     "file after.", lambda r: f"{r.bits_per_parameter:.3g}" if r.bits_per_parameter < 100
     else f"{r.bits_per_parameter:.0f}", lambda r: r.bits_per_parameter, True),
    ("Share", "This tensor's share of the rate: its part of all tensor data (the file's headers are not counted), so the "
     "column adds up to 100 %.", lambda r: f"{r.share * 100:.1f} %", lambda r: r.share, True),
    ("Coded as", "How the tensor was coded: scalar, tcq (trellis) or codebook levels with the CABAC or "
     "categorical entropy coder, or raw bytes (integer tensors).", lambda r: r.coding or "–",
     lambda r: r.coding, False),
    ("SNR dB", "How close the decoded tensor is to the original: signal-to-noise ratio in dB, higher is "
     "closer; 'exact' when the values are restored bit for bit.", _snr_text, _snr_key, True),
)


class LayerTableModel(QAbstractTableModel):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._rows: list[LayerRow] = []
        self._sort: tuple[int, Qt.SortOrder] | None = None

    def set_rows(self, rows: Sequence[LayerRow]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        if self._sort is not None:
            self._apply_sort(*self._sort)
        self.endResetModel()

    def rows(self) -> list[LayerRow]:
        return list(self._rows)

    def row_at(self, row: int) -> LayerRow:
        return self._rows[row]

    def row_of(self, name: str) -> int:
        return next((i for i, r in enumerate(self._rows) if r.name == name), -1)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(_COLUMNS)

    def data(self, index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        r = self._rows[index.row()]
        title, tip, text, key, right = _COLUMNS[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return text(r)
        if role == Qt.ItemDataRole.TextAlignmentRole and right:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == 0:
            return r.name
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(_COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return _COLUMNS[section][0]
        if role == Qt.ItemDataRole.ToolTipRole:
            return _COLUMNS[section][1]
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(_COLUMNS):
            return
        self.layoutAboutToBeChanged.emit()
        old = list(self._rows)
        self._sort = (column, order)
        self._apply_sort(column, order)
        # Keep persistent indexes (the selection) on the same tensors.
        moved = {r.name: i for i, r in enumerate(self._rows)}
        for idx in self.persistentIndexList():
            if idx.isValid():
                new_row = moved[old[idx.row()].name]
                self.changePersistentIndex(idx, self.index(new_row, idx.column()))
        self.layoutChanged.emit()

    def _apply_sort(self, column: int, order: Qt.SortOrder) -> None:
        key = _COLUMNS[column][3]
        self._rows.sort(key=key, reverse=order == Qt.SortOrder.DescendingOrder)


class LayerTable(QTableView):
    """The table view; `tensor_selected` names the tensor whose histogram should be shown."""

    tensor_selected = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.layer_model = LayerTableModel(self)
        self.setModel(self.layer_model)
        self.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)   # file order until a click
        self.horizontalHeader().setSortIndicatorShown(True)
        self.setSortingEnabled(True)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)   # names are never cut short
        header.setStretchLastSection(True)
        header.setMinimumSectionSize(48)
        self.selectionModel().currentRowChanged.connect(self._row_changed)

    def set_rows(self, rows: Sequence[LayerRow]) -> None:
        """Show new rows, keeping the same tensor selected (or the largest one the first time)."""
        keep = self.selected_name()
        self.layer_model.set_rows(rows)
        if not rows:
            return
        name = keep if keep is not None and self.layer_model.row_of(keep) >= 0 else max(
            rows, key=lambda r: r.parameters).name
        self.select(name)

    def select(self, name: str) -> None:
        row = self.layer_model.row_of(name)
        if row < 0:
            return
        index = self.layer_model.index(row, 0)
        unchanged = self.selectionModel().currentIndex().row() == row
        self.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                                              | QItemSelectionModel.SelectionFlag.Rows)
        self.scrollTo(index)
        if unchanged:                        # no currentRowChanged, but the rows behind it are new
            self.tensor_selected.emit(name)

    def selected_name(self) -> str | None:
        index = self.selectionModel().currentIndex()
        return self.layer_model.row_at(index.row()).name if index.isValid() else None

    def _row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.tensor_selected.emit(self.layer_model.row_at(current.row()).name)
