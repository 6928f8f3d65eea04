"""Hostile and odd inputs (issue 17): each ends in a result or a one-line error, promptly, without
allocating beyond what the file can justify; and a short fuzz run over every format."""

import dataclasses
import doctest
import io
import os
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from workbench import cli
from workbench.core import atomic, files
from workbench.core.codecs.learned import LearnedCodec
from workbench.core.container import Container, PayloadKind, pack, unpack
from workbench.core.errors import BitstreamError, ImageError
from workbench.core.images import load_image
from workbench.core.jobs import run
from workbench.core.network import bitstream as bs
from workbench.core.network.checkpoint import CheckpointError, load_checkpoint, same_values, save_checkpoint
from workbench.core.network.compress import compress_network_job, decompress_network

ROOT = Path(__file__).resolve().parents[1]
FUZZ = ROOT / "tests" / "data" / "fuzz"
sys.path.insert(0, str(ROOT / "benchmarks"))
import fuzz_inputs  # noqa: E402


def main(capsys, *args) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# 1 ----------------------------------------------------------------------------------------------

UNUSUAL = (torch.uint16, torch.uint32, torch.uint64, torch.float8_e4m3fn, torch.float8_e5m2,
           torch.float8_e4m3fnuz, torch.float8_e5m2fnuz, torch.complex64)


def test_unusual_dtypes_are_stored_exactly(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    sd = {"w": torch.randn(6, 8, generator=g)}
    for dt in UNUSUAL:
        x = torch.randn(5, 3, generator=g, dtype=torch.complex64) if dt.is_complex else (torch.randn(5, 3, generator=g) * 40).abs()
        sd[str(dt)] = x if dt.is_complex else x.to(dt)
    save_checkpoint(sd, tmp_path / "odd.safetensors")
    rc, out, err = main(capsys, "compress-net", tmp_path / "odd.safetensors", "-o", tmp_path / "odd.wbn")
    assert rc == 0, err
    assert main(capsys, "decompress-net", tmp_path / "odd.wbn", "-o", tmp_path / "back.safetensors")[0] == 0
    back = load_checkpoint(tmp_path / "back.safetensors")
    for dt in UNUSUAL:
        assert same_values(back[str(dt)], sd[str(dt)]), dt
    wide = {"z": torch.randn(4, dtype=torch.complex128), "w": torch.randn(3, 3)}
    res = run(compress_network_job(wide, "uniform", {"bits": 8}))
    assert same_values(decompress_network(res.data)["z"], wide["z"])


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
def test_dtypes_a_wbn_cannot_store_are_refused_before_any_work(tmp_path, capsys):
    torch.save({"w": torch.randn(4, 4), "half_complex": torch.zeros(2, dtype=torch.complex32)}, tmp_path / "c.pt")
    rc, out, err = main(capsys, "compress-net", tmp_path / "c.pt", "-o", tmp_path / "c.wbn")
    assert rc == 2 and "'half_complex' has dtype complex32" in one_line_error(err)
    assert not (tmp_path / "c.wbn").exists()


# 2 ----------------------------------------------------------------------------------------------

def test_checkpoint_whose_zip_inflates_far_beyond_its_size_is_refused(tmp_path):
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(1 << 20)}, buf)                   # 4 MiB of zeros ...
    src, out = zipfile.ZipFile(io.BytesIO(buf.getvalue())), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:    # ... deflated to a few KB
        for info in src.infolist():
            z.writestr(info.filename, src.read(info.filename))
    (tmp_path / "bomb.pt").write_bytes(out.getvalue())
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match="declare 4.0 MiB of data in a .* KiB file"):
            load_checkpoint(tmp_path / "bomb.pt")
        assert tracemalloc.get_traced_memory()[1] < 1 << 20
    finally:
        tracemalloc.stop()


def test_allocator_failures_read_as_not_enough_memory(tmp_path, capsys, monkeypatch):
    save_checkpoint({"w": torch.ones(3, 3)}, tmp_path / "m.pt")

    def no_memory(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 1073741824 bytes")
    monkeypatch.setattr(torch, "load", no_memory)
    rc, _, err = main(capsys, "compress-net", tmp_path / "m.pt", "-o", tmp_path / "m.wbn")
    assert rc == 2 and one_line_error(err) == "error: not enough memory for this input"


# 3 ----------------------------------------------------------------------------------------------

def test_unreadable_files_give_one_line(tmp_path, monkeypatch, capsys):
    save_checkpoint({"w": torch.ones(3, 3)}, tmp_path / "m.pt")

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(files.os, "open", denied)
    rc, _, err = main(capsys, "compress-net", tmp_path / "m.pt")
    assert rc == 2 and one_line_error(err).endswith("cannot read (Permission denied)")
    with pytest.raises(ImageError, match="Permission denied"):
        load_image(FUZZ / "image.png")


# 4 ----------------------------------------------------------------------------------------------

FIFO_SCRIPT = """
import sys
from workbench import cli
fifo, out = sys.argv[1], sys.argv[2]
for args in (["compress", fifo, "-c", "jpeg", "-o", out + "/a.jpg"], ["decompress", fifo, "-o", out + "/a.png"],
             ["compress-net", fifo, "-o", out + "/a.wbn"], ["decompress-net", fifo, "-o", out + "/a.pt"],
             ["compress", "/dev/zero", "-c", "jpeg", "-o", out + "/z.jpg"],
             ["compress-net", "/dev/zero", "-o", out + "/z.wbn"], ["bdrate", fifo, fifo]):
    print(cli.main(args), flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifos_and_devices_are_refused_without_hanging(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", FIFO_SCRIPT, str(fifo), str(tmp_path)], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.stdout.split() == ["2"] * 7, r.stdout + r.stderr
    errors = r.stderr.strip().splitlines()
    assert len(errors) == 7 and all(e.startswith("error: ") for e in errors), r.stderr
    assert all("is a named pipe (FIFO), not a regular file" in e for e in errors[:4] + errors[6:])
    assert all("/dev/zero is a character device, not a regular file" in e for e in errors[4:6])
    assert time.perf_counter() - t0 < 100


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_window_refuses_a_dropped_fifo_and_still_closes(qtbot, tmp_path, monkeypatch):
    from workbench.ui.main_window import MainWindow

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    # Holding a writer end: should a regression open the FIFO, its read waits for this test, not forever.
    writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    errors = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *a: errors.append(text))
    window = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    try:
        window.open_paths([fifo])
        qtbot.waitUntil(lambda: bool(errors), timeout=20_000)
        assert "is a named pipe (FIFO), not a regular file" in errors[0]
        t0 = time.perf_counter()
        window.close()
        assert time.perf_counter() - t0 < 5
    finally:
        os.close(writer)


# 5 ----------------------------------------------------------------------------------------------

def test_non_finite_weights_are_named_before_any_work():
    sd = {"a": torch.randn(4, 4), "b": torch.tensor([[1.0, float("nan"), float("inf")], [0.0, float("-inf"), 2.0]])}
    job = compress_network_job(sd, "uniform", {"bits": 6})
    with pytest.raises(CheckpointError, match=r"tensor 'b' cannot be quantized: it has 1 NaN and 2 infinite"):
        next(job)                                                  # before the first progress event
    huge = {"w": torch.tensor([[1e300, 1.0]], dtype=torch.float64)}
    with pytest.raises(CheckpointError, match="beyond float32"):
        next(compress_network_job(huge, "uniform"))
    res = run(compress_network_job(sd, "uniform", {"bits": 6}, nonfinite="raw"))
    assert [r.mode for r in res.rows] == ["scalar", "raw"]
    assert same_values(decompress_network(res.data)["b"], sd["b"])


# 6 ----------------------------------------------------------------------------------------------

def _network_file(manifest: bytes, streams: list[bytes], **params) -> bytes:
    full = {"format": 1, "tensors": len(streams), "delta": False, "coder": "cabac", **params}
    return pack(Container(PayloadKind.NETWORK, bs.CODEC_ID, quantizer_id="uniform", params=full,
                          streams=[manifest, *streams]))


def _scalar_manifest(shape, rows, step=1.0, flags=0, coder=0) -> bytes:
    return (struct.pack("<IH", 1, 1) + b"w" + struct.pack(f"<BB{len(shape)}I", 1, len(shape), *shape)
            + struct.pack("<BBIBBI", bs.MODE_SCALAR, flags, rows, coder, 0, 1) + struct.pack("<f", step))


def test_declared_shape_beyond_what_the_stream_holds_is_refused_before_allocating():
    stream = bytes(300)
    data = _network_file(_scalar_manifest((1 << 30, 2), 1 << 30), [stream])   # 2^31 values in 300 bytes
    tracemalloc.start()
    try:
        with pytest.raises(BitstreamError, match="declares 2147483648 values, more than its 300-byte stream"):
            decompress_network(data)
        assert tracemalloc.get_traced_memory()[1] < 8 << 20
    finally:
        tracemalloc.stop()


# 7 ----------------------------------------------------------------------------------------------

def test_temporary_files_of_killed_writes_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    old = time.time() - 2 * atomic.STALE_AFTER_S
    stale_pid = tmp_path / f".x.wbn.{dead.pid}-k3j2l1.part"
    stale_old = tmp_path / ".x.wbn.abcd1234.part"                  # a released version's name: no pid
    live = tmp_path / f".x.wbn.{os.getppid()}-zz11yy.part"          # a writer still running
    fresh = tmp_path / ".x.wbn.efgh5678.part"
    other = tmp_path / ".y.wbn.abcd1234.part"
    for p in (stale_pid, stale_old, live, fresh, other):
        p.write_bytes(b"partial")
    for p in (stale_pid, stale_old, live, other):
        os.utime(p, (old, old))
    atomic.write_bytes_atomic(tmp_path / "x.wbn", b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["x.wbn", live.name, fresh.name, other.name])


def test_a_kill_between_the_wbn_and_its_summary_leaves_no_old_summary(tmp_path, capsys, monkeypatch):
    save_checkpoint({"w": torch.randn(4, 4)}, tmp_path / "m.safetensors")
    assert main(capsys, "compress-net", tmp_path / "m.safetensors", "-o", tmp_path / "m.wbn", "--bits", "8")[0] == 0
    first = (tmp_path / "m.wbn").read_bytes()
    real = atomic.write_bytes_atomic

    def killed_at_the_summary(path, data, **kw):
        if str(path).endswith(".json"):
            raise KeyboardInterrupt                                 # as a kill would stop it here
        return real(path, data, **kw)
    monkeypatch.setattr(atomic, "write_bytes_atomic", killed_at_the_summary)
    assert main(capsys, "compress-net", tmp_path / "m.safetensors", "-o", tmp_path / "m.wbn", "--bits", "3")[0] == 130
    assert (tmp_path / "m.wbn").read_bytes() != first and not (tmp_path / "m.wbn.json").exists()


# 8 ----------------------------------------------------------------------------------------------

def test_messages_say_what_a_file_is(tmp_path, capsys):
    (tmp_path / "random.pt").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (tmp_path / "photo.pt").write_bytes((FUZZ / "image.png").read_bytes())
    for name, words in (("random.pt", "its bytes match no known format"), ("photo.pt", "it is a PNG image")):
        rc, _, err = main(capsys, "compress-net", tmp_path / name)
        line = one_line_error(err)
        assert rc == 2 and words in line and "pickl" not in line and "code" not in line, line
    wbn = FUZZ / "net-uniform-cabac.wbn"
    rc, _, err = main(capsys, "decompress", wbn, "-o", tmp_path / "x.png")
    assert rc == 2 and "compressed network (.wbn), not an image" in one_line_error(err) and "decompress-net" in err
    with pytest.raises(ImageError, match=r"compressed network \(\.wbn\), not an image"):
        load_image(wbn)


class _Evil:
    def __reduce__(self):
        return (os.system, ("true",))


def test_code_in_a_pickle_is_named_in_full(tmp_path):
    import pickle

    torch.save({"w": torch.ones(2), "x": _Evil()}, tmp_path / "torch.pt")
    (tmp_path / "plain.pt").write_bytes(pickle.dumps({"x": _Evil()}, protocol=4))   # refused before any name
    for name in ("torch.pt", "plain.pt"):
        with pytest.raises(CheckpointError, match=rf"refers to code \({os.system.__module__}\.system\), so loading"):
            load_checkpoint(tmp_path / name)


# 10 ---------------------------------------------------------------------------------------------

def test_empty_checkpoints_are_refused_alike(tmp_path):
    save_checkpoint({}, tmp_path / "e.safetensors")
    torch.save({}, tmp_path / "e.pt")
    for name in ("e.safetensors", "e.pt"):
        with pytest.raises(CheckpointError, match="holds no tensors"):
            load_checkpoint(tmp_path / name)


# 11 ---------------------------------------------------------------------------------------------

def test_strict_wbn_parsing_refuses_what_the_writer_never_produces():
    lv = np.array([[1, 0, -2, 3]])
    from workbench.core.network import cabac
    from workbench.core.trellis import machine
    levels = cabac.encode_levels(lv, machine(0))
    good = _network_file(_scalar_manifest((1, 4), 1), [levels])
    assert decompress_network(good)["w"].tolist() == [[1.0, 0.0, -2.0, 3.0]]
    c = unpack(good)
    cases = {
        "left over": _network_file(_scalar_manifest((1, 4), 1), [levels + b"\x00"]),
        "not a positive number": _network_file(_scalar_manifest((1, 4), 1, step=0.0), [levels]),
        "flags 0x02": _network_file(_scalar_manifest((1, 4), 1, flags=2), [levels]),
        "flags 0x01": _network_file(_scalar_manifest((1, 4), 1, flags=1), [levels]),          # delta in a non-delta file
        "names a base": pack(dataclasses.replace(c, model_hash=b"\x01" * 32)),
        "unknown coder 'zstd'": _network_file(_scalar_manifest((1, 4), 1), [levels], coder="zstd"),
        "unknown network quantizer": pack(dataclasses.replace(c, quantizer_id="mystery")),
    }
    for words, data in cases.items():
        with pytest.raises(BitstreamError, match=words):
            decompress_network(data)


def test_files_written_before_stay_readable():
    for path in sorted(FUZZ.glob("*.wbn")):
        base = load_checkpoint(FUZZ / "base.safetensors") if "delta" in path.name else None
        assert decompress_network(path.read_bytes(), base)


# 12 ---------------------------------------------------------------------------------------------

def test_the_report_says_larger_when_the_output_grew():
    assert cli._size_change(580, 200) == "190.0 % larger than the input file"
    assert cli._size_change(50, 200) == "75.0 % smaller than the input file"


def test_a_read_only_destination_is_refused_before_the_work(tmp_path, capsys, monkeypatch):
    save_checkpoint({"w": torch.randn(4, 4)}, tmp_path / "m.safetensors")
    monkeypatch.setattr(atomic.os, "access", lambda *a, **k: False)
    monkeypatch.setattr("workbench.core.network.compress.compress_network_job",
                        lambda *a, **k: pytest.fail("compressed before checking the destination"))
    rc, _, err = main(capsys, "compress-net", tmp_path / "m.safetensors", "-o", tmp_path / "m.wbn")
    assert rc == 2 and "no permission to write in" in one_line_error(err)
    rc, _, err = main(capsys, "compress", FUZZ / "image.png", "-c", "jpeg", "-o", tmp_path / "x.jpg")
    assert rc == 2 and "no permission to write in" in one_line_error(err)


def test_learned_codec_refuses_an_image_padding_would_multiply():
    codec = LearnedCodec()
    with pytest.raises(ImageError, match=r"1000 x 1 image would be coded as"):
        codec.encode(np.zeros((1, 1000, 3), np.uint8), codec.options())


# fuzzing ----------------------------------------------------------------------------------------

def test_files_module_examples():
    assert doctest.testmod(files).failed == 0


def test_mutated_files_of_every_format_give_results_or_one_line_errors():
    """A short run of benchmarks/fuzz_inputs.py (the long one is recorded in docs/benchmarks/fuzz.md)."""
    records = fuzz_inputs.run_cases(seed=17, start=0, stop=400, timeout=10.0)
    bad = [r for r in records if r["outcome"] not in fuzz_inputs.PASSING]
    assert not bad, bad[:5]
    assert {r["seed_file"] for r in records} == {p.name for p in fuzz_inputs.seed_files()}


# 9 ----------------------------------------------------------------------------------------------

def test_a_wbi_naming_one_model_with_anothers_hash_is_refused_in_any_process():
    """The window loads every shipped model; a file must not decode there (labelled with the wrong
    name) when a fresh CLI process refuses it."""
    from workbench.core.codecs import decode_any
    from workbench.core.learned.weights import load_codec_model

    c = unpack((ROOT / "tests" / "data" / "released" / "dct-hyperprior-msssim-q3-round.wbi").read_bytes())
    renamed = pack(dataclasses.replace(c, params={**c.params, "model": "dct-hyperprior-mse"}))
    load_codec_model("dct-hyperprior-msssim")
    load_codec_model("dct-hyperprior-mse")
    with pytest.raises(BitstreamError, match="model hash mismatch"):
        decode_any(renamed)
