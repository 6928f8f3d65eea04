"""Write the 12 held-out photographs the generalisation figures in docs/learned_codec.md are measured on.

Training skips these files (`data.is_validation`, a hash of the name), so a bench on them says how the
learned codec does on photographs it never saw: 8 BSDS500 images at their own size (481×321, decoded
from their JPEG files, so they carry light JPEG artefacts) and two 768×512 crops (top-left and
bottom-right) of each of the two held-out Wikipedia photographs. The folder was first made by hand;
this script reproduces it pixel for pixel (JPEG q5 on each image gives the sizes recorded in
docs/benchmarks/heldout_checkerboard/per_image.csv).

    python benchmarks/make_heldout.py ../shared/datasets HELDOUT
    workbench bench HELDOUT --codecs jpeg,learned --anchor jpeg --out heldout-bench
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from workbench.core.learned.data import is_validation

BSDS = ("bsds500-test-118031", "bsds500-test-187099", "bsds500-test-230063", "bsds500-test-326025",
        "bsds500-train-134008", "bsds500-train-155060", "bsds500-train-271031", "bsds500-train-42044")
WIKI = ("041", "048")
CROP = (768, 512)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", type=Path, help="the shared datasets folder (holds train/ and wikipedia49/)")
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sources = [args.datasets / "train" / f"{name}.jpg" for name in BSDS]
    sources += [args.datasets / "wikipedia49" / f"{name}.png" for name in WIKI]
    trained_on = [p.name for p in sources if not is_validation(p)]
    if trained_on:
        raise SystemExit(f"not held out of training (data.is_validation changed?): {', '.join(trained_on)}")
    for path in sources[:len(BSDS)]:
        Image.open(path).convert("RGB").save(args.out / f"{path.stem}.png")
    w, h = CROP
    for path in sources[len(BSDS):]:
        image = Image.open(path).convert("RGB")
        image.crop((0, 0, w, h)).save(args.out / f"wiki-{path.stem}-0.png")
        image.crop((image.width - w, image.height - h, image.width, image.height)).save(
            args.out / f"wiki-{path.stem}-1.png")
    print(f"wrote {len(BSDS) + 2 * len(WIKI)} images to {args.out}")


if __name__ == "__main__":
    main()
