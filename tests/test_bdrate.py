import math
import warnings

import bjontegaard as bd
import numpy as np
import pytest

from workbench.core.bdrate import bd_quality, bd_rate, overlap, quality_range, rate_ratios

# Realistic curves in bits per pixel / PSNR dB: a JPEG-like anchor and a better codec.
JPEG_RATE = [0.25, 0.4, 0.6, 0.9, 1.3, 1.9]
JPEG_PSNR = [27.5, 29.8, 31.9, 33.8, 35.6, 37.4]
GOOD_RATE = [0.2, 0.33, 0.5, 0.75, 1.1, 1.6]
GOOD_PSNR = [28.6, 30.9, 33.0, 34.9, 36.7, 38.4]
# Fewer points on an MS-SSIM dB scale, shifted so the overlap is partial.
FOUR_RATE = [0.15, 0.3, 0.7, 1.5]
FOUR_MSSSIM_DB = [9.0, 11.5, 14.8, 18.2]
EIGHT_RATE = [0.1, 0.16, 0.25, 0.38, 0.55, 0.8, 1.15, 1.7]
EIGHT_MSSSIM_DB = [8.1, 9.6, 11.2, 12.9, 14.5, 16.2, 17.8, 19.5]

PAIRS = [
    (JPEG_RATE, JPEG_PSNR, GOOD_RATE, GOOD_PSNR),
    (GOOD_RATE, GOOD_PSNR, JPEG_RATE, JPEG_PSNR),
    (FOUR_RATE, FOUR_MSSSIM_DB, EIGHT_RATE, EIGHT_MSSSIM_DB),
    (EIGHT_RATE, EIGHT_MSSSIM_DB, JPEG_RATE, [d - 18 for d in JPEG_PSNR]),
]


def _reference(fn, ra, da, rt, dt):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # low-overlap warnings are expected for some pairs
        return fn(ra, da, rt, dt, method="pchip", require_matching_points=False)


@pytest.mark.parametrize("pair", PAIRS)
def test_bd_rate_matches_bjontegaard_package(pair):
    # Same interpolation and exact integration, so far tighter than the 0.05 points required.
    assert bd_rate(*pair) == pytest.approx(_reference(bd.bd_rate, *pair), abs=1e-9)


@pytest.mark.parametrize("pair", PAIRS)
def test_bd_quality_matches_bjontegaard_package(pair):
    assert bd_quality(*pair) == pytest.approx(_reference(bd.bd_psnr, *pair), abs=1e-9)


def test_better_codec_saves_rate():
    assert bd_rate(JPEG_RATE, JPEG_PSNR, GOOD_RATE, GOOD_PSNR) < -10
    assert bd_quality(JPEG_RATE, JPEG_PSNR, GOOD_RATE, GOOD_PSNR) > 0.5


def test_identical_curves_give_zero():
    assert bd_rate(JPEG_RATE, JPEG_PSNR, JPEG_RATE, JPEG_PSNR) == pytest.approx(0.0, abs=1e-12)
    assert bd_quality(JPEG_RATE, JPEG_PSNR, JPEG_RATE, JPEG_PSNR) == pytest.approx(0.0, abs=1e-12)


def test_half_the_rate_is_minus_fifty_percent():
    half = [r * 0.5 for r in JPEG_RATE]
    assert bd_rate(JPEG_RATE, JPEG_PSNR, half, JPEG_PSNR) == pytest.approx(-50.0, abs=1e-9)
    assert bd_rate(half, JPEG_PSNR, JPEG_RATE, JPEG_PSNR) == pytest.approx(100.0, abs=1e-9)


def test_point_order_does_not_matter():
    order = [3, 0, 5, 1, 4, 2]
    shuffled = ([JPEG_RATE[i] for i in order], [JPEG_PSNR[i] for i in order])
    assert bd_rate(*shuffled, GOOD_RATE, GOOD_PSNR) == pytest.approx(
        bd_rate(JPEG_RATE, JPEG_PSNR, GOOD_RATE, GOOD_PSNR), abs=1e-12
    )


def test_duplicate_distortions_are_averaged_not_fatal():
    rate = JPEG_RATE + [JPEG_RATE[2]]
    dist = JPEG_PSNR + [JPEG_PSNR[2]]
    assert bd_rate(rate, dist, GOOD_RATE, GOOD_PSNR) == pytest.approx(
        bd_rate(JPEG_RATE, JPEG_PSNR, GOOD_RATE, GOOD_PSNR), abs=1e-12
    )
    # Two rates at the same quality: their log-rates are averaged.
    rate = [0.2, 0.3, 0.45, 0.8]
    value = bd_rate(rate, [30, 31, 31, 33], rate, [30, 31, 31, 33])
    assert value == pytest.approx(0.0, abs=1e-12)


def test_unusable_input_gives_nan():
    assert math.isnan(bd_rate([1.0], [30.0], [1.0, 2.0], [30.0, 33.0]))
    assert math.isnan(bd_rate([1.0, 2.0], [30.0, 30.0], [1.0, 2.0], [30.0, 33.0]))
    assert math.isnan(bd_rate([1, 2], [30, 32], [1, 2], [33, 35]))  # no overlap
    assert math.isnan(bd_quality([1, 2], [30, 32], [3, 4], [30, 32]))
    assert math.isnan(bd_rate([], [], [], []))


def test_non_finite_and_non_positive_points_are_ignored():
    clean = bd_rate(JPEG_RATE, JPEG_PSNR, GOOD_RATE, GOOD_PSNR)
    rate = JPEG_RATE + [0.0, np.nan, 1.0]
    dist = JPEG_PSNR + [20.0, 30.0, np.inf]
    assert bd_rate(rate, dist, GOOD_RATE, GOOD_PSNR) == pytest.approx(clean, abs=1e-12)


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError):
        bd_rate([1, 2, 3], [30, 31], GOOD_RATE, GOOD_PSNR)


def test_bench_compares_settings_of_one_codec(tmp_path):
    """`name:key=value` fixes options, so two settings of one codec meet in one run and one table."""
    import numpy as np
    from PIL import Image
    from workbench.core.bench import bench_job
    from workbench.core.bench_report import write_report
    from workbench.core.errors import OptionError
    from workbench.core.jobs import run
    import pytest

    rgb = (np.indices((48, 64, 3)).sum(0) * 5 % 256).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    specs = ["webp", "webp:method=4"]
    result = run(bench_job([tmp_path / "a.png"], specs, {s: (40, 60, 80, 90) for s in specs}))
    assert {p.codec for p in result.points} == set(specs)
    written = write_report(result, tmp_path / "out", "webp")
    assert (tmp_path / "out" / "webp_method-4.json").exists() and written
    with pytest.raises(OptionError):
        run(bench_job([tmp_path / "a.png"], ["webp:method"]))


def _synthetic_run(images, shift):
    from workbench.core.bench import BenchResult, RDPoint
    points = [RDPoint(codec, q, image, bpp=q * 0.2 * (0.9 if codec == "webp" else 1.0) * (1 + shift * k),
                      psnr=26 + 3 * q + k, ms_ssim=0.9 + 0.02 * q, ms_ssim_db=10 + 2 * q + k,
                      encode_s=0.1, decode_s=0.1)
              for k, image in enumerate(images) for codec in ("jpeg", "webp") for q in (1, 2, 3, 4)]
    return BenchResult(list(images), points, ["jpeg", "webp"])


def test_report_parts_join_into_the_run_on_all_images(tmp_path):
    """A sweep run as parts on disjoint images, read back and joined, gives the whole run's BD-rates."""
    from workbench.core.bench import BenchResult
    from workbench.core.bench_report import join_results, load_points, write_report
    from workbench.core.errors import WorkbenchError

    whole = _synthetic_run(["x.png", "y.png", "z.png"], shift=0.3)
    parts = [BenchResult(imgs, [p for p in whole.points if p.image in imgs], whole.codecs)
             for imgs in (["x.png"], ["y.png", "z.png"])]
    for i, part in enumerate(parts):
        write_report(part, tmp_path / f"part{i}", "jpeg")
    joined = join_results([load_points(tmp_path / f"part{i}") for i in range(2)])
    assert joined.images == whole.images and joined.codecs == whole.codecs
    assert [r["psnr"] for r in joined.bd_table("jpeg")] == pytest.approx([r["psnr"] for r in whole.bd_table("jpeg")])
    assert load_points(tmp_path / "part1", {"z.png"}).images == ["z.png"]

    with pytest.raises(WorkbenchError, match="more than one part: x.png"):
        join_results([load_points(tmp_path / "part0"), load_points(tmp_path / "part0")])
    (tmp_path / "part1" / "per_image.json").write_text('{"images": ["y.png"]}')
    with pytest.raises(WorkbenchError, match="not a per-image file"):
        load_points(tmp_path / "part1")
    with pytest.raises(WorkbenchError, match="cannot read"):
        load_points(tmp_path / "missing")


def test_interval_restricts_the_average_and_never_extrapolates():
    half = [r * 0.5 for r in JPEG_RATE]
    assert bd_rate(JPEG_RATE, JPEG_PSNR, half, JPEG_PSNR, interval=(30.0, 33.0)) == pytest.approx(-50.0, abs=1e-9)
    # The own overlap given explicitly is the default.
    own = overlap(quality_range(JPEG_RATE, JPEG_PSNR), quality_range(GOOD_RATE, GOOD_PSNR))
    assert own == (28.6, 37.4)
    assert bd_rate(JPEG_RATE, JPEG_PSNR, GOOD_RATE, GOOD_PSNR, interval=own) == pytest.approx(
        bd_rate(JPEG_RATE, JPEG_PSNR, GOOD_RATE, GOOD_PSNR), abs=1e-12)
    assert math.isnan(bd_rate(JPEG_RATE, JPEG_PSNR, GOOD_RATE, GOOD_PSNR, interval=(27.0, 30.0)))


def test_quality_range_and_overlap():
    assert quality_range([0.1, 0.2, float("nan")], [30.0, 28.0, 40.0]) == (28.0, 30.0)
    assert quality_range([0.1], [30.0]) is None
    assert overlap((28.0, 35.0), (30.0, 38.0), (29.0, 36.0)) == (30.0, 35.0)
    assert overlap((28.0, 30.0), (31.0, 33.0)) is None
    assert overlap((28.0, 30.0), None) is None


def test_rate_ratios_say_where_along_the_curve_a_codec_gains():
    """At the anchor's own points the ratio is exact; a codec that needs 0.6× the rate at low quality and
    0.9× at high quality shows it point by point; a point outside the anchor's range has none."""
    mixed = [r * f for r, f in zip(JPEG_RATE, np.linspace(0.6, 0.9, len(JPEG_RATE)))]
    assert rate_ratios(JPEG_RATE, JPEG_PSNR, mixed, JPEG_PSNR) == pytest.approx(np.linspace(0.6, 0.9, 6), rel=1e-12)
    ratios = rate_ratios(JPEG_RATE, JPEG_PSNR, [0.5, 0.1, 3.0], [31.0, 20.0, 45.0])
    assert 0.5 / 0.6 < ratios[0] < 0.5 / 0.4 and math.isnan(ratios[1]) and math.isnan(ratios[2])
    assert all(math.isnan(r) for r in rate_ratios([1.0], [30.0], [1.0], [30.0]))
