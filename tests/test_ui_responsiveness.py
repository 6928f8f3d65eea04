"""What keeps the event loop free during jobs: plots built ahead while nothing runs."""

from workbench.core.jobs import Progress
from workbench.ui.job_runner import JobRunner
from workbench.ui.live_curves import SPARE_PLOTS, LiveCurves


def test_live_curves_build_their_plots_while_idle_and_use_them_for_a_job(qtbot):
    w = LiveCurves()
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: len(w._spare) == SPARE_PLOTS, timeout=5000)
    spare = list(w._spare)
    runner = JobRunner()
    w.attach(runner)
    def job():
        yield Progress(1, 2, "a", {"entropy": 1.0, "sigma": 2.0})
    runner.start(job)
    qtbot.waitUntil(lambda: not runner.is_running() and w.is_drawn(), timeout=5000)
    assert len(w._plots) == 2
    assert {id(mp.widget) for mp in w._plots.values()} <= {id(s) for s in spare}   # none built mid-job
    qtbot.waitUntil(lambda: len(w._spare) == SPARE_PLOTS, timeout=5000)        # ready again for the next job


def test_no_spare_plot_is_built_while_another_widgets_job_runs(qtbot):
    import threading

    w = LiveCurves()                 # idle, following no job: it builds spares only while no job runs at all
    qtbot.addWidget(w)
    other, release = JobRunner(), threading.Event()

    def job():
        release.wait(10)
        yield Progress(1, 1, "done")

    other.start(job)
    try:
        qtbot.wait(6 * 100)         # SPARE_BUILD_MS apart: several chances to build
        assert w._spare == []
    finally:
        release.set()
        qtbot.waitUntil(lambda: not other.is_running(), timeout=5000)
    qtbot.waitUntil(lambda: len(w._spare) >= 1, timeout=5000)


def test_a_plot_that_arrives_moves_no_other(qtbot):
    """Qt repaints every plot that a new one resizes, in the same pass: a job's new metric must not
    resize the plots already shown (a new row, a new column), only add its own."""
    w = LiveCurves()
    qtbot.addWidget(w)
    w.resize(1200, 700)
    w.show()
    keys = ["rate_bpp", "entropy", "loss", "temperature", "psnr"]
    shown = {}
    for step, key in enumerate(keys, 1):
        w.add_events([Progress(step, 10, "", {k: float(step) for k in keys[:step]})])
        qtbot.waitUntil(w.is_drawn, timeout=5000)
        geometry = {k: mp.widget.geometry() for k, mp in w._plots.items()}
        assert {k: geometry[k] for k in shown} == shown          # the earlier plots stayed where they were
        assert geometry[key].width() >= 120 and geometry[key].height() >= 120
        shown = geometry
    assert len({g.topLeft().toTuple() for g in shown.values()}) == len(keys)  # no two in one place
    w.reset()                                                     # the next job starts at the first cell
    w.add_events([Progress(1, 10, "", {"psnr": 30.0})])
    qtbot.waitUntil(w.is_drawn, timeout=5000)
    assert w._plots["psnr"].widget.geometry() == shown["rate_bpp"]


def test_preload_freezes_the_imported_modules_out_of_the_garbage_collectors_walks():
    """A full collection walks every tracked object holding the interpreter lock, in whatever thread
    allocated last: with the app's modules imported that was 184 ms, and in a sweep's thread it froze
    the window. What the background loader imports lives as long as the process; frozen, no collection
    walks it again."""
    import gc
    import time

    from workbench.ui.main_window import preload

    gc.unfreeze()
    preload(["json"])
    assert gc.get_freeze_count() > 10_000                  # everything alive, not only the new modules
    cpu = time.thread_time()
    gc.collect()
    assert time.thread_time() - cpu < 0.05


def test_a_plot_takes_its_turn_only_after_the_event_loop_has_handled_the_previous_one(qtbot):
    """A plot's new data sets off queued work (pyqtgraph's layout and repaint) that the event loop runs in
    one go; a second plot changed before that work was done lands in the same stretch of GUI work."""
    import time

    from workbench.ui import live_curves

    qtbot.waitUntil(live_curves.take_turn, timeout=1000)
    time.sleep(0.03)                        # longer than the spacing, but the event loop has not run
    assert not live_curves.take_turn()
    qtbot.waitUntil(live_curves.take_turn, timeout=1000)   # once it has, the next plot's turn comes
