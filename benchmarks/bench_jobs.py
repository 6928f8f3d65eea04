"""The benchmark as researchers run it, timed: `python benchmarks/bench_jobs.py --images DIR [--limit 3]`.

Three checks, each through the real command line (`python -m workbench ...` in fresh processes):

1. `bench --jobs 2` against `--jobs 1` on the same images and codecs, alternating the two a few
   times: wall time, CPU time of the processes, and whether every bpp / PSNR / MS-SSIM is identical.
   The load average is printed beside the times, since on a shared machine a parallel run can only
   win the cores nobody else is using.
2. `compress -c jpeg` on one image, wall time from starting the process to its exit, beside the
   bare interpreter start and `import numpy` for scale, and whether torch was imported.
3. A bench killed (SIGKILL) at a random moment and run again: the rerun must reuse every point
   the first run stored and measure only the rest.

Prints a Markdown report (with the command line that produced it) to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WB = [sys.executable, "-m", "workbench"]


def run_timed(cmd: list[str], cwd: Path = ROOT) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds of the process and its children, result); `python -m` imports the
    package in `cwd` first."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc


def numbers(out: Path) -> list[tuple]:
    points = json.loads((out / "per_image.json").read_text())["points"]
    return [(p["image"], p["codec"], p["quality"], p["bpp"], p["psnr"], p["ms_ssim"]) for p in points]


def check_jobs(folder: Path, codecs: str, rounds: int, tmp: Path) -> list[str]:
    lines = [f"### 1. `bench --codecs {codecs} --jobs 2` vs `--jobs 1`", "",
             "| round | jobs | wall (s) | CPU (s) | load avg before | points |", "|---|---|---|---|---|---|"]
    walls: dict[int, list[float]] = {1: [], 2: []}
    reference = None
    identical = True
    for r in range(rounds):
        for jobs in (1, 2) if r % 2 == 0 else (2, 1):
            out = tmp / f"jobs{jobs}-{r}"
            load = os.getloadavg()[0]
            wall, cpu, _ = run_timed(WB + ["bench", str(folder), "--codecs", codecs, "--jobs", str(jobs),
                                           "--out", str(out)])
            got = numbers(out)
            reference = reference or got
            identical &= got == reference
            walls[jobs].append(wall)
            lines.append(f"| {r + 1} | {jobs} | {wall:.1f} | {cpu:.1f} | {load:.2f} | {len(got)} |")
    ratio = statistics.median(walls[2]) / statistics.median(walls[1])
    lines += ["", f"Median wall time, --jobs 2 / --jobs 1: **{ratio:.2f}** "
              f"({statistics.median(walls[2]):.1f} s / {statistics.median(walls[1]):.1f} s).",
              f"bpp, PSNR and MS-SSIM of every point identical across all runs: **{identical}**.", ""]
    return lines


def check_compress(image: Path, runs: int, tmp: Path, before: str | None) -> list[str]:
    def medians(cmd, cwd=ROOT):
        times = [run_timed(cmd, cwd)[:2] for _ in range(runs)]
        return f"{statistics.median(t[0] for t in times):.3f} | {statistics.median(t[1] for t in times):.3f}"

    out = tmp / "x.jpg"
    compress = medians(WB + ["compress", str(image), "-c", "jpeg", "-o", str(out)])
    bare = medians([sys.executable, "-c", "pass"])
    numpy = medians([sys.executable, "-c", "import numpy"])
    trace = subprocess.run([sys.executable, "-X", "importtime"] + WB[1:] + ["compress", str(image), "-c", "jpeg",
                           "-o", str(out)], capture_output=True, text=True, cwd=ROOT).stderr
    torch = bool(re.search(r"\|\s+torch$", trace, re.M))
    old = []
    if before:
        old = [f"| the same, code of `{before}` (torch imported for MS-SSIM) | "
               f"{medians(WB + ['compress', str(image), '-c', 'jpeg', '-o', str(out)], Path(before))} |"]
    return [f"### 2. `workbench compress {image.name} -c jpeg`, wall time from process start (median of {runs})", "",
            "| command | wall (s) | CPU (s) |", "|---|---|---|",
            f"| `python -c pass` | {bare} |", f"| `python -c 'import numpy'` | {numpy} |",
            f"| `python -m workbench compress -c jpeg` | {compress} |", *old, "",
            f"torch imported: **{torch}**; load average at the end: {os.getloadavg()[0]:.2f}.", ""]


def check_kill(folder: Path, codecs: str, seed: int, tmp: Path) -> list[str]:
    out = tmp / "killed"
    cmd = WB + ["bench", str(folder), "--codecs", codecs, "--jobs", "2", "--out", str(out)]
    delay = random.Random(seed).uniform(3.0, 10.0)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)                    # the workers notice within 0.5 s that their parent is gone
    stored = _complete_lines(out / "points.jsonl")
    _, _, rerun = run_timed(cmd)
    reused = re.search(r"(\d+) point\(s\) measured before were reused", rerun.stdout)
    measured = re.search(r"(\d+) encodes", rerun.stdout)
    total = len(numbers(out))
    lines_after = _complete_lines(out / "points.jsonl")
    ok = reused is not None and int(reused.group(1)) == stored and lines_after == total
    return [f"### 3. Killed with SIGKILL after {delay:.1f} s (seed {seed}), then the same command again", "",
            f"- points stored when killed: {stored}",
            f"- rerun: {reused.group(1) if reused else 0} reused, {measured.group(1) if measured else '?'} measured, "
            f"{total} in the report",
            f"- lines in points.jsonl after the rerun: {lines_after} (one per point: nothing measured twice)",
            f"- finished points recomputed: **{'none' if ok else 'SOME'}**", ""]


def _complete_lines(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.endswith("}"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="folder of images")
    parser.add_argument("--limit", type=int, default=3, help="images used (the first N by name)")
    parser.add_argument("--codecs", default="jpeg,webp,hevc")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each --jobs value, alternated")
    parser.add_argument("--seed", type=int, default=0, help="picks the moment of the kill")
    parser.add_argument("--before", help="source tree of an earlier version (e.g. `git archive` of a commit) "
                        "whose `compress` is timed beside this one's")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        folder = tmp / "images"
        folder.mkdir()
        images = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() == ".png")[: args.limit]
        for p in images:
            shutil.copy(p, folder / p.name)
        report = [f"## bench --jobs, compress start-up, kill and resume ({len(images)} images of {args.images})", "",
                  f"Command: `python benchmarks/bench_jobs.py {' '.join(sys.argv[1:])}`; "
                  f"{os.cpu_count()} cores; load average at the start: {os.getloadavg()[0]:.2f}.", ""]
        report += check_jobs(folder, args.codecs, args.rounds, tmp)
        report += check_compress(images[0], 7, tmp, args.before)
        report += check_kill(folder, args.codecs, args.seed, tmp)
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
