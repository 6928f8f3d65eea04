"""Searches over a codec's quality knob on one image: hit a target file size, or trace the whole sweep.

Comparing codecs fairly means comparing them at the same size ("which looks better at 30 kB?") or at
the same quality; a quality number means different things in every codec (JPEG's 50 is not x265's QP
50), so the setting that gives a wanted size has to be searched for. The file size grows monotonically
with the quality knob for every codec here (up or down depending on the codec), so bisection over the
knob's declared range finds it in about log2(range) encodes.

All searches are jobs (generators of `Progress`), so the GUI can show each probe and stop a search.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from workbench.core.codecs import codec_class, get_codec
from workbench.core.compress import CompressResult, compress_image
from workbench.core.jobs import Job, Progress
from workbench.core.options import OptionSpec, build, specs
from workbench.core.summary import RateCurve, format_size

#: Stop a search when the size is this close to the target (relative); bisection rarely lands closer.
REL_TOLERANCE = 0.01
#: Encodes a search may spend; integer knobs of 0..100 need at most 9.
MAX_PROBES = 16


@dataclass(frozen=True)
class Probe:
    quality: float
    size_bytes: int


@dataclass(frozen=True)
class SearchOutcome:
    quality: float
    size_bytes: int
    probes: tuple[Probe, ...]


@dataclass(frozen=True)
class TargetSizeResult:
    target_bytes: int
    quality: float
    result: CompressResult       # the full encode + decode + metrics at the chosen quality
    probes: tuple[Probe, ...]

    @property
    def relative_error(self) -> float:
        return self.result.size_bytes / self.target_bytes - 1.0


def quality_spec(codec: str) -> OptionSpec:
    """The declaration of a codec's `quality` option (its range and type bound every search)."""
    for spec in specs(codec_class(codec).Options):
        if spec.name == "quality":
            return spec
    raise TypeError(f"codec {codec} declares no quality option")


def search_quality(size_at: Callable[[float], int], lo: float, hi: float, target: int, *, integer: bool,
                   grows: bool | None = None, max_probes: int = MAX_PROBES,
                   rel_tol: float = REL_TOLERANCE) -> Job[SearchOutcome]:
    """Bisect the knob between `lo` and `hi` for the setting whose size is closest to `target`.

    `size_at(q)` returns the file size at setting q. `grows` says whether a higher setting gives a bigger
    file (False for QP-style knobs); when it is not known, both ends are measured first. When it is
    known the ends are only encoded if the search runs into them, which matters because the
    highest-quality end is by far the slowest encode. When the target lies outside what the range can
    reach, the nearest end is the answer.
    """
    if target <= 0:
        raise ValueError("the target size must be positive")
    sizes: dict[float, int] = {}
    order: list[float] = []
    budget = max(2, max_probes)

    def probe(q: float) -> Progress:
        sizes[q] = int(size_at(q))
        order.append(q)
        return Progress(len(order), budget, f"setting {q:g}: {format_size(sizes[q])} "
                        f"(target {format_size(target)})", metrics={"quality": float(q), "size_bytes": sizes[q]})

    if grows is None:
        yield probe(lo)
        if hi != lo:
            yield probe(hi)
        grows = sizes[hi] >= sizes[lo]
    # `small` and `big` bracket the target: the file at `small` is not above it, the one at `big` not below.
    small, big = (lo, hi) if grows else (hi, lo)
    resolution = 1 if integer else abs(hi - lo) / 1000.0
    while len(order) < budget and abs(big - small) > resolution:
        if small in sizes and sizes[small] >= target or big in sizes and sizes[big] <= target:
            break                                       # the target is beyond what this range reaches
        mid = (small + big) // 2 if integer else (small + big) / 2.0
        yield probe(mid)
        if abs(sizes[mid] - target) <= rel_tol * target:
            break
        if sizes[mid] <= target:
            small = mid
        else:
            big = mid
    for end in (small, big):                            # the search ran into an end it never measured
        if end not in sizes and abs(big - small) <= resolution and len(order) < budget:
            yield probe(end)
    best = min(order, key=lambda q: (abs(sizes[q] - target), sizes[q]))
    return SearchOutcome(best, sizes[best], tuple(Probe(q, sizes[q]) for q in order))


def with_quality(codec: str, base_options: Any, quality: float) -> Any:
    """`base_options` with another quality, checked against the declaration like any user input."""
    cls = codec_class(codec)
    values = dataclasses.asdict(base_options) if base_options is not None else {}
    values["quality"] = quality
    return build(cls.Options, values)


def target_size_job(rgb: np.ndarray, codec: str, target_bytes: int, base_options: Any = None) -> Job[TargetSizeResult]:
    """Find the quality whose file is closest to `target_bytes`, then measure it like any encode.

    Probes only encode (their size is all the search needs); the chosen setting is encoded again by
    `compress_image`, so its timings and metrics are those of one ordinary run.
    """
    impl = get_codec(codec)
    spec = quality_spec(codec)
    if spec.minimum is None or spec.maximum is None:
        raise TypeError(f"codec {codec} declares no range for quality, so no size can be searched for")
    integer = spec.type is int
    lo, hi = (int(spec.minimum), int(spec.maximum)) if integer else (float(spec.minimum), float(spec.maximum))

    def size_at(q: float) -> int:
        return len(impl.encode(rgb, with_quality(codec, base_options, q)))

    sweep = type(impl).sweep                           # declared low rate first, so it tells the direction
    grows = None if len(sweep) < 2 or sweep[0] == sweep[-1] else sweep[-1] > sweep[0]
    outcome = yield from search_quality(size_at, lo, hi, int(target_bytes), integer=integer, grows=grows)
    result = compress_image(rgb, codec, with_quality(codec, base_options, outcome.quality))
    return TargetSizeResult(int(target_bytes), outcome.quality, result, outcome.probes)


def sweep_job(rgb: np.ndarray, codec: str, base_options: Any = None, name: str | None = None) -> Job[RateCurve]:
    """Encode at every quality of the codec's default sweep; the curve places single files on it."""
    cls, impl = codec_class(codec), get_codec(codec)
    qualities = tuple(impl.default_sweep(base_options if base_options is not None else impl.options()))
    if not qualities:
        raise TypeError(f"codec {codec} declares no sweep")
    bpp, psnr, ms_db = [], [], []          # numbers only: a sweep must not hold every reconstruction
    for i, q in enumerate(qualities, 1):
        r = compress_image(rgb, codec, with_quality(codec, base_options, q))
        bpp.append(r.bpp)
        psnr.append(r.quality.psnr)
        ms_db.append(r.quality.ms_ssim_db)
        yield Progress(i, len(qualities), f"{codec} setting {q:g}: {r.bpp:.3f} bpp, {r.quality.psnr:.2f} dB",
                       metrics={"bpp": r.bpp, "psnr": r.quality.psnr})
    return RateCurve(name or cls.label, tuple(bpp), tuple(psnr), tuple(ms_db))
