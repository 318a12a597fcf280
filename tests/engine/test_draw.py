"""draw_boxes, draw_masks and plot_losses render PNGs; their colours land where the boxes and
masks are; bad shapes raise naming the argument."""
import json

import numpy as np
import pytest

from tinyvision.viz import draw_boxes, draw_masks, plot_losses
from tinyvision.viz.draw import class_color, to_hwc

pytest.importorskip("matplotlib")


def image_chw():
    img = np.full((3, 32, 32), 0.2, dtype=np.float32)
    img[:, 8:24, 8:24] = 0.6
    return img


def test_to_hwc_layouts():
    chw = image_chw()
    hwc = to_hwc(chw)
    assert hwc.shape == (32, 32, 3)
    np.testing.assert_array_equal(to_hwc((chw.transpose(1, 2, 0) * 255).astype(np.uint8)),
                                  np.round(hwc * 255) / 255)
    assert to_hwc(np.zeros((5, 7))).shape == (5, 7, 3)
    with pytest.raises(ValueError, match=r"image must be .* got shape \(2, 5, 7, 1\)"):
        to_hwc(np.zeros((2, 5, 7, 1)))


def test_draw_boxes_png(tmp_path):
    fig = draw_boxes(image_chw(), [[8, 8, 24, 24]], [0], class_names=["square"], color="white",
                     linestyle="--", title="truth and prediction")
    draw_boxes(None, np.array([[9, 7, 25, 23], [20, 2, 12, 10]]), np.array([1, 2]), [0.9, 0.4],
               class_names=["square", "circle", "star"], ax=fig.axes[0])  # 2nd box inverted: drawn
    path = tmp_path / "boxes.png"
    fig.savefig(path, dpi=80)
    assert path.stat().st_size > 2000
    ax = fig.axes[0]
    assert len(ax.patches) == 3 and [t.get_text() for t in ax.texts] == ["square", "circle 0.90", "star 0.40"]
    assert ax.patches[1].get_edgecolor()[:3] == pytest.approx(class_color(1))
    assert ax.patches[2].get_width() == 8 and ax.patches[2].get_height() == 8
    with pytest.raises(ValueError, match="labels has 2 entries for 1 boxes"):
        draw_boxes(image_chw(), [[0, 0, 1, 1]], [0, 1])
    empty = draw_boxes(image_chw(), np.zeros((0, 4)))
    assert not empty.axes[0].patches


def test_draw_masks_colours_the_mask(tmp_path):
    img = np.zeros((3, 20, 20), dtype=np.float32)
    mask = np.zeros((20, 20), dtype=np.int64)
    mask[2:8, 2:8] = 1
    mask[12:18, 10:18] = 3
    fig = draw_masks(img, mask, alpha=1.0, class_names=["background", "a", "b", "c"])
    fig.savefig(tmp_path / "mask.png", dpi=80)
    assert (tmp_path / "mask.png").stat().st_size > 1000
    shown = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(shown[4, 4], class_color(0))       # value 1 -> colour 0
    np.testing.assert_allclose(shown[15, 12], class_color(2))     # value 3 -> colour 2
    np.testing.assert_array_equal(shown[10, 2], 0.0)              # background untouched
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["a", "c"]
    instances = np.stack([mask == 1, mask == 3])
    fig = draw_masks(img, instances, alpha=0.5)
    np.testing.assert_allclose(fig.axes[0].images[0].get_array()[15, 12], 0.5 * np.array(class_color(1)))
    with pytest.raises(ValueError, match=r"mask is \(4, 4\) but the image is \(20, 20\)"):
        draw_masks(img, np.zeros((4, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="alpha must be in"):
        draw_masks(img, mask, alpha=2)


def test_plot_losses_png(tmp_path):
    rows = [{"epoch": 1 + s // 10, "step": s + 1, "lr": 0.1, "loss": 2.0 / (s + 1), "cls": 1.0 / (s + 1),
             "box": 1.0 / (s + 1)} for s in range(30)]
    fig = plot_losses(rows)
    fig.savefig(tmp_path / "losses.png", dpi=80)
    assert (tmp_path / "losses.png").stat().st_size > 5000
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["loss", "cls", "box"]
    assert ax.get_yscale() == "log"
    assert len([line for line in ax.lines if line.get_linestyle() == ":"]) == 2  # two epoch boundaries
    # the same from the run folder's log.jsonl
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    again = plot_losses(tmp_path)
    assert len(again.axes[0].lines) == len(ax.lines)
    with pytest.raises(ValueError, match=r"log\[1\] must be a dict with a 'loss' entry"):
        plot_losses([{"loss": 1.0}, {"step": 2}])
