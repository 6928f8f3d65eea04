"""BD tables that cannot mislead: rows labelled by file, each row's interval, a common interval, warnings."""

import json
import math

import pytest

from workbench.core.bdrate import bd_rate
from workbench.core.bdtable import (ResultsCurve, bd_rows, format_bd_table, format_ratio_table, load_results_json,
                                     unique_labels)

ANCHOR = ResultsCurve("anchor", (0.2, 0.4, 0.8, 1.6), (28.0, 31.0, 34.0, 37.0), None)


def _write(path, name, results, **extra):
    path.write_text(json.dumps({"name": name, "results": results, **extra}))
    return path


def test_files_of_one_architecture_are_told_apart_by_file_and_trained_metric(tmp_path):
    res = {"bpp": [0.1, 0.2], "psnr-rgb": [28, 31]}
    # CompressAI writes the same name into its MSE and MS-SSIM results of one model.
    mse = load_results_json(_write(tmp_path / "compressai-mbt2018_mse_cpu.json", "mbt2018", res))
    ms = load_results_json(_write(tmp_path / "compressai-mbt2018_ms-ssim_cpu.json", "mbt2018", res))
    assert (mse.name, ms.name) == ("compressai-mbt2018_mse_cpu", "compressai-mbt2018_ms-ssim_cpu")
    # The metric is added when the description (or the meta block) names it and the file name does not.
    said = load_results_json(_write(tmp_path / "paper-x.json", "x", res, description="official results (mse)"))
    meta = load_results_json(_write(tmp_path / "paper-y.json", "y", res, meta={"opt_metric": "ms-ssim-rgb"}))
    silent = load_results_json(_write(tmp_path / "jpeg.json", "JPEG", res, description="JPEG. Pillow 7"))
    assert (said.name, meta.name, silent.name) == ("paper-x (MSE-trained)", "paper-y (MS-SSIM-trained)", "jpeg")


def test_published_files_with_only_ms_ssim_in_db_load(tmp_path):
    c = load_results_json(_write(tmp_path / "p.json", "p", {"bpp": [0.1, 0.3], "ms-ssim-db-rgb": [11.5, 15.0]}))
    assert c.psnr is None and c.ms_ssim_db == (11.5, 15.0) and not c.measured
    c = load_results_json(_write(tmp_path / "q.json", "q", {"bpp": [0.1, 0.3], "ms-ssim-rgb": [0.9, 0.99]}))
    assert c.ms_ssim_db == pytest.approx((10.0, 20.0))


def test_repeated_labels_take_their_folder(tmp_path):
    (tmp_path / "run1").mkdir()
    (tmp_path / "run2").mkdir()
    res = {"bpp": [0.1, 0.2], "psnr-rgb": [28, 31]}
    a = load_results_json(_write(tmp_path / "run1" / "jpeg.json", "jpeg", res))
    b = load_results_json(_write(tmp_path / "run2" / "jpeg.json", "jpeg", res))
    c = load_results_json(_write(tmp_path / "run2" / "webp.json", "webp", res))
    assert [x.name for x in unique_labels([a, b, c])] == ["run1/jpeg", "run2/jpeg", "webp"]
    assert [x.name for x in unique_labels([c], taken=["webp"])] == ["run2/webp"]


def test_each_row_carries_its_interval_and_a_common_one_can_flip_a_ranking():
    # A is 30 % cheaper than the anchor at low quality and 10 % at high; B is 20 % cheaper, but
    # only reaches the upper half of the anchor's qualities.
    psnr = ANCHOR.psnr
    a = ResultsCurve("a", tuple(r * f for r, f in zip(ANCHOR.bpp, (0.7, 0.7, 0.9, 0.9))), psnr, None)
    b = ResultsCurve("b", tuple(r * 0.8 for r in ANCHOR.bpp[2:]), psnr[2:], None)
    pair = {r["codec"]: r for r in bd_rows(ANCHOR, [a, b])}
    assert pair["a"]["psnr_interval"] == [28.0, 37.0] and pair["b"]["psnr_interval"] == [34.0, 37.0]
    assert pair["a"]["psnr"] < pair["b"]["psnr"]               # a looks better, over a wider interval
    common = {r["codec"]: r for r in bd_rows(ANCHOR, [a, b], "common")}
    assert common["a"]["psnr_interval"] == common["b"]["psnr_interval"] == [34.0, 37.0]
    assert common["b"]["psnr"] < common["a"]["psnr"]           # over the same qualities, b is better
    assert common["a"]["psnr"] == pytest.approx(
        bd_rate(ANCHOR.bpp, psnr, a.bpp, psnr, interval=(34.0, 37.0)), abs=1e-12)
    # b covers a third of the anchor's range: its row says so, a's pair row does not.
    assert pair["a"]["notes"] == []
    assert pair["b"]["notes"] == ["PSNR: the interval 34.00..37.00 dB covers under half of anchor (28.00..37.00 dB)"]


def test_table_prints_intervals_reference_marks_and_warnings():
    b = ResultsCurve("b", (0.9, 1.2), (34.0, 37.0), None, measured=False, source="b.json")
    rows = bd_rows(ANCHOR, [b])
    text = format_bd_table(rows, "anchor")
    assert "| b (reference, not measured in this run) | " in text
    assert "| 34.00..37.00 dB | n/a | n/a |" in text
    assert "warning: b vs anchor: PSNR: the interval 34.00..37.00 dB covers under half" in text
    assert format_bd_table([], "anchor") == ""


def test_curves_that_do_not_overlap_give_nan_and_say_why():
    far = ResultsCurve("far", (2.0, 3.0), (40.0, 42.0), None)
    row, = bd_rows(ANCHOR, [far])
    assert math.isnan(row["psnr"]) and row["psnr_interval"] is None
    assert row["notes"] == ["PSNR: the curves do not overlap"]
    row, = bd_rows(ANCHOR, [far], "common")
    assert row["notes"] == ["PSNR: no quality interval is shared by all curves"]


def test_the_per_point_table_gives_each_points_rate_ratio_and_na_where_there_is_none():
    """A PSNR-only anchor has no MS-SSIM to compare with, and a point above its quality range no ratio."""
    test = ResultsCurve("t", (0.1, 0.3, 2.0), (28.0, 32.0, 40.0), (10.0, 12.0, 20.0))
    row = bd_rows(ANCHOR, [test])[0]
    assert row["psnr_ratios"][0] == 0.5 and row["ms_ssim_db_ratios"] is None
    lines = format_ratio_table(row, test).splitlines()
    assert lines[0] == "t: rate over anchor's at the same quality, per point"
    assert lines[4] == "| 0.100 | 28.00 | 0.500 | 10.00 | n/a |"
    assert lines[5].startswith("| 0.300 | 32.00 | 0.") and lines[5].endswith("| 12.00 | n/a |")
    assert lines[6] == "| 2.000 | 40.00 | n/a | 20.00 | n/a |"
