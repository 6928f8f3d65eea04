"""Ready-made settings named by what a picture is for, for people who do not know codecs.

Each preset is one codec with fixed settings and one sentence that says what they give; a preset whose
codec is not available here is offered greyed out with the reason, never silently swapped for another
codec, since the sentence describes that codec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Preset:
    name: str                                   # "web"
    title: str                                  # what the chooser shows
    codec: str
    settings: tuple[tuple[str, Any], ...]       # option values; the others keep their defaults
    explanation: str                            # one line, in plain words

    @property
    def values(self) -> dict[str, Any]:
        return dict(self.settings)

    def matches(self, codec: str | None, values: dict[str, Any]) -> bool:
        """Whether settings shown are still this preset's (a changed quality makes them custom)."""
        return codec == self.codec and all(values.get(k) == v for k, v in self.settings)


PRESETS = (
    Preset("web", "Web page", "webp", (("quality", 75),),
           "WebP at quality 75: small files that every current browser shows, with little visible loss."),
    Preset("email", "Email attachment", "jpeg", (("quality", 60), ("subsampling", "4:2:0")),
           "JPEG at quality 60: opens in every mail program and phone, and keeps the attachment small."),
    Preset("archive", "Archive (keep every pixel)", "jxl", (("quality", 100),),
           "JPEG XL lossless: every pixel is kept exactly, for originals you must not lose."),
)


def preset(name: str) -> Preset:
    return next(p for p in PRESETS if p.name == name)
