#!/usr/bin/env bash
# Build the one-folder desktop bundle of Compression Workbench (CPU torch) with PyInstaller.
#
#   packaging/build.sh            # from anywhere; needs Python 3.11+ as `python3` (or set PYTHON=...)
#
# Creates its own build venv in packaging/.build-venv (reused on later runs), installs the pinned CPU
# torch, the workbench itself and PyInstaller, and writes the bundle to packaging/dist/workbench/:
#   packaging/dist/workbench/workbench-gui   the desktop app (same as `python main.py`)
#   packaging/dist/workbench/workbench       link to it that runs the command line (`python -m workbench`)
# Nothing outside packaging/ is written except the package's build metadata from `pip install -e .`.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="$HERE/.build-venv"
TORCH_SPEC="torch==2.13.0"          # the CPU build; same pin as pyproject.toml. Never torchvision.
PYINSTALLER_SPEC="pyinstaller==6.22.3"
# The CPU wheel index, used only when pip's configured indexes/find-links do not already provide it.
TORCH_CPU_INDEX="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"

"$PYTHON" - <<'EOF'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"Python 3.11 or newer is needed, this is {sys.version.split()[0]} (set PYTHON=...)")
EOF

start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating the build venv $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

echo "== installing $TORCH_SPEC (CPU), the workbench and $PYINSTALLER_SPEC"
# The CPU wheel first, so that resolving `-e .` never pulls the multi-GB CUDA build from PyPI: from
# local disk when pip's configured find-links hold it (no network), else from the CPU-only wheel index.
case "$(uname -s)" in
    Linux) TORCH_WHEEL="$TORCH_SPEC+cpu" ;;     # PyPI's Linux wheels are CUDA builds; +cpu is the CPU one
    *)     TORCH_WHEEL="$TORCH_SPEC" ;;         # macOS/Windows wheels on PyPI are CPU builds already
esac
installed="$("$PY" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null || true)"
if [ "$installed" != "${TORCH_WHEEL#torch==}" ]; then
    if ! "$PY" -m pip install --no-index --no-deps "$TORCH_WHEEL" 2>/dev/null; then
        echo "   (not on local disk; using $TORCH_CPU_INDEX)"
        "$PY" -m pip install "$TORCH_WHEEL" --index-url "$TORCH_CPU_INDEX"
    fi
fi
"$PY" -m pip install -e "$ROOT" "$PYINSTALLER_SPEC"
"$PY" -c 'import torch, sys; v = torch.__version__; print("torch", v, "(CPU build)" if torch.version.cuda is None else "")
sys.exit(0 if torch.version.cuda is None else "a CUDA build of torch is installed in the build venv; expected the CPU build")'

echo "== running PyInstaller"
cd "$HERE"
"$PY" -m PyInstaller --noconfirm --clean \
    --distpath "$HERE/dist" --workpath "$HERE/build" workbench.spec

end=$(date +%s)
BUNDLE="$HERE/dist/workbench"
echo "== smoke test: the bundled command line lists its codecs"
"$BUNDLE/workbench" codecs
echo "== bundle: $BUNDLE (desktop app: workbench-gui; command line: workbench)"
du -sh "$BUNDLE"
echo "== build took $((end - start)) s (venv, installs and PyInstaller)"
