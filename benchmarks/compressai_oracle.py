"""Imported CompressAI checkpoints against CompressAI's own coder, on the same image.

For each of the six architectures: build the model with CompressAI's code, train it briefly on training
photographs (not Kodak), save it in both checkpoint forms (the zoo's bare state dict and the training
example's dict with "state_dict"), then code one image with CompressAI's `compress`/`decompress` and with
the workbench (`-c learned --model CHECKPOINT`), and print PSNR, size and times side by side.

CompressAI is an oracle here, never a dependency: it needs torchvision, which does not import beside our
torch, so `--stub` names a file that puts stand-ins for torchvision's modules in `sys.modules` and
CompressAI's install folder on `sys.path` before it is imported.

    .venv/bin/python benchmarks/compressai_oracle.py --stub /root/oracle/stub.py \
        --data ../shared/datasets/train --steps 300 --out docs/benchmarks/compressai_oracle.md
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARCHS = {   # name: (CompressAI class, N, M) — small widths so that a brief CPU training moves them
    "bmshj2018-factorized": ("FactorizedPrior", 64, 96),
    "bmshj2018-hyperprior": ("ScaleHyperprior", 64, 96),
    "mbt2018-mean": ("MeanScaleHyperprior", 64, 96),
    "mbt2018": ("JointAutoregressiveHierarchicalPriors", 64, 96),
    "cheng2020-anchor": ("Cheng2020Anchor", 64, 64),
    "cheng2020-attn": ("Cheng2020Attention", 64, 64),
}


def load_stub(path: str) -> None:
    spec = importlib.util.spec_from_file_location("compressai_stub", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


def crops(folder: Path, size: int, count: int, seed: int = 0) -> torch.Tensor:
    from PIL import Image
    rng = np.random.default_rng(seed)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    if "kodak" in str(folder).lower():
        raise SystemExit("never train on Kodak")
    out = []
    for i in range(count):
        im = Image.open(files[rng.integers(len(files))]).convert("RGB")
        im = im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS)
        x0, y0 = rng.integers(0, im.width - size + 1), rng.integers(0, im.height - size + 1)
        out.append(np.asarray(im.crop((x0, y0, x0 + size, y0 + size))))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


def train_briefly(net, data: torch.Tensor, steps: int, lam: float = 0.013) -> None:
    main = [p for n, p in net.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in net.named_parameters() if n.endswith(".quantiles")]
    opt, aux_opt = torch.optim.Adam(main, lr=1e-3), torch.optim.Adam(aux, lr=1e-3)
    g = torch.Generator().manual_seed(0)
    net.train()
    for _ in range(steps):
        x = data[torch.randint(0, data.shape[0], (8,), generator=g)]
        out = net(x)
        bpp = sum(-torch.log2(v).sum() for v in out["likelihoods"].values()) / (x.shape[0] * x.shape[2] * x.shape[3])
        loss = bpp + lam * 255 ** 2 * (out["x_hat"] - x).pow(2).mean()
        opt.zero_grad()
        aux_opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main, 1.0)
        opt.step()
        net.aux_loss().backward()
        aux_opt.step()
    net.update(force=True)
    net.eval()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(255.0 ** 2 / float(np.mean((a.astype(np.float64) - b) ** 2)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stub", required=True)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "train"))
    p.add_argument("--image", default=str(ROOT / "resources" / "samples" / "endeavour.png"))
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--archs", default=",".join(ARCHS))
    p.add_argument("--work", default="/tmp/compressai_oracle")
    p.add_argument("--out", default="")
    args = p.parse_args()
    load_stub(args.stub)
    import compressai.models as cm_models
    from PIL import Image

    from workbench.core.compress import compress_image

    torch.manual_seed(0)
    torch.set_num_threads(2)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rgb = np.array(Image.open(args.image).convert("RGB"))
    rgb = np.ascontiguousarray(rgb[: rgb.shape[0] // 64 * 64, : rgb.shape[1] // 64 * 64])
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    data = crops(Path(args.data), 128, 256)
    rows = []
    for arch in args.archs.split(","):
        cls_name, n, m = ARCHS[arch]
        cls = getattr(cm_models, cls_name)
        net = cls(n) if arch.startswith("cheng") else cls(n, m)
        t = time.perf_counter()
        # Backward through CompressAI's cheng2020 crashes (segmentation fault) in this torch build, so
        # those two are compared untrained: the coding path, which is what is compared, is the same.
        train_briefly(net, data, 0 if arch.startswith("cheng") else args.steps)
        train_s = time.perf_counter() - t
        bare = work / f"{arch}-mse-4-{'%08x' % abs(hash(arch) % 2**32)}.pth.tar"
        torch.save(net.state_dict(), bare)
        wrapped = work / f"{arch}-run.pth.tar"
        torch.save({"epoch": 1, "state_dict": net.state_dict(), "loss": 0.0, "optimizer": {},
                    "aux_optimizer": {}, "lr_scheduler": {}}, wrapped)
        with torch.no_grad():
            t = time.perf_counter()
            enc = net.compress(x)
            t_enc = time.perf_counter() - t
            t = time.perf_counter()
            dec = net.decompress(enc["strings"], enc["shape"])
            t_dec = time.perf_counter() - t
        theirs = np.round(dec["x_hat"].clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        their_bytes = sum(len(s[0]) for s in enc["strings"])
        from workbench.core.learned.weights import load_codec_model
        for path in (bare, wrapped):       # loading (tables computed once per checkpoint) is not coding time
            load_codec_model(str(path))
        ours = {}
        for form, path in (("bare", bare), ("wrapped", wrapped)):
            r = compress_image(rgb, "learned", model=str(path))
            ours[form] = r
        r = ours["bare"]
        assert np.array_equal(ours["wrapped"].reconstruction, r.reconstruction), "both checkpoint forms decode alike"
        rows.append((arch, n, m, train_s, psnr(rgb, theirs), psnr(rgb, r.reconstruction), their_bytes, len(r.data),
                     t_enc, r.encode_s, t_dec, r.decode_s))
        print(rows[-1], flush=True)
    head = ("| architecture | N, M | PSNR CompressAI | PSNR ours | Δ dB | bytes CompressAI | bytes ours | "
            "size ratio | encode CompressAI | encode ours | decode CompressAI | decode ours | decode ratio |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(f"| {a} | {n}, {m} | {p0:.3f} | {p1:.3f} | {p1 - p0:+.3f} | {b0} | {b1} | {b1 / b0:.3f} | "
                   f"{e0:.2f} s | {e1:.2f} s | {d0:.2f} s | {d1:.2f} s | {d1 / d0:.2f} |\n"
                   for a, n, m, _, p0, p1, b0, b1, e0, e1, d0, d1 in rows)
    table = head + body
    print(table)
    if args.out:
        Path(args.out).write_text(f"Image: {Path(args.image).name} cropped to {rgb.shape[1]}x{rgb.shape[0]}; "
                                  f"{args.steps} training steps per model on 128 px crops.\n\n{table}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
