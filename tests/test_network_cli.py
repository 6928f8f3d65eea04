"""compress-net / decompress-net through a real subprocess."""

import json
import subprocess
import sys

import torch

from workbench.core.network.checkpoint import load_checkpoint, save_checkpoint
from workbench.core.network.demo import WEIGHTS


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_compress_and_decompress_demo(tmp_path):
    r = _cli("compress-net", str(WEIGHTS), "-q", "tcq", "--bits", "5", "-o", "d.wbn", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "bits/weight" in r.stdout and "accuracy" in r.stdout
    summary = json.loads((tmp_path / "d.wbn.json").read_text())
    assert summary["accuracy_after"] is not None and len(summary["tensors"]) == 8
    sd = load_checkpoint(WEIGHTS)
    for out in ("m.safetensors", "m.pt"):
        r = _cli("decompress-net", "d.wbn", "-o", out, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        back = load_checkpoint(tmp_path / out)
        assert {k: (v.shape, v.dtype) for k, v in back.items()} == {k: (v.shape, v.dtype) for k, v in sd.items()}


def test_delta_and_errors(tmp_path):
    base = {"w": torch.randn(6, 5), "b": torch.zeros(6)}
    tuned = {"w": base["w"] + 0.01, "b": base["b"]}
    save_checkpoint(base, tmp_path / "base.safetensors")
    save_checkpoint(tuned, tmp_path / "tuned.pt")
    save_checkpoint({"w": torch.ones(6, 5), "b": torch.zeros(6)}, tmp_path / "other.safetensors")
    r = _cli("compress-net", "tuned.pt", "--base", "base.safetensors", "-o", "t.wbn", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _cli("decompress-net", "t.wbn", "-o", "x.pt", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "base" in r.stderr
    r = _cli("decompress-net", "t.wbn", "--base", "other.safetensors", "-o", "x.pt", cwd=tmp_path)
    assert r.returncode == 2 and "wrong base" in r.stderr
    r = _cli("decompress-net", "t.wbn", "--base", "base.safetensors", "-o", "x.pt", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (tmp_path / "bad.wbn").write_bytes(b"WBC\x1a" + b"\x00" * 30)
    r = _cli("decompress-net", "bad.wbn", "-o", "y.pt", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    r = _cli("compress-net", "tuned.pt", "-q", "nope", cwd=tmp_path)
    assert r.returncode == 2 and "unknown network quantizer" in r.stderr
