"""The plain-language comparison sentences and the equal-quality interpolation behind them."""

import math

import pytest

from workbench.core.summary import (
    LOSSLESS_DB, Measurement, RateCurve, equal_quality_sentence, format_size, point_sentence, quality_phrase,
    rate_at_quality, size_phrase, summarize,
)

PIXELS = 100_000


def m(name, size, psnr=None, ms=None, **kw):
    return Measurement(name, size, PIXELS, psnr, ms, **kw)


ORIGINAL = Measurement("the original PNG file", 300_000, PIXELS, is_original=True)


def test_size_phrases_switch_from_percent_to_times_at_two():
    assert size_phrase(100, 62) == "38 % smaller than"
    assert size_phrase(100, 50) == "2.0× smaller than"
    assert size_phrase(210, 100) == "2.1× smaller than"
    assert size_phrase(100, 112) == "12 % larger than"
    assert size_phrase(100, 250) == "2.5× larger than"
    assert size_phrase(100, 100.2) == "the same size as"
    with pytest.raises(ValueError):
        size_phrase(0, 10)


def test_quality_phrase_and_sizes():
    assert quality_phrase(33.0, 31.8, "PSNR") == "1.2 dB worse in PSNR"
    assert quality_phrase(15.0, 15.3, "MS-SSIM") == "0.3 dB better in MS-SSIM"
    assert quality_phrase(30.0, 30.01, "PSNR") == "equal in PSNR"
    assert format_size(999) == "999 bytes"
    assert format_size(34_109) == "34.1 kB"
    assert format_size(729_459) == "729 kB"
    assert format_size(2_500_000) == "2.5 MB"


def test_the_issue_example_for_two_single_points():
    left, right = m("JPEG", 10_000, 33.0), m("WebP", 6_200, 31.8)
    assert point_sentence(left, right) == \
        "The right image (WebP) is 38 % smaller than the left (JPEG) and visibly worse: 1.2 dB lower in PSNR."


def test_both_metrics_agreeing_disagreeing_and_equal_size():
    left = m("JPEG", 10_000, 33.0, 15.0, setting="quality 50")
    worse = m("WebP", 6_200, 31.8, 14.5, setting="quality 40")
    assert point_sentence(left, worse).endswith("and visibly worse: 1.2 dB lower in PSNR, 0.5 dB lower in MS-SSIM.")
    mixed = m("WebP", 6_200, 31.8, 15.4)
    assert "visibly worse in PSNR (1.2 dB lower) but 0.4 dB better in MS-SSIM" in point_sentence(left, mixed)
    # the verdict's thresholds (summary.ABOUT_SAME_DB, VISIBLE_DB)
    assert point_sentence(left, m("WebP", 6_200, 32.5, 15.0)).endswith(
        "and slightly worse: 0.5 dB lower in PSNR, equal in MS-SSIM.")
    assert point_sentence(left, m("WebP", 6_200, 33.2)).endswith("and about the same: 0.2 dB higher in PSNR.")
    same_size = m("HEVC", 10_200, 37.9, 16.6, setting="quality 29")
    assert point_sentence(left, same_size) == (
        "At about the same size (10.1 kB), compared with the left image (JPEG, quality 50), the right image "
        "(HEVC, quality 29) is visibly better: 4.9 dB higher in PSNR, 1.6 dB higher in MS-SSIM.")


def test_against_the_original_and_lossless():
    comp = m("JPEG", 30_000, 34.12, 20.6, setting="quality 75")
    assert point_sentence(ORIGINAL, comp) == ("The right image (JPEG, quality 75) is 10.0× smaller than the original "
                                              "PNG file, at 34.1 dB in PSNR and 20.6 dB in MS-SSIM.")
    assert point_sentence(comp, ORIGINAL).startswith("The left image (JPEG, quality 75) is 10.0× smaller")
    assert "choose a codec" in point_sentence(ORIGINAL, ORIGINAL)
    lossless = m("JPEG XL", 200_000, LOSSLESS_DB, LOSSLESS_DB)
    assert point_sentence(ORIGINAL, lossless).endswith("smaller than the original PNG file, losslessly.")
    assert point_sentence(comp, lossless).endswith("and lossless.")
    assert point_sentence(comp, m("X", 30_000, math.inf)).endswith("is lossless.")


CURVE = RateCurve("JPEG", bpp=(0.25, 0.5, 1.0, 2.0), psnr=(28.0, 31.0, 34.0, 37.0), ms_ssim_db=(10.0, 13.0, 16.0, 19.0))


def test_rate_interpolates_log_rate_and_never_extrapolates():
    assert rate_at_quality(CURVE.bpp, CURVE.psnr, 31.0) == pytest.approx(0.5)
    assert rate_at_quality(CURVE.bpp, CURVE.psnr, 32.5) == pytest.approx(math.sqrt(0.5 * 1.0))  # midway in log
    assert rate_at_quality(CURVE.bpp, CURVE.psnr, 27.9) is None
    assert rate_at_quality(CURVE.bpp, CURVE.psnr, 37.1) is None
    # a non-monotonic point (more bits, less quality) is ignored instead of folding the curve
    assert rate_at_quality((0.5, 0.7, 1.0), (31.0, 30.0, 34.0), 32.5) == pytest.approx(math.sqrt(0.5))
    assert rate_at_quality((1.0,), (30.0,), 30.0) is None


def test_equal_quality_sentence_prefers_ms_ssim_and_falls_back_to_psnr():
    point = Measurement("HEVC", int(0.25 * PIXELS / 8), PIXELS, 33.0, 13.0)     # 0.25 bpp at JPEG's 0.5 bpp quality
    assert equal_quality_sentence(CURVE, point) == "At the same MS-SSIM, the HEVC file is 2.0× smaller than JPEG's."
    no_ms = Measurement("HEVC", int(0.75 * PIXELS / 8), PIXELS, 34.0, None)
    assert equal_quality_sentence(CURVE, no_ms) == "At the same PSNR, the HEVC file is 25 % smaller than JPEG's."
    out_of_range = Measurement("HEVC", 1000, PIXELS, 45.0, 25.0)
    assert equal_quality_sentence(CURVE, out_of_range) is None
    assert equal_quality_sentence(CURVE, ORIGINAL) is None


def test_summarize_puts_the_equal_quality_sentence_first():
    left = Measurement("JPEG", int(0.5 * PIXELS / 8), PIXELS, 31.0, 13.0, setting="quality 50")
    right = Measurement("HEVC", int(0.25 * PIXELS / 8), PIXELS, 31.0, 13.0, setting="quality 33")
    text = summarize(left, right, left_curve=CURVE)
    assert text.startswith("At the same MS-SSIM, the HEVC file is 2.0× smaller than JPEG's. The right image")
    assert summarize(left, right) == point_sentence(left, right)
    # the curve of the right codec places the left file on it
    curve_r = RateCurve("HEVC", CURVE.bpp, CURVE.psnr, CURVE.ms_ssim_db)
    assert summarize(left, right, right_curve=curve_r).startswith("At the same MS-SSIM, the JPEG file is the same")
    # the same codec on both sides: the two files lie on one curve, no equal-quality claim
    assert summarize(left, Measurement("JPEG", 3000, PIXELS, 30.0, 12.0), left_curve=CURVE).startswith("The right")
    assert summarize(None, right) == ""


def test_lossless_threshold_matches_the_metrics_module():
    from workbench.core import metrics
    assert LOSSLESS_DB == metrics.MAX_DB


def test_network_sentence_says_size_and_accuracy_in_one_sentence():
    from workbench.core.summary import network_sentence

    assert network_sentence(352_712, 29_800, 0.989, 0.987) == (
        "The network is now 11.8 times smaller (353 kB → 29.8 kB) and its accuracy went from 98.9 % to 98.7 %.")
    assert network_sentence(352_712, 10_003, 0.98886, 0.98890).endswith("its accuracy stayed at 98.9 %.")
    assert network_sentence(1000, 800, 0.5, 0.6) == ("The network is now 20 % smaller (1 kB → 800 bytes) and its "
                                                    "accuracy went from 50.0 % to 60.0 %.")
    no_task = network_sentence(4_000_000, 1_000_000)
    assert no_task.startswith("The network is now 4.0 times smaller (4 MB → 1 MB);") and "not measured" in no_task
    assert network_sentence(1000, 1500).startswith("The network got 50 % larger (1 kB → 1.5 kB)")
    assert network_sentence(1000, 1001).startswith("The network is about the same size as before")
    for s in (no_task, network_sentence(10, 3, 0.1, 0.2)):
        assert s.count(". ") == 0 and s.endswith(".")
    with pytest.raises(ValueError):
        network_sentence(0, 10)
