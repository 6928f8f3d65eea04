"""Target-size search (bisection over the quality knob) and the one-image sweep."""

from pathlib import Path

import pytest

from workbench.core.codecs import codec_class
from workbench.core.images import load_image
from workbench.core.jobs import Progress, run
from workbench.core.target_size import (
    quality_spec, search_quality, sweep_job, target_size_job, with_quality,
)

CHAPEL = Path(__file__).parent / "data" / "chapel_192x176.png"


@pytest.fixture(scope="module")
def rgb():
    return load_image(CHAPEL).rgb


def run_search(size_at, lo, hi, target, **kw):
    events = []
    out = run(search_quality(size_at, lo, hi, target, **kw), events.append)
    assert all(isinstance(e, Progress) for e in events) and len(events) == len(out.probes)
    return out


def test_integer_bisection_finds_the_closest_setting_in_log2_probes():
    size = lambda q: 1000 + 37 * q                      # noqa: E731
    out = run_search(size, 1, 100, 1000 + 37 * 63 + 10, integer=True)
    assert out.quality == 63
    assert len(out.probes) <= 9


def test_direction_is_measured_or_taken_from_the_caller():
    qp = lambda q: int(200_000 * 0.88 ** q)             # noqa: E731  lower QP = bigger file, like x265
    target = qp(31)
    measured = run_search(qp, 0, 51, target, integer=True)
    told = run_search(qp, 0, 51, target, integer=True, grows=False)
    assert measured.quality == told.quality == 31
    assert 0 not in [p.quality for p in told.probes]    # told the direction, it never encodes the slow end


def test_unreachable_targets_return_the_nearest_end():
    size = lambda q: 100 * q                            # noqa: E731
    assert run_search(size, 1, 100, 50_000, integer=True).quality == 100
    assert run_search(size, 1, 100, 10, integer=True, grows=True).quality == 1
    assert run_search(size, 5, 5, 10, integer=True).quality == 5
    with pytest.raises(ValueError):
        run_search(size, 1, 100, 0, integer=True)


def test_float_knob_stops_within_tolerance():
    size = lambda q: int(10_000 * 2 ** q)               # noqa: E731
    out = run_search(size, 0.0, 10.0, 123_456, integer=False)
    assert abs(out.size_bytes / 123_456 - 1) <= 0.01
    assert len(out.probes) <= 16


def test_target_size_job_with_jpeg(rgb):
    target = 4000
    res = run(target_size_job(rgb, "jpeg", target))
    assert abs(res.relative_error) < 0.15
    assert res.result.size_bytes == len(res.result.data)
    assert res.result.options["quality"] == res.quality
    spec = quality_spec("jpeg")
    assert spec.minimum <= res.quality <= spec.maximum


def test_sweep_job_returns_one_point_per_declared_setting(rgb):
    curve = run(sweep_job(rgb, "jpeg", with_quality("jpeg", None, 75), name="JPEG"))
    assert curve.name == "JPEG"
    assert len(curve.bpp) == len(codec_class("jpeg").sweep)
    assert list(curve.bpp) == sorted(curve.bpp)         # the declared sweep is low rate first
    assert all(v is not None for v in curve.ms_ssim_db)  # 176 px is enough for MS-SSIM


def test_with_quality_validates_like_user_input():
    from workbench.core.errors import OptionError
    opts = with_quality("jpeg", codec_class("jpeg").options(subsampling="4:4:4"), 40)
    assert (opts.quality, opts.subsampling) == (40, "4:4:4")
    with pytest.raises(OptionError):
        with_quality("jpeg", None, 500)
