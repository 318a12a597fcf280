"""Metrics: arrays in, numbers out.

* :mod:`~tinyvision.metrics.classification` — confusion matrix, precision / recall / F-beta /
  specificity / accuracy (scikit-learn's semantics), precision-recall curve, average precision.
* :mod:`~tinyvision.metrics.coco` — ``COCOEvaluator``: pycocotools' COCO evaluation, number for
  number.
* :mod:`~tinyvision.metrics.voc` — Pascal VOC AP (11-point and all-point), the devkit's matching.
* :mod:`~tinyvision.metrics.recall` — the textbook average recall AR = 2 * integral of
  recall(IoU) over [0.5, 1] (Hosang et al.) and its class mean mAR.
* :mod:`~tinyvision.metrics.segmentation` — Dice, IoU/Jaccard, pixel accuracy, confusion matrix.
* :mod:`~tinyvision.metrics.detection_confusion` — a detection confusion matrix.
* :mod:`~tinyvision.metrics.localization` — single-object localization: accuracy, mean IoU,
  correct-localization rate.
"""
from . import classification, coco, detection_confusion, recall, segmentation, voc  # noqa: F401
from .classification import *  # noqa: F401,F403
from .coco import *  # noqa: F401,F403
from .detection_confusion import *  # noqa: F401,F403
from .recall import *  # noqa: F401,F403
from .segmentation import *  # noqa: F401,F403
from .voc import *  # noqa: F401,F403
from . import localization  # noqa: F401,E402
from .localization import *  # noqa: F401,F403

__all__ = [*classification.__all__, *coco.__all__, *voc.__all__, *recall.__all__,
           *segmentation.__all__, *detection_confusion.__all__, *localization.__all__]
