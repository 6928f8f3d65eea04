"""Train a CompressAI model with CompressAI's own code and its training example's recipe, on CPU.

Issue 14 asks what our encoder tools (rdoq, tcq8, per-image optimization) save on a *trained*
CompressAI model; no zoo weights can be downloaded here, so one is trained. CompressAI is an oracle,
never a dependency (it needs torchvision, which does not import beside our torch): `--stub` names a
file that puts stand-ins for torchvision in `sys.modules` and CompressAI's install on `sys.path`, as in
`compressai_oracle.py`.

The recipe of CompressAI's `examples/train.py`: Adam at 1e-4 for the network, a second Adam at 1e-3 for
the entropy bottleneck's quantiles (its aux loss), gradient norm clipped at 1, loss
λ·255²·MSE + bpp. What the two CPU cores force to differ, and is printed in the run's `run.json`:
patches of 128 px instead of 256 (the same pixels per second, more steps), and a fixed step budget
instead of epochs. Data: BSDS500 photographs downscaled by 2 (they carry JPEG artefacts) and the
Wikipedia photographs at a random scale; the last 16 BSDS files are held out for validation. Never Kodak.

The run folder is the state: run again with the same command to continue. Checkpoints are written
in the training example's form (`epoch`, `state_dict`, `optimizer`, `aux_optimizer`, `loss`), which
`workbench` opens directly, and at the end in the zoo's form too (a bare state dict after `update()`).

    .venv/bin/python benchmarks/train_compressai_recipe.py --stub /root/oracle/stub.py \
        --arch mbt2018-mean --quality 3 --lmbda 0.0067 --steps 3000 --out ~/runs/mbt
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def load_photos(data: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(training images, validation images) as uint8 HWC arrays."""
    bsds = sorted((data / "train").glob("*.jpg"))
    train, val = [], []
    for i, path in enumerate(bsds):
        im = Image.open(path).convert("RGB")
        im = im.resize((im.width // 2, im.height // 2), Image.LANCZOS)
        (val if i >= len(bsds) - 16 else train).append(np.asarray(im))
    for path in sorted((data / "wikipedia49").glob("*.png")):
        train.append(np.asarray(Image.open(path).convert("RGB")))
    return train, val


def random_batch(photos: list[np.ndarray], batch: int, patch: int, rng: np.random.Generator) -> torch.Tensor:
    crops = []
    for _ in range(batch):
        img = photos[rng.integers(len(photos))]
        if min(img.shape[:2]) > 2 * patch and rng.random() < 0.7:   # large photographs: a random scale
            scale = rng.uniform(max(patch / min(img.shape[:2]), 0.35), 1.0)
            side = int(patch / scale)
            y, x = rng.integers(img.shape[0] - side + 1), rng.integers(img.shape[1] - side + 1)
            crop = np.asarray(Image.fromarray(img[y:y + side, x:x + side]).resize((patch, patch), Image.LANCZOS))
        else:
            y, x = rng.integers(img.shape[0] - patch + 1), rng.integers(img.shape[1] - patch + 1)
            crop = img[y:y + patch, x:x + patch]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crops.append(np.ascontiguousarray(crop))
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255


def rd_loss(out: dict, x: torch.Tensor, lmbda: float) -> tuple[torch.Tensor, float, float]:
    pixels = x.shape[0] * x.shape[2] * x.shape[3]
    bpp = sum(torch.log(v).sum() for v in out["likelihoods"].values()) / (-math.log(2) * pixels)
    mse = torch.nn.functional.mse_loss(out["x_hat"], x)
    return lmbda * 255 ** 2 * mse + bpp, bpp.item(), mse.item()


def validate(net, val: list[np.ndarray], lmbda: float) -> dict:
    net.eval()
    bpps, psnrs = [], []
    with torch.no_grad():
        for img in val:
            h, w = (img.shape[0] // 64) * 64, (img.shape[1] // 64) * 64
            x = torch.from_numpy(np.ascontiguousarray(img[:h, :w])).permute(2, 0, 1)[None].float() / 255
            _, bpp, mse = rd_loss(net(x), x, lmbda)
            bpps.append(bpp)
            psnrs.append(10 * math.log10(1 / mse))
    net.train()
    return {"val_bpp": float(np.mean(bpps)), "val_psnr": float(np.mean(psnrs))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stub", required=True, help="file that makes compressai importable (see compressai_oracle.py)")
    ap.add_argument("--arch", default="mbt2018-mean")
    ap.add_argument("--quality", type=int, default=3, help="zoo quality: picks N and M")
    ap.add_argument("--lmbda", type=float, default=0.0067, help="λ (the zoo's MSE λ for quality 3 is 0.0067)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--aux-lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    exec(compile(Path(args.stub).read_text(), args.stub, "exec"), {})
    from compressai.zoo import image_models

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    net = image_models[args.arch](quality=args.quality)
    main_params = [p for n, p in net.named_parameters() if not n.endswith(".quantiles")]
    aux_params = [p for n, p in net.named_parameters() if n.endswith(".quantiles")]
    optimizer = torch.optim.Adam(main_params, lr=args.lr)
    aux_optimizer = torch.optim.Adam(aux_params, lr=args.aux_lr)

    args.out.mkdir(parents=True, exist_ok=True)
    last = args.out / "last.pth.tar"
    step = 0
    if last.exists():
        state = torch.load(last, map_location="cpu", weights_only=True)
        net.load_state_dict(state["state_dict"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        aux_optimizer.load_state_dict(state["aux_optimizer"])
        step = int(state["epoch"])
    (args.out / "run.json").write_text(json.dumps({**{k: str(v) for k, v in vars(args).items()},
                                                    "recipe": "CompressAI examples/train.py, patch 128 and "
                                                              "a step budget instead of epochs"}, indent=1))
    train, val = load_photos(args.data)
    rng = np.random.default_rng([args.seed, step])
    log = open(args.out / "train_log.jsonl", "a")
    started = time.process_time()
    while step < args.steps:
        x = random_batch(train, args.batch, args.patch, rng)
        optimizer.zero_grad()
        aux_optimizer.zero_grad()
        loss, bpp, mse = rd_loss(net(x), x, args.lmbda)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        aux = net.aux_loss()
        aux.backward()
        aux_optimizer.step()
        step += 1
        row = {"step": step, "loss": float(loss), "bpp": bpp, "psnr": 10 * math.log10(1 / mse), "aux": float(aux),
               "cpu_s": time.process_time() - started}
        if step % 100 == 0 or step == args.steps:
            row.update(validate(net, val, args.lmbda))
            state = {"epoch": step, "state_dict": net.state_dict(), "loss": float(loss),
                     "optimizer": optimizer.state_dict(), "aux_optimizer": aux_optimizer.state_dict()}
            torch.save(state, args.out / "last.tmp")
            os.replace(args.out / "last.tmp", last)
        if step % 20 == 0 or "val_bpp" in row:
            log.write(json.dumps(row) + "\n")
            log.flush()
    net.update(force=True)
    torch.save(net.state_dict(), args.out / f"{args.arch}-{args.quality}-trained.pth.tar")


if __name__ == "__main__":
    main()
