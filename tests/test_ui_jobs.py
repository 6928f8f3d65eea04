"""JobRunner (worker thread, throttling, cancel, pause, errors) and the LiveCurves widget."""

import logging
import threading
import time

import numpy as np
import pytest
from PySide6.QtCore import Qt

from workbench.core.errors import ImageError
from workbench.core.images import load_image
from workbench.core.jobs import Progress
from workbench.ui.job_runner import JobRunner
from workbench.ui.live_curves import LiveCurves


def counting_job(n, log=None, delay=0.0):
    try:
        for i in range(n):
            if delay:
                time.sleep(delay)
            yield Progress(i + 1, n, f"step {i + 1}", metrics={"loss": 1.0 / (i + 1), "psnr": 20.0 + i})
        return f"done after {n}"
    finally:
        if log is not None:
            log.append(threading.current_thread().name)


def endless_job(log, delay=0.005):
    try:
        i = 0
        while True:
            time.sleep(delay)
            i += 1
            yield Progress(i, None, f"step {i}", metrics={"entropy": 3.0 - i * 1e-3})
    finally:
        log.append("closed")


@pytest.fixture
def runner(qtbot):
    r = JobRunner()
    yield r
    r.shutdown(2000)


def collect(runner):
    seen = {"batches": [], "progress": []}
    runner.progress_batch.connect(seen["batches"].append)
    runner.progress.connect(seen["progress"].append)
    return seen


def test_progress_and_result_are_delivered_in_order(qtbot, runner):
    seen = collect(runner)
    with qtbot.waitSignal(runner.finished, timeout=3000) as blocker:
        runner.start(lambda: counting_job(5))
    assert blocker.args == ["done after 5"]
    steps = [e.step for batch in seen["batches"] for e in batch]
    assert steps == [1, 2, 3, 4, 5]
    assert seen["progress"][-1].step == 5
    assert not runner.is_running()


def test_job_is_created_and_run_in_the_worker_thread(qtbot, runner):
    log = []
    with qtbot.waitSignal(runner.finished, timeout=3000):
        runner.start(lambda: counting_job(3, log))
    assert log and log[0] != threading.current_thread().name


def test_fast_job_is_coalesced_but_every_event_arrives(qtbot, runner):
    seen = collect(runner)
    with qtbot.waitSignal(runner.finished, timeout=5000):
        runner.start(lambda: counting_job(20000))
    assert sum(len(b) for b in seen["batches"]) == 20000
    assert len(seen["progress"]) < 200                  # ≤ 30 Hz, not one signal per event
    assert seen["progress"][-1].step == 20000           # the final event is always delivered


def test_cancel_stops_a_long_job_promptly_and_runs_its_finally(qtbot, runner):
    log = []
    seen = collect(runner)
    runner.start(lambda: endless_job(log))
    qtbot.waitUntil(lambda: len(seen["progress"]) >= 2, timeout=3000)
    t0 = time.monotonic()
    with qtbot.waitSignal(runner.cancelled, timeout=1000):
        runner.cancel()
    assert time.monotonic() - t0 < 0.5
    assert log == ["closed"]
    assert not runner.is_running()


def test_workbench_error_is_reported_as_its_message(qtbot, runner):
    def job():
        yield Progress(1, 2, "reading")
        raise ImageError("holiday.png: corrupt or truncated image (broken data stream)")

    with qtbot.waitSignal(runner.failed, timeout=3000) as blocker:
        runner.start(job)
    assert blocker.args == ["holiday.png: corrupt or truncated image (broken data stream)"]


def test_error_in_the_factory_is_reported_too(qtbot, runner):
    def factory():
        raise ImageError("photos is a folder, not an image")

    with qtbot.waitSignal(runner.failed, timeout=3000) as blocker:
        runner.start(factory)
    assert blocker.args == ["photos is a folder, not an image"]


def test_a_bug_is_one_line_for_the_user_and_a_traceback_in_the_log(qtbot, runner, caplog):
    def job():
        yield Progress(1, 1, "about to fail")
        raise KeyError("missing\nkey")

    caplog.set_level(logging.ERROR, logger="workbench.ui.job_runner")
    with qtbot.waitSignal(runner.failed, timeout=3000) as blocker:
        runner.start(job)
    message = blocker.args[0]
    assert message.startswith("internal error: KeyError") and "\n" not in message
    assert "Traceback" in caplog.text and "raise KeyError" in caplog.text


def test_pause_holds_the_worker_and_resume_continues(qtbot, runner):
    seen = collect(runner)
    states = []
    runner.paused_changed.connect(states.append)
    runner.start(lambda: counting_job(60, delay=0.005))
    qtbot.waitUntil(lambda: len(seen["progress"]) >= 1, timeout=3000)
    runner.pause()
    assert runner.is_paused()
    qtbot.wait(120)                                     # the step in flight may still complete
    held = sum(len(b) for b in seen["batches"])
    qtbot.wait(200)
    assert sum(len(b) for b in seen["batches"]) == held < 60
    assert runner.is_running()
    with qtbot.waitSignal(runner.finished, timeout=3000):
        runner.resume()
    assert sum(len(b) for b in seen["batches"]) == 60
    assert states == [True, False]


def test_cancel_while_paused_wakes_the_worker(qtbot, runner):
    log = []
    seen = collect(runner)
    runner.start(lambda: endless_job(log))
    qtbot.waitUntil(lambda: len(seen["progress"]) >= 1, timeout=3000)
    runner.pause()
    with qtbot.waitSignal(runner.cancelled, timeout=1000):
        runner.cancel()
    assert log == ["closed"] and not runner.is_paused()


def test_one_job_at_a_time(qtbot, runner):
    log = []
    runner.start(lambda: endless_job(log))
    with pytest.raises(RuntimeError, match="already running"):
        runner.start(lambda: counting_job(1))
    with qtbot.waitSignal(runner.cancelled, timeout=1000):
        runner.cancel()
    with qtbot.waitSignal(runner.finished, timeout=3000):
        runner.start(lambda: counting_job(2))


def test_shutdown_waits_for_the_worker_and_reports_cancelled(qtbot):
    runner = JobRunner()
    log = []
    seen = collect(runner)
    runner.start(lambda: endless_job(log))
    qtbot.waitUntil(lambda: len(seen["progress"]) >= 1, timeout=3000)
    with qtbot.waitSignal(runner.cancelled, timeout=100):
        assert runner.shutdown(2000)
    assert log == ["closed"] and not runner.is_running()


# -- LiveCurves ---------------------------------------------------------------------------------

def test_live_curves_make_one_plot_per_metric_key(qtbot):
    w = LiveCurves()
    qtbot.addWidget(w)
    w.add_events([Progress(1, 10, "a", {"entropy": 4.0, "sigma": 1.0}),
                  Progress(2, 10, "b", {"entropy": 3.5, "sigma": 2.0, "soft_hard_gap": 0.3})])
    w.add_events([Progress(3, 10, "c", {"my_custom_thing": 7.0, "loss": float("nan")})])
    assert w.keys() == ["entropy", "sigma", "soft_hard_gap", "my_custom_thing"]   # NaN is not plotted
    qtbot.waitUntil(w.is_drawn, timeout=2000)           # plots take turns to redraw, one per pass
    assert [mp.index for mp in w._plots.values()] == [0, 1, 2, 3]
    titles = {k: w._plots[k].plot.titleLabel.text for k in w.keys()}
    assert titles["entropy"].startswith("Entropy (bits/symbol): 3.50")
    assert titles["my_custom_thing"].startswith("My custom thing: 7.00")
    assert w._status.text() == "c"
    assert (w._bar.value(), w._bar.maximum()) == (3, 10)


def test_live_curves_smooth_with_an_ema_seeded_on_the_first_value(qtbot):
    w = LiveCurves()
    qtbot.addWidget(w)
    w.set_smoothing(0.5)
    values = [4.0, 0.0, 2.0, 2.0]
    w.add_events([Progress(i + 1, None, "", {"loss": v}) for i, v in enumerate(values[:2])])
    w.add_events([Progress(i + 3, None, "", {"loss": v}) for i, v in enumerate(values[2:])])
    s = w._series["loss"]
    np.testing.assert_allclose(s.ema[: s.n], [4.0, 2.0, 2.0, 2.0])
    w.set_smoothing(0.0)
    np.testing.assert_allclose(s.ema[: s.n], values)
    qtbot.waitUntil(w.is_drawn, timeout=2000)
    np.testing.assert_allclose(w._plots["loss"].smooth.getData()[1], values)
    xs, ys = w._plots["loss"].raw.getData()
    np.testing.assert_allclose(ys, values)
    np.testing.assert_allclose(xs, [1, 2, 3, 4])


def test_live_curves_follow_an_attached_runner(qtbot, runner, tmp_path):
    w = LiveCurves()
    qtbot.addWidget(w)
    (tmp_path / "x.png").write_bytes(b"")
    w.add_events([Progress(1, 1, "old job", {"stale": 1.0})])
    w.attach(runner)
    assert not w._cancel.isEnabled()
    log = []
    runner.start(lambda: endless_job(log))
    assert w.keys() == [] and w._cancel.isEnabled() and w._pause.isEnabled()
    qtbot.waitUntil(lambda: w.keys() == ["entropy"], timeout=3000)
    qtbot.mouseClick(w._pause, Qt.MouseButton.LeftButton)
    assert runner.is_paused() and w._pause.text() == "Resume"
    w._pause.click()
    assert not runner.is_paused() and w._pause.text() == "Pause"
    with qtbot.waitSignal(runner.cancelled, timeout=1000):
        w._cancel.click()
    assert not w._cancel.isEnabled() and w._status.text().startswith("Cancelled after")
    with qtbot.waitSignal(runner.failed, timeout=3000):
        runner.start(lambda: load_image(tmp_path / "x.png"))
    assert w._status.text() == f"Failed: {tmp_path / 'x.png'}: the file is empty"


def test_live_curves_smooth_per_step_so_sparse_metrics_do_not_lag(qtbot):
    w = LiveCurves()
    qtbot.addWidget(w)
    w.set_smoothing(0.5)
    w.add_events([Progress(s, None, "", {"psnr": v}) for s, v in ((10, 30.0), (20, 32.0), (30, 32.0))])
    s = w._series["psnr"]
    np.testing.assert_allclose(s.ema[: s.n], [30.0, 32.0 - 2.0 * 0.5**10, 32.0 - 2.0 * 0.5**20])
