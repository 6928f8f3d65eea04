"""BD-rate tables that say what they compare: which curve each row is, where it came from, and over
which quality interval its number was averaged.

A BD-rate is an average over the qualities both curves reach, so two rows of one table are, by
default, averages over different intervals; that can flip a ranking (two curves each compared with
one anchor over their own overlap). Every row therefore carries its interval, `interval="common"`
averages every row over the one interval all curves share, and a row whose interval covers under
half of either curve gets a note.

Curves come from a run (`measured=True`) or from results files in CompressAI's JSON schema
(published anchors, earlier runs). A file's row is labelled by its file name, since CompressAI
writes the same `name` into the MSE and the MS-SSIM results of one architecture.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from workbench.core import bdrate
from workbench.core.errors import OptionError, WorkbenchError
from workbench.core.files import read_limited
from workbench.core.metrics import ms_ssim_db

#: (row key, name in messages, unit) of the qualities a table compares.
METRICS = (("psnr", "PSNR", "dB"), ("ms_ssim_db", "MS-SSIM", "dB"))
INTERVALS = ("pair", "common")
#: Below this share of a curve's quality range, a BD-rate says little about that curve.
MIN_COVERAGE = 0.5
MAX_RESULTS_BYTES = 64 << 20      # a results file holds a few curves: far larger is not one (or not a file)


@dataclass(frozen=True)
class ResultsCurve:
    """One rate-quality curve as a BD table reads it; a metric that was not measured is None."""
    name: str
    bpp: tuple[float, ...]
    psnr: tuple[float, ...] | None
    ms_ssim_db: tuple[float, ...] | None
    measured: bool = True       # False: read from a file, not measured in the run whose table this is
    source: str = ""            # the file it was read from


def load_results_json(path: str | Path, measured: bool = False) -> ResultsCurve:
    """A CompressAI-schema results file: `bpp` with `psnr-rgb` and/or MS-SSIM (`ms-ssim-rgb`, or
    already in dB as `ms-ssim-db-rgb` / `ms-ssim-rgb-db`, as published papers' files have it)."""
    try:
        doc = json.loads(read_limited(path, MAX_RESULTS_BYTES, WorkbenchError, what="a results file").decode("utf-8"))
        res = doc["results"]
        bpp = tuple(float(v) for v in res["bpp"])
        psnr = _column(res, "psnr-rgb")
        ms_db = _column(res, "ms-ssim-db-rgb") or _column(res, "ms-ssim-rgb-db")
        if ms_db is None:
            ms = _column(res, "ms-ssim-rgb")
            ms_db = None if ms is None else tuple(ms_ssim_db(v) for v in ms)
        if psnr is None and ms_db is None:
            raise ValueError("it has neither psnr-rgb nor ms-ssim-rgb")
        if any(len(c) != len(bpp) for c in (psnr, ms_db) if c is not None):
            raise ValueError("bpp and the quality columns differ in length")
        return ResultsCurve(results_label(path, doc), bpp, psnr, ms_db, measured, str(path))
    except OSError as exc:
        raise WorkbenchError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WorkbenchError(f"{path}: not a results file in CompressAI's schema ({exc})") from None


def results_label(path: str | Path, doc: dict) -> str:
    """The file's name, plus the metric the model was trained for when the file says so and its
    name does not (`paper-bmshj2018-factorized (MSE-trained)`)."""
    stem = Path(path).name.removesuffix(".json")
    meta = doc.get("meta") if isinstance(doc.get("meta"), dict) else {}
    said = f"{meta.get('opt_metric') or ''} {doc.get('description') or ''}".lower()
    found = re.search(r"ms-ssim|msssim|mse", said)
    if not found:
        return stem
    metric = "MS-SSIM" if found.group(0) in ("ms-ssim", "msssim") else "MSE"
    flat = stem.lower().replace("_", "-")
    mentioned = "ms-ssim" in flat or "msssim" in flat if metric == "MS-SSIM" else bool(
        re.search(r"(^|[^a-z])mse([^a-z]|$)", flat))
    return stem if mentioned else f"{stem} ({metric}-trained)"


def unique_labels(curves: Sequence[ResultsCurve], taken: Sequence[str] = ()) -> list[ResultsCurve]:
    """Curves whose labels repeat (two runs' jpeg.json) or name a curve of the run (`taken`, its
    codecs) renamed after their folder too."""
    counts: dict[str, int] = {name: 1 for name in taken}
    for c in curves:
        counts[c.name] = counts.get(c.name, 0) + 1
    out = []
    for c in curves:
        if counts[c.name] > 1 and c.source:
            c = ResultsCurve(f"{Path(c.source).parent.name}/{c.name}", c.bpp, c.psnr, c.ms_ssim_db,
                             c.measured, c.source)
        out.append(c)
    return out


def bd_rows(anchor: ResultsCurve, tests: Sequence[ResultsCurve], interval: str = "pair") -> list[dict]:
    """One row per test curve: BD-rate against `anchor` in each metric (percent, negative is better;
    NaN when there is nothing to compare), the quality interval it was averaged over, each test point's
    rate over the anchor's at the same quality (`bdrate.rate_ratios`), and notes.

    `interval="pair"` averages each row over its own overlap with the anchor; "common" over the one
    interval every curve of the table reaches, so the rows can be ranked against each other.
    """
    if interval not in INTERVALS:
        raise OptionError(f"interval {interval!r}: expected one of {', '.join(INTERVALS)}")
    rows = [{"codec": t.name, "anchor": anchor.name, "measured": t.measured, "source": t.source, "notes": []}
            for t in tests]
    for key, title, unit in METRICS:
        ra = _range(anchor, key)
        test_ranges = [_range(t, key) for t in tests]
        shared = bdrate.overlap(*(r for r in (ra, *test_ranges) if r is not None))
        for row, test, rt in zip(rows, tests, test_ranges):
            used = shared if interval == "common" else bdrate.overlap(ra, rt)
            value = float("nan")
            if used is not None and ra is not None and rt is not None:
                value = bdrate.bd_rate(anchor.bpp, getattr(anchor, key), test.bpp, getattr(test, key),
                                       interval=used if interval == "common" else None)
            row[key] = value
            row[f"{key}_interval"] = list(used) if math.isfinite(value) else None
            row[f"{key}_ratios"] = None
            if ra is None or rt is None:
                continue
            # each test point's rate over the anchor's at its quality: where along the range the mean comes from
            row[f"{key}_ratios"] = bdrate.rate_ratios(anchor.bpp, getattr(anchor, key), test.bpp, getattr(test, key))
            if used is None:
                why = "no quality interval is shared by all curves" if interval == "common" else \
                    "the curves do not overlap"
                row["notes"].append(f"{title}: {why}")
                continue
            thin = [f"{name} ({r[0]:.2f}..{r[1]:.2f} {unit})" for name, r in ((anchor.name, ra), (test.name, rt))
                    if used[1] - used[0] < MIN_COVERAGE * (r[1] - r[0])]
            if thin:
                row["notes"].append(f"{title}: the interval {used[0]:.2f}..{used[1]:.2f} {unit} covers under half "
                                    f"of {' and of '.join(thin)}")
    return rows


def format_bd_table(rows: list[dict], anchor: str) -> str:
    """A Markdown table with each row's intervals, and its notes (warnings) under it; empty when
    there are no rows, since a header without rows reads as a failed comparison."""
    if not rows:
        return ""
    lines = [f"| codec | BD-rate vs {anchor} (PSNR) | PSNR interval | BD-rate vs {anchor} (MS-SSIM dB) "
             "| MS-SSIM interval |", "|---|---|---|---|---|"]
    for row in rows:
        label = row["codec"] if row.get("measured", True) else f"{row['codec']} (reference, not measured in this run)"
        cells = [label]
        for key, _, unit in METRICS:
            cells.append(_pct(row[key]))
            iv = row.get(f"{key}_interval")
            cells.append("n/a" if not iv else f"{iv[0]:.2f}..{iv[1]:.2f} {unit}")
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"warning: {row['codec']} vs {anchor}: {note}" for row in rows for note in row.get("notes", ())]
    return "\n".join(lines) + "\n" + "".join(f"\n{n}" for n in notes) + ("\n" if notes else "")


def format_ratio_table(row: dict, test: ResultsCurve) -> str:
    """A Markdown table of `test`'s points, each with its rate over the anchor's at the same quality in each
    metric (from its `bd_rows` row; "n/a" outside the anchor's range): where a BD-rate's one mean comes from."""
    lines = [f"{test.name}: rate over {row['anchor']}'s at the same quality, per point", "",
             "| bpp | " + " | ".join(f"{name} ({unit}) | rate ratio" for _, name, unit in METRICS) + " |",
             "|---" * (1 + 2 * len(METRICS)) + "|"]
    for i, bpp in enumerate(test.bpp):
        cells = [f"{bpp:.3f}"]
        for key, _, _ in METRICS:
            quality, ratios = getattr(test, key), row.get(f"{key}_ratios")
            cells.append("n/a" if quality is None else f"{quality[i]:.2f}")
            cells.append("n/a" if not ratios or math.isnan(ratios[i]) else f"{ratios[i]:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _range(curve: ResultsCurve, key: str) -> tuple[float, float] | None:
    values = getattr(curve, key)
    if values is None or any(v is None for v in values):
        return None
    return bdrate.quality_range(curve.bpp, values)


def _column(res: dict, key: str) -> tuple[float, ...] | None:
    values = res.get(key)
    if not values or any(v is None for v in values):
        return None
    return tuple(float(v) for v in values)


def _pct(v: float | None) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:+.1f} %"
