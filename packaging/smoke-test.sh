#!/usr/bin/env bash
# Check a built bundle on a machine without a display: the command line compresses an image and a network,
# and the desktop app opens its window under Xvfb and exits cleanly. Optionally saves a screenshot.
#
#   packaging/smoke-test.sh [BUNDLE_DIR] [SCREENSHOT.png]    # default bundle: packaging/dist/workbench
#
# Needs xvfb-run (Debian: apt-get install xvfb), and xwd (x11-apps) for the screenshot. Settings go to a
# temporary XDG_CONFIG_HOME, so the user's own workbench settings are not touched.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
BUNDLE="$(cd "${1:-$HERE/dist/workbench}" && pwd)"
SHOT="${2:-}"
SAMPLE="$ROOT/resources/samples/endeavour.png"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
export XDG_CONFIG_HOME="$TMP/config"

echo "== command line: $BUNDLE/workbench"
"$BUNDLE/workbench" compress "$SAMPLE" -c hevc -q 30 -o "$TMP/sample.heic"
"$BUNDLE/workbench" compress "$SAMPLE" -c learned -q 4 -o "$TMP/sample.wbi"
"$BUNDLE/workbench" decompress "$TMP/sample.wbi" -o "$TMP/decoded.png"
"$BUNDLE/workbench" compress-net "$ROOT/resources/demo_net/digits_cnn.safetensors" -q uniform --bits 6 \
    -o "$TMP/digits.wbn" | tail -n 3

echo "== desktop app under Xvfb: open the sample, quit after the first paint (WORKBENCH_EXIT_WHEN_SHOWN)"
status=0
WORKBENCH_EXIT_WHEN_SHOWN=1 timeout 120 xvfb-run -a -s "-screen 0 1600x1000x24" \
    "$BUNDLE/workbench-gui" "$SAMPLE" || status=$?
echo "workbench-gui exit status: $status"
[ "$status" -eq 0 ] || exit 1

if [ -n "$SHOT" ]; then
    echo "== screenshot after 30 s with the sample open -> $SHOT"
    cat > "$TMP/shot.sh" <<'EOF'
#!/usr/bin/env bash
"$1" "$2" > "$3/gui.log" 2>&1 &
pid=$!
sleep 30
xwd -root -out "$3/screen.xwd"
kill -0 "$pid" && echo "workbench-gui (pid $pid) still running after 30 s; closing it"
kill "$pid"; wait "$pid" || true
EOF
    chmod +x "$TMP/shot.sh"
    timeout 120 xvfb-run -a -s "-screen 0 1600x1000x24" "$TMP/shot.sh" "$BUNDLE/workbench-gui" "$SAMPLE" "$TMP"
    echo "workbench-gui output during those 30 s:"; cat "$TMP/gui.log"
    # XWD -> PNG with Pillow from the build venv, cropped to the non-black area (the window).
    "$HERE/.build-venv/bin/python" - "$TMP/screen.xwd" "$SHOT" <<'EOF'
import struct, sys
import numpy as np
from PIL import Image
data = open(sys.argv[1], "rb").read()
h = struct.unpack(">25I", data[:100])
header_size, width, height, byte_order, bits_per_pixel, bytes_per_line, ncolors = h[0], h[4], h[5], h[7], h[11], h[12], h[19]
n = bits_per_pixel // 8            # Xvfb at depth 24 writes 3 bytes per pixel, rows padded to bytes_per_line
rows = np.frombuffer(data, np.uint8, count=bytes_per_line * height, offset=header_size + 12 * ncolors)
px = rows.reshape(height, bytes_per_line)[:, :width * n].reshape(height, width, n)
rgb = np.ascontiguousarray(px[..., [2, 1, 0]] if byte_order == 0 else px[..., -3:])
ys, xs = np.nonzero(rgb.sum(axis=2))
Image.fromarray(rgb[ys.min():ys.max() + 1, xs.min():xs.max() + 1]).save(sys.argv[2], optimize=True)
print(f"saved {sys.argv[2]} ({xs.max() - xs.min() + 1}x{ys.max() - ys.min() + 1} px of a {width}x{height} screen)")
EOF
fi
echo "== smoke test passed"
