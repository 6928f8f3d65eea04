import ast
import io
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_msssim
import torch
from PIL import Image, ImageFilter

from workbench.core import metrics
from workbench.core.errors import ImageError
from workbench.core.metrics import ms_ssim, ms_ssim_db, ms_ssim_torch, psnr

IMAGE = Path(__file__).parent / "data" / "chapel_192x176.png"


@pytest.fixture(scope="module")
def original():
    return np.asarray(Image.open(IMAGE).convert("RGB"))


def _jpeg(img, quality):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _noise(img, sigma):
    noisy = img + np.random.default_rng(0).normal(0.0, sigma, img.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def _blur(img, radius):
    return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(radius)))


DISTORTIONS = {
    "noise2": lambda img: _noise(img, 2),
    "noise20": lambda img: _noise(img, 20),
    "blur1": lambda img: _blur(img, 1),
    "blur3": lambda img: _blur(img, 3),
    "jpeg10": lambda img: _jpeg(img, 10),
    "jpeg50": lambda img: _jpeg(img, 50),
    "jpeg95": lambda img: _jpeg(img, 95),
}


def _tensor(img):
    return torch.from_numpy(np.array(img, dtype=np.float64)).permute(2, 0, 1).unsqueeze(0)


def _reference(a, b):
    return pytorch_msssim.ms_ssim(_tensor(a), _tensor(b), data_range=255).item()


@pytest.mark.parametrize("name", DISTORTIONS)
def test_ms_ssim_matches_pytorch_msssim(original, name):
    distorted = DISTORTIONS[name](original)
    assert ms_ssim(original, distorted) == pytest.approx(_reference(original, distorted), abs=1e-4)


@pytest.mark.parametrize("crop", [(161, 161), (175, 191), (176, 163)])
def test_ms_ssim_odd_sizes_pool_like_pytorch_msssim(original, crop):
    h, w = crop
    a = original[:h, :w]
    b = _jpeg(np.ascontiguousarray(a), 30)
    assert ms_ssim(a, b) == pytest.approx(_reference(a, b), abs=1e-4)


def test_ms_ssim_identical_is_one(original):
    assert ms_ssim(original, original) == pytest.approx(1.0, abs=1e-12)


def test_ms_ssim_accepts_batched_tensors(original):
    b, c = _jpeg(original, 20), _noise(original, 10)
    x = torch.cat([_tensor(original), _tensor(original)])
    y = torch.cat([_tensor(b), _tensor(c)])
    per_image = ms_ssim_torch(x, y)
    assert per_image.shape == (2,)
    assert per_image[0].item() == pytest.approx(ms_ssim(original, b), abs=1e-12)
    assert per_image[1].item() == pytest.approx(ms_ssim(original, c), abs=1e-12)
    assert ms_ssim(x.float(), y.float()) == pytest.approx(per_image.mean().item(), abs=1e-12)


def test_ms_ssim_torch_is_differentiable(original):
    x = _tensor(original).float().requires_grad_()
    y = _tensor(_jpeg(original, 20)).float()
    ms_ssim_torch(x, y).sum().backward()
    reference = x.detach().clone().requires_grad_()
    pytorch_msssim.ms_ssim(reference, y, data_range=255).backward()
    assert torch.isfinite(x.grad).all()
    assert torch.allclose(x.grad, reference.grad, rtol=1e-3, atol=1e-9)


def test_ms_ssim_too_small_names_minimum(original):
    with pytest.raises(ImageError, match="161 px"):
        ms_ssim(original[:160], original[:160])
    with pytest.raises(ImageError, match="161 px"):
        ms_ssim(original[:, :150], original[:, :150])


def test_shape_mismatch_raises(original):
    with pytest.raises(ImageError, match="differ in shape"):
        ms_ssim(original, original[:170])
    with pytest.raises(ImageError, match="differ in shape"):
        psnr(original, original[:, :100])


def test_psnr_hand_computed():
    a = np.full((4, 4, 3), 100, dtype=np.uint8)
    b = a.copy()
    b[0, 0, 0] = 110  # one error of 10 among 48 samples: MSE = 100 / 48
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 * 48 / 100), abs=1e-12)
    assert psnr(a, a + 1) == pytest.approx(20 * math.log10(255), abs=1e-12)  # 48.1308 dB


def test_psnr_uses_float_not_uint8_wraparound():
    a = np.zeros((2, 2, 3), dtype=np.uint8)
    b = np.full((2, 2, 3), 255, dtype=np.uint8)
    assert psnr(a, b) == pytest.approx(0.0, abs=1e-12)


def test_identical_images_capped_at_100_db(original):
    assert psnr(original, original) == 100.0
    assert ms_ssim_db(1.0) == 100.0


def test_ms_ssim_db():
    assert ms_ssim_db(0.9) == pytest.approx(10.0)
    assert ms_ssim_db(0.999) == pytest.approx(30.0)


def test_core_metrics_does_not_import_reference_or_qt():
    tree = ast.parse(Path(metrics.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"pytorch_msssim", "PySide6", "PyQt5", "PyQt6", "pyqtgraph"}


@pytest.mark.parametrize("crop", [(161, 161), (175, 191), (176, 163), (192, 176)])
def test_numpy_ms_ssim_equals_the_differentiable_one(original, crop):
    """Benchmarks measure with numpy and training optimizes the torch version: they must agree."""
    h, w = crop
    a = np.ascontiguousarray(original[:h, :w])
    for b in (_jpeg(a, 15), _noise(a, 20), _blur(a, 3)):
        assert ms_ssim(a, b) == pytest.approx(ms_ssim_torch(_tensor(a), _tensor(b)).item(), abs=1e-12)


def test_grayscale_ms_ssim_is_one_channel(original):
    gray = np.ascontiguousarray(original[:, :, 1])
    assert ms_ssim(gray, _jpeg(original, 30)[:, :, 1]) == pytest.approx(
        _reference(gray[:, :, None], _jpeg(original, 30)[:, :, 1:2]), abs=1e-4)


def test_measuring_does_not_import_torch():
    code = ("import sys, numpy as np; from workbench.core.compress import compress_image; "
            "rgb = (np.arange(200 * 200 * 3) % 251).astype(np.uint8).reshape(200, 200, 3); "
            "r = compress_image(rgb, 'jpeg', quality=50); assert r.quality.ms_ssim is not None; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
