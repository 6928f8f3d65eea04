from dataclasses import dataclass

import pytest

from workbench.core.errors import Cancelled, OptionError
from workbench.core.jobs import Progress, run
from workbench.core.options import build, option, specs
from workbench.core.registry import Registry


def counting_job(n, log):
    try:
        for i in range(n):
            yield Progress(i + 1, n, f"step {i + 1}", metrics={"value": float(i)})
        return "done"
    finally:
        log.append("cleaned up")


def test_job_runs_to_its_result_and_reports_every_step():
    seen, log = [], []
    assert run(counting_job(5, log), on_progress=seen.append) == "done"
    assert [e.step for e in seen] == [1, 2, 3, 4, 5] and seen[-1].fraction == 1.0
    assert log == ["cleaned up"]


def test_cancelled_job_is_closed_and_cleans_up():
    seen, log = [], []
    with pytest.raises(Cancelled):
        run(counting_job(1000, log), on_progress=seen.append, should_stop=lambda: len(seen) >= 3)
    assert len(seen) == 3 and log == ["cleaned up"]


@dataclass(frozen=True)
class DemoOptions:
    quality: int = option(50, "how good", minimum=1, maximum=100)
    mode: str = option("a", "which mode", choices=("a", "b"))
    fast: bool = option(False, "cut corners")


def test_options_are_declared_once_and_checked():
    names = [s.name for s in specs(DemoOptions)]
    assert names == ["quality", "mode", "fast"]
    o = build(DemoOptions, {"quality": "70", "fast": "yes"})
    assert o == DemoOptions(quality=70, mode="a", fast=True)
    for bad, msg in [({"quality": 0}, "below the minimum"), ({"quality": 101}, "above the maximum"),
                     ({"mode": "c"}, "not one of"), ({"quality": "x"}, "not a valid int"),
                     ({"colour": 1}, "unknown option")]:
        with pytest.raises(OptionError, match=msg):
            build(DemoOptions, bad)


def test_registry_registers_by_name_and_explains_unknown_names():
    reg = Registry("widget")

    @reg.register
    class Knob:
        name = "knob"

    assert reg.get("knob") is Knob and "knob" in reg and len(reg) == 1
    with pytest.raises(OptionError, match="unknown widget 'dial' \\(known: knob\\)"):
        reg.get("dial")
    with pytest.raises(TypeError, match="twice"):
        @reg.register
        class Other:
            name = "knob"
