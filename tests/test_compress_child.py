"""`compress_job` in a child process: the same result as in this process, errors of the same kind, and a
child that is killed (and its files removed) when the job is closed."""

import subprocess
from pathlib import Path

import numpy as np
import pytest

from workbench.core import compress_child
from workbench.core.codecs import codec_class, get_codec
from workbench.core.compress import compress_image
from workbench.core.compress_child import compress_job_in_child
from workbench.core.errors import OptionError
from workbench.core.images import load_image
from workbench.core.jobs import run

CHAPEL = Path(__file__).resolve().parent / "data" / "chapel_192x176.png"


@pytest.fixture
def children(monkeypatch):
    """Every process the module starts, to see what became of them."""
    started = []
    real = subprocess.Popen

    def popen(*args, **kwargs):
        started.append(real(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(compress_child.subprocess, "Popen", popen)
    return started


def test_the_child_computes_what_this_process_computes(children):
    rgb = load_image(CHAPEL).rgb
    options = get_codec("jpeg").options(quality=40)
    here = compress_image(rgb, "jpeg", options)
    there = run(compress_job_in_child(rgb, "jpeg", options))
    assert len(children) == 1 and children[0].returncode == 0
    assert there.data == here.data and there.options == here.options and there.quality == here.quality
    assert there.reconstruction.dtype == np.uint8 and np.array_equal(there.reconstruction, here.reconstruction)
    assert there.estimated_bits is None and there.encode_s > 0


def test_a_user_error_in_the_child_is_the_same_error_here():
    rgb = load_image(CHAPEL).rgb
    with pytest.raises(OptionError) as here:
        compress_image(rgb, "jpeg", None, quality=500)
    with pytest.raises(OptionError) as there:
        run(compress_job_in_child(rgb, "jpeg", {"quality": 500}))
    assert str(there.value) == str(here.value)


def test_closing_the_job_kills_the_child_and_removes_its_files(children):
    """A cancel while the child still imports torch and loads its model: noticed at the next heartbeat."""
    if not codec_class("learned").is_available():
        pytest.skip("no learned model weights")
    job = compress_job_in_child(load_image(CHAPEL).rgb, "learned", get_codec("learned").options(optimize=500))
    first = next(job)
    assert first.step == 0 and not first.metrics          # a heartbeat: nothing computed yet
    folder = Path(children[0].args[3])
    assert (folder / compress_child.IMAGE).is_file() and children[0].poll() is None
    job.close()
    assert children[0].returncode not in (None, 0) and not folder.exists()


@pytest.mark.skipif(not Path("/bin/false").exists(), reason="needs a program that fails at once")
def test_a_child_that_ends_without_a_result_is_a_one_line_error():
    with pytest.raises(RuntimeError, match="ended with status 1 without a result"):
        run(compress_job_in_child(load_image(CHAPEL).rgb, "jpeg", python="/bin/false"))

