"""Fuzzing the COCO loader: malformed ground truth or results (a field removed, a value of the
wrong type, a record that is not a dict) must raise COCOFormatError naming the record — never a
KeyError/TypeError/IndexError from inside — or evaluate as pycocotools would (valid data)."""
import copy

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyvision.metrics import COCOEvaluator
from tinyvision.metrics.coco import COCOFormatError

GT = {"images": [{"id": 1, "width": 64, "height": 64}, {"id": 2, "width": 64, "height": 64}],
      "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
      "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
                      {"id": 2, "image_id": 2, "category_id": 2, "bbox": [5, 5, 20, 20], "area": 400, "iscrowd": 1}]}
DT = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 9], "score": 0.9},
      {"image_id": 2, "category_id": 2, "bbox": [5, 5, 20, 18], "score": 0.8}]

WEIRD = st.one_of(st.none(), st.text(max_size=3), st.booleans(), st.floats(allow_nan=True),
                  st.lists(st.integers(-3, 3), max_size=5), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
                  st.integers(-2, 2))


def _paths(obj, prefix=()):
    """Every (path) to a value inside nested dicts/lists."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


GT_PATHS = [p for p in _paths(GT) if p]
DT_PATHS = [p for p in _paths(DT) if p]


def _mutate(obj, path, action, value):
    obj = copy.deepcopy(obj)
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return obj


def _evaluate(gt, dt):
    try:
        COCOEvaluator(gt).evaluate(dt)
    except COCOFormatError as e:
        assert str(e), "a COCOFormatError must say what is wrong"
    except ValueError as e:   # value problems that are not format problems name the field
        assert any(w in str(e) for w in ("bbox", "score", "area", "id", "params", "categor", "image")), str(e)


@settings(max_examples=60)
@given(st.sampled_from(GT_PATHS), st.sampled_from(["delete", "replace"]), WEIRD)
def test_malformed_ground_truth_raises_a_format_error(path, action, value):
    _evaluate(_mutate(GT, path, action, value), DT)


@settings(max_examples=60)
@given(st.sampled_from(DT_PATHS), st.sampled_from(["delete", "replace"]), WEIRD)
def test_malformed_results_raise_a_format_error(path, action, value):
    _evaluate(GT, _mutate(DT, path, action, value))


@given(WEIRD)
def test_top_level_garbage(value):
    for gt, dt in ((value, DT), (GT, value)):
        try:
            COCOEvaluator(gt).evaluate(dt)
        except (COCOFormatError, FileNotFoundError, ValueError):
            pass
        except TypeError as e:   # a wrong kind of argument: the message names it
            assert "detections must be" in str(e) or "ground truth" in str(e) or "gt" in str(e), str(e)
    assert np.isfinite(COCOEvaluator(GT).evaluate(DT).stats[0])
