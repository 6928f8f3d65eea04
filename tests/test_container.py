import doctest
import os
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

import workbench.core.container as container
from workbench.core.container import (
    MAGIC,
    Container,
    PayloadKind,
    pack,
    read,
    sniff,
    unpack,
    write,
)
from workbench.core.errors import BitstreamError, OutputError


def _image(**overrides) -> Container:
    fields = dict(
        kind=PayloadKind.IMAGE,
        codec_id="hyperprior-v1",
        model_hash=bytes(range(32)),
        quantizer_id="uniform",
        params={"quality": 3, "lambda": 0.0067, "name": "été", "grid": [0.11, 1], "bias": None, "yuv": True},
        shapes=[(176, 192, 3), (192, 11, 12)],
        streams=[b"\x01\x02\x03", b"", bytes(range(40))],
    )
    return Container(**(fields | overrides))


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def _patched(data: bytes, offset: int, new: bytes) -> bytes:
    body = data[:-4]
    return _with_crc(body[:offset] + new + body[offset + len(new) :])


def test_docstring_examples_run():
    result = doctest.testmod(container)
    assert result.attempted >= 2 and result.failed == 0


def test_round_trip_image_and_network():
    network = Container(PayloadKind.NETWORK, "resnet-prune", shapes=[(64, 3, 3, 3)] * 64, streams=[b"x"] * 4096)
    for c in (_image(), network):
        data = pack(c)
        assert data.startswith(MAGIC) and sniff(data)
        assert unpack(data) == c
    assert _image().extension == ".wbi"
    assert Container(2, "n").extension == ".wbn"
    minimal = Container(2, "n")
    assert unpack(pack(minimal)) == minimal and minimal.params == {} and minimal.model_hash == bytes(32)


def test_layout_is_little_endian_and_documented():
    data = pack(_image())
    assert data[4:8] == b"\x01\x00\x01\x00"  # version 1, kind image, flags 0
    assert data[8] == len("hyperprior-v1")
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])


def test_params_are_canonical():
    a = pack(_image(params={"b": 1, "a": [1, 2.5]}))
    b = pack(_image(params={"a": (1, 2.5), "b": 1}))
    assert a == b and b'{"a":[1,2.5],"b":1}' in a


def test_every_truncation_is_rejected():
    data = pack(_image())
    for cut in range(len(data)):
        with pytest.raises(BitstreamError) as err:
            unpack(data[:cut])
        if cut >= len(MAGIC):
            assert "truncated" in str(err.value) or "checksum" in str(err.value)
    with pytest.raises(BitstreamError, match="truncated"):
        unpack(data[:-1])


def test_every_single_byte_change_is_rejected():
    data = pack(_image())
    for i in range(len(data)):
        for delta in (0x01, 0x80, 0xFF):
            damaged = bytearray(data)
            damaged[i] ^= delta
            with pytest.raises(BitstreamError):
                unpack(bytes(damaged))
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0x10
    with pytest.raises(BitstreamError, match=r"corrupted \(checksum mismatch\)"):
        unpack(bytes(damaged))


def test_mutations_with_valid_checksum_raise_only_bitstream_error():
    data = pack(_image())
    rng = np.random.default_rng(0)
    for _ in range(3000):
        body = bytearray(data[:-4])
        for _ in range(rng.integers(1, 4)):
            body[rng.integers(4, 120)] = rng.integers(0, 256)
        try:
            unpack(_with_crc(bytes(body)))
        except BitstreamError:
            pass


@pytest.mark.parametrize(
    "blob, message",
    [
        (b"", "not a workbench file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(40), "not a workbench file"),
        (bytes(np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8)), "not a workbench file"),
        (b"WB", "truncated"),
        (MAGIC + b"\x01\x00", "truncated"),
    ],
)
def test_foreign_data_is_rejected(blob, message):
    with pytest.raises(BitstreamError, match=message):
        unpack(blob)
    assert sniff(blob) == blob.startswith(MAGIC)


def test_header_fields_are_checked_after_the_checksum():
    data = pack(_image())
    with pytest.raises(BitstreamError, match="newer format version 2"):
        unpack(_patched(data, 4, b"\x02\x00"))
    with pytest.raises(BitstreamError, match="unknown payload kind 7"):
        unpack(_patched(data, 6, b"\x07"))
    with pytest.raises(BitstreamError, match="flags"):
        unpack(_patched(data, 7, b"\x01"))
    with pytest.raises(BitstreamError, match="not ASCII"):
        unpack(_patched(data, 9, b"\xe9"))
    with pytest.raises(BitstreamError, match="unexpected bytes"):
        unpack(_with_crc(data[:-4] + b"\x00"))


def test_non_canonical_or_invalid_params_are_rejected():
    def with_params(raw: bytes) -> bytes:
        c = Container(PayloadKind.NETWORK, "n", quantizer_id="q")
        head = pack(c)[:-4]
        pos = 8 + 1 + 1 + 32 + 1 + 1  # fixed header, codec id, hash, quantizer id
        assert head[pos : pos + 4] == b"\x00\x00\x00\x00"
        return _with_crc(head[:pos] + struct.pack("<I", len(raw)) + raw + head[pos + 4 :])

    assert unpack(with_params(b'{"a":1}')).params == {"a": 1}
    for raw, message in [
        (b'{"b":1,"a":2}', "canonical"),
        (b'{"a": 1}', "canonical"),
        (b'{"a":NaN}', "JSON"),
        (b'{"a":{"b":1}}', "unsupported type"),
        (b'{"a":[[1]]}', "flat list"),
        (b"[1,2]", "dict"),
        (b"\xff\xfe", "JSON"),
        (b"[" * 50_000, "JSON"),
        (b"{}", "canonical"),
    ]:
        with pytest.raises(BitstreamError, match=message):
            unpack(with_params(raw))


def test_huge_image_header_is_refused_without_allocating():
    data = pack(Container(PayloadKind.IMAGE, "c", shapes=[(100_000, 100_000, 3)], streams=[b"\x00" * 8]))
    tracemalloc.start()
    try:
        with pytest.raises(BitstreamError, match="larger than the allowed"):
            unpack(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert unpack(data, max_pixels=100_000 * 100_000).shapes[0] == (100_000, 100_000, 3)


def test_counts_and_dims_beyond_limits_are_refused():
    c = Container(PayloadKind.NETWORK, "n", shapes=[(1, 2)])
    data = pack(c)
    shapes_at = 8 + 2 + 32 + 1 + 4
    with pytest.raises(BitstreamError, match="65 shapes"):
        unpack(_patched(data, shapes_at, b"\x41"))
    with pytest.raises(BitstreamError, match="9 dimensions"):
        unpack(_patched(data, shapes_at + 1, b"\x09"))
    with pytest.raises(BitstreamError, match="dimension outside"):
        unpack(_patched(data, shapes_at + 2, b"\xff\xff\xff\xff"))
    with pytest.raises(BitstreamError, match="4097 streams"):
        unpack(_patched(data, shapes_at + 10, struct.pack("<H", 4097)))
    with pytest.raises(BitstreamError, match="truncated"):
        unpack(_patched(data, shapes_at + 10, struct.pack("<H", 4096)))


@pytest.mark.parametrize(
    "overrides",
    [
        dict(kind=3),
        dict(codec_id=""),
        dict(codec_id="x" * 65),
        dict(codec_id="caf\u00e9"),
        dict(quantizer_id="a\nb"),
        dict(model_hash=b"short"),
        dict(params={"a": float("nan")}),
        dict(params={"a": {"nested": 1}}),
        dict(params={1: "key"}),
        dict(params={"a": [True]}),
        dict(params={"a": "x" * 70_000}),
        dict(shapes=[(1, 2)] * 65),
        dict(shapes=[(1,) * 9]),
        dict(shapes=[(1 << 32,)]),
        dict(shapes=[]),
        dict(shapes=[(5,)]),
        dict(shapes=[(0, 5)]),
        dict(shapes=[(5, 5, 7)]),
        dict(shapes=[(5.5, 5)]),
        dict(streams=[b""] * 4097),
    ],
)
def test_invalid_containers_cannot_be_built(overrides):
    with pytest.raises(ValueError):
        _image(**overrides)


def test_write_and_read(tmp_path):
    c = _image()
    path = write(tmp_path / "out.wbi", c)
    assert read(path) == c
    assert sorted(os.listdir(tmp_path)) == ["out.wbi"]
    with pytest.raises(BitstreamError, match="no such file"):
        read(tmp_path / "missing.wbi")
    png = tmp_path / "photo.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(BitstreamError, match="photo.png is not a workbench file"):
        read(png)


def test_write_never_overwrites_the_protected_input(tmp_path):
    source = tmp_path / "input.wbi"
    source.write_bytes(b"original")
    with pytest.raises(OutputError, match="overwrite the input"):
        write(source, _image(), protect=[source])
    assert source.read_bytes() == b"original"


def test_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    with pytest.raises(OutputError, match="does not exist"):
        write(tmp_path / "no-such-folder" / "out.wbi", _image())

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OutputError, match="disk is full"):
        write(tmp_path / "out.wbi", _image())
    assert os.listdir(tmp_path) == []
