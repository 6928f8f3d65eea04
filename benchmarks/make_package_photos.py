"""Write the colour photographs that ship inside scikit-image's wheel, a second set of photographs no
model here was trained on (the learned-codec issue: "use images from a package").

Every colour photograph the wheel bundles as PNG is taken, except motorcycle_right (the same scene as
motorcycle_left from a second camera): astronaut (512×512), chelsea (451×300), coffee (600×400),
motorcycle_left (741×500). The wheel is read as a zip file, so scikit-image need not be installed:

    pip download --no-deps scikit-image==0.26.0 -d WHEELS
    python benchmarks/make_package_photos.py WHEELS/scikit_image-0.26.0-*.whl PHOTOS
    workbench bench PHOTOS --codecs jpeg,hevc,learned --anchor jpeg --out package-bench
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

from PIL import Image

PHOTOS = ("astronaut", "chelsea", "coffee", "motorcycle_left")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wheel", type=Path, help="a scikit-image wheel (.whl)")
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(args.wheel) as wheel:
        for name in PHOTOS:
            image = Image.open(io.BytesIO(wheel.read(f"skimage/data/{name}.png"))).convert("RGB")
            image.save(args.out / f"skimage-{name}.png")
    print(f"wrote {len(PHOTOS)} images to {args.out}")


if __name__ == "__main__":
    main()
