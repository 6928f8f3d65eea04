#!/usr/bin/env bash
# Recreate the separate env for benchmarks/nncodec_compare.py (never touches .venv).
# Only pip from the configured registry; torch stays pinned at 2.13.0 (constraint file) throughout.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-nncodec
PIP=.venv-nncodec/bin/pip
C=$(mktemp); echo "torch==2.13.0" > "$C"
$PIP install torch==2.13.0
$PIP install -c "$C" "numpy>=1.26" "scipy>=1.11" "pillow>=10.3" "pillow-heif>=0.18" "imagecodecs>=2024.1.1" \
    "constriction>=0.4" "matplotlib>=3.8" "PySide6-Essentials>=6.6" "pyqtgraph>=0.13.7" "scikit-learn>=1.3" "safetensors>=0.4" \
    "numba>=0.60"
$PIP install --no-deps -e .
# nncodec builds its DeepCABAC pybind11 extension with gcc here (~1 min). Its metadata asks for
# numpy<2, torchvision, opencv-python, ptflops, torchmetrics...: installed without deps instead.
$PIP install --no-deps nncodec
$PIP install -c "$C" pandas h5py tqdm Click opencv-python-headless
$PIP install --no-deps ptflops torchmetrics lightning-utilities
# torchvision: not installed; benchmarks/nncodec_compare.py registers an in-process stub module.
rm -f "$C"
.venv-nncodec/bin/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
