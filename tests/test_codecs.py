"""Classical codec adapters: round trips, rate control, sniffing, error mapping, availability."""

from __future__ import annotations

import doctest
import os
import shutil
import stat
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workbench.core.codecs import all_codecs, codec_for_bytes, decode_any, describe_codecs
from workbench.core.errors import BitstreamError, OptionError
from workbench.core.options import specs

CLASSICAL = ("jpeg", "webp", "jpeg2000", "avif", "hevc", "jxl", "bpg")
DATA = Path(__file__).parent / "data"
BPG_REASON = "bpgenc not found on PATH; install libbpg or use the hevc codec (same HEVC intra coding via x265)"

# Stand-ins for bpgenc/bpgdec: they wrap/unwrap the PNG behind the BPG magic, so the adapter's file
# handling, argument passing and error mapping are tested without libbpg. argv is logged for checks.
FAKE_BPGENC = """\
    import sys
    args = sys.argv[1:]
    open(sys.argv[0] + ".log", "a").write(" ".join(args) + "\\n")
    out = args[args.index("-o") + 1]
    open(out, "wb").write(b"BPG\\xfb" + open(args[-1], "rb").read())
"""
FAKE_BPGDEC = """\
    import sys
    args = sys.argv[1:]
    data = open(args[-1], "rb").read()
    if not data.startswith(b"BPG\\xfb"):
        sys.stderr.write("Could not decode image\\n")
        sys.exit(1)
    open(args[args.index("-o") + 1], "wb").write(data[4:])
"""


@pytest.fixture(scope="session")
def fake_bpg_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("fakebpg")
    for name, body in (("bpgenc", FAKE_BPGENC), ("bpgdec", FAKE_BPGDEC)):
        p = d / name
        p.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
        p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return d


@pytest.fixture(autouse=True)
def bpg_tools(request, monkeypatch):
    """Tests that touch `bpg` get the fake tools unless the real ones are installed."""
    if shutil.which("bpgenc") is None or shutil.which("bpgdec") is None:
        fake = request.getfixturevalue("fake_bpg_dir")
        monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")


def _codec_classes():
    by_name = {cls.name: cls for cls in all_codecs()}
    return [by_name[n] for n in CLASSICAL]


def _available(names=CLASSICAL, *, fake_bpg=True):
    """Codecs to parametrize over; `fake_bpg` admits bpg run through the stand-in tools."""
    out = []
    for cls in _codec_classes():
        if cls.name not in names:
            continue
        ok, why = cls.availability()
        if cls.name == "bpg" and not ok and fake_bpg:
            ok, why = sys.platform != "win32", "the stand-in tools need POSIX"
        out.append(pytest.param(cls, id=cls.name, marks=() if ok else pytest.mark.skip(reason=why)))
    return out


def synthetic(h=48, w=64, seed=0) -> np.ndarray:
    """A smooth gradient plus mild noise: compressible, yet every codec has to spend bits on it."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([255 * x / max(w - 1, 1), 255 * y / max(h - 1, 1), 128 + 60 * np.sin((x + y) / 6)], axis=2)
    noise = np.random.default_rng(seed).normal(0, 4, size=(h, w, 3))
    return np.ascontiguousarray(np.clip(base + noise, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def chapel() -> np.ndarray:
    return np.ascontiguousarray(np.asarray(Image.open(DATA / "chapel_192x176.png").convert("RGB")))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def mid(cls):
    return cls.sweep[len(cls.sweep) // 2]


_outputs: dict[str, bytes] = {}


def encoded(cls) -> bytes:
    """One mid-quality encoding of the synthetic image per codec, shared by the sniffing/error tests."""
    if cls.name not in _outputs:
        _outputs[cls.name] = cls().encode(synthetic(), cls.options(quality=mid(cls)))
    return _outputs[cls.name]


# --- declarations -------------------------------------------------------------------------------

def test_describe_codecs_lists_all_classical_codecs_and_bpg_reason(monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda cmd, *a, **k: None if cmd.startswith("bpg") else real_which(cmd))
    infos = {i.name: i for i in describe_codecs()}
    assert set(CLASSICAL) <= set(infos)
    assert not infos["bpg"].available and infos["bpg"].reason == BPG_REASON
    for name in CLASSICAL[:-1]:
        assert infos[name].available or infos[name].reason, name


def test_bpg_available_when_both_tools_are_on_path(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda cmd, *a, **k: f"/opt/bin/{cmd}")
    infos = {i.name: i for i in describe_codecs()}
    assert infos["bpg"].available and infos["bpg"].reason == ""
    monkeypatch.setattr(shutil, "which", lambda cmd, *a, **k: None if cmd == "bpgdec" else f"/opt/bin/{cmd}")
    assert [i for i in describe_codecs() if i.name == "bpg"][0].reason.startswith("bpgdec not found on PATH")


@pytest.mark.parametrize("cls", _codec_classes(), ids=CLASSICAL)
def test_declarations(cls):
    q = specs(cls.Options)[0]
    assert q.name == "quality" and q.help and q.minimum is not None and q.maximum is not None
    assert cls.extension.startswith(".") and cls.label and cls.quality_help
    assert len(cls.sweep) >= 6 and all(q.minimum <= v <= q.maximum for v in cls.sweep)
    assert len(set(cls.sweep)) == len(cls.sweep)
    cls.options()  # defaults pass their own validation


@pytest.mark.parametrize("cls", _codec_classes(), ids=CLASSICAL)
def test_quality_out_of_range_is_an_option_error(cls):
    q = specs(cls.Options)[0]
    with pytest.raises(OptionError, match="quality"):
        cls.options(quality=q.maximum + 1)
    with pytest.raises(OptionError, match="quality"):
        cls.options(quality=q.minimum - 1)
    for s in specs(cls.Options):
        if s.choices:
            with pytest.raises(OptionError, match=s.name):
                cls.options(**{s.name: "4:2:2-nonsense"})


# --- coding -------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", _available())
def test_round_trip_and_psnr(cls, chapel):
    codec = cls()
    for img in (synthetic(), chapel):
        out = codec.decode(codec.encode(img, cls.options(quality=mid(cls))))
        assert out.shape == img.shape and out.dtype == np.uint8 and out.flags.c_contiguous
    assert psnr(chapel, out) > 25, f"{cls.name} at quality {mid(cls)}: {psnr(chapel, out):.2f} dB"


@pytest.mark.parametrize("cls", _available(fake_bpg=False))
def test_rate_grows_along_the_sweep(cls):
    img = synthetic()
    qs = (cls.sweep[0], cls.sweep[len(cls.sweep) // 2], cls.sweep[-1])
    sizes = [len(cls().encode(img, cls.options(quality=q))) for q in qs]
    assert sizes[0] < sizes[1] < sizes[2], dict(zip(qs, sizes))


@pytest.mark.parametrize("cls", _available())
def test_odd_and_tiny_sizes(cls):
    choices = [s for s in specs(cls.Options) if s.name == "subsampling"]
    variants = [{}] + [{"subsampling": c} for s in choices for c in s.choices]
    for h, w in ((17, 33), (1, 1)):
        img = synthetic(h, w, seed=h)
        for extra in variants:
            out = cls().decode(cls().encode(img, cls.options(quality=mid(cls), **extra)))
            assert out.shape == (h, w, 3), (extra, out.shape)


@pytest.mark.parametrize("cls", _available(("hevc", "jpeg")))
def test_encoding_is_repeatable(cls):
    # pillow-heif mutates the enc_params it is given; a shared dict would change the second encoding.
    img, opts = synthetic(), cls.options(quality=mid(cls))
    assert cls().encode(img, opts) == cls().encode(img, opts)


# --- sniffing and bad data ----------------------------------------------------------------------

@pytest.mark.parametrize("cls", _available())
def test_sniffing_claims_only_its_own_output(cls):
    data = encoded(cls)
    assert codec_for_bytes(data) is cls
    rgb, found = decode_any(data)
    assert found is cls and rgb.shape == (48, 64, 3)
    for other in all_codecs():
        if other is not cls:
            assert not other.sniff(data[:64]), f"{other.name} claims {cls.name} output"


def test_heif_brands_route_av1_to_avif_and_hevc_to_hevc():
    by_name = {cls.name: cls for cls in all_codecs()}

    def ftyp(major: bytes, *compatible: bytes) -> bytes:
        body = major + b"\0\0\0\0" + b"".join(compatible)
        return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\0" * 16

    assert codec_for_bytes(ftyp(b"mif1", b"mif1", b"miaf", b"avif")) is by_name["avif"]
    assert codec_for_bytes(ftyp(b"avis", b"msf1")) is by_name["avif"]
    assert codec_for_bytes(ftyp(b"mif1", b"mif1", b"heic")) is by_name["hevc"]
    assert codec_for_bytes(ftyp(b"heix", b"mif1")) is by_name["hevc"]
    with pytest.raises(BitstreamError):
        codec_for_bytes(ftyp(b"isom", b"mp41"))


@pytest.mark.parametrize("cls", _available())
def test_bad_data_is_a_bitstream_error(cls):
    data = encoded(cls)
    name = {"jpeg": "JPEG", "webp": "WebP", "jpeg2000": "JPEG 2000", "avif": "AVIF", "hevc": "HEVC",
            "jxl": "JPEG XL", "bpg": "BPG"}[cls.name]
    for bad in (data[: len(data) // 2], b"garbage!" * 16, data[:64] + bytes(64), b""):
        with pytest.raises(BitstreamError) as err:
            cls().decode(bad)
        msg = str(err.value)
        assert "\n" not in msg and f"corrupt or truncated {name}" in msg, msg


def test_bpg_passes_compressai_arguments(fake_bpg_dir):
    if shutil.which("bpgenc") != str(fake_bpg_dir / "bpgenc"):
        pytest.skip("real bpgenc installed; argument log only exists for the fake")
    cls = {c.name: c for c in all_codecs()}["bpg"]
    log = fake_bpg_dir / "bpgenc.log"
    log.unlink(missing_ok=True)
    cls().encode(synthetic(), cls.options(quality=37, subsampling="4:2:0"))
    args = log.read_text().split()
    assert args[args.index("-q") + 1] == "37" and args[args.index("-f") + 1] == "420"
    assert args[args.index("-e") + 1] == "x265"


# --- documentation ------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", _available())
def test_docstring_example_runs(cls):
    module = sys.modules[cls.__module__]
    tests = [t for t in doctest.DocTestFinder(recurse=False).find(cls, globs=dict(vars(module))) if t.examples]
    assert tests, f"{cls.__name__} docstring has no example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for t in tests:
        runner.run(t)
    assert runner.failures == 0
