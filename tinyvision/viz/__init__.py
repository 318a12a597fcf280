"""Plots: precision-recall curves, recall-vs-IoU curves, confusion matrices, and anchors.

matplotlib is an optional dependency (``pip install 'tinyvision[plot]'``), imported only when a
plot is drawn. Every function returns the matplotlib ``Figure`` (built without pyplot, so no
global state and no GUI backend is touched); save it with ``fig.savefig("pr.png")``, or pass
``ax=`` to draw into an axes of your own figure.
"""
from .anchors import draw_anchors, location_anchors
from .draw import draw_boxes, draw_masks, plot_losses
from .graph import draw_graph
from .metrics import (plot_coco_precision_recall, plot_confusion_matrix, plot_precision_recall,
                      plot_recall_iou)

__all__ = ["plot_precision_recall", "plot_coco_precision_recall", "plot_recall_iou",
           "plot_confusion_matrix", "draw_anchors", "location_anchors", "draw_boxes", "draw_masks",
           "plot_losses", "draw_graph"]
