"""Bjøntegaard deltas: one number for how much better one rate-distortion curve is than another.

Both curves are interpolated with PCHIP (monotone, so no overshoot between sparse points, unlike the
original cubic fit) and integrated exactly through the piecewise-cubic antiderivative over the
range where they overlap. This is the same computation as the `bjontegaard` package with
method='pchip' (log10 rate, scipy's PchipInterpolator, exact integration), so results agree to
rounding; we differ only on input hygiene: points may come in any order, points sharing an
abscissa are merged by averaging (that package would fail on both), and unusable input yields NaN
instead of an exception or a warning.

NaN means "no comparison possible": a curve with fewer than two distinct usable points, or curves
that do not overlap. Points with a non-finite value or a rate <= 0 are not usable and are ignored,
so one failed encode does not sink a whole benchmark table.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import PchipInterpolator


def bd_rate(rate_anchor, dist_anchor, rate_test, dist_test, interval: tuple[float, float] | None = None) -> float:
    """Average rate difference in percent at equal quality; negative means the test codec saves rate.

    `dist_*` is any quality measure where higher is better (PSNR, MS-SSIM dB). The average is over
    the qualities both curves reach, or over `interval` (lo, hi) when given, so that several pairs
    can be compared over one range; an interval outside either curve gives NaN, never extrapolation.
    """
    anchor = _curve(dist_anchor, _log_rate(rate_anchor))
    test = _curve(dist_test, _log_rate(rate_test))
    return float((10.0 ** _mean_gap(anchor, test, interval) - 1.0) * 100.0)


def quality_range(rate, dist) -> tuple[float, float] | None:
    """(lowest, highest) quality of a curve's usable points, or None when it has fewer than two.

    A BD-rate averages over the overlap of two such ranges; how much of each curve that overlap
    covers says how far the number can be trusted.
    """
    x, _ = _curve(dist, _log_rate(rate))
    return (float(x[0]), float(x[-1])) if x.size >= 2 else None


def overlap(*ranges: tuple[float, float] | None) -> tuple[float, float] | None:
    """The range every one of `ranges` covers, or None when they do not all overlap."""
    if not ranges or any(r is None for r in ranges):
        return None
    lo, hi = max(r[0] for r in ranges), min(r[1] for r in ranges)
    return (lo, hi) if hi > lo else None


def bd_quality(rate_anchor, dist_anchor, rate_test, dist_test) -> float:
    """Average quality difference at equal rate (BD-PSNR for PSNR); positive means the test is better."""
    anchor = _curve(_log_rate(rate_anchor), dist_anchor)
    test = _curve(_log_rate(rate_test), dist_test)
    return float(_mean_gap(anchor, test))


def rate_ratios(rate_anchor, dist_anchor, rate_test, dist_test) -> list[float]:
    """For each test point, its rate divided by the anchor's at the same quality (the anchor's curve
    interpolated as a BD-rate interpolates it); NaN outside the anchor's range. A BD-rate is one mean
    over a range; these say where along it a codec gains and where it loses."""
    xa, ya = _curve(dist_anchor, _log_rate(rate_anchor))
    rate = np.asarray(rate_test, dtype=np.float64).ravel()
    dist = np.asarray(dist_test, dtype=np.float64).ravel()
    if xa.size < 2:
        return [float("nan")] * rate.size
    inside = np.isfinite(dist) & (rate > 0) & (dist >= xa[0]) & (dist <= xa[-1])
    ratios = np.full(rate.size, np.nan)
    ratios[inside] = rate[inside] / 10.0 ** PchipInterpolator(xa, ya)(dist[inside])
    return [float(r) for r in ratios]


def _log_rate(rate):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(np.asarray(rate, dtype=np.float64))


def _curve(x, y):
    """Usable points sorted by x, with y averaged over equal x, as PCHIP needs strictly rising x."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"a curve needs as many rates as distortions, got {x.size} and {y.size}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    xs, where = np.unique(x, return_inverse=True)
    ys = np.bincount(where, weights=y, minlength=xs.size) / np.bincount(where, minlength=xs.size)
    return xs, ys


def _mean_gap(anchor, test, interval=None) -> float:
    """Mean of test(x) - anchor(x) over the common x range (or `interval` inside it), or NaN where
    that is undefined."""
    (xa, ya), (xt, yt) = anchor, test
    if xa.size < 2 or xt.size < 2:
        return float("nan")
    lo, hi = max(xa[0], xt[0]), min(xa[-1], xt[-1])
    if interval is not None:
        if interval[0] < lo or interval[1] > hi:
            return float("nan")
        lo, hi = interval
    if hi <= lo:
        return float("nan")
    area_anchor = PchipInterpolator(xa, ya).integrate(lo, hi)
    area_test = PchipInterpolator(xt, yt).integrate(lo, hi)
    return (area_test - area_anchor) / (hi - lo)
