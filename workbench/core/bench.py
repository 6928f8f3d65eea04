"""Rate-distortion sweeps over a folder of images, and their BD-rate summary.

A sweep runs every codec at every quality of its sweep on every image, measuring the real file size
and the decoded quality. Means per quality setting are taken over images exactly as CompressAI's
`eval` does (mean bpp, mean PSNR, mean MS-SSIM), so the curves can be compared with its published
results JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from workbench.core import bdrate
from workbench.core.metrics import ms_ssim_db
from workbench.core.codecs import codec_class, get_codec
from workbench.core.compress import compress_image
from workbench.core.errors import OptionError
from workbench.core.images import load_image
from workbench.core.jobs import Job, Progress


@dataclass(frozen=True)
class RDPoint:
    codec: str
    quality: float
    image: str
    bpp: float
    psnr: float
    ms_ssim: float | None
    ms_ssim_db: float | None
    encode_s: float
    decode_s: float


@dataclass(frozen=True)
class Curve:
    """Per-quality means over the images of a sweep, ordered by rate."""
    codec: str
    quality: tuple[float, ...]
    bpp: tuple[float, ...]
    psnr: tuple[float, ...]
    ms_ssim: tuple[float | None, ...]
    ms_ssim_db: tuple[float | None, ...]
    encode_s: tuple[float, ...]
    decode_s: tuple[float, ...]


@dataclass
class BenchResult:
    images: list[str] = field(default_factory=list)
    points: list[RDPoint] = field(default_factory=list)
    codecs: list[str] = field(default_factory=list)

    def curve(self, codec: str) -> Curve:
        by_q: dict[float, list[RDPoint]] = {}
        for p in self.points:
            if p.codec == codec:
                by_q.setdefault(p.quality, []).append(p)
        rows = []
        for q, pts in by_q.items():
            ms = [p.ms_ssim for p in pts if p.ms_ssim is not None]
            m = float(np.mean(ms)) if len(ms) == len(pts) else None
            rows.append((q, _mean(p.bpp for p in pts), _mean(p.psnr for p in pts), m,
                         None if m is None else ms_ssim_db(m), _mean(p.encode_s for p in pts),
                         _mean(p.decode_s for p in pts)))
        rows.sort(key=lambda r: r[1])
        cols = list(zip(*rows)) if rows else [()] * 7
        return Curve(codec, *(tuple(c) for c in cols))

    def compressai_json(self, codec: str) -> dict:
        """The curve in CompressAI's results schema (`{"name", "description", "results": {...}}`)."""
        c = self.curve(codec)
        return {
            "name": codec,
            "description": f"{get_codec_label(codec)}; measured by workbench bench on {len(self.images)} images",
            "results": {
                "quality": list(c.quality), "bpp": list(c.bpp), "psnr-rgb": list(c.psnr),
                "ms-ssim-rgb": list(c.ms_ssim), "ms-ssim-rgb-db": list(c.ms_ssim_db),
                "encoding_time": list(c.encode_s), "decoding_time": list(c.decode_s),
            },
        }

    def bd_table(self, anchor: str) -> list[dict]:
        """BD-rate of every codec against `anchor` in PSNR and MS-SSIM dB (percent; negative is better)."""
        a = self.curve(anchor)
        out = []
        for codec in self.codecs:
            if codec == anchor:
                continue
            c = self.curve(codec)
            out.append({"codec": codec, "anchor": anchor,
                        "psnr": bdrate.bd_rate(a.bpp, a.psnr, c.bpp, c.psnr),
                        "ms_ssim_db": _bd_optional(a.bpp, a.ms_ssim_db, c.bpp, c.ms_ssim_db)})
        return out


def bench_job(images: Sequence[str | Path], codecs: Sequence[str],
              sweeps: Mapping[str, Sequence[float]] | None = None) -> Job[BenchResult]:
    """Sweep `codecs` over `images`; yields one progress event per encoded image and setting."""
    sweeps = dict(sweeps or {})
    specs = {spec: parse_codec_spec(spec) for spec in codecs}
    impls = {spec: get_codec(name) for spec, (name, _) in specs.items()}   # fail early on unknown codecs
    for spec, (_, fixed) in specs.items():
        impls[spec].options(**fixed)                                      # ... and on bad fixed options
    plan = {spec: tuple(sweeps.get(spec) or type(impl).sweep) for spec, impl in impls.items()}
    total = len(images) * sum(len(q) for q in plan.values())
    result = BenchResult(codecs=list(codecs))
    step = 0
    for path in images:
        img = load_image(path)
        name = Path(path).name
        result.images.append(name)
        for codec, qualities in plan.items():
            for q in qualities:
                name_, fixed = specs[codec]
                opts = impls[codec].options(**{**fixed, "quality": q})
                r = compress_image(img.rgb, name_, opts)
                pt = RDPoint(codec=codec, quality=q, image=name, bpp=r.bpp, psnr=r.quality.psnr,
                             ms_ssim=r.quality.ms_ssim, ms_ssim_db=r.quality.ms_ssim_db,
                             encode_s=r.encode_s, decode_s=r.decode_s)
                result.points.append(pt)
                step += 1
                yield Progress(step, total, f"{name} {codec} q={q:g}: {r.bpp:.3f} bpp, {r.quality.psnr:.2f} dB",
                               metrics={"bpp": r.bpp, "psnr": r.quality.psnr,
                                        **({"ms_ssim": r.quality.ms_ssim} if r.quality.ms_ssim else {})})
    return result


def parse_codec_spec(spec: str) -> tuple[str, dict[str, str]]:
    """`name` or `name:key=value:key=value` (a codec with some options fixed, e.g.
    `learned:quantizer=tcq8`), so one bench run can compare settings of the same codec.

    >>> parse_codec_spec("learned:step=1.2:model=dct-hyperprior-mse")
    ('learned', {'step': '1.2', 'model': 'dct-hyperprior-mse'})
    """
    name, *pairs = spec.split(":")
    fixed = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise OptionError(f"codec {spec!r}: expected NAME:KEY=VALUE:..., got {pair!r}")
        fixed[key.strip().replace("-", "_")] = value.strip()
    return name.strip(), fixed


def get_codec_label(spec: str) -> str:
    name, fixed = parse_codec_spec(spec)
    extra = ", ".join(f"{k}={v}" for k, v in fixed.items())
    return codec_class(name).label + (f" ({extra})" if extra else "")


def point_rows(result: BenchResult) -> list[dict]:
    return [asdict(p) for p in result.points]


def _mean(values) -> float:
    return float(np.mean(list(values)))


def _bd_optional(r1, d1, r2, d2) -> float:
    if any(v is None for v in d1) or any(v is None for v in d2):
        return float("nan")
    return bdrate.bd_rate(r1, d1, r2, d2)
