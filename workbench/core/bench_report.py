"""Files a sweep leaves behind: CompressAI-schema JSON, CSV, a BD-rate table and an RD plot.

(The per-point file `points.jsonl`, written while the sweep runs, is `bench_store`'s.)

The plot is drawn with matplotlib's Agg canvas directly (no pyplot), so writing a report never
touches a GUI toolkit and works on a headless server.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Sequence

from workbench.core.atomic import write_bytes_atomic
from workbench.core.bdtable import ResultsCurve, format_bd_table
from workbench.core.bench import BenchResult, RDPoint, point_rows
from workbench.core.errors import WorkbenchError


def write_report(result: BenchResult, out_dir: str | Path, anchor: str | None,
                 references: Sequence[ResultsCurve] = (), interval: str = "pair") -> list[Path]:
    """Write every file of a finished sweep; the BD table (against `anchor`, with `references` as
    rows marked not measured) only when it has rows."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for codec in result.codecs:
        written.append(_write_json(out / json_name(codec), result.compressai_json(codec)))
    written.append(_write_json(out / "per_image.json", {"images": result.images, "points": point_rows(result)}))
    written.append(_write_csv(out / "per_image.csv", point_rows(result)))
    curve_rows = []
    for codec in result.codecs:
        c = result.curve(codec)
        for i in range(len(c.bpp)):
            curve_rows.append({"codec": codec, "quality": c.quality[i], "bpp": c.bpp[i], "psnr": c.psnr[i],
                               "ms_ssim": c.ms_ssim[i], "ms_ssim_db": c.ms_ssim_db[i],
                               "encode_s": c.encode_s[i], "decode_s": c.decode_s[i]})
    written.append(_write_csv(out / "curves.csv", curve_rows))
    table = result.bd_table(anchor, references, interval) if anchor else []
    if table:
        written.append(_write_json(out / "bdrate.json", table))
        written.append(write_bytes_atomic(out / "bdrate.md", format_bd_table(table, anchor).encode()))
    written.append(write_bytes_atomic(out / "rd.png", rd_plot_png(result, references)))
    return written


def json_name(codec: str) -> str:
    """A codec spec's results file: `learned:quantizer=tcq8` -> learned_quantizer-tcq8.json (a model path's
    slashes become dashes, so the file stays in the report folder)."""
    return codec.replace(":", "_").replace("=", "-").replace("/", "-") + ".json"


def load_points(out_dir: str | Path, only: set[str] | None = None) -> BenchResult:
    """The per-image points a report folder holds (of the images named in `only`, when given).

    Long sweeps run as parts on disjoint image folders; reading the points back lets them be joined
    (`join_results`) and reported as one run, averaged over every image.
    """
    path = Path(out_dir) / "per_image.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        images = [str(i) for i in doc["images"] if only is None or i in only]
        points = [RDPoint(**row) for row in doc["points"] if row["image"] in images]
    except OSError as exc:
        raise WorkbenchError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WorkbenchError(f"{path}: not a per-image file written by `workbench bench` ({exc})") from None
    return BenchResult(images, points, list(dict.fromkeys(p.codec for p in points)))


def join_results(parts: list[BenchResult]) -> BenchResult:
    """One result from runs on disjoint images; an image in two parts would be counted twice, so it is refused."""
    joined = BenchResult()
    for part in parts:
        repeated = set(joined.images) & set(part.images)
        if repeated:
            raise WorkbenchError(f"images in more than one part: {', '.join(sorted(repeated))}")
        joined.images += part.images
        joined.points += part.points
    joined.codecs = list(dict.fromkeys(p.codec for p in joined.points))
    return joined


def rd_plot_png(result: BenchResult, references: Sequence[ResultsCurve] = ()) -> bytes:
    """Measured curves solid, reference curves (not measured in this run) dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    for codec in result.codecs:
        c = result.curve(codec)
        ax1.plot(c.bpp, c.psnr, "o-", ms=3, label=codec)
        if all(v is not None for v in c.ms_ssim_db):
            ax2.plot(c.bpp, c.ms_ssim_db, "o-", ms=3, label=codec)
    for ref in references:
        for ax, values in ((ax1, ref.psnr), (ax2, ref.ms_ssim_db)):
            if values is not None:
                ax.plot(ref.bpp, values, "x--", ms=3, lw=1, label=f"{ref.name} (reference)")
    for ax, ylabel in ((ax1, "PSNR (dB)"), (ax2, "MS-SSIM (dB)")):
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=8)
        else:               # MS-SSIM needs images of at least 161 px on each side
            ax.text(0.5, 0.5, "not measured for these images", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(f"Rate-distortion, mean over {len(result.images)} image(s)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _write_json(path: Path, obj) -> Path:
    return write_bytes_atomic(path, json_bytes(obj))


def json_bytes(obj) -> bytes:
    """Indented JSON of results, with unmeasured values (NaN) as null."""
    return (json.dumps(_finite(obj), indent=1) + "\n").encode()


def _finite(obj):
    """JSON has no NaN/inf: a missing measurement (e.g. MS-SSIM of a tiny image) is written as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _write_csv(path: Path, rows: list[dict]) -> Path:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return write_bytes_atomic(path, buf.getvalue().encode())
