"""Plain-language sentences about a comparison of two compressed images.

Numbers alone do not tell a newcomer which image won; a sentence like "At the same MS-SSIM the HEVC
file is 2.1× smaller than JPEG's" does. The sentences are built here, from numbers only, so the GUI,
the CLI and tests produce exactly the same wording, and so the logic can be tested without a display.

Two kinds of comparison exist:

* two single points (two files): compare their sizes, and their qualities in dB;
* a point against a codec's whole sweep on the same image: interpolate the sweep's log-rate at the
  point's quality, which answers "how much smaller at *equal quality*" even when the two files differ
  in both size and quality. No extrapolation: outside the sweep's quality range there is no answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: Plain-word explanations of the terms the GUI shows; tooltips and the help page both use them.
GLOSSARY: dict[str, str] = {
    "size": "How many bytes the compressed file takes on disk: the real file, not an estimate.",
    "bpp": "Bits per pixel: the file size in bits divided by the number of pixels. It lets images of "
           "different sizes be compared; an uncompressed photo takes 24 bpp, a good JPEG about 1.",
    "saved": "How much smaller the compressed file is than the file you opened.",
    "psnr": "Peak signal-to-noise ratio, in decibels: how close the pixels are to the original. Higher is "
            "better; above about 40 dB differences are hard to see, below 30 dB they usually are visible.",
    "ms_ssim": "Multi-scale structural similarity: how similar the image looks in structure and contrast, "
               "at several zoom levels. 1 means identical; in dB (-10·log10(1 - MS-SSIM)) higher is better.",
    "bd_rate": "Bjøntegaard delta rate: the average change in file size between two codecs at the same "
               "quality, over a range of qualities. -30 % means 30 % smaller files for the same quality.",
    "encode": "Time to compress the image on this computer.",
    "decode": "Time to decompress the file back into pixels on this computer.",
    "heat_map": "The difference view colours every pixel by how far it is from the original "
                "(the average absolute error over red, green and blue): dark is exact, bright is far off.",
}

#: Two sizes closer than this (relative) are "about the same size" in a sentence.
SAME_SIZE = 0.03
#: Quality differences below this many dB are "the same quality".
SAME_DB = 0.05
#: The verdict on a PSNR difference, in words a newcomer can act on: under ABOUT_SAME_DB the two images
#: are "about the same", from VISIBLE_DB on one is "visibly" better, in between "slightly". These are the
#: workbench's conventions, not a perception study: codec comparisons commonly treat a few tenths of a dB
#: as noise between neighbouring settings and a full dB as a difference people can point at when the two
#: images are viewed side by side at 100 %. The help page quotes them.
ABOUT_SAME_DB = 0.3
VISIBLE_DB = 1.0
GLOSSARY["verdict"] = (f"The sentence under the picture judges quality by the PSNR difference: under "
                       f"{ABOUT_SAME_DB:g} dB the two images are \"about the same\", from {VISIBLE_DB:g} dB one is "
                       f"\"visibly\" better, in between \"slightly\". These are rules of thumb for viewing the "
                       f"two side by side at 100 %, not a guarantee for every image.")
#: PSNR the metrics report for identical images (`metrics.MAX_DB`; not imported, as that pulls in torch).
LOSSLESS_DB = 100.0


@dataclass(frozen=True)
class Measurement:
    """One side of a comparison: a compressed file, or the original file (no quality figures)."""

    name: str                    # short, e.g. "JPEG" or "the original PNG file"
    size_bytes: int
    pixels: int
    psnr: float | None = None    # None for the original: it is the reference itself
    ms_ssim_db: float | None = None
    is_original: bool = False
    setting: str = ""            # e.g. "quality 50"; added to the name where a sentence names the file

    @property
    def bpp(self) -> float:
        return 8.0 * self.size_bytes / self.pixels

    @property
    def described(self) -> str:
        return f"{self.name}, {self.setting}" if self.setting else self.name


@dataclass(frozen=True)
class RateCurve:
    """One codec's sweep on one image: rate and quality per setting (any order)."""

    name: str                    # e.g. "JPEG"
    bpp: tuple[float, ...]
    psnr: tuple[float, ...]
    ms_ssim_db: tuple[float | None, ...]


def format_size(n_bytes: float) -> str:
    """Sizes in SI units, the way file managers show them (1 kB = 1000 bytes)."""
    if n_bytes < 1000:
        return f"{n_bytes:.0f} bytes"
    for unit in ("kB", "MB", "GB"):
        n_bytes /= 1000.0
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.3g} {unit}" if n_bytes < 100 else f"{n_bytes:.0f} {unit}"
    raise AssertionError("unreachable")


def size_phrase(reference: float, other: float) -> str:
    """How `other` relates to `reference` in size: "38 % smaller", "2.1× smaller", "12 % larger".

    Ratios of 2 or more read better as "N× smaller" than as "55 % smaller"; below that, percent.
    """
    if reference <= 0 or other <= 0:
        raise ValueError("sizes must be positive")
    ratio = other / reference
    if abs(ratio - 1.0) < 0.005:
        return "the same size as"
    if ratio < 1.0:
        return f"{1.0 / ratio:.1f}× smaller than" if ratio <= 0.5 else f"{(1.0 - ratio) * 100:.0f} % smaller than"
    return f"{ratio:.1f}× larger than" if ratio >= 2.0 else f"{(ratio - 1.0) * 100:.0f} % larger than"


def quality_phrase(reference_db: float, other_db: float, metric: str) -> str:
    """"1.2 dB worse in PSNR", "0.3 dB better in MS-SSIM" or "equal in PSNR"."""
    delta = other_db - reference_db
    if abs(delta) < SAME_DB:
        return f"equal in {metric}"
    return f"{abs(delta):.1f} dB {'better' if delta > 0 else 'worse'} in {metric}"


def verdict(delta_psnr_db: float) -> str:
    """"visibly better", "slightly worse", "about the same" for a PSNR difference (other minus reference).

    >>> verdict(1.2), verdict(-0.5), verdict(0.1)
    ('visibly better', 'slightly worse', 'about the same')
    """
    if abs(delta_psnr_db) < ABOUT_SAME_DB:
        return "about the same"
    degree = "visibly" if abs(delta_psnr_db) >= VISIBLE_DB else "slightly"
    return f"{degree} {'better' if delta_psnr_db > 0 else 'worse'}"


def _db_change(delta_db: float, metric: str) -> str:
    return f"equal in {metric}" if abs(delta_db) < SAME_DB else \
        f"{abs(delta_db):.1f} dB {'higher' if delta_db > 0 else 'lower'} in {metric}"


def _quality_clause(ref: Measurement, other: Measurement) -> str:
    """A verdict from PSNR, then the figures: PSNR always, MS-SSIM too when it is known; when the two
    metrics disagree the verdict is said to be PSNR's, "but" the MS-SSIM figure follows."""
    if ref.psnr is None or other.psnr is None:
        return ""
    if is_lossless(ref.psnr) or is_lossless(other.psnr):
        if is_lossless(ref.psnr) and is_lossless(other.psnr):
            return "equally lossless"
        if is_lossless(other.psnr):
            return "lossless"
        return f"lossy ({other.psnr:.1f} dB in PSNR) where the other is lossless"
    d1 = other.psnr - ref.psnr
    word, psnr = verdict(d1), _db_change(d1, "PSNR")
    if not (_finite(ref.ms_ssim_db) and _finite(other.ms_ssim_db)):
        return f"{word}: {psnr}"
    d2 = other.ms_ssim_db - ref.ms_ssim_db
    s1, s2 = _sign(d1), _sign(d2)
    if s1 == s2 == 0:
        return f"{word}: equal in PSNR and MS-SSIM"
    if s1 * s2 >= 0:
        return f"{word}: {psnr}, {_db_change(d2, 'MS-SSIM')}"
    return f"{word} in PSNR ({abs(d1):.1f} dB {'higher' if d1 > 0 else 'lower'}) but " \
        f"{quality_phrase(ref.ms_ssim_db, other.ms_ssim_db, 'MS-SSIM')}"


def _sign(delta_db: float) -> int:
    return 0 if abs(delta_db) < SAME_DB else (1 if delta_db > 0 else -1)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value < LOSSLESS_DB


def is_lossless(psnr_db: float | None) -> bool:
    return psnr_db is not None and not (math.isfinite(psnr_db) and psnr_db < LOSSLESS_DB)


def _absolute_quality(m: Measurement) -> str:
    if m.psnr is None:
        return ""
    if is_lossless(m.psnr):
        return "losslessly"
    text = f"at {m.psnr:.1f} dB in PSNR"
    if _finite(m.ms_ssim_db):
        text += f" and {m.ms_ssim_db:.1f} dB in MS-SSIM"
    return text


def point_sentence(left: Measurement, right: Measurement) -> str:
    """One sentence comparing two single files (no sweeps needed)."""
    if left.is_original and right.is_original:
        return "Both sides show the original image; choose a codec on either side to compare."
    if left.is_original or right.is_original:
        orig, comp = (left, right) if left.is_original else (right, left)
        side = "right" if comp is right else "left"
        quality = _absolute_quality(comp)
        return (f"The {side} image ({comp.described}) is {size_phrase(orig.size_bytes, comp.size_bytes)} "
                f"{orig.name}" + (f", {quality}." if quality else "."))
    quality = _quality_clause(left, right)
    if abs(right.size_bytes / left.size_bytes - 1.0) <= SAME_SIZE:
        size = format_size((left.size_bytes + right.size_bytes) / 2)
        return (f"At about the same size ({size}), compared with the left image ({left.described}), the right "
                f"image ({right.described}) is {quality}.")
    return (f"The right image ({right.described}) is {size_phrase(left.size_bytes, right.size_bytes)} the "
            f"left ({left.described}) and {quality}.")


def rate_at_quality(bpp: Sequence[float], quality: Sequence[float], target: float) -> float | None:
    """The rate a sweep needs for `target` quality, interpolating log-rate linearly; None outside it.

    Sweeps are not always monotonic (a higher setting can cost more bits for no gain); such points are
    dropped so that the interpolation is single-valued: only points that improve on every cheaper point
    are kept.
    """
    pts = sorted((r, q) for r, q in zip(bpp, quality) if r > 0 and _finite(q))
    kept: list[tuple[float, float]] = []
    for r, q in pts:
        if not kept or q > kept[-1][1]:
            kept.append((r, q))
    if len(kept) < 2 or not (kept[0][1] <= target <= kept[-1][1]):
        return None
    rates = np.log([r for r, _ in kept])
    quals = np.array([q for _, q in kept])
    return float(np.exp(np.interp(target, quals, rates)))


def equal_quality_sentence(curve: RateCurve, point: Measurement) -> str | None:
    """"At the same MS-SSIM the HEVC file is 2.1× smaller than JPEG's", or None without an answer.

    MS-SSIM is preferred when both sides have it, because it follows what people see more closely than
    PSNR; PSNR is used for images too small for MS-SSIM.
    """
    if point.is_original or point.psnr is None or is_lossless(point.psnr):
        return None
    candidates = []
    if _finite(point.ms_ssim_db) and all(v is not None for v in curve.ms_ssim_db):
        candidates.append(("MS-SSIM", curve.ms_ssim_db, point.ms_ssim_db))
    candidates.append(("PSNR", curve.psnr, point.psnr))
    for metric, qualities, target in candidates:
        rate = rate_at_quality(curve.bpp, qualities, target)
        if rate is None:
            continue
        phrase = size_phrase(rate, point.bpp)
        if phrase == "the same size as":
            return f"At the same {metric}, the {point.name} file is the same size as {curve.name}'s."
        return f"At the same {metric}, the {point.name} file is {phrase} {curve.name}'s."
    return None


def summarize(left: Measurement | None, right: Measurement | None,
              left_curve: RateCurve | None = None, right_curve: RateCurve | None = None) -> str:
    """The sentences under the compare view: equal-quality first when a sweep allows it, then the files.

    A curve belongs to the codec of its side; the other side's single file is placed on it. Two files of
    the same codec lie on the same curve, so for them only the files are compared.
    """
    if left is None or right is None:
        return ""
    sentences = []
    if not left.is_original and not right.is_original and left.name != right.name:
        if left_curve is not None:
            sentences.append(equal_quality_sentence(left_curve, right))
        elif right_curve is not None:
            sentences.append(equal_quality_sentence(right_curve, left))
    sentences.append(point_sentence(left, right))
    return " ".join(s for s in sentences if s)


def network_sentence(original_bytes: int, compressed_bytes: int, accuracy_before: float | None = None,
                     accuracy_after: float | None = None) -> str:
    """One sentence on a compressed network: how much smaller the file got and what it cost in accuracy.

    Sizes are of the real files (the checkpoint that was opened, the `.wbn` that was written), so the
    ratio is what a user saves on disk or on the wire. Accuracies are shares (0..1) on the task's test
    set; when they print the same to one decimal the sentence says so instead of "went from 98.9 % to
    98.9 %". Without a task the sentence says that accuracy was not measured rather than hide it.

    >>> network_sentence(352_712, 10_003, 0.9889, 0.9889)
    'The network is now 35.3 times smaller (353 kB → 10 kB) and its accuracy stayed at 98.9 %.'
    """
    if original_bytes <= 0 or compressed_bytes <= 0:
        raise ValueError("sizes must be positive")
    ratio = original_bytes / compressed_bytes
    sizes = f"({format_size(original_bytes)} → {format_size(compressed_bytes)})"
    if ratio >= 2.0:
        size = f"is now {ratio:.1f} times smaller {sizes}"
    elif ratio > 1.005:
        size = f"is now {(1.0 - 1.0 / ratio) * 100:.0f} % smaller {sizes}"
    elif ratio >= 0.995:
        size = f"is about the same size as before {sizes}"
    else:
        size = f"got {(1.0 / ratio - 1.0) * 100:.0f} % larger {sizes}"
    if accuracy_before is None or accuracy_after is None:
        return f"The network {size}; its accuracy was not measured, because the workbench has no test set for it."
    before, after = f"{accuracy_before * 100:.1f} %", f"{accuracy_after * 100:.1f} %"
    if before == after:
        return f"The network {size} and its accuracy stayed at {after}."
    return f"The network {size} and its accuracy went from {before} to {after}."
