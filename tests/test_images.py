import io

import numpy as np
import pytest
from PIL import Image

from workbench.core.errors import ImageError
from workbench.core.images import MAX_PIXELS, encode_png, list_images, load_image, save_png


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(12, 20, 3), dtype=np.uint8)


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP"])
def test_lossless_formats_round_trip(rgb, fmt):
    kw = {"lossless": True} if fmt == "WEBP" else {}
    out = load_image(_save(Image.fromarray(rgb), fmt, **kw))
    assert out.rgb.dtype == np.uint8 and out.rgb.shape == (12, 20, 3)
    np.testing.assert_array_equal(out.rgb, rgb)
    assert out.format == fmt and out.notes == ()


def test_jpeg_and_file_path(tmp_path, rgb):
    p = tmp_path / "x.jpg"
    p.write_bytes(_save(Image.fromarray(rgb), "JPEG", quality=95))
    out = load_image(p)
    assert out.rgb.shape == (12, 20, 3) and out.file_size == p.stat().st_size and out.source == str(p)


def test_exif_orientation_is_applied(rgb):
    im = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = load_image(_save(im, "JPEG", quality=95, exif=exif.tobytes()))
    assert out.rgb.shape == (20, 12, 3)
    assert "EXIF orientation applied" in out.notes


def test_greyscale_palette_and_16bit():
    grey = np.arange(60, dtype=np.uint8).reshape(6, 10)
    out = load_image(_save(Image.fromarray(grey, "L"), "PNG"))
    np.testing.assert_array_equal(out.rgb[..., 1], grey)
    assert "greyscale expanded to RGB" in out.notes

    pal = Image.fromarray(grey, "L").convert("P")
    assert "palette expanded to RGB" in load_image(_save(pal, "PNG")).notes

    wide = (np.arange(60, dtype=np.uint16).reshape(6, 10) * 1000)
    out = load_image(_save(Image.fromarray(wide), "PNG"))
    np.testing.assert_array_equal(out.rgb[..., 0], np.round(wide / 257.0).astype(np.uint8))
    assert any("16-bit" in n for n in out.notes)


def test_alpha_flattened_or_refused():
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255          # top half opaque red, bottom half fully transparent
    data = _save(Image.fromarray(rgba, "RGBA"), "PNG")
    out = load_image(data, background=(0, 0, 255))
    assert tuple(out.rgb[0, 0]) == (200, 0, 0) and tuple(out.rgb[3, 0]) == (0, 0, 255)
    assert any("transparency flattened" in n for n in out.notes)
    with pytest.raises(ImageError, match="transparent"):
        load_image(data, alpha="refuse")
    opaque = rgba.copy()
    opaque[..., 3] = 255
    assert load_image(_save(Image.fromarray(opaque, "RGBA"), "PNG"), alpha="refuse").notes == ()


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"this is plainly a text file\n" * 4, "not an image"),
])
def test_non_images_refused(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_truncated_image_refused(rgb):
    data = _save(Image.fromarray(np.tile(rgb, (8, 8, 1))), "PNG")
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2])


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)


def test_decompression_bomb_refused_before_decoding():
    # A PNG header that claims 100000 x 100000 pixels: refused from the header alone.
    im = Image.new("L", (1, 1))
    data = bytearray(_save(im, "PNG"))
    import struct
    import zlib
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    with pytest.raises(ImageError, match="megapixel|too large"):
        load_image(bytes(data))
    assert MAX_PIXELS < 100000 * 100000


def test_png_helpers_and_listing(tmp_path, rgb):
    np.testing.assert_array_equal(load_image(encode_png(rgb)).rgb, rgb)
    save_png(rgb, tmp_path / "b.png")
    (tmp_path / "a.jpg").write_bytes(_save(Image.fromarray(rgb), "JPEG"))
    (tmp_path / "notes.txt").write_text("not an image")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no image files"):
        list_images(tmp_path / "empty")


@pytest.mark.parametrize("codec, quality, maker", [("learned", 4, "the learned codec, model dct-checkerboard-mse"),
                                                   ("jxl", 80, "JPEG XL (libjxl)")])
def test_our_compressed_files_load_as_images(codec, quality, maker):
    """A .wbi or JPEG XL file that Pillow cannot read opens decoded, with a note saying so; a damaged
    one is refused with the decoder's reason."""
    from workbench.core.codecs.base import get_codec
    from workbench.core.errors import CodecUnavailableError
    try:
        c = get_codec(codec)
    except CodecUnavailableError as exc:
        pytest.skip(str(exc))
    rgb = (np.indices((32, 48, 3)).sum(0) * 7 % 256).astype(np.uint8)
    data = c.encode(rgb, c.options(quality=quality))
    loaded = load_image(data)
    np.testing.assert_array_equal(loaded.rgb, c.decode(data))
    assert loaded.notes == (f"decoded with {maker}",) and loaded.file_size == len(data)
    with pytest.raises(ImageError, match="<bytes>: "):
        load_image(data[: len(data) // 2])
