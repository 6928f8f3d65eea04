"""Files that released versions wrote keep decoding to the same pixels: one small `.wbi` per shipped
model (and per latent quantizer that changes the stream), written by the version that shipped it."""

import hashlib
import json
from pathlib import Path

import pytest

from workbench.core.codecs import get_codec

RELEASED = Path(__file__).parent / "data" / "released"
EXPECTED = json.loads((RELEASED / "pixels.sha256.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_released_file_decodes_to_the_same_pixels(name):
    pixels = get_codec("learned").decode((RELEASED / name).read_bytes())
    assert hashlib.sha256(pixels.tobytes()).hexdigest() == EXPECTED[name]


def test_every_shipped_model_has_a_released_file():
    from workbench.core.learned.catalog import shipped_models
    covered = {name.rsplit("-q", 1)[0] for name in EXPECTED}
    assert set(shipped_models()) <= covered
