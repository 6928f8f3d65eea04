"""The command line as a user drives it: real processes, real files, one-line errors."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DATA = Path(__file__).parent / "data"
IMAGE = DATA / "chapel_192x176.png"


def wb(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def assert_one_line_error(r):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr


def test_codecs_lists_every_codec_with_availability():
    r = wb("codecs")
    assert r.returncode == 0, r.stderr
    for name in ("jpeg", "webp", "jpeg2000", "hevc", "avif", "jxl", "bpg"):
        assert any(line.startswith(name + " ") for line in r.stdout.splitlines()), name
    if shutil.which("bpgenc") is None:
        assert "bpgenc not found" in r.stdout


def test_compress_then_decompress_whatever_the_extension(tmp_path):
    out, rec = tmp_path / "o.bin", tmp_path / "r.png"
    r = wb("compress", IMAGE, "-c", "jpeg", "-q", "60", "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["bytes"] == out.stat().st_size
    assert report["bpp"] == pytest.approx(8 * out.stat().st_size / (192 * 176))
    assert 25 < report["psnr"] < 60 and 0.8 < report["ms_ssim"] <= 1
    r = wb("decompress", out, "-o", rec)
    assert r.returncode == 0, r.stderr
    decoded = np.asarray(Image.open(rec))
    assert decoded.shape == (176, 192, 3)


def test_compress_prints_the_human_report(tmp_path):
    r = wb("compress", IMAGE, "-c", "webp", "-q", "50", "-o", tmp_path / "x.webp")
    assert r.returncode == 0, r.stderr
    assert "bpp" in r.stdout and "PSNR" in r.stdout and "MS-SSIM" in r.stdout and "encode" in r.stdout


def test_codec_options_become_flags(tmp_path):
    r = wb("compress", IMAGE, "-c", "jpeg", "--help")
    assert r.returncode == 0 and "--subsampling" in r.stdout
    r = wb("compress", IMAGE, "-c", "jpeg", "-q", "50", "--no-such-flag", "1", "-o", tmp_path / "x.jpg")
    assert_one_line_error(r)
    r = wb("compress", IMAGE, "-c", "jpeg", "-q", "500", "-o", tmp_path / "x.jpg")
    assert_one_line_error(r)
    assert "maximum" in r.stderr


@pytest.mark.parametrize("kind", ["truncated", "corrupt", "foreign", "empty", "missing", "unknown-container"])
def test_decompress_bad_files_give_one_line(tmp_path, kind):
    good = tmp_path / "good.jpg"
    assert wb("compress", IMAGE, "-c", "jpeg", "-q", "50", "-o", good).returncode == 0
    data = good.read_bytes()
    bad = tmp_path / "bad.bin"
    if kind == "truncated":
        bad.write_bytes(data[: len(data) // 3])
    elif kind == "corrupt":
        b = bytearray(data)
        b[len(b) // 2: len(b) // 2 + 200] = bytes(200)
        b[-2:] = b"\x00\x00"
        bad.write_bytes(bytes(b))
    elif kind == "foreign":
        bad.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 4)
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "unknown-container":
        bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(64))
    r = wb("decompress", bad, "-o", tmp_path / "out.png")
    if kind == "corrupt" and r.returncode == 0:
        pytest.skip("libjpeg conceals this damage instead of failing; the decode is still safe")
    assert_one_line_error(r)
    assert not (tmp_path / "out.png").exists()


def test_unknown_codec_and_bad_input(tmp_path):
    assert_one_line_error(wb("compress", IMAGE, "-c", "gif", "-q", "5", "-o", tmp_path / "x"))
    text = tmp_path / "notes.png"
    text.write_text("not really a png")
    assert_one_line_error(wb("compress", text, "-c", "jpeg", "-q", "5", "-o", tmp_path / "x.jpg"))


def test_never_overwrites_the_input(tmp_path):
    src = tmp_path / "in.jpg"
    Image.open(IMAGE).save(src, quality=90)
    before = src.read_bytes()
    r = wb("compress", src, "-c", "jpeg", "-q", "20", "-o", src)
    assert_one_line_error(r)
    assert "overwrite" in r.stderr and src.read_bytes() == before


def test_bench_writes_results_and_bd_table(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(IMAGE, folder / "a.png")
    Image.open(IMAGE).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "b.png")
    out = tmp_path / "out"
    r = wb("bench", folder, "--codecs", "jpeg,webp", "--anchor", "jpeg", "--out", out,
           "--qualities", "jpeg=20,50,80", "--qualities", "webp=20,50,80", "--jobs", "2")
    assert r.returncode == 0, r.stderr
    assert "BD-rate vs jpeg" in r.stdout and "12 encodes" in r.stdout and "2 process(es)" in r.stdout
    res = json.loads((out / "webp.json").read_text())
    assert res["name"] == "webp" and len(res["results"]["bpp"]) == 3
    assert set(res["results"]) >= {"bpp", "psnr-rgb", "ms-ssim-rgb"}
    assert res["results"]["bpp"] == sorted(res["results"]["bpp"])
    for f in ("per_image.csv", "curves.csv", "bdrate.md", "rd.png", "per_image.json"):
        assert (out / f).stat().st_size > 0
    per_image = json.loads((out / "per_image.json").read_text())
    assert len(per_image["points"]) == 2 * 2 * 3
    assert len((out / "points.jsonl").read_text().splitlines()) == 12

    # The same command again measures nothing; a published curve joins the table, marked.
    ref = tmp_path / "published-jpeg.json"
    ref.write_text(json.dumps({"name": "JPEG", "results": {"bpp": [0.5, 1.0, 2.0], "psnr-rgb": [27, 31, 35]}}))
    r = wb("bench", folder, "--codecs", "jpeg,webp", "--out", out, "--qualities", "jpeg=20,50,80",
           "--qualities", "webp=20,50,80", "--jobs", "1", "--reference", ref, "--interval", "common")
    assert r.returncode == 0, r.stderr
    assert "0 encodes" in r.stdout and "12 point(s) measured before were reused" in r.stdout
    assert "| published-jpeg (reference, not measured in this run) |" in r.stdout
    assert len((out / "points.jsonl").read_text().splitlines()) == 12
    rows = json.loads((out / "bdrate.json").read_text())
    assert [row["measured"] for row in rows] == [True, False]
    assert rows[0]["psnr_interval"] == rows[1]["psnr_interval"]        # --interval common


def test_bench_of_one_codec_prints_no_bd_table(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(IMAGE, folder / "a.png")
    r = wb("bench", folder, "--codecs", "jpeg", "--qualities", "jpeg=30,60", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "BD-rate" not in r.stdout and not (tmp_path / "out" / "bdrate.md").exists()


@pytest.mark.parametrize("args, message", [
    (["--qualities", "jpg=50"], "jpg, which is not a codec of this run"),
    (["--qualities", "jpeg=150"], "above the maximum"),
    (["--qualities", "jpeg="], "expected CODEC=Q1,Q2"),
    (["--jobs", "0"], "at least 1"),
])
def test_bench_refuses_bad_sweeps_before_measuring(tmp_path, args, message):
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(IMAGE, folder / "a.png")
    r = wb("bench", folder, "--codecs", "jpeg,webp", "--out", tmp_path / "out", *args)
    assert_one_line_error(r)
    assert message in r.stderr and not (tmp_path / "out").exists()


def test_bdrate_between_results_files(tmp_path):
    def results(name, bpp, psnr):
        return {"name": name, "results": {"bpp": bpp, "psnr-rgb": psnr, "ms-ssim-rgb": [0.9, 0.95, 0.97, 0.98]}}
    (tmp_path / "a.json").write_text(json.dumps(results("a", [0.2, 0.4, 0.8, 1.6], [28, 31, 34, 37])))
    (tmp_path / "b.json").write_text(json.dumps(results("b", [0.1, 0.2, 0.4, 0.8], [28, 31, 34, 37])))
    r = wb("bdrate", tmp_path / "a.json", tmp_path / "b.json")
    assert r.returncode == 0, r.stderr
    assert "| b | -50.0 % | 28.00..37.00 dB | -50.0 % | 10.00..16.99 dB |" in r.stdout
    assert "rate ratio" not in r.stdout
    r = wb("bdrate", tmp_path / "a.json", tmp_path / "b.json", "--per-point")
    assert "| 0.200 | 31.00 | 0.500 | 13.01 | 0.500 |" in r.stdout      # half a's rate at every quality
    assert "| 0.100 | 28.00 | 0.500 | 10.00 | 0.500 |" in r.stdout
    (tmp_path / "c.json").write_text("{}")
    assert_one_line_error(wb("bdrate", tmp_path / "a.json", tmp_path / "c.json"))
