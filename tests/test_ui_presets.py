"""Presets for non-programmers on each side (issue 16 item 11) and the "Match the other side" button
(item 9): what they set is what gets encoded, and the size found is the closest the codec can make."""

from pathlib import Path


from workbench.core.codecs import codec_class, get_codec
from workbench.core.options import build
from workbench.core.presets import PRESETS, preset
from workbench.core.summary import is_lossless

CHAPEL = Path(__file__).resolve().parent / "data" / "chapel_192x176.png"
WAIT_MS = 30_000


def wait_encoded(qtbot, window, *sides):
    qtbot.waitUntil(lambda: window.compare.image is not None and all(
        not window.worker.is_pending(s) and window.compare.side(s).result is not None for s in sides),
        timeout=WAIT_MS)


def open_with(qtbot, window, left, right):
    assert window.open_paths([CHAPEL])
    qtbot.waitUntil(lambda: window.compare.image is not None, timeout=WAIT_MS)
    for side, (codec, values) in (("left", left), ("right", right)):
        panel = window.compare.side(side).panel
        panel.set_selection(codec, values)
        panel.changed.emit()
    wait_encoded(qtbot, window, "left", "right")


def pick_preset(panel, name):
    index = panel.preset.findData(name)
    panel.preset.setCurrentIndex(index)
    panel.preset.activated.emit(index)          # what a user's click on the item emits


def test_every_preset_is_a_valid_setting_with_a_one_line_explanation():
    assert [p.name for p in PRESETS] == ["web", "email", "archive"]
    for p in PRESETS:
        opts = build(codec_class(p.codec).Options, p.values)
        assert all(getattr(opts, k) == v for k, v in p.settings)
        assert p.explanation and "\n" not in p.explanation and p.explanation.endswith(".")


def test_presets_set_each_side_and_step_aside_when_a_setting_changes(qtbot, window):
    open_with(qtbot, window, ("jpeg", {"quality": 30}), ("webp", {"quality": 30}))
    compare = window.compare
    left, right = compare.left, compare.right
    assert right.panel.preset.currentData() is None and not right.panel.preset_note.isVisible()
    pick_preset(right.panel, "email")
    qtbot.waitUntil(lambda: right.selection.codec == "jpeg" and right.result is not None
                    and not window.worker.is_pending("right"), timeout=WAIT_MS)
    assert right.selection.options.quality == 60 and right.selection.options.subsampling == "4:2:0"
    assert right.panel.preset_note.isVisible() and right.panel.preset_note.text() == preset("email").explanation
    assert compare.view.caption(1).startswith("JPEG · quality 60")
    pick_preset(left.panel, "archive")
    qtbot.waitUntil(lambda: left.selection.codec == "jxl" and left.result is not None
                    and not window.worker.is_pending("left"), timeout=WAIT_MS)
    assert is_lossless(left.result.quality.psnr)                        # "every pixel is kept exactly"
    assert left.panel.preset.currentData() == "archive" and right.panel.preset.currentData() == "email"
    right.panel._editors["quality"].spin.setValue(61)                   # the user takes over
    assert right.panel.preset.currentData() is None and not right.panel.preset_note.isVisible()
    assert left.panel.preset.currentData() == "archive"
    pick_preset(right.panel, "web")
    qtbot.waitUntil(lambda: right.selection.codec == "webp" and right.result is not None, timeout=WAIT_MS)
    assert right.selection.options.quality == 75


def test_match_the_other_side_finds_the_setting_of_closest_size(qtbot, window):
    open_with(qtbot, window, ("webp", {"quality": 50}), ("jpeg", {"quality": 95}))
    compare = window.compare
    left, right = compare.left, compare.right
    target = left.result.size_bytes
    assert right.result.size_bytes > 1.5 * target                      # far apart before
    right.size.match_button.click()
    qtbot.waitUntil(lambda: right.result is not None and not window.worker.is_pending("right"), timeout=WAIT_MS)
    q = right.selection.options.quality
    assert q < 95 and right.panel.selection() == right.selection       # the panel shows the quality found
    assert left.result.size_bytes == target                             # the other side is untouched
    rgb, jpeg = compare.image.rgb, get_codec("jpeg")

    def miss(quality):
        return abs(len(jpeg.encode(rgb, jpeg.options(quality=quality, subsampling="4:2:0"))) - target)

    assert abs(right.result.size_bytes - target) == miss(q)
    assert miss(q) <= min(miss(q - 1), miss(q + 1)) + 0.01 * target     # no neighbour is closer
    assert miss(q) < 0.1 * target
    assert compare.view.caption(1).startswith(f"JPEG · quality {q:g}")
