"""Where a sweep keeps each point the moment it is measured, so that a stopped run loses nothing and
the same command, run again, measures only what is missing.

The points live in `points.jsonl` in the run's output folder: one JSON object per line, appended
and flushed to disk before the next point starts (appending keeps a long run's writes small; a
line cut short by a kill is ignored when the file is read back). Each line carries the key it was
measured under: the image's content hash, the codec with every option resolved (defaults
included, and the model file's hash for a learned codec) and the version of the code it ran through. A point is reused
only when all of these match, so editing a codec or swapping an image re-measures it.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from workbench.core.errors import ImageError, OutputError, WorkbenchError

POINTS_FILE = "points.jsonl"
# Modules that cannot change a measured point: the sweep's own bookkeeping and reporting.
_NOT_MEASURING = {"bench.py", "bench_store.py", "bench_report.py", "bdtable.py", "bdrate.py"}
_LIBRARIES = ("pillow", "pillow-heif", "imagecodecs", "numpy", "torch", "constriction")


class PointStore:
    """The points of one output folder, keyed by `point_key`."""

    def __init__(self, out_dir: str | Path):
        self.path = Path(out_dir) / POINTS_FILE
        self._torn = False

    def load(self) -> dict[str, dict]:
        """key -> the point's row, from every complete line (a later line wins)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise WorkbenchError(f"{self.path}: cannot read the points of the earlier run ({exc})") from None
        self._torn = bool(text) and not text.endswith("\n")
        out = {}
        for line in text.splitlines():
            try:
                rec = json.loads(line)
                out[str(rec["key"])] = dict(rec["point"])
            except (ValueError, KeyError, TypeError):
                continue        # the line a kill cut short
        return out

    def append(self, key: str, point: dict, settings: dict) -> None:
        """Add one measured point and make sure it is on disk before returning."""
        line = json.dumps({"key": key, "point": point, "settings": settings}, allow_nan=True) + "\n"
        if self._torn:          # finish the cut line, so the new one stays readable
            line = "\n" + line
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self._torn = False


def point_key(image_sha256: str, codec: str, options: dict, code: str) -> str:
    """What a point's measurement depends on, hashed; `options` must be fully resolved."""
    text = json.dumps([image_sha256, codec, options, code], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def file_sha256(path: str | Path) -> str:
    """The hash of an image file's bytes (errors worded as when the image itself is opened)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path} is a folder, not an image") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return h.hexdigest()


@lru_cache(maxsize=8)
def code_version(codec_module: str = "") -> str:
    """The workbench version, a hash of the sources a codec's points are measured through, and the
    versions of the codec libraries: an edit to any of them makes earlier points stale.

    The sources are the core's own modules (less the sweep's bookkeeping) and the codec adapters;
    the learned codec's (`codec_module` = `workbench.core.codecs.learned`) add the learned package,
    which classical points never run through, so work on the learned codec leaves them valid.
    """
    from workbench import __version__

    core = Path(__file__).resolve().parent
    files = [p for p in core.glob("*.py") if p.name not in _NOT_MEASURING] + list(core.glob("codecs/*.py"))
    if codec_module == "workbench.core.codecs.learned":
        files += list(core.glob("learned/**/*.py"))
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(str(path.relative_to(core)).encode() + b"\0" + path.read_bytes() + b"\0")
    for lib in _LIBRARIES:
        try:
            h.update(f"{lib}={metadata.version(lib)}\0".encode())
        except metadata.PackageNotFoundError:
            pass
    return f"{__version__}+{h.hexdigest()[:12]}"
