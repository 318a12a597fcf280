"""Bad input, table-driven: each case names the call, the error type, and words the message must
contain (the argument, and the shape or record). Never a raw NumPy/Numba error, never a silent
wrong number. Tensors, functional ops, layers, losses, box ops and COCO parameters."""
import numpy as np
import pytest

import tinyvision as tv
import tinyvision.functional as F
from tinyvision import nn
from tinyvision.metrics import COCOEvaluator, confusion_matrix
from tinyvision.ops import batched_nms, box_iou, nms

X23 = np.ones((2, 3), np.float32)
T01 = np.array([0, 1])
BOXES = np.array([[0, 0, 10, 10], [1, 1, 11, 11]], np.float32)
SCORES = np.array([0.9, 0.8], np.float32)
GT = {"images": [{"id": 1}], "categories": [{"id": 1}],
      "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0}]}
DT = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9}]


def _coco_with(**params):
    ev = COCOEvaluator(GT)
    for k, v in params.items():
        setattr(ev.params, k, v)
    return ev.evaluate(DT)


CASES = [
    # (id, call, error type, regex the message must match)
    ("ragged list", lambda: tv.tensor([[1, 2], [3]]), ValueError, r"ragged.*lengths \[2, 1\]"),
    ("object data", lambda: tv.tensor([1, "a"]), (TypeError, ValueError), r"tensor"),
    ("uint64 overflow", lambda: tv.tensor(np.array([2**63], np.uint64)), OverflowError, r"uint64.*int64"),
    ("float dim", lambda: F.sum(tv.tensor(X23), dim=1.5), TypeError, r"sum: dim must be an int.*1\.5"),
    ("str dim", lambda: F.softmax(tv.tensor(X23), dim="1"), TypeError, r"softmax: dim must be an int"),
    ("float dim unsqueeze", lambda: F.unsqueeze(tv.tensor(X23), 0.5), TypeError, r"unsqueeze: dim"),
    ("argmax empty", lambda: F.argmax(tv.tensor(np.ones((0,)))), ValueError, r"argmax.*shape \(0,\).*empty"),
    ("argmax empty axis", lambda: F.argmax(tv.tensor(np.ones((3, 0))), dim=1), ValueError, r"dim=1.*\(3, 0\)"),
    ("conv negative kernel", lambda: nn.Conv2d(3, 8, -1), ValueError, r"kernel_size must be >= 1, got -1"),
    ("conv float kernel", lambda: nn.Conv2d(3, 8, 1.5), TypeError, r"kernel_size must be an integer"),
    ("conv zero stride", lambda: nn.Conv2d(3, 8, 3, stride=0), ValueError, r"stride must be >= 1"),
    ("conv negative padding", lambda: nn.Conv2d(3, 8, 3, padding=-1), ValueError, r"padding must be >= 0"),
    ("conv negative channels", lambda: nn.Conv2d(-3, 8, 3), ValueError, r"in_channels must be >= 0"),
    ("conv groups 0", lambda: nn.Conv2d(4, 8, 3, groups=0), ValueError, r"groups must be >= 1"),
    ("linear negative", lambda: nn.Linear(-1, 3), ValueError, r"in_features must be >= 0, got -1"),
    ("linear float", lambda: nn.Linear(2.5, 3), TypeError, r"in_features must be an integer"),
    ("ce str smoothing", lambda: F.cross_entropy(tv.tensor(X23), T01, label_smoothing="0.1"), TypeError,
     r"label_smoothing must be a number, got '0\.1'"),
    ("ce dict target", lambda: F.cross_entropy(tv.tensor(X23), {"a": 1}), TypeError, r"cross_entropy: target"),
    ("ce target out of range", lambda: F.cross_entropy(tv.tensor(X23), np.array([0, 5])), ValueError,
     r"target 5 is out of bounds for 3 classes"),
    ("smooth_l1 str beta", lambda: F.smooth_l1_loss(tv.tensor(X23), X23, beta="1"), TypeError, r"beta must be a number"),
    ("mse shape", lambda: F.mse_loss(tv.tensor(X23), np.ones((3, 2))), ValueError, r"\(2, 3\).*\(3, 2\)"),
    ("nms array threshold", lambda: nms(BOXES, SCORES, np.array([0.5, 0.6])), TypeError,
     r"iou_threshold must be a number.*shape \(2,\)"),
    ("nms str threshold", lambda: nms(BOXES, SCORES, "0.5"), TypeError, r"iou_threshold must be a number"),
    ("batched_nms idxs None", lambda: batched_nms(BOXES, SCORES, None, 0.5), TypeError, r"idxs.*required.*None"),
    ("batched_nms idxs shape", lambda: batched_nms(BOXES, SCORES, np.array([0]), 0.5), ValueError, r"idxs must have shape"),
    ("box_iou shape", lambda: box_iou(np.ones((2, 3)), BOXES), ValueError, r"boxes1 must have shape \(N, 4\)"),
    ("confusion labels absent", lambda: confusion_matrix([0, 1], [1, 0], labels=[5, 6]), ValueError,
     r"none of labels \[5, 6\] occurs in y_true"),
    ("coco iouThrs str", lambda: _coco_with(iouThrs="abc"), ValueError, r"params\.iouThrs must be a list of numbers"),
    ("coco areaRng str", lambda: _coco_with(areaRng="abc"), ValueError, r"params\.areaRng"),
    ("coco catIds str", lambda: _coco_with(catIds=["a"]), Exception, r"params\.catIds must hold numeric ids"),
    ("coco imgIds nan", lambda: _coco_with(imgIds=[float("nan")]), Exception, r"params\.imgIds must hold finite ids"),
]


@pytest.mark.parametrize("call, error, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_byte_swapped_boxes_give_the_native_answer():
    b, s = BOXES.astype(">f4"), SCORES.astype(">f4")
    np.testing.assert_array_equal(nms(b, s, 0.5), nms(BOXES, SCORES, 0.5))
    np.testing.assert_array_equal(batched_nms(b, s, np.array([0, 1], ">i8"), 0.5), [0, 1])
    np.testing.assert_array_equal(box_iou(b, b), box_iou(BOXES, BOXES))


def test_zero_in_channels_builds_as_torch():
    # PyTorch allows nn.Conv2d(0, 8, 3) (init of a zero-element weight is a no-op)
    conv = nn.Conv2d(0, 8, 3)
    assert conv.weight.shape == (8, 0, 3, 3)
    assert nn.Linear(0, 3).weight.shape == (3, 0)


def test_lists_are_accepted_where_torch_takes_tensors():
    x = tv.tensor(X23)
    np.testing.assert_allclose(F.cross_entropy(x, [0, 1]).item(), np.log(3), rtol=1e-6)
    np.testing.assert_allclose(F.cross_entropy(x, T01, weight=[1.0, 2.0, 3.0]).item(), np.log(3), rtol=1e-6)
