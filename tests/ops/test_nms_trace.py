"""nms_trace: the learner's step-by-step NMS. Its kept indices equal nms (and torchvision's),
every other box is suppressed exactly once, by a kept box of at least its score, at an IoU above
the threshold — the IoU that box_iou computes."""
import numpy as np
import torch
import torchvision
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyvision.ops import box_iou, nms, nms_trace


@st.composite
def boxes_and_scores(draw):
    n = draw(st.integers(0, 25))
    xy = draw(hnp.arrays(np.float64, (n, 2), elements=st.integers(0, 20).map(float)))
    wh = draw(hnp.arrays(np.float64, (n, 2), elements=st.integers(0, 12).map(float)))
    scores = draw(hnp.arrays(np.float64, (n,), elements=st.sampled_from([0.1, 0.5, 0.5, 0.9, 0.3])))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype), scores.astype(dtype)


@given(boxes_and_scores(), st.sampled_from([0.0, 0.3, 0.5, 0.7]))
def test_trace_agrees_with_nms_and_explains_every_box(data, thr):
    boxes, scores = data
    trace = nms_trace(boxes, scores, thr)
    np.testing.assert_array_equal(trace.keep, nms(boxes, scores, thr))
    np.testing.assert_array_equal(
        trace.keep, torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), thr).numpy())
    seen = [s.kept for s in trace] + [j for s in trace for j, _ in s.suppressed]
    assert sorted(seen) == list(range(len(boxes)))               # each box once: kept or suppressed
    iou = box_iou(boxes.astype(np.float64), boxes.astype(np.float64))
    for step in trace:
        for j, v in step.suppressed:
            assert v > thr and scores[j] <= scores[step.kept]
            np.testing.assert_allclose(v, iou[step.kept, j], rtol=1e-6)


def test_trace_table_reads_like_the_algorithm():
    boxes = np.array([[0., 0., 10., 10.], [0., 0., 10., 9.], [20., 20., 25., 25.], [21., 20., 26., 25.]])
    trace = nms_trace(boxes, np.array([0.6, 0.9, 0.5, 0.7]), 0.5)
    assert [s.kept for s in trace] == [1, 3]
    assert trace[0].suppressed == [(0, 0.9)] and [j for j, _ in trace[1].suppressed] == [2]
    text = str(trace)
    assert text.splitlines()[0].split()[:3] == ["step", "kept", "score"] and "0: 0.900" in text
