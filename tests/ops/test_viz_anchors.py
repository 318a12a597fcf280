"""draw_anchors: picks the right anchors, produces a picture; and the ops doctests run."""
import doctest
import importlib

import numpy as np
import pytest

from tinyvision.ops import AnchorGenerator, retinanet_anchor_generator
from tinyvision.viz.anchors import draw_anchors, location_anchors


def test_location_anchors_are_the_cells_rows():
    gen = retinanet_anchor_generator()
    grid = [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    a = location_anchors(gen, (128, 128), grid, level=0, location=(3, 5))
    np.testing.assert_array_equal(a, gen.cell_anchors[0] + np.float32([40, 24, 40, 24]))  # stride 8
    all_p3 = gen.anchors_for_image((128, 128), grid)[: 16 * 16 * 9]
    np.testing.assert_array_equal(a, all_p3[(3 * 16 + 5) * 9 : (3 * 16 + 6) * 9])
    with pytest.raises(ValueError, match="outside"):
        location_anchors(gen, (128, 128), grid, level=4, location=(1, 0))


def test_draw_anchors_makes_a_figure(tmp_path):
    pytest.importorskip("matplotlib")
    image = np.random.default_rng(0).random((3, 96, 128))           # CHW is recognised
    path = tmp_path / "anchors.png"
    fig = draw_anchors(image, level=1, location=(2, 3), path=path)
    assert path.exists() and path.stat().st_size > 1000
    ax = fig.axes[0]
    assert len(ax.patches) == 9
    x1, y1 = ax.patches[0].get_xy()
    assert (x1, y1) == (3 * 16 - 45.0, 2 * 16 - 23.0)   # P4: stride 16, ratio 0.5 size 64: (45, 23)
    fig2 = draw_anchors((64, 64), AnchorGenerator(((16,),), ((1.0,),)))  # a blank canvas, one level
    assert len(fig2.axes[0].patches) == 1


@pytest.mark.parametrize("module", [
    "tinyvision.ops", "tinyvision.ops.boxes", "tinyvision.ops.nms", "tinyvision.ops.anchors",
    "tinyvision.ops.box_coder", "tinyvision.ops.matcher", "tinyvision.ops.giou_loss",
    "tinyvision.ops.diou_loss",
])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
