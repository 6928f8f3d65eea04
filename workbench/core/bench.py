"""Rate-distortion sweeps over a folder of images, and their BD-rate summary.

A sweep runs every codec at every quality of its sweep on every image, measuring the real file size
and the decoded quality. Means per quality setting are taken over images exactly as CompressAI's
`eval` does (mean bpp, mean PSNR, mean MS-SSIM), so the curves can be compared with its published
results JSON.

Every (image, codec, quality) point is independent, so points can be measured by several processes
(`jobs`): each point's numbers depend only on its inputs, so the results equal a one-process run's
and only times differ. With an output folder, each point is stored the moment it is measured
(`bench_store`), and a run on the same folder reuses the points measured under the same key.

How a front end runs a sweep: `bench_job(images, codecs, sweeps, jobs=N, out_dir=FOLDER)` is a job
whose `BenchProgress` events each carry one measured point (`event.point`; `event.resumed` for one
read back from the folder), in the order points finish; its result is the `BenchResult` in plan
order, which `bench_report.write_report` turns into files.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from workbench.core.bdtable import ResultsCurve, bd_rows
from workbench.core.bench_store import PointStore, code_version, file_sha256, point_key
from workbench.core.codecs import codec_class, get_codec
from workbench.core.compress import compress_image
from workbench.core.errors import OptionError
from workbench.core.images import load_image
from workbench.core.jobs import Job, Progress, duration_text
from workbench.core.metrics import ms_ssim_db


@dataclass(frozen=True)
class RDPoint:
    codec: str
    quality: float
    image: str
    bpp: float
    psnr: float
    ms_ssim: float | None
    ms_ssim_db: float | None
    encode_s: float
    decode_s: float


@dataclass(frozen=True)
class Curve:
    """Per-quality means over the images of a sweep, ordered by rate."""
    codec: str
    quality: tuple[float, ...]
    bpp: tuple[float, ...]
    psnr: tuple[float, ...]
    ms_ssim: tuple[float | None, ...]
    ms_ssim_db: tuple[float | None, ...]
    encode_s: tuple[float, ...]
    decode_s: tuple[float, ...]


@dataclass
class BenchResult:
    images: list[str] = field(default_factory=list)
    points: list[RDPoint] = field(default_factory=list)
    codecs: list[str] = field(default_factory=list)

    def curve(self, codec: str) -> Curve:
        by_q: dict[float, list[RDPoint]] = {}
        for p in self.points:
            if p.codec == codec:
                by_q.setdefault(p.quality, []).append(p)
        rows = []
        for q, pts in by_q.items():
            ms = [p.ms_ssim for p in pts if p.ms_ssim is not None]
            m = float(np.mean(ms)) if len(ms) == len(pts) else None
            rows.append((q, _mean(p.bpp for p in pts), _mean(p.psnr for p in pts), m,
                         None if m is None else ms_ssim_db(m), _mean(p.encode_s for p in pts),
                         _mean(p.decode_s for p in pts)))
        rows.sort(key=lambda r: r[1])
        cols = list(zip(*rows)) if rows else [()] * 7
        return Curve(codec, *(tuple(c) for c in cols))

    def compressai_json(self, codec: str) -> dict:
        """The curve in CompressAI's results schema (`{"name", "description", "results": {...}}`)."""
        c = self.curve(codec)
        return {
            "name": codec,
            "description": f"{get_codec_label(codec)}; measured by workbench bench on {len(self.images)} images",
            "results": {
                "quality": list(c.quality), "bpp": list(c.bpp), "psnr-rgb": list(c.psnr),
                "ms-ssim-rgb": list(c.ms_ssim), "ms-ssim-rgb-db": list(c.ms_ssim_db),
                "encoding_time": list(c.encode_s), "decoding_time": list(c.decode_s),
            },
        }

    def results_curve(self, codec: str) -> ResultsCurve:
        c = self.curve(codec)
        ms = None if any(v is None for v in c.ms_ssim_db) else c.ms_ssim_db
        return ResultsCurve(codec, c.bpp, c.psnr, ms)

    def bd_table(self, anchor: str, references: Sequence[ResultsCurve] = (), interval: str = "pair") -> list[dict]:
        """BD-rate of every other codec, then of every reference curve, against `anchor` in PSNR and
        MS-SSIM dB (percent; negative is better), with the quality interval of each (`bdtable.bd_rows`)."""
        tests = [self.results_curve(c) for c in self.codecs if c != anchor] + list(references)
        return bd_rows(self.results_curve(anchor), tests, interval)


@dataclass(frozen=True)
class BenchProgress(Progress):
    """A sweep event that carries the point it reports, so a live plot needs no message parsing."""
    point: RDPoint | None = None
    resumed: bool = False       # read back from the output folder, not measured now


@dataclass(frozen=True)
class PointTask:
    """One point to measure, as plain data a worker process can receive."""
    image: str                  # path
    codec: str                  # codec spec, e.g. `learned:quantizer=tcq8`
    quality: float
    options: dict               # every option of the codec, resolved
    code: str                   # `bench_store.code_version` of the codec
    key: str                    # `bench_store.point_key`


@dataclass(frozen=True)
class BenchPlan:
    images: list[str]           # file names, what points are labelled with
    codecs: list[str]
    sweeps: dict[str, tuple]
    tasks: list[PointTask]      # images outermost, then codecs, then qualities


def plan_bench(images: Sequence[str | Path], codecs: Sequence[str],
               sweeps: Mapping[str, Sequence[float]] | None = None) -> BenchPlan:
    """Check everything a sweep needs before measuring anything: codecs exist and run here, fixed
    options and every quality are valid for their codec, and each sweep names a codec of the run
    (a misspelt name would otherwise run that codec's full default sweep)."""
    codecs = list(dict.fromkeys(codecs))
    sweeps = dict(sweeps or {})
    unknown = [name for name in sweeps if name not in codecs]
    if unknown:
        raise OptionError(f"qualities given for {', '.join(unknown)}, which is not a codec of this run "
                          f"(codecs: {', '.join(codecs)})")
    specs = {spec: parse_codec_spec(spec) for spec in codecs}
    impls = {spec: get_codec(name) for spec, (name, _) in specs.items()}   # fail early on unknown codecs
    plan: dict[str, tuple] = {}
    settings: dict[tuple[str, float], dict] = {}            # resolved options of each point
    for spec, (name, fixed) in specs.items():
        qualities = tuple(dict.fromkeys(sweeps[spec] if spec in sweeps else default_sweep(spec)))
        if not qualities:
            raise OptionError(f"{spec}: no qualities to sweep")
        for q in qualities:
            try:
                opts = impls[spec].options(**{**fixed, "quality": q})
            except OptionError as err:
                raise OptionError(f"{spec}: {err}") from None
            settings[spec, q] = asdict(opts)
        plan[spec] = qualities
    code = {spec: code_version(type(impl).__module__) for spec, impl in impls.items()}
    tasks, names = [], []
    for path in images:
        names.append(Path(path).name)
        sha = file_sha256(path)
        for spec, qualities in plan.items():
            for q in qualities:
                opts = settings[spec, q]
                key = point_key(sha, specs[spec][0], _fingerprint(opts), code[spec])
                tasks.append(PointTask(str(path), spec, q, opts, code[spec], key))
    return BenchPlan(names, codecs, plan, tasks)


def bench_job(images: Sequence[str | Path], codecs: Sequence[str],
              sweeps: Mapping[str, Sequence[float]] | None = None, *, jobs: int = 1,
              out_dir: str | Path | None = None, isolated: bool = False) -> Job[BenchResult]:
    """Sweep `codecs` over `images` with `jobs` processes; yields one `BenchProgress` per point.

    With `out_dir`, points already stored there under the same key are reused (reported first,
    `resumed=True`) and every new point is stored as soon as it is measured. `isolated` measures in
    worker processes even with one job: for a caller whose own thread must stay responsive (the app's
    window), since measuring in its interpreter takes the lock from it for every Python step.
    """
    if jobs < 1:
        raise OptionError(f"jobs must be at least 1, got {jobs}")
    plan = plan_bench(images, codecs, sweeps)
    store = PointStore(out_dir) if out_dir is not None else None
    stored = store.load() if store is not None else {}
    points: dict[str, RDPoint] = {}
    total, step = len(plan.tasks), 0
    for task in plan.tasks:
        if task.key in stored and task.key not in points:
            try:
                points[task.key] = RDPoint(**stored[task.key])
            except TypeError:       # a row of an older layout: measure it again
                continue
            step += 1
            yield BenchProgress(step, total, f"{_describe(task, points[task.key])} (measured before)",
                                metrics=_metrics(points[task.key]), point=points[task.key], resumed=True)
    todo = list({t.key: t for t in plan.tasks if t.key not in points}.values())
    started, done = time.monotonic(), 0
    measuring = _measure_all(todo, jobs, isolated)
    try:
        for task, point in measuring:
            if store is not None:
                store.append(task.key, asdict(point), {"options": task.options, "code": task.code})
            points[task.key] = point
            step += 1
            done += 1
            eta = (time.monotonic() - started) / done * (len(todo) - done)
            yield BenchProgress(step, total, f"{_describe(task, point)}, ETA {duration_text(eta)}",
                                metrics=_metrics(point), point=point)
    finally:
        measuring.close()       # a cancel stops the workers now, not when the generator is collected
    return BenchResult(images=plan.images, points=[points[t.key] for t in plan.tasks], codecs=plan.codecs)


def measure_point(task: PointTask) -> RDPoint:
    """Encode, decode and measure one point (in whichever process runs it)."""
    name, _ = parse_codec_spec(task.codec)
    rgb = _load_rgb(task.image)
    r = compress_image(rgb, name, get_codec(name).options(**task.options))
    return RDPoint(codec=task.codec, quality=task.quality, image=Path(task.image).name, bpp=r.bpp,
                   psnr=r.quality.psnr, ms_ssim=r.quality.ms_ssim, ms_ssim_db=r.quality.ms_ssim_db,
                   encode_s=r.encode_s, decode_s=r.decode_s)


def default_jobs() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _measure_all(tasks: list[PointTask], jobs: int, isolated: bool = False) -> Iterator[tuple[PointTask, RDPoint]]:
    """(task, point) in the order points finish. Worker processes are started fresh ("spawn"), since
    forking a process that holds torch's or BLAS's threads can deadlock; each gets an equal share of
    the cores for its own threads. Closing the generator (a cancel) drops the points not started."""
    jobs = max(1, min(jobs, len(tasks)))
    if jobs == 1 and not (isolated and tasks):
        for task in tasks:
            yield task, measure_point(task)
        return
    threads = max(1, default_jobs() // jobs)
    pool = ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_start_worker,
                               initargs=(threads, os.getpid()))
    try:
        futures = {pool.submit(measure_point, task): task for task in tasks}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _start_worker(threads: int, parent: int) -> None:
    """Set up a new worker: its thread count, set before numpy's BLAS or torch read it at start-up;
    Ctrl-C left to the parent, which stops the sweep (a worker would print a traceback); and a watch
    on the parent, since a killed parent cannot stop its workers and they would go on measuring."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


@lru_cache(maxsize=2)
def _load_rgb(path: str) -> np.ndarray:
    """Points of one image come in a row, so a worker decodes each image about once."""
    return load_image(path).rgb


def _fingerprint(options: dict) -> dict:
    """Resolved options plus what identifies a learned codec's model: its file's hash, or for a
    folder of checkpoints (one per quality) each file's name, size and time (hashing them all would
    read gigabytes). A model retrained under the same name must not reuse the old model's points."""
    model = options.get("model")
    if not isinstance(model, str):
        return options
    from workbench.core.learned.catalog import model_path

    path = model_path(model)
    if path.is_file():
        st = path.stat()
        return {**options, "model_sha256": _model_sha256(str(path), st.st_size, st.st_mtime_ns)}
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        return {**options, "model_files": [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]}
    return options


@lru_cache(maxsize=16)
def _model_sha256(path: str, size: int, mtime_ns: int) -> str:
    """Cached while the file's size and time stay the same (a long-lived app sweeps many times)."""
    return file_sha256(path)


def _describe(task: PointTask, point: RDPoint) -> str:
    return f"{point.image} {task.codec} q={task.quality:g}: {point.bpp:.3f} bpp, {point.psnr:.2f} dB"


def _metrics(point: RDPoint) -> dict[str, float]:
    return {"bpp": point.bpp, "psnr": point.psnr, **({"ms_ssim": point.ms_ssim} if point.ms_ssim else {})}


def parse_codec_spec(spec: str) -> tuple[str, dict[str, str]]:
    """`name` or `name:key=value:key=value` (a codec with some options fixed, e.g.
    `learned:quantizer=tcq8`), so one bench run can compare settings of the same codec.

    >>> parse_codec_spec("learned:step=1.2:model=dct-hyperprior-mse")
    ('learned', {'step': '1.2', 'model': 'dct-hyperprior-mse'})
    """
    name, *pairs = spec.split(":")
    fixed = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise OptionError(f"codec {spec!r}: expected NAME:KEY=VALUE:..., got {pair!r}")
        fixed[key.strip().replace("-", "_")] = value.strip()
    return name.strip(), fixed


def default_sweep(spec: str) -> tuple:
    """The qualities a codec spec sweeps when none are given (`ImageCodec.default_sweep` with the
    spec's fixed options)."""
    name, fixed = parse_codec_spec(spec)
    codec = get_codec(name)
    try:
        return codec.default_sweep(codec.options(**fixed))
    except OptionError as err:
        raise OptionError(f"{spec}: {err}") from None


def get_codec_label(spec: str) -> str:
    name, fixed = parse_codec_spec(spec)
    extra = ", ".join(f"{k}={v}" for k, v in fixed.items())
    return codec_class(name).label + (f" ({extra})" if extra else "")


def point_rows(result: BenchResult) -> list[dict]:
    return [asdict(p) for p in result.points]


def _mean(values) -> float:
    return float(np.mean(list(values)))
