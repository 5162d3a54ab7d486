"""The observation pattern editor's model: every grid tool as a numpy operation, with undo."""

import numpy as np
import pytest

from sda_gui.app.mask_editor import MaskEditor


def test_brush_rectangle_and_history():
    ed = MaskEditor((10, 6))
    ed.brush(4, (2,), size=3)
    assert ed.count == 9 and ed.mask[3:6, 1:4].all()
    ed.rectangle(8, 9, (5,), (4,), value=True)
    assert ed.count == 13
    ed.brush(4, (2,), size=1, value=False)
    assert ed.count == 12 and not ed.mask[4, 2]
    assert ed.undo() and ed.count == 13
    assert ed.undo() and ed.count == 9
    assert ed.redo() and ed.count == 13
    ed.clear()
    assert ed.count == 0 and ed.can_undo and not ed.can_redo


def test_brush_is_clipped_at_the_edges():
    ed = MaskEditor((5, 4))
    ed.brush(0, (0,), size=5)
    assert ed.count == 3 * 3


def test_stroke_is_one_undo_step():
    ed = MaskEditor((8, 8))
    ed.begin_stroke()
    for t in range(8):
        ed.brush(t, (t,), size=1)
    ed.end_stroke()
    assert ed.count == 8
    ed.undo()
    assert ed.count == 0
    assert not ed.can_undo


def test_random_regular_invert_copy():
    ed = MaskEditor((100, 40))
    ed.random(0.25, seed=3)
    a = ed.mask.copy()
    assert 0.2 < a.mean() < 0.3
    ed.random(0.25, seed=3)
    assert np.array_equal(a, ed.mask)  # seeded
    ed.regular(every_time=4, every_space=5)
    assert ed.count == 25 * 8 and ed.mask[0, 0] and ed.mask[4, 5] and not ed.mask[1, 0]
    ed.invert()
    assert ed.count == 4000 - 200
    ed.clear()
    ed.fill((3, slice(0, 10)), True)
    ed.copy_time(3)
    assert ed.count == 100 * 10 and ed.mask[:, :10].all()
    ed.fill(50, False)
    ed.copy_time(50, targets=[0, 1])
    assert ed.count == 100 * 10 - 30


def test_field_masks_brush_one_time_and_chosen_channel():
    ed = MaskEditor((4, 2, 8, 8))
    ed.brush(2, (4, 4), size=3, lead=(0,))
    assert ed.count == 9 and ed.mask[2, 0].sum() == 9 and ed.mask[2, 1].sum() == 0
    ed.rectangle(1, 1, (0, 0), (1, 7), lead=(slice(None),))
    assert ed.mask[1].sum() == 2 * 2 * 8
    ed.regular(every_time=2, every_space=4)
    assert ed.count == 2 * 2 * 2 * 2


def test_set_mask_checks_shape():
    ed = MaskEditor((3, 3))
    with pytest.raises(ValueError):
        ed.set_mask(np.ones((2, 3), bool))
