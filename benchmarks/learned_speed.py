"""Encode + decode time of the learned codec per image, against a CompressAI-sized model timed in
the same run.

    python benchmarks/learned_speed.py ../shared/datasets/kodak --limit 6

The reference is the architecture of CompressAI's bmshj2018-hyperprior (N=128, M=192) built from
our own layers with untrained weights and coded by our own coder: the same work per pixel as
CompressAI's model, so the ratio isolates what our smaller shipped model costs. (DESIGN.md quotes
≈ 0.66 s for CompressAI's own implementation on this machine; it is not installed here.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.core.codecs import get_codec  # noqa: E402
from workbench.core.images import list_images, load_image  # noqa: E402
from workbench.core.learned.kinds import build_model  # noqa: E402
from workbench.core.learned.weights import export_checkpoint  # noqa: E402


def time_model(model: str, images, quality: float, repeats: int) -> tuple[float, float]:
    codec = get_codec("learned")
    opts = codec.options(quality=quality, model=model)
    codec.decode(codec.encode(images[0], opts))      # load weights, warm caches
    enc = dec = 0.0
    for _ in range(repeats):
        for rgb in images:
            t0 = time.perf_counter()
            data = codec.encode(rgb, opts)
            t1 = time.perf_counter()
            codec.decode(data)
            t2 = time.perf_counter()
            enc += t1 - t0
            dec += t2 - t1
    n = repeats * len(images)
    return enc / n, dec / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("--limit", type=int, default=6)
    ap.add_argument("--quality", type=float, default=4)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--model", default="dct-hyperprior-mse")
    a = ap.parse_args()
    images = [load_image(p).rgb for p in list_images(a.folder)[: a.limit]]
    with tempfile.TemporaryDirectory() as tmp:
        ref = build_model("hyperprior", n=128, m=192)
        torch.save({"model": ref.state_dict(), "architecture": "hyperprior", "config": '{"n": 128, "m": 192}',
                    "step": 0}, Path(tmp) / "ref.pt")
        ref_file = export_checkpoint(Path(tmp) / "ref.pt", Path(tmp) / "compressai-sized.safetensors")
        ours = time_model(a.model, images, a.quality, a.repeats)
        theirs = time_model(str(ref_file), images, a.quality, a.repeats)
    print(f"{len(images)} images, torch threads {torch.get_num_threads()}")
    print(f"{a.model}: encode {ours[0]:.3f} s + decode {ours[1]:.3f} s = {sum(ours):.3f} s per image")
    print(f"CompressAI-sized (N=128, M=192): encode {theirs[0]:.3f} s + decode {theirs[1]:.3f} s = "
          f"{sum(theirs):.3f} s per image")
    print(f"ratio ours / CompressAI-sized: {sum(ours) / sum(theirs):.2f}")


if __name__ == "__main__":
    main()
