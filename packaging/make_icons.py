"""Write the 48 and 128 px PNG icons next to resources/icons/workbench-256.png (Pillow, Lanczos downscaling).

    python packaging/make_icons.py

The 256 px PNG and the SVG are the sources; the smaller PNGs are committed, so this only needs rerunning
when the icon changes.
"""

from pathlib import Path

from PIL import Image

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
SIZES = (48, 128)


def main() -> None:
    with Image.open(ICONS / "workbench-256.png") as src:
        src = src.convert("RGBA")
        for size in SIZES:
            out = ICONS / f"workbench-{size}.png"
            src.resize((size, size), Image.Resampling.LANCZOS).save(out, optimize=True)
            print(f"wrote {out}")


if __name__ == "__main__":
    main()
