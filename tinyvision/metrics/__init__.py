"""Metrics: arrays in, numbers out.

* :mod:`~tinyvision.metrics.classification` — confusion matrix, precision / recall / F-beta /
  specificity / accuracy (scikit-learn's semantics), precision-recall curve, average precision.
* :mod:`~tinyvision.metrics.coco` — ``COCOEvaluator``: pycocotools' COCO evaluation, number for number.
* :mod:`~tinyvision.metrics.voc` — Pascal VOC AP (11-point and all-point), the devkit's matching.
* :mod:`~tinyvision.metrics.recall` — the textbook average recall AR = 2 * integral of
  recall(IoU) over [0.5, 1] (Hosang et al.) and its class mean mAR.
* :mod:`~tinyvision.metrics.segmentation` — Dice, IoU/Jaccard, pixel accuracy, confusion matrix.
* :mod:`~tinyvision.metrics.detection_confusion` — a detection confusion matrix.
"""
from .classification import *  # noqa: F401,F403
from .classification import __all__ as _classification_all
from .coco import *  # noqa: F401,F403
from .coco import __all__ as _coco_all

__all__ = list(_classification_all) + list(_coco_all)
