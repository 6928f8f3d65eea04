"""Reading images into the one form the codecs accept: (H, W, 3) uint8 RGB.

Every conversion that changes pixels is explicit and reported in `LoadedImage.notes`, so a user who
drops a 16-bit TIFF or a transparent PNG sees what the workbench actually compressed. Anything that is
not a decodable image, or is too large to hold, raises `ImageError` before large buffers are allocated.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from workbench.core import container
from workbench.core.atomic import write_bytes_atomic
from workbench.core.errors import BitstreamError, CodecUnavailableError, ImageError
from workbench.core.files import read_limited

# 2^28 pixels (16k x 16k) is far beyond any photo the codecs are meant for, and still fits in memory
# several times over as float32 planes on a 24 GiB machine.
MAX_PIXELS = 1 << 28
# What is read of an image file at most: a 2^28-pixel 8-bit RGB image stored uncompressed is 768 MiB.
MAX_FILE_BYTES = 1 << 30
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".ppm", ".pgm", ".pnm",
                  ".gif", ".tga", ".jp2", ".j2k", ".avif", ".heic", ".heif", ".jxl", ".bpg", ".wbi")


@dataclass(frozen=True)
class LoadedImage:
    rgb: np.ndarray
    source: str
    format: str
    file_size: int
    original_mode: str
    notes: tuple[str, ...] = field(default=())

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def pixels(self) -> int:
        return self.height * self.width


def load_image(source: str | os.PathLike | bytes, *, alpha: str = "flatten",
               background: tuple[int, int, int] = (255, 255, 255), max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Read a file (or its bytes) as 8-bit RGB.

    alpha="flatten" composites transparent pixels over `background`; alpha="refuse" raises instead,
    for users who need to know that the alpha channel would be lost.
    """
    if alpha not in ("flatten", "refuse"):
        raise ValueError("alpha must be 'flatten' or 'refuse'")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), "<bytes>"
    else:
        path = Path(source)
        name = str(path)
        if path.is_dir():
            raise ImageError(f"{name} is a folder, not an image")
        data = read_limited(path, MAX_FILE_BYTES, ImageError, what="an image file")
    if not data:
        raise ImageError(f"{name}: the file is empty")
    _register_optional_openers()
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > max_pixels:
                raise ImageError(f"{name}: {w}x{h} is {w * h / 1e6:.0f} megapixels, more than the "
                                 f"{max_pixels / 1e6:.0f} megapixel limit")
            if w < 1 or h < 1:
                raise ImageError(f"{name}: the image has no pixels")
            fmt = im.format or "unknown"
            if getattr(im, "n_frames", 1) > 1:
                notes.append(f"first of {im.n_frames} frames used")
            wide = im.mode in ("RGB", "RGBA") and any(";16" in str(t[3]) for t in (im.tile or ()))
            im.load()
            if wide:
                notes.append("16-bit channels reduced to 8 bits")
            if _orientation(im) not in (None, 1):
                notes.append("EXIF orientation applied")
            im = ImageOps.exif_transpose(im)
    except ImageError:
        raise
    except UnidentifiedImageError:
        return _decode_compressed(data, name, max_pixels)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name}: too large to decode safely") from None
    except (OSError, ValueError, SyntaxError, EOFError, RuntimeError) as exc:     # RuntimeError: the AVIF plugin
        why = " ".join(str(exc).split())            # some decoders' messages span lines
        raise ImageError(f"{name}: corrupt or truncated image ({why})") from None
    original_mode = im.mode
    rgb = _to_rgb(im, name, alpha, background, notes)
    return LoadedImage(rgb=rgb, source=name, format=fmt, file_size=len(data), original_mode=original_mode,
                       notes=tuple(notes))


def _decode_compressed(data: bytes, name: str, max_pixels: int) -> LoadedImage:
    """A file Pillow cannot read may still be one of our codecs' (a .wbi, JPEG XL, BPG): decoding it
    shows what the file holds, so it can be inspected and compressed again like any image."""
    from workbench.core.codecs.base import codec_for_bytes, decode_any    # codec modules import this one
    try:
        codec_for_bytes(data)
        if container.sniff(data[:4]):               # the size a header declares, before a decoder allocates it
            container.unpack(data, max_pixels=max_pixels)
    except BitstreamError as exc:
        why = str(exc) if container.sniff(data[:4]) else "not an image this program can read"
        raise ImageError(f"{name}: {why}") from None
    try:
        rgb, codec = decode_any(data)
    except (BitstreamError, CodecUnavailableError) as exc:
        raise ImageError(f"{name}: {exc}") from None
    if rgb.shape[0] * rgb.shape[1] > max_pixels:
        raise ImageError(f"{name}: {rgb.shape[1]}x{rgb.shape[0]} is more than the "
                         f"{max_pixels / 1e6:.0f} megapixel limit")
    fmt = "WBI" if container.sniff(data[:64]) else codec.name.upper()     # our container, else JXL, BPG
    return LoadedImage(rgb=rgb, source=name, format=fmt, file_size=len(data), original_mode="RGB",
                       notes=(f"decoded with {codec.file_label(data)}",))


def _orientation(im: Image.Image) -> int | None:
    try:
        return im.getexif().get(0x0112)
    except Exception:  # malformed EXIF is ignored, exactly as exif_transpose ignores it
        return None


def _to_rgb(im: Image.Image, name: str, alpha: str, background: tuple[int, int, int], notes: list[str]) -> np.ndarray:
    mode = im.mode
    if mode == "P":
        has_alpha = "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
        notes.append("palette expanded to RGB")
        mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        grey = np.clip(np.round(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        notes.append(f"{'16' if peak > 255 else '32'}-bit greyscale reduced to 8 bits")
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        grey = np.clip(np.round(arr), 0, 255).astype(np.uint8)
        notes.append("floating-point greyscale clipped to 0..255")
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if mode in ("LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode == "RGBA":
        a = np.asarray(im.getchannel("A"))
        if a.min() < 255:
            if alpha == "refuse":
                raise ImageError(f"{name}: the image has transparent pixels; flatten it first or allow "
                                 f"flattening onto a background")
            bg = Image.new("RGB", im.size, background)
            bg.paste(im.convert("RGB"), mask=im.getchannel("A"))
            notes.append(f"transparency flattened onto RGB{tuple(background)}")
            return np.ascontiguousarray(np.asarray(bg))
        return np.ascontiguousarray(np.asarray(im.convert("RGB")))
    if mode in ("L", "1"):
        notes.append("greyscale expanded to RGB")
    elif mode == "CMYK":
        notes.append("CMYK converted to RGB (no colour management)")
    elif mode not in ("RGB",):
        notes.append(f"{mode} converted to RGB")
    try:
        return np.ascontiguousarray(np.asarray(im.convert("RGB")))
    except (ValueError, OSError) as exc:
        raise ImageError(f"{name}: unsupported pixel format {mode} ({exc})") from None


def encode_png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(check_rgb(rgb), "RGB").save(buf, format="PNG")
    return buf.getvalue()


def save_png(rgb: np.ndarray, path: str | os.PathLike, *, protect=()) -> Path:
    """Write a lossless PNG atomically (never half a file, never over a protected input)."""
    return write_bytes_atomic(path, encode_png(rgb), protect=protect)


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    if not (isinstance(rgb, np.ndarray) and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8):
        raise ImageError("expected an (H, W, 3) uint8 RGB array")
    return np.ascontiguousarray(rgb)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside `folder`, sorted by name (benchmarks must be reproducible)."""
    root = Path(folder)
    if not root.is_dir():
        raise ImageError(f"{root} is not a folder")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImageError(f"{root} holds no image files ({', '.join(IMAGE_SUFFIXES[:6])}, ...)")
    return files


_openers_registered = False


def _register_optional_openers() -> None:
    """Let Pillow read HEIF/AVIF-in-HEIF when pillow-heif is present (it is an install dependency)."""
    global _openers_registered
    if _openers_registered:
        return
    _openers_registered = True
    try:
        import pillow_heif
        pillow_heif.register_heif_opener()
    except Exception:  # optional: without it, HEIF inputs are refused as unreadable
        pass
