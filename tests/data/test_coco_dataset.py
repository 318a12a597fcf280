"""CocoDetection / export_coco: round trip, torchvision's and pycocotools' readings, bad files."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from tinyvision.data import (CocoDetection, COCOFormatError, ShapesDetection, ShapesLocalization, ShapesSegmentation,
                             coco_folder, coco_ground_truth, export_coco, write_shapes)
from tinyvision.data.mask import mask_to_counts, rle_encode

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.mark.parametrize("segmentation", ["polygon", "rle"])
@pytest.mark.parametrize("task", ["localize", "detect", "segment"])
def test_export_then_read_back_everything(tmp_path, task, segmentation):
    kwargs = {"image_size": 64} if task == "detect" else {}
    path = write_shapes(task, 12, tmp_path, seed=3, segmentation=segmentation, **kwargs)
    assert path == os.path.join(tmp_path, "annotations.json")
    data = json.load(open(path))
    assert data["info"]["shapes_version"] >= 1 and data["info"]["task"] == task
    kinds = {type(a["segmentation"]).__name__ for a in data["annotations"]}
    assert kinds == {"dict"} if segmentation == "rle" else "list" in kinds and kinds <= {"list", "dict"}
    source = {"localize": ShapesLocalization, "detect": ShapesDetection, "segment": ShapesSegmentation}[task](
        12, seed=3, masks=True, **kwargs)
    read = CocoDetection(tmp_path / "images", path, masks=True)
    assert len(read) == 12 and read.classes == list(source.classes)
    assert read.label_to_cat_id == [k + 1 for k in range(len(source.classes))]
    for i in range(12):
        image, target = source[i]
        back, t = read[i]
        assert np.array_equal(back, image)                     # PNG is lossless, images are uint8 levels
        assert np.array_equal(t["boxes"], target["boxes"]) and t["boxes"].dtype == np.float32
        assert np.array_equal(t["labels"], target["labels"]) and t["labels"].dtype == np.int64
        assert np.array_equal(t["masks"], target["masks"]) and t["masks"].dtype == np.uint8
        assert np.array_equal(t["area"], t["masks"].sum(axis=(1, 2)).astype(np.float32))
        assert t["image_id"] == i + 1 and (t["iscrowd"] == 0).all()
    if task == "segment":
        seg = coco_folder(tmp_path, "segment")
        for i in range(12):
            assert np.array_equal(seg[i][1]["mask"], source[i][1]["mask"])


def test_masks_equal_pycocotools_and_torchvision_readings(tmp_path):
    from pycocotools.coco import COCO
    from torchvision.datasets import CocoDetection as TorchvisionCoco
    from torchvision.datasets import wrap_dataset_for_transforms_v2

    path = export_coco(ShapesDetection(8, image_size=64, seed=1), tmp_path)
    coco = COCO(path)
    ours = CocoDetection(tmp_path / "images", path, masks=True)
    theirs = wrap_dataset_for_transforms_v2(TorchvisionCoco(str(tmp_path / "images"), path),
                                            target_keys={"boxes", "labels", "masks", "image_id"})
    for i in range(len(ours)):
        image, t = ours[i]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=ours.ids[i]))
        ref = np.stack([coco.annToMask(a) for a in anns]) if anns else np.zeros((0, 64, 64), np.uint8)
        assert np.array_equal(t["masks"], ref)
        timage, tt = theirs[i]
        assert tt["image_id"] == t["image_id"]
        assert np.array_equal(np.asarray(timage, dtype=np.float32).transpose(2, 0, 1) / np.float32(255), image)
        if "boxes" in tt:
            assert np.array_equal(tt["boxes"].numpy(), t["boxes"])
            assert np.array_equal(tt["masks"].numpy(), t["masks"])
            assert [ours.label_to_cat_id[k] for k in t["labels"]] == tt["labels"].tolist()


def write_image(folder, name, width, height, value=0):
    os.makedirs(folder, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), value, dtype=np.uint8)).save(os.path.join(folder, name))


@pytest.fixture
def handmade(tmp_path):
    """Two images (ids out of order), non-contiguous category ids, crowd, degenerate and
    out-of-image boxes, and the three segmentation kinds."""
    write_image(tmp_path, "a.png", 10, 8, 10)
    write_image(tmp_path, "b.png", 6, 5, 200)
    mask = np.zeros((8, 10), dtype=np.uint8)
    mask[2:5, 3:7] = 1
    data = {
        "images": [{"id": 9, "file_name": "a.png", "width": 10, "height": 8},
                   {"id": 4, "file_name": "b.png", "width": 6, "height": 5}],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 9, "category_id": 3, "bbox": [3, 2, 4, 3], "area": 12, "iscrowd": 0,
             "segmentation": rle_encode(mask)},
            {"id": 2, "image_id": 9, "category_id": 7, "bbox": [8, 6, 5, 5], "area": 4, "iscrowd": 0,
             "segmentation": [[8, 6, 10, 6, 10, 8, 8, 8]]},                      # clamped to the image
            {"id": 3, "image_id": 9, "category_id": 7, "bbox": [2, 2, 0, 3], "area": 0, "iscrowd": 0,
             "segmentation": [[2, 2, 2, 2, 2, 5]]},                             # zero width: dropped
            {"id": 4, "image_id": 9, "category_id": 3, "bbox": [0, 0, 10, 8], "area": 80, "iscrowd": 1,
             "segmentation": {"size": [8, 10], "counts": mask_to_counts(np.ones((8, 10)))}},   # crowd
            {"id": 5, "image_id": 4, "category_id": 7, "bbox": [12, 1, 2, 2], "area": 4, "iscrowd": 0,
             "segmentation": [[12, 1, 14, 1, 14, 3]]},                          # outside: dropped
            {"id": 6, "image_id": 4, "category_id": 3, "bbox": [1.5, 0.5, 2.25, 3], "area": 5, "iscrowd": 0,
             "segmentation": [[1.5, 0.5, 3.75, 0.5, 3.75, 3.5, 1.5, 3.5]]},
        ],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return tmp_path, path, data


def test_handmade_file_golden(handmade):
    root, path, _ = handmade
    ds = CocoDetection(root, path, masks=True)
    assert ds.ids == [4, 9]                                      # torchvision's sorted order
    assert ds.classes == ["dog", "cat"] and ds.cat_id_to_label == {7: 0, 3: 1}
    assert ds.dropped == 2 and ds.dropped_crowd == 1 and sorted(ds.dropped_ids) == [3, 4, 5]
    image, t = ds[0]                                             # image id 4
    assert image.shape == (3, 5, 6) and np.all(image == np.float32(200) / np.float32(255))
    assert t["image_id"] == 4 and t["labels"].tolist() == [1]
    assert t["boxes"].tolist() == [[1.5, 0.5, 3.75, 3.5]]
    image, t = ds[1]
    assert t["boxes"].tolist() == [[3, 2, 7, 5], [8, 6, 10, 8]]  # the second one clamped
    assert t["labels"].tolist() == [1, 0] and t["area"].tolist() == [12, 4] and t["iscrowd"].tolist() == [0, 0]
    assert t["masks"].shape == (2, 8, 10) and t["masks"][0].sum() == 12
    with_crowd = CocoDetection(root, path, masks=True, keep_crowd=True)
    assert with_crowd[1][1]["iscrowd"].tolist() == [0, 0, 1] and with_crowd[1][1]["masks"][2].all()
    assert with_crowd.dropped == 2 and with_crowd.dropped_crowd == 0


def test_masks_of_every_kind_equal_pycocotools(handmade):
    from pycocotools.coco import COCO

    root, path, data = handmade
    coco = COCO(str(path))
    ds = CocoDetection(root, path, masks=True, keep_crowd=True)
    for i, image_id in enumerate(ds.ids):
        kept = [a for a in data["annotations"] if a["image_id"] == image_id and a["id"] not in (3, 5)]
        ref = [coco.annToMask(coco.anns[a["id"]]) for a in kept]
        assert np.array_equal(ds[i][1]["masks"], np.stack(ref))


def test_transforms_are_applied_with_a_seeded_generator(handmade):
    from tinyvision.data import transforms as T

    root, path, _ = handmade
    ds = CocoDetection(root, path, transforms=T.RandomHorizontalFlip(1.0), masks=True)
    _, t = ds[1]
    assert t["boxes"].tolist() == [[3, 2, 7, 5], [0, 6, 2, 8]]
    assert t["masks"][1, 6:8, 0:2].all()


def corrupt(data, where, change):
    data = json.loads(json.dumps(data))
    change(data[where] if where else data)
    return data


@pytest.mark.parametrize("where, change, match", [
    (None, lambda d: d.pop("images"), "needs a list 'images'"),
    ("images", lambda x: x[0].pop("width"), r"images\[0\] needs a valid 'width'"),
    ("images", lambda x: x[1].update(id=9), r"images\[1\] repeats the image id 9"),
    ("categories", lambda x: x[0].update(id="dog"), r"categories\[0\] needs an integer 'id'"),
    ("annotations", lambda x: x[1].update(image_id=99), r"annotations\[1\] refers to the image id 99"),
    ("annotations", lambda x: x[2].update(category_id=1), r"annotations\[2\] refers to the category id 1"),
    ("annotations", lambda x: x[0].update(bbox=[1, 2, 3]), r"annotations\[0\]\['bbox'\] must be 4"),
    ("annotations", lambda x: x[0].update(bbox=[1, 2, float("nan"), 3]), r"annotations\[0\]\['bbox'\]"),
    ("annotations", lambda x: x[0].update(iscrowd=2), r"annotations\[0\]\['iscrowd'\]"),
    ("annotations", lambda x: x[5].pop("segmentation"), r"annotations\[5\] has no 'segmentation'"),
])
def test_malformed_files_name_the_record(handmade, where, change, match):
    root, _, data = handmade
    with pytest.raises(COCOFormatError, match=match):
        CocoDetection(root, corrupt(data, where, change), masks=True)


def test_bad_segmentation_and_image_errors(handmade, tmp_path):
    root, _, data = handmade
    bad = corrupt(data, "annotations", lambda x: x[5].update(segmentation=[[1, 2, 3]]))
    with pytest.raises(COCOFormatError, match=r"annotations\[5\]\['segmentation'\]: polygon 0"):
        CocoDetection(root, bad, masks=True)[0]
    wrong_size = corrupt(data, "images", lambda x: x[1].update(width=7))
    with pytest.raises(COCOFormatError, match="is 6x5 .* says 7x5"):
        CocoDetection(root, wrong_size)[0]
    missing = corrupt(data, "images", lambda x: x[1].update(file_name="nope.png"))
    with pytest.raises(COCOFormatError, match="cannot read the image"):
        CocoDetection(root, missing)[0]
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(COCOFormatError, match="not valid JSON"):
        CocoDetection(root, tmp_path / "broken.json")
    with pytest.raises(FileNotFoundError, match="no annotations.json"):
        coco_folder(tmp_path / "empty")


def test_exported_file_is_valid_ground_truth_for_the_evaluators(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from tinyvision.metrics import COCOEvaluator

    path = write_shapes("detect", 6, tmp_path, image_size=64)
    data = json.load(open(path))
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
            for a in data["annotations"]]
    ours = COCOEvaluator(path).evaluate(dets).stats
    gt = COCO(path)
    ev = COCOeval(gt, gt.loadRes(dets), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    np.testing.assert_allclose(ours, ev.stats, atol=1e-12)
    assert ours[1] > 0.99


def test_ground_truth_dict_is_the_exported_file_without_masks(tmp_path):
    ds = ShapesDetection(5, image_size=64, seed=2)
    data = json.load(open(export_coco(ds, tmp_path)))
    gt = coco_ground_truth(ds)
    for a in data["annotations"]:
        a.pop("segmentation")
    assert gt == {k: data[k] for k in ("images", "annotations", "categories")}


def test_export_of_a_coco_dataset_renumbers_categories(handmade, tmp_path):
    from tinyvision.data import transforms as T

    root, path, _ = handmade
    source = CocoDetection(root, path, masks=True, transforms=T.RandomHorizontalFlip(1.0))
    out = tmp_path / "again"
    again = CocoDetection(out / "images", export_coco(source, out), masks=True)
    assert again.classes == ["dog", "cat"] and again.label_to_cat_id == [1, 2]
    assert again.ids == [4, 9]
    for i in range(2):
        (a, ta), (b, tb) = source[i], again[i]
        assert np.array_equal(a, b)                             # uint8 levels survive the PNG
        for key in ("boxes", "labels", "masks"):
            assert np.array_equal(ta[key], tb[key]), key
