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
