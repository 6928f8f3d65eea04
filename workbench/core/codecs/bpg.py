"""BPG through Fabrice Bellard's `bpgenc`/`bpgdec` command-line tools.

BPG is the classical anchor of most learned-compression papers (CompressAI's benchmark runs exactly
`bpgenc -q QP -f 444 -e x265`), so results are only comparable with the real tools. There is no Python
binding; when the tools are missing, the `hevc` codec gives the same x265 intra coding in HEIF.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np

from workbench.core.codecs.base import ImageCodec, register_codec
from workbench.core.codecs.pillow_codecs import check_rgb, decode_errors, decode_with_pillow
from workbench.core.errors import BitstreamError, CodecUnavailableError, ImageError, WorkbenchError
from workbench.core.images import encode_png
from workbench.core.options import option

# Generous: bpgenc on a 24-megapixel photo takes well under a minute; only a hung tool gets this far.
TIMEOUT_S = 600


@register_codec
class BpgCodec(ImageCodec):
    """BPG (HEVC intra via x265), rate set by the QP as in CompressAI's benchmark.

    >>> rgb = np.full((16, 24, 3), 128, np.uint8)
    >>> data = BpgCodec().encode(rgb, BpgCodec.options(quality=30))
    >>> BpgCodec.sniff(data), BpgCodec().decode(data).shape
    (True, (16, 24, 3))
    """

    name = "bpg"
    label = "BPG (bpgenc, x265)"
    extension = ".bpg"
    quality_help = "bpgenc -q: HEVC quantisation parameter 0-51 (lower = better)."
    sweep = (45, 42, 39, 36, 33, 30, 27, 24)

    @dataclass(frozen=True)
    class Options:
        quality: int = option(28, "bpgenc QP; lower keeps more detail", minimum=0, maximum=51)
        subsampling: str = option("4:4:4", "chroma subsampling (bpgenc -f)", choices=("4:4:4", "4:2:0"))

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        for tool in ("bpgenc", "bpgdec"):
            if shutil.which(tool) is None:
                return False, (f"{tool} not found on PATH; install libbpg or use the hevc codec "
                               "(same HEVC intra coding via x265)")
        return True, ""

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head[:4] == b"BPG\xfb"

    def encode(self, rgb: np.ndarray, options: Any) -> bytes:
        png = encode_png(check_rgb(rgb))
        with TemporaryDirectory(prefix="workbench-bpg-") as tmp:
            src, out = Path(tmp, "in.png"), Path(tmp, "out.bpg")
            src.write_bytes(png)
            _run(["bpgenc", "-o", str(out), "-q", str(options.quality),
                  "-f", options.subsampling.replace(":", ""), "-e", "x265", str(src)], ImageError)
            return out.read_bytes()

    def decode(self, data: bytes) -> np.ndarray:
        with TemporaryDirectory(prefix="workbench-bpg-") as tmp:
            src, out = Path(tmp, "in.bpg"), Path(tmp, "out.png")
            src.write_bytes(bytes(data))
            _run(["bpgdec", "-o", str(out), str(src)], BitstreamError)
            if not out.is_file():
                raise BitstreamError("corrupt or truncated BPG data: bpgdec wrote no image")
            with decode_errors("BPG"):
                return decode_with_pillow(out.read_bytes(), "PNG")


def _run(argv: list[str], error: type[WorkbenchError]) -> None:
    """Run a BPG tool; its failure becomes `error` with the tool's last line of output as the reason."""
    tool = shutil.which(argv[0])
    if tool is None:
        raise CodecUnavailableError(BpgCodec.availability()[1] or f"{argv[0]} not found on PATH")
    what = "corrupt or truncated BPG data" if error is BitstreamError else f"{argv[0]} failed"
    try:
        proc = subprocess.run([tool, *argv[1:]], capture_output=True, timeout=TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise error(f"{what}: {argv[0]} did not finish within {TIMEOUT_S} s") from None
    except OSError as exc:
        raise error(f"{what}: cannot run {tool} ({exc})") from None
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
        raise error(f"{what}: {argv[0]} exited with status {proc.returncode}"
                    + (f" ({lines[-1].strip()})" if lines else ""))
