#!/usr/bin/env bash
# Register the built bundle with the desktop for the current user: menu entry, icons, file associations and
# the MIME type of .wbi/.wbn files. Run packaging/build.sh first.
#
#   packaging/install-desktop.sh [BUNDLE_DIR]     # default: packaging/dist/workbench
#
# Writes only under ${XDG_DATA_HOME:-~/.local/share}; the bundle itself stays where it is (move it first if
# you want it elsewhere, e.g. ~/.local/opt/workbench, and pass that path).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
BUNDLE="$(cd "${1:-$HERE/dist/workbench}" && pwd)"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
GUI="$BUNDLE/workbench-gui"
[ -x "$GUI" ] || { echo "no $GUI: build the bundle with packaging/build.sh first" >&2; exit 1; }

for size in 48 128 256; do
    install -Dm644 "$ROOT/resources/icons/workbench-$size.png" "$DATA/icons/hicolor/${size}x${size}/apps/workbench.png"
done
install -Dm644 "$ROOT/resources/icons/workbench.svg" "$DATA/icons/hicolor/scalable/apps/workbench.svg"
install -Dm644 "$HERE/workbench-mime.xml" "$DATA/mime/packages/workbench.xml"
mkdir -p "$DATA/applications"
# Quote the path as the Desktop Entry spec asks for arguments with spaces.
sed "s|^Exec=workbench-gui |Exec=\"$GUI\" |" "$HERE/workbench.desktop" > "$DATA/applications/workbench.desktop"

command -v update-mime-database >/dev/null && update-mime-database "$DATA/mime"
command -v update-desktop-database >/dev/null && update-desktop-database "$DATA/applications"
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$DATA/icons/hicolor" || true
echo "installed $DATA/applications/workbench.desktop (Exec=$GUI)"
