"""Benchmark: peak memory and CPU time of `compress_network_job` on a transformer-sized network.

    .venv/bin/python benchmarks/network_memory.py [--folder bench-out/encoder-30m] [--only uniform,tcq8]

Each setting runs in a fresh child process. The child imports everything, notes its resident set
(VmRSS), then loads the checkpoint (a Hugging Face folder, made here with `make_test_encoder` when
missing) and compresses it; it reports its peak resident set (ru_maxrss) minus that baseline, i.e. the
memory the loaded model and the compression take (what `workbench compress-net` does: the
decoded network is checked tensor by tensor, not kept), as a multiple of the model's float32 size, and its
CPU seconds (user + system, so another load on the machine does not count), plus the output cosine
and the SHA-256 of the file (equal hashes: a change left the output byte-identical).

With `--trace` the row gains each stage's peak over the baseline (`StageProbe`): loading, the
calibration task, and the job between one progress event and the next, named by the earlier event's
message (a quantizer reports a tensor when it is done, so that stage holds the next tensor's work).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

SETTINGS = {
    "uniform": ("uniform", {"bits": 8}),
    "rdoq": ("rdoq", {"qp": -28, "lam": 0.1}),
    "tcq4": ("tcq", {"qp": -28, "lam": 0.1, "states": 4}),
    "tcq8": ("tcq", {"qp": -28, "lam": 0.1, "states": 8}),
    "tcq4cal": ("tcq", {"qp": -26, "lam": 0.1, "states": 4}),      # with `--calibrate tokens`
    "uniformcal": ("uniform", {"qp": -26}),                          # with `--calibrate tokens`
    "shvq": ("shvq", {"centers": 16, "lam": 0.05, "iters": 300}),
}


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class StageProbe:
    """Each stage's peak resident set (MB over `base_kb`), exact: at every stage change it reads the
    kernel's high-water mark (VmHWM) and resets it (`/proc/self/clear_refs`, Linux ≥ 4.0), so a
    spike inside compiled code that holds the GIL is not missed as a sampling thread would. The
    reset also resets `ru_maxrss`, so the overall peak is the stages' highest."""

    def __init__(self, base_kb: int):
        self.base_kb = base_kb
        self.stage = "start"
        self.peaks: dict[str, float] = {}
        self._reset()

    @staticmethod
    def _reset() -> None:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    def at(self, stage: str) -> None:
        hwm = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                   if line.startswith("VmHWM:"))
        self.peaks[self.stage] = max(self.peaks.get(self.stage, float("-inf")), (hwm - self.base_kb) / 1024)
        self._reset()
        self.stage = stage

    @property
    def peak_kb(self) -> int:
        return self.base_kb + int(max(self.peaks.values()) * 1024)


def child(folder: str, name: str, trace: bool = False) -> dict:
    import torch

    from workbench.core.jobs import run
    from workbench.core.network.checkpoint import checkpoint_file, load_checkpoint
    from workbench.core.network.compress import compress_network_job, decompress_network
    from workbench.core.network.encoder import CALIBRATION_SEED, EncoderConfig, EncoderTask, task_for_folder

    torch.set_num_threads(1)
    base_kb = _rss_kb()
    probe = StageProbe(base_kb) if trace else None
    mark = probe.at if trace else (lambda stage: None)
    cpu0 = time.process_time()
    mark("loading")
    state = load_checkpoint(folder)
    size = sum(t.numel() * 4 for t in state.values())
    q, opts = SETTINGS[name]
    mark("calibration task")
    cal = task_for_folder(folder, state, seed=CALIBRATION_SEED) if name.endswith("cal") else None
    mark("job start")
    # as `workbench compress-net`
    r = run(compress_network_job(state, q, opts, keep_state=False, calibration=cal), lambda event: mark(event.message))
    mark("after the last progress event")
    cpu = time.process_time() - cpu0
    mark("done")
    peak_kb = probe.peak_kb if trace else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cos = EncoderTask(state, EncoderConfig.read(Path(folder))).accuracy(decompress_network(r.data))
    return {"setting": name, "quantizer": q, "options": opts, "float32_bytes": size,
            "file": str(checkpoint_file(folder)), "baseline_rss_mb": base_kb / 1024,
            "peak_rss_mb": peak_kb / 1024, "peak_over_baseline_mb": (peak_kb - base_kb) / 1024, "ratio_to_float32": (peak_kb - base_kb) * 1024 / size,
            "cpu_s": cpu, "bytes": len(r.data), "bits_per_weight": r.bits_per_weight, "output_cosine": cos,
            "coders": sorted({row.coder for row in r.rows}), "sha256": hashlib.sha256(r.data).hexdigest(),
            **({"stage_peaks_mb": {k: round(v, 1) for k, v in probe.peaks.items()}} if trace else {})}


def ensure_folder(folder: Path) -> None:
    from workbench.core.network.encoder import EncoderConfig, make_test_encoder, save_folder

    if not (folder / "model.safetensors").is_file():
        cfg = EncoderConfig()
        save_folder(make_test_encoder(cfg), cfg, folder)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", default="bench-out/encoder-30m")
    ap.add_argument("--only", default=",".join(SETTINGS))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", default="bench-out/network_memory.json")
    ap.add_argument("--trace", action="store_true", help="each stage's peak of the resident set")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.folder, args.child, args.trace)))
        return 0
    ensure_folder(Path(args.folder))
    rows = []
    for name in args.only.split(","):
        p = subprocess.run([sys.executable, __file__, "--folder", args.folder, "--child", name]
                           + ["--trace"] * args.trace, capture_output=True, text=True)
        if p.returncode:
            print(name, "failed:", p.stderr.strip().splitlines()[-1:], flush=True)
            continue
        rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
