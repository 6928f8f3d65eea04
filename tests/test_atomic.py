import os
import stat

import pytest

from workbench.core.atomic import write_bytes_atomic
from workbench.core.errors import OutputError


def test_written_files_get_the_usual_permissions(tmp_path):
    out = write_bytes_atomic(tmp_path / "x.bin", b"abc")
    assert out.read_bytes() == b"abc"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]        # no temporary file left behind


def test_input_is_never_overwritten_and_missing_folders_are_reported(tmp_path):
    src = tmp_path / "in.png"
    src.write_bytes(b"original")
    with pytest.raises(OutputError, match="overwrite the input"):
        write_bytes_atomic(src, b"new", protect=[src])
    assert src.read_bytes() == b"original"
    with pytest.raises(OutputError, match="does not exist"):
        write_bytes_atomic(tmp_path / "nope" / "x.bin", b"abc")
