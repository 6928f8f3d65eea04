"""Fuzzing every reader of user files with mutations of small files of every format.

    python benchmarks/fuzz_inputs.py --cases 10000 --seed 1 --out docs/benchmarks/fuzz

Each case takes one seed file (tests/data/fuzz, and the released .wbi files of tests/data/released),
mutates it (bit flips, random bytes, truncation, insertion, deletion, a repeated range, an extreme
32-bit value; for workbench containers half of the cases then repair the checksum, so the mutation
reaches the parsers behind it) and hands it to what a user reaches: `load_image` for images and
.wbi files, `decompress_network` for .wbn files (with their base for a delta file), and
`load_checkpoint` for checkpoints. The first two run with limits of 2^22 pixels and 2^24 values
(MAX_PIXELS, MAX_ELEMENTS below), which everything they accept fits in the memory bound. Every case
ends in one outcome:

    decoded    a result
    refused    a WorkbenchError with a one-line message
    traceback  any other exception: a bug
    multiline  a WorkbenchError whose message is more than one line
    memory     an allocation beyond the bound: the worker's address space is limited to what it used
               after warming up plus --memory-mib
    hang       no outcome within --timeout seconds
    died       the worker process died (a crash in native code)

Only `decoded` and `refused` pass; the other cases are listed in OUT/failures.jsonl and their inputs
saved under OUT/failures for replaying. Cases run in worker processes, each reproducible from
(--seed, its number).
`--make-seeds` (re)writes the seed files; tests/test_hostile_inputs.py runs a short version.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import resource
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEEDS = ROOT / "tests" / "data" / "fuzz"
RELEASED = ROOT / "tests" / "data" / "released"
PASSING = ("decoded", "refused")
OUTCOMES = ("decoded", "refused", "traceback", "multiline", "memory", "hang", "died")
CONTAINER_MAGIC = b"WBC\x1a"
# The readers' own limits, set so that what they accept fits the memory bound: a file may declare
# any size up to these (a tiny .wbn can code millions of zeros), and must be refused beyond them
# before anything is allocated. The defaults (2^28 pixels, 2^31 values) are for machines, not for a
# worker with 1 GiB to spare.
MAX_PIXELS = 1 << 22
MAX_ELEMENTS = 1 << 24


def seed_files() -> list[Path]:
    """Every seed, in a stable order (a case number names the same input on every machine)."""
    files = sorted(p for p in SEEDS.iterdir() if p.is_file() and not p.name.startswith("base."))
    return files + sorted(RELEASED.glob("*.wbi"))


# --- mutations ----------------------------------------------------------------------------------


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One to three random edits of `data`; returns the bytes and what was done (for the report)."""
    out = bytearray(data)
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        kind = rng.choice(("flip", "flip", "byte", "truncate", "insert", "delete", "repeat", "u32", "u32"))
        n = len(out)
        at = rng.randrange(max(n, 1))
        if kind == "flip" and n:
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(n)
                out[i] ^= 1 << rng.randrange(8)
        elif kind == "byte" and n:
            out[at] = rng.randrange(256)
        elif kind == "truncate":
            del out[at:]
        elif kind == "insert":
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif kind == "delete":
            del out[at:at + rng.randint(1, 16)]
        elif kind == "repeat" and n:
            piece = out[at:at + rng.randint(1, 64)]
            out[at:at] = piece * rng.randint(1, 4)
        elif kind == "u32" and n >= 4:
            at = rng.randrange(n - 3)
            value = rng.choice((0, 1, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, rng.getrandbits(32)))
            out[at:at + 4] = struct.pack("<I", value)
        done.append(f"{kind}@{at}")
    if out[:4] == CONTAINER_MAGIC and len(out) > 8 and rng.random() < 0.5:
        out[-4:] = struct.pack("<I", zlib.crc32(bytes(out[:-4])))
        done.append("crc")
    return bytes(out), "+".join(done)


def make_case(seed: int, index: int, seeds: list[Path]) -> tuple[Path, bytes, str]:
    rng = random.Random(f"{seed}:{index}")
    src = seeds[rng.randrange(len(seeds))]
    data, how = mutate(src.read_bytes(), rng)
    return src, data, how


# --- the worker: runs cases under a memory and a time limit ----------------------------------------


class _Timeout(BaseException):
    """Raised by the alarm; a BaseException so that no `except Exception` in the code under test eats it."""


def _on_alarm(signum, frame):
    raise _Timeout()


class Readers:
    """What a user's file reaches, by suffix; built once per worker (imports and models warm)."""

    def __init__(self, scratch: Path):
        from workbench.core.images import load_image
        from workbench.core.network.checkpoint import load_checkpoint
        from workbench.core.network.compress import decompress_network

        self.scratch = scratch
        self.load_image, self.load_checkpoint, self.decompress_network = load_image, load_checkpoint, decompress_network
        base = SEEDS / "base.safetensors"
        self.base = load_checkpoint(base) if base.is_file() else None

    def read(self, src: Path, data: bytes):
        suffix = src.suffix
        if suffix == ".wbn":
            return self.decompress_network(data, self.base if "delta" in src.name else None, max_elements=MAX_ELEMENTS)
        if suffix in (".pt", ".safetensors"):
            path = self.scratch / f"case{suffix}"
            path.write_bytes(data)
            return self.load_checkpoint(path)
        return self.load_image(data, max_pixels=MAX_PIXELS)


def run_case(readers: Readers, src: Path, data: bytes, timeout: float) -> tuple[str, str]:
    from workbench.core.errors import WorkbenchError, out_of_memory

    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        readers.read(src, data)
        return "decoded", ""
    except _Timeout:
        return "hang", f"over {timeout} s"
    except WorkbenchError as err:
        text = str(err)
        return ("multiline" if "\n" in text.strip() else "refused"), text[:300]
    except BaseException as err:       # noqa: BLE001 - every other exception is what this run looks for
        if out_of_memory(err):
            return "memory", f"{type(err).__name__}: {str(err)[:200]}"
        import traceback

        where = traceback.extract_tb(err.__traceback__)[-1]
        return "traceback", f"{type(err).__name__}: {str(err)[:200]} at {Path(where.filename).name}:{where.lineno}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _vm_size() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def worker(args) -> None:
    import tempfile

    import torch

    torch.set_num_threads(1)
    seeds = seed_files()
    with tempfile.TemporaryDirectory() as scratch:
        readers = Readers(Path(scratch))
        for src in seeds:                           # warm up: imports, models, lazy tables
            readers.read(src, src.read_bytes())
        limit = _vm_size() + args.memory_mib * (1 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
        signal.signal(signal.SIGALRM, _on_alarm)
        for index in range(args.start, args.stop):
            src, data, how = make_case(args.seed, index, seeds)
            outcome, detail = run_case(readers, src, data, args.timeout)
            print(json.dumps({"case": index, "seed_file": src.name, "mutation": how, "outcome": outcome,
                              "detail": detail}), flush=True)


# --- the parent: spreads cases over workers, restarts a worker that died ------------------------------


def run_cases(seed: int, start: int, stop: int, *, workers: int = 1, timeout: float = 5.0, memory_mib: int = 1024,
              on_result=None) -> list[dict]:
    """Run cases start..stop-1 in `workers` processes; returns one record per case, in order."""
    chunks = [(start + k * (stop - start) // workers, start + (k + 1) * (stop - start) // workers)
              for k in range(workers)]
    results: dict[int, dict] = {}
    lock = threading.Lock()

    def drive(lo: int, hi: int) -> None:
        while lo < hi:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--seed", str(seed), "--start", str(lo),
                   "--stop", str(hi), "--timeout", str(timeout), "--memory-mib", str(memory_mib)]
            env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            lines: queue.Queue = queue.Queue()
            threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout] + [lines.put(None)],
                             daemon=True).start()
            threading.Thread(target=proc.stderr.read, daemon=True).start()     # drain, never block the worker
            wait = 300.0                            # imports and a decode of every seed come first
            while lo < hi:
                try:
                    line = lines.get(timeout=wait)
                except queue.Empty:
                    line = "HUNG"
                wait = timeout + 30                 # the alarm stops Python code; this, native code
                if line is None or line == "HUNG":
                    proc.kill()
                    proc.wait()
                    rec = {"case": lo, "outcome": "hang" if line == "HUNG" else "died",
                           "detail": f"worker exit status {proc.returncode}"}
                    rec.update(_describe(seed, lo))
                    with lock:
                        results[lo] = rec
                    if on_result:
                        on_result(rec)
                    lo += 1
                    break                           # a fresh worker for the rest
                rec = json.loads(line)
                with lock:
                    results[rec["case"]] = rec
                if on_result:
                    on_result(rec)
                lo = rec["case"] + 1
            else:
                proc.wait()

    threads = [threading.Thread(target=drive, args=c) for c in chunks if c[0] < c[1]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [results[i] for i in sorted(results)]


def _describe(seed: int, index: int) -> dict:
    src, _, how = make_case(seed, index, seed_files())
    return {"seed_file": src.name, "mutation": how}


def save_failures(records: list[dict], seed: int, folder: Path) -> None:
    seeds = seed_files()
    failed = [r for r in records if r["outcome"] not in PASSING]
    if not failed:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for r in failed:
        src, data, _ = make_case(seed, r["case"], seeds)
        (folder / f"case{r['case']}-{src.stem}{src.suffix}").write_bytes(data)


# --- seeds ------------------------------------------------------------------------------------------


def make_seeds(folder: Path) -> None:
    """Small files of every format the readers take (kept under a few KB so mutations reach everything)."""
    import numpy as np
    import torch
    from PIL import Image

    from workbench.core.codecs import get_codec
    from workbench.core.jobs import run
    from workbench.core.network.checkpoint import save_checkpoint
    from workbench.core.network.compress import compress_network_job

    folder.mkdir(parents=True, exist_ok=True)
    rgb = np.asarray(Image.open(ROOT / "tests" / "data" / "chapel_192x176.png").convert("RGB"))[40:64, 60:92].copy()
    Image.fromarray(rgb).save(folder / "image.png")
    for name, quality in (("jpeg", 50), ("webp", 50), ("avif", 50), ("hevc", 50), ("jxl", 50), ("jpeg2000", 30)):
        codec = get_codec(name)
        (folder / f"image{codec.extension}").write_bytes(codec.encode(rgb, codec.options(quality=quality)))
    g = torch.Generator().manual_seed(0)
    net = {"conv.weight": torch.randn(4, 3, 3, 3, generator=g) * 0.2, "conv.bias": torch.randn(4, generator=g),
           "fc.weight": torch.randn(3, 24, generator=g) * 0.1, "dead.weight": torch.zeros(2, 8),
           "fc.bias": torch.randn(3, generator=g).half(), "steps": torch.tensor(7),
           "fp8": (torch.randn(6, generator=g)).to(torch.float8_e4m3fn), "mask": torch.tensor([True, False, True])}
    save_checkpoint(net, folder / "net.pt")
    save_checkpoint(net, folder / "net.safetensors")
    for quantizer, options in (("uniform", {"bits": 4}), ("tcq", {"bits": 4, "states": 8}),
                               ("shvq", {"centers": 4, "iters": 20})):
        for coder in ("cabac", "categorical"):
            res = run(compress_network_job(net, quantizer, options, coder=coder))
            (folder / f"net-{quantizer}-{coder}.wbn").write_bytes(res.data)
    base = {k: (v + 0.01 if v.is_floating_point() and v.dtype != torch.float8_e4m3fn else v) for k, v in net.items()}
    save_checkpoint(base, folder / "base.safetensors")
    res = run(compress_network_job(net, "uniform", {"bits": 6}, base=base))
    (folder / "net-delta.wbn").write_bytes(res.data)


# --- the command --------------------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=10000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--timeout", type=float, default=5.0, help="seconds a case may take")
    p.add_argument("--memory-mib", type=int, default=1024, help="address space a case may add to the warm worker's")
    p.add_argument("--out", type=Path, help="folder for summary.json, failures.jsonl and failures/ (their inputs)")
    p.add_argument("--make-seeds", action="store_true", help=f"write the seed files to {SEEDS} and stop")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--stop", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.make_seeds:
        make_seeds(SEEDS)
        return 0
    if args.worker:
        worker(args)
        return 0
    t0 = time.perf_counter()
    done = [0]

    def progress(rec: dict) -> None:
        done[0] += 1
        if rec["outcome"] not in PASSING:
            print(f"case {rec['case']} ({rec.get('seed_file')}, {rec.get('mutation')}): {rec['outcome']} "
                  f"{rec.get('detail', '')}", file=sys.stderr)
        if done[0] % 500 == 0:
            print(f"{done[0]}/{args.cases} cases, {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    records = run_cases(args.seed, 0, args.cases, workers=args.workers, timeout=args.timeout,
                        memory_mib=args.memory_mib, on_result=progress)
    wall = time.perf_counter() - t0
    counts = {k: sum(r["outcome"] == k for r in records) for k in OUTCOMES}
    per_seed: dict[str, dict[str, int]] = {}
    for r in records:
        row = per_seed.setdefault(r.get("seed_file", "?"), {})
        row[r["outcome"]] = row.get(r["outcome"], 0) + 1
    at_checksum = sum("checksum mismatch" in r.get("detail", "") for r in records)
    summary = {"cases": len(records), "seed": args.seed, "workers": args.workers, "timeout_s": args.timeout,
               "memory_mib": args.memory_mib, "wall_s": round(wall, 1), "outcomes": counts,
               "refused_by_container_checksum": at_checksum, "per_seed_file": per_seed,
               "command": "python benchmarks/fuzz_inputs.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        with open(args.out / "failures.jsonl", "w") as fh:
            for r in records:
                if r["outcome"] not in PASSING:
                    fh.write(json.dumps(r) + "\n")
        save_failures(records, args.seed, args.out / "failures")
    return 0 if all(r["outcome"] in PASSING for r in records) else 1


if __name__ == "__main__":
    raise SystemExit(main())
