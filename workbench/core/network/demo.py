"""The demo network: a small CNN on scikit-learn's bundled digits (8×8 images, 10 classes).

It exists so that compression can be judged by what matters, task accuracy, on any machine and
offline: `load_digits` ships inside scikit-learn, so only the split (a seed and the test indices)
and the trained weights are stored in `resources/demo_net/`. The size (~90 k parameters, most in
one fully connected layer) matches the digits CNN that NNCodec's published figure uses.

Train (seconds on a CPU) and save the shipped files:

    python -m workbench.core.network.demo --train
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

RESOURCE_DIR = Path(__file__).resolve().parents[3] / "resources" / "demo_net"
WEIGHTS = RESOURCE_DIR / "digits_cnn.safetensors"
SPLIT = RESOURCE_DIR / "digits_split.npz"
SEED = 1234
#: What the one-click demo compresses with: 4-state trellis-coded quantization at 4 bits with a mild
#: rate weight shrinks the digits CNN about 35 times (to ~10 kB) without costing test accuracy, in
#: about a second on a laptop CPU; it is also the README's command-line example.
DEMO_QUANTIZER = "tcq"
DEMO_OPTIONS = {"states": 4, "bits": 4, "lam": 0.1}


class DigitsCNN(nn.Module):
    """conv 3×3 (1→32) → conv 3×3 (32→32) → 2×2 pool → fc 512→150 → fc 150→10: 88 k parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 4 * 4, 150)
        self.fc2 = nn.Linear(150, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


def load_data() -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    """All digits as (N,1,8,8) floats in [0,1] and labels, plus the stored train/test indices."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    if SPLIT.is_file():
        with np.load(SPLIT) as z:
            train, test = z["train"].astype(np.int64), z["test"].astype(np.int64)
    else:
        train, test = make_split(len(y))
    return x, y, train, test


def make_split(n: int, test_fraction: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(SEED).permutation(n)
    k = int(round(n * test_fraction))
    return np.sort(perm[k:]), np.sort(perm[:k])


class DigitsTask:
    """Evaluator for the compression jobs: accuracy on the held-out split, and the training loss
    that soft-to-hard VQ finetunes with. Works on any state dict with the demo network's keys."""

    name = "digits"

    def __init__(self) -> None:
        self.x, self.y, self.train_idx, self.test_idx = load_data()
        self.model = DigitsCNN()
        self.keys = {k: tuple(v.shape) for k, v in self.model.state_dict().items()}

    def matches(self, state: dict[str, torch.Tensor]) -> bool:
        return {k: tuple(v.shape) for k, v in state.items()} == self.keys

    @torch.no_grad()
    def accuracy(self, state: dict[str, torch.Tensor]) -> float:
        logits = torch.func.functional_call(self.model, {k: v.float() for k, v in state.items()},
                                            (self.x[self.test_idx],))
        return float((logits.argmax(1) == self.y[self.test_idx]).float().mean())

    def probe(self, params: dict[str, torch.Tensor], generator: torch.Generator, batch: int = 256) -> torch.Tensor:
        """Σ ±loss_i over training images with labels drawn from the network's own predictions: the
        squared gradient of this estimates the Fisher information's diagonal (`sensitivity`)."""
        idx = torch.as_tensor(self.train_idx)[torch.randint(len(self.train_idx), (batch,), generator=generator)]
        logits = torch.func.functional_call(self.model, params, (self.x[idx],))
        y = torch.multinomial(torch.softmax(logits.detach(), 1), 1, generator=generator)[:, 0]
        sign = torch.randint(2, (batch,), generator=generator) * 2 - 1
        return (sign * F.cross_entropy(logits, y, reduction="none")).sum()

    def loss(self, params: dict[str, torch.Tensor], batch: int = 128, generator=None) -> torch.Tensor:
        idx = torch.as_tensor(self.train_idx)[torch.randint(len(self.train_idx), (batch,), generator=generator)]
        logits = torch.func.functional_call(self.model, params, (self.x[idx],))
        return F.cross_entropy(logits, self.y[idx])


@functools.lru_cache(maxsize=1)
def _demo_shapes() -> tuple[tuple[str, tuple[int, ...]], ...]:
    return tuple((k, tuple(v.shape)) for k, v in DigitsCNN().state_dict().items())


@functools.lru_cache(maxsize=1)
def _digits_task() -> DigitsTask:
    return DigitsTask()


def task_for(state: dict[str, torch.Tensor]) -> DigitsTask | None:
    """The accuracy evaluator for `state`, or None when the workbench has no task for that network.

    The shapes are compared before the task is built, because building it loads the digits data set
    (over a second); the built task is kept, so repeated compressions of the demo pay for it once.
    """
    if tuple(sorted((k, tuple(v.shape)) for k, v in state.items())) != tuple(sorted(_demo_shapes())):
        return None
    return _digits_task()


def train(epochs: int = 40, lr: float = 2e-3):
    torch.manual_seed(SEED)
    x, y, _, _ = load_data()
    train_idx, test_idx = make_split(len(y))
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(SEED)
    xt, yt = x[train_idx], y[train_idx]
    for epoch in range(epochs):
        perm = torch.randperm(len(yt), generator=g)
        model.train()
        for i in range(0, len(perm), 64):
            b = perm[i:i + 64]
            opt.zero_grad()
            F.cross_entropy(model(xt[b]), yt[b]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(x[test_idx]).argmax(1) == y[test_idx]).float().mean())
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, acc, (train_idx, test_idx)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", action="store_true", help="train and save the shipped demo network")
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args(argv)
    from workbench.core.network.checkpoint import save_checkpoint

    if args.train:
        state, acc, (tr, te) = train(args.epochs)
        RESOURCE_DIR.mkdir(parents=True, exist_ok=True)
        np.savez(SPLIT, train=tr.astype(np.int16), test=te.astype(np.int16), seed=np.int64(SEED))
        save_checkpoint(state, WEIGHTS)
        n = sum(v.numel() for v in state.values())
        print(f"trained {n} parameters, test accuracy {acc:.4f}; wrote {WEIGHTS} and {SPLIT}")
    else:
        from workbench.core.network.checkpoint import load_checkpoint

        print(f"test accuracy {DigitsTask().accuracy(load_checkpoint(WEIGHTS)):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
