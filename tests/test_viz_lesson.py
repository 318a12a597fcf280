"""The lesson's figures: each drawn from the code it illustrates, so the numbers on it are the
code's (checked here against golden values and the functions themselves)."""
import numpy as np
import pytest

pytest.importorskip("matplotlib")

from tinyvision.ops import box_iou  # noqa: E402
from tinyvision.viz import lesson  # noqa: E402

# RetinaNet paper, Figure 1: FL at p_t = 0.1 / 0.5 / 0.9 (REFERENCE.md §2)
GOLDEN = {0.0: (2.302585, 0.693147, 0.105361), 0.5: (2.184424, 0.490129, 0.033318),
          1.0: (2.072327, 0.346574, 0.010536), 2.0: (1.865094, 0.173287, 0.001054)}


def test_focal_curves_are_the_papers():
    fig = lesson.plot_focal_loss()
    lines = {ln.get_label(): ln for ln in fig.axes[0].lines}
    for g, values in GOLDEN.items():
        x, y = lines[f"γ = {g:g}"].get_data()
        for p, v in zip((0.1, 0.5, 0.9), values):
            np.testing.assert_allclose(np.interp(p, x, y), v, rtol=2e-3)


def test_iou_title_is_box_iou():
    a, b = (0, 0, 10, 10), (5, 0, 15, 10)
    fig = lesson.plot_iou(a, b)
    assert fig.axes[0].get_title().endswith(f"= {box_iou(np.array([a], float), np.array([b], float))[0, 0]:.3f}")
    assert "50 / 150" in fig.axes[0].get_title()


def test_sliding_windows_count_and_ap_area():
    fig = lesson.plot_sliding_windows()
    assert fig.axes[0].get_title().startswith("4 windows × 45 cells (5×9) = 180 anchors")
    from tinyvision.metrics import COCOEvaluator

    gt, results, _, _ = lesson._demo_detection()
    res = COCOEvaluator(gt).evaluate(results)
    curve = res.pr_curve(1, iou_threshold=0.5)
    assert curve.ap == pytest.approx(res.precision[0, :, 0, 0, -1].mean(), abs=1e-15)
    label = lesson.plot_ap_area(curve).axes[0].get_legend().get_texts()[0].get_text()
    assert label == f"area = AP = {curve.ap:.3f}"


def test_dice_moves_where_cross_entropy_does_not():
    fig = lesson.plot_dice_vs_ce()
    ce, dice = (ln.get_data()[1] for ln in fig.axes[0].lines)
    assert dice[0] > 0.95 and dice[-1] < 0.15 and np.all(np.diff(dice) < 0)
    assert ce[0] - ce[-1] < 0.05


def test_lesson_figures_writes_every_png(tmp_path):
    paths = lesson.lesson_figures(tmp_path)
    assert set(paths) == {"iou", "focal_loss", "sliding_windows", "ap_area", "ar_area", "dice_vs_ce", "anchor_matches",
                          "architecture_multihead", "architecture_retinanet", "architecture_unet"}
    for p in paths.values():
        assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_architecture_shapes_are_the_models():
    import tinyvision as tv
    from tinyvision.models import multihead_small
    from tinyvision.models.segmentation import Unet
    from tinyvision.viz.architecture import plot_multihead, plot_unet, trace_shapes

    mh = multihead_small(5)
    texts = [t.get_text() for t in plot_multihead(mh).axes[0].texts]
    scores, box = mh(tv.tensor(np.zeros((1, 3, 64, 64), np.float32)))
    assert f"({', '.join(map(str, scores.shape))})" in texts and any(t.startswith("(1, 4)") for t in texts)
    unet = Unet("resnet18", classes=3, decoder_channels=(32, 16, 16, 8, 8))
    texts = [t.get_text() for t in plot_unet(unet, (1, 3, 64, 64)).axes[0].texts]
    assert "(1, 3, 64, 64)" in texts and "(1, 512, 2, 2)" in texts and texts.count("skip: concat") == 4
    with pytest.raises(ValueError, match="no submodule 'nope'"):
        trace_shapes(unet, (tv.tensor(np.zeros((1, 3, 64, 64), np.float32)),), ["nope"])
