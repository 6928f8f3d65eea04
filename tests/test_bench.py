"""The sweep as a long run: points stored as measured, resumed by key, spread over processes, checked first."""

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
from PIL import Image

from workbench.core.bench import BenchProgress, bench_job, plan_bench
from workbench.core.bench_store import POINTS_FILE, PointStore
from workbench.core.errors import OptionError
from workbench.core.jobs import run

IMAGE = Path(__file__).parent / "data" / "chapel_192x176.png"
SWEEPS = {"jpeg": (20, 60), "webp": (30, 70)}


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(IMAGE, folder / "a.png")
    Image.open(IMAGE).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "b.png")
    return [folder / "a.png", folder / "b.png"]


def _events(job):
    events = []
    try:
        while True:
            events.append(next(job))
    except StopIteration as stop:
        return events, stop.value


def _numbers(result):
    """Everything a point measures except its times, which only say how busy the machine was."""
    return [(p.image, p.codec, p.quality, p.bpp, p.psnr, p.ms_ssim) for p in result.points]


def test_each_point_is_stored_when_measured_and_a_rerun_skips_it(images, tmp_path):
    out = tmp_path / "out"
    job = bench_job(images, ["jpeg", "webp"], SWEEPS, out_dir=out)
    first = [next(job), next(job), next(job)]
    job.close()                                             # stopped after three of eight points
    lines = (out / POINTS_FILE).read_text().splitlines()
    assert len(lines) == 3 and [json.loads(line)["point"] for line in lines] == [asdict(e.point) for e in first]

    events, result = _events(bench_job(images, ["jpeg", "webp"], SWEEPS, out_dir=out))
    assert [e.resumed for e in events] == [True] * 3 + [False] * 5
    assert [e.step for e in events] == list(range(1, 9)) and events[-1].total == 8
    assert "ETA" in events[-1].message
    assert len((out / POINTS_FILE).read_text().splitlines()) == 8
    fresh = run(bench_job(images, ["jpeg", "webp"], SWEEPS))
    assert _numbers(result) == _numbers(fresh)              # same points, in plan order
    assert result.images == ["a.png", "b.png"] and result.codecs == ["jpeg", "webp"]

    again, _ = _events(bench_job(images, ["jpeg", "webp"], SWEEPS, out_dir=out))
    assert all(e.resumed for e in again)


def test_other_settings_or_other_pixels_are_measured_anew(images, tmp_path):
    out = tmp_path / "out"
    run(bench_job(images, ["webp"], {"webp": (40,)}, out_dir=out))
    # The default effort spelt out is the same setting, so its points are reused ...
    events, _ = _events(bench_job(images, ["webp:method=6"], {"webp:method=6": (40,)}, out_dir=out))
    assert all(e.resumed for e in events)
    # ... another one is not,
    events, _ = _events(bench_job(images, ["webp:method=4"], {"webp:method=4": (40,)}, out_dir=out))
    assert not any(e.resumed for e in events)
    # and neither is an image whose pixels changed under the same name.
    Image.open(IMAGE).rotate(180).save(images[1])
    events, _ = _events(bench_job(images, ["webp"], {"webp": (40,)}, out_dir=out))
    assert [e.resumed for e in events] == [True, False]


def test_a_line_cut_by_a_kill_is_ignored_and_later_lines_stay_readable(images, tmp_path):
    out = tmp_path / "out"
    run(bench_job(images[:1], ["jpeg"], {"jpeg": (40,)}, out_dir=out))
    with open(out / POINTS_FILE, "a") as fh:
        fh.write('{"key": "0123", "point": {"codec": "jp')     # what a kill mid-write leaves
    events, _ = _events(bench_job(images, ["jpeg"], {"jpeg": (40,)}, out_dir=out))
    assert [e.resumed for e in events] == [True, False]
    assert len(PointStore(out).load()) == 2


def test_processes_give_the_numbers_of_one(images):
    one = run(bench_job(images, ["jpeg", "webp"], SWEEPS, jobs=1))
    events, two = _events(bench_job(images, ["jpeg", "webp"], SWEEPS, jobs=2))
    assert _numbers(two) == _numbers(one)
    assert all(isinstance(e, BenchProgress) and e.point is not None for e in events)
    assert sorted(e.step for e in events) == list(range(1, 9))


def test_an_isolated_sweep_measures_in_a_worker_process_even_with_one_job(images, monkeypatch):
    """The app's window must never measure in its own interpreter: with `isolated` not one point is measured
    by this process (its image loading is broken here), and the numbers are those of an in-process run."""
    from workbench.core import bench

    one = run(bench_job(images[:1], ["jpeg"], {"jpeg": (20, 60)}, jobs=1))

    def not_here(path):
        raise AssertionError("measured in the caller's process")

    monkeypatch.setattr(bench, "_load_rgb", not_here)
    assert _numbers(run(bench_job(images[:1], ["jpeg"], {"jpeg": (20, 60)}, jobs=1, isolated=True))) == _numbers(one)
    with pytest.raises(AssertionError, match="caller's process"):
        run(bench_job(images[:1], ["jpeg"], {"jpeg": (20, 60)}, jobs=1))


@pytest.mark.parametrize("sweeps, message", [
    ({"jpg": (50,)}, "jpg, which is not a codec of this run"),
    ({"jpeg": (150,)}, "jpeg: option quality: 150 is above the maximum"),
    ({"webp": (-1,)}, "webp: option quality: -1 is below the minimum"),
    ({"jpeg": ()}, "jpeg: no qualities to sweep"),
])
def test_sweeps_are_checked_before_anything_is_measured(images, sweeps, message):
    with pytest.raises(OptionError, match=message):
        plan_bench(images, ["jpeg", "webp"], sweeps)


def test_jobs_below_one_are_refused(images):
    with pytest.raises(OptionError, match="at least 1"):
        next(bench_job(images, ["jpeg"], jobs=0))


def test_a_cancelled_parallel_run_keeps_the_points_it_reported(images, tmp_path):
    out = tmp_path / "out"
    job = bench_job(images, ["jpeg", "webp"], SWEEPS, jobs=2, out_dir=out)
    reported = [next(job).point, next(job).point]
    job.close()
    events, _ = _events(bench_job(images, ["jpeg", "webp"], SWEEPS, out_dir=out))
    assert {e.point for e in events if e.resumed} == set(reported)
    assert sum(e.resumed for e in events) == 2


def test_a_learned_model_is_known_by_its_contents(tmp_path):
    from workbench.core.bench import _fingerprint

    model = tmp_path / "m.safetensors"
    model.write_bytes(b"weights one")
    first = _fingerprint({"quality": 3, "model": str(model)})
    model.write_bytes(b"weights two, retrained")
    second = _fingerprint({"quality": 3, "model": str(model)})
    assert first["model_sha256"] != second["model_sha256"] and first["quality"] == 3
    assert _fingerprint({"quality": 50}) == {"quality": 50}
