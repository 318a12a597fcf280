"""The ``tinyvision`` command.

    tinyvision demo [--quick] [--out DIR]                 the three tasks, trained and reported
    tinyvision train {localize,detect,segment} [--data DIR|synthetic] [--epochs N] [--out DIR]
                     [--resume] [--quick]
    tinyvision eval CHECKPOINT [--data DIR] [--json OUT.json]
    tinyvision predict CHECKPOINT IMAGE... --out DIR
    tinyvision data shapes --task {localize,detect,segment} --n N --out DIR
    tinyvision figures [--out DIR]                        the lesson's figures as PNGs
    tinyvision coco-eval GT.json RESULTS.json [--json OUT.json] [--fixed]

Each subcommand is a function ``_cmd_<name>(args) -> exit status`` registered in
:func:`build_parser` by a ``_add_<name>`` function; add new ones the same way.
Exit status: 0 on success, 2 on bad input (the message names the file, field or record),
1 when a run fails (e.g. a non-finite loss), 130 when interrupted. Errors are one line on
stderr, never a traceback (``TINYVISION_DEBUG=1`` shows it).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

__all__ = ["main", "build_parser"]


class CLIError(Exception):
    """Bad input to a command: printed as one line, exit status 2."""


def _task_names():
    from .tasks import TASK_NAMES

    return TASK_NAMES


def _get_task(name):
    from .tasks import get_task

    return get_task(name)


def _data_dir(value):
    """``--data``: None for the synthetic set, else an existing folder."""
    if value is None or value == "synthetic":
        return None
    if not os.path.isdir(value):
        raise CLIError(f"--data {value!r}: no such folder (give a folder written by "
                       "'tinyvision data shapes', or 'synthetic')")
    return value


def _print_metrics(metrics, file=None):
    file = file or sys.stdout
    for k, v in metrics.items():
        if isinstance(v, float):
            print(f"{k:>28s}  {v:.4f}", file=file)


def _load_run(path, task_name=None):
    """(task, config, model, checkpoint) from a checkpoint file or run folder."""
    from .engine import load_checkpoint

    ckpt = load_checkpoint(path)
    name = ckpt.meta.get("task")
    if task_name is not None and name != task_name:
        raise CLIError(f"{ckpt.path} is a checkpoint of task {name!r}, not {task_name!r}")
    if name not in _task_names():
        raise CLIError(f"{ckpt.path}: a checkpoint of task {name!r}, which tinyvision does not know")
    task = _get_task(name)
    try:
        config = ckpt.config()
    except TypeError as exc:
        raise CLIError(f"{ckpt.path}: its config does not fit this tinyvision ({exc})") from None
    model = task.build_model(config)
    try:
        model.load_state_dict(ckpt.model_state)
    except ValueError as exc:
        raise CLIError(f"{ckpt.path}: the weights do not fit task {name!r}'s model ({exc})") from None
    model.eval()
    return task, config, model, ckpt


# ---- demo -----------------------------------------------------------------------------------
def _add_demo(subparsers):
    p = subparsers.add_parser(
        "demo", help="train and evaluate localize, detect and segment; write a report folder",
        description="Train each task from scratch on the synthetic shapes data, evaluate it on held-out "
                    "images, and write a report: metrics.json, loss curves, pictures of predictions, "
                    "PR curves, a confusion matrix and index.html. The full demo is sized for about 15 "
                    "minutes on 2 CPU cores, --quick for about 3.")
    p.add_argument("--quick", action="store_true", help="the small recipes (minutes, lower targets)")
    p.add_argument("--out", default="report", metavar="DIR", help="report folder (default: report)")
    p.add_argument("--tasks", default=None, metavar="LIST",
                   help="comma-separated subset of localize,detect,segment (default: all three)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or epoch lines")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args):
    from .engine.report import run_demo

    names = _task_names() if args.tasks is None else tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    unknown = [t for t in names if t not in _task_names()]
    if unknown or not names:
        raise CLIError(f"--tasks: unknown task(s) {', '.join(unknown) or '(none given)'}; "
                       f"choose from {', '.join(_task_names())}")
    metrics, skipped = run_demo(names, args.out, quick=args.quick, progress=not args.no_progress,
                                say=lambda m: print(m, file=sys.stderr))
    for name in names:
        if name in metrics:
            print(f"{name}:")
            _print_metrics(metrics[name])
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in metrics["seconds"].items()))
    print(f"report: {os.path.join(args.out, 'index.html')}")
    if skipped:
        print(f"tinyvision demo: error: {len(skipped)} task(s) skipped: "
              + "; ".join(skipped.values()), file=sys.stderr)
        return 1
    return 0


# ---- train ----------------------------------------------------------------------------------
def _add_train(subparsers):
    p = subparsers.add_parser(
        "train", help="train one task (checkpoints, logs, held-out metrics, a picture)",
        description="Train a task's model, evaluating on the held-out set every epoch. The run folder "
                    "gets checkpoint.safetensors (resumable), log.jsonl (losses per step), epochs.jsonl, "
                    "metrics.json, losses.png and predictions.png.")
    p.add_argument("task", choices=_task_names(), help="which task")
    p.add_argument("--data", default="synthetic", metavar="DIR",
                   help="a COCO-format folder written by 'tinyvision data shapes', or 'synthetic' "
                        "(default: the seeded synthetic set)")
    p.add_argument("--epochs", type=int, default=None, metavar="N", help="override the recipe's epochs")
    p.add_argument("--out", default=None, metavar="DIR", help="run folder (default: runs/TASK)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint (its config; --epochs may extend it)")
    p.add_argument("--quick", action="store_true", help="the quick recipe (the one 'demo --quick' uses)")
    p.add_argument("--seed", type=int, default=None, help="override the recipe's seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or epoch lines")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args):
    from .engine import checkpoint_path, fit, load_checkpoint
    from .viz.draw import plot_losses

    out = args.out or os.path.join("runs", args.task)
    data_dir = _data_dir(args.data)
    if args.epochs is not None and args.epochs < 1:
        raise CLIError(f"--epochs must be >= 1, got {args.epochs}")
    task = _get_task(args.task)
    if args.resume:
        path = checkpoint_path(out)
        if not os.path.exists(path):
            raise CLIError(f"--resume: no checkpoint in {out!r} to resume from")
        ckpt = load_checkpoint(path)
        if ckpt.meta.get("task") != args.task:
            raise CLIError(f"--resume: {ckpt.path} is a checkpoint of task {ckpt.meta.get('task')!r}, "
                           f"not {args.task!r}")
        config = ckpt.config()
    else:
        config = task.config(quick=args.quick)
        if args.seed is not None:
            config.seed = args.seed
    if args.epochs is not None:
        config.epochs = args.epochs
    history = fit(task, config, out, resume=args.resume, progress=not args.no_progress, data_dir=data_dir)
    plot_losses(history, title=f"{args.task}: training loss").savefig(os.path.join(out, "losses.png"), dpi=100)
    picture = task.draw(history.model, history.val_set, os.path.join(out, "predictions.png"))
    print(f"{args.task}: held-out metrics after {config.epochs} epochs ({history.seconds:.1f} s)")
    _print_metrics(history.metrics)
    print(f"run folder: {out} (checkpoint {os.path.basename(history.checkpoint)}, picture "
          f"{os.path.basename(picture)})")
    return 0


# ---- eval -----------------------------------------------------------------------------------
def _add_eval(subparsers):
    p = subparsers.add_parser(
        "eval", help="evaluate a checkpoint on held-out data",
        description="Rebuild a run's model from its checkpoint and evaluate it on the held-out set "
                    "(the run's synthetic one, or --data DIR).")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint file or a run folder")
    p.add_argument("--data", default="synthetic", metavar="DIR",
                   help="a COCO-format folder, or 'synthetic' (default: the run's held-out set)")
    p.add_argument("--task", choices=_task_names(), default=None, help="fail unless the checkpoint is of this task")
    p.add_argument("--json", metavar="OUT.json", dest="json_out", help="also write the metrics as JSON")
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args):
    from .autograd import no_grad

    data_dir = _data_dir(args.data)
    task, config, model, ckpt = _load_run(args.checkpoint, args.task)
    _, val = task.datasets(config, data_dir=data_dir)
    with no_grad():
        metrics = task.evaluate(model, val, config)
    from .engine.loop import _jsonable

    metrics = {str(k): _jsonable(v) for k, v in metrics.items()}
    print(f"{task.name}: {ckpt.path} (epoch {ckpt.meta.get('epoch')}), {len(val)} held-out images")
    _print_metrics(metrics)
    if args.json_out:
        try:
            with open(args.json_out, "w") as f:
                json.dump({"task": task.name, "checkpoint": ckpt.path, "metrics": metrics}, f, indent=2)
                f.write("\n")
        except OSError as exc:
            raise CLIError(f"cannot write {args.json_out!r} ({exc.strerror or exc})") from None
    return 0


# ---- predict --------------------------------------------------------------------------------
def _add_predict(subparsers):
    p = subparsers.add_parser(
        "predict", help="draw a checkpoint's predictions on image files",
        description="Run a trained model on image files (PNG, JPEG, ... via Pillow) and draw its "
                    "predictions: boxes with class and score, or the predicted mask. Images are "
                    "resized to the size the model was trained at. Writes OUT/<name>.png per image and "
                    "OUT/predictions.json.")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint file or a run folder")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files")
    p.add_argument("--out", required=True, metavar="DIR", help="where the pictures go")
    p.add_argument("--task", choices=_task_names(), default=None, help="fail unless the checkpoint is of this task")
    p.set_defaults(func=_cmd_predict)


def _read_image(path, size):
    """(3, size, size) float32 in [0, 1] from an image file."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise CLIError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            a = np.asarray(im, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise CLIError(f"{path}: not an image Pillow can read ({exc})") from None
    return np.ascontiguousarray(a.transpose(2, 0, 1))     # (H, W, 3) -> (3, H, W)


def _jsonable_prediction(pred):
    out = {}
    for k, v in pred.items():
        if hasattr(v, "numpy") and not hasattr(v, "tolist"):
            v = v.numpy()
        if k in ("mask", "masks"):
            continue
        out[k] = v.tolist() if hasattr(v, "tolist") else v
    return out


def _cmd_predict(args):
    import numpy as np

    from .autograd import no_grad
    from .viz.draw import draw_boxes, draw_masks

    task, config, model, ckpt = _load_run(args.checkpoint, args.task)
    size = int(config.image_size)
    images = [_read_image(p, size) for p in args.images]     # all read before any work
    names = list(task.class_names)
    if not names:
        from .data.shapes import SHAPE_CLASSES

        names = list(SHAPE_CLASSES)
    os.makedirs(args.out, exist_ok=True)
    written = {}
    for path, image in zip(args.images, images):
        with no_grad():
            (pred,) = task.predict(model, image[None])
        stem = os.path.splitext(os.path.basename(path))[0]
        target = os.path.join(args.out, f"{stem}.png")
        mask = pred.get("mask", pred.get("masks"))
        if mask is not None:
            mask = np.asarray(mask.numpy() if hasattr(mask, "numpy") else mask)
            fig = draw_masks(image, mask, class_names=["background", *names], title=stem)
        else:
            fig = draw_boxes(image, pred.get("boxes", np.zeros((0, 4))), pred.get("labels"),
                             pred.get("scores"), class_names=names, title=stem)
        fig.savefig(target, dpi=100)
        written[path] = {"picture": target, **_jsonable_prediction(pred)}
        print(f"{path} -> {target}")
    with open(os.path.join(args.out, "predictions.json"), "w") as f:
        json.dump({"task": task.name, "checkpoint": ckpt.path, "image_size": size,
                   "predictions": written}, f, indent=2)
        f.write("\n")
    return 0


# ---- data -----------------------------------------------------------------------------------
def _add_data(subparsers):
    p = subparsers.add_parser("data", help="write datasets to disk",
                              description="Write datasets to disk in COCO format.")
    sub = p.add_subparsers(dest="data_command", metavar="WHAT")
    s = sub.add_parser(
        "shapes", help="the synthetic shapes set in COCO format",
        description="Write N synthetic shapes images (PNG) and their COCO instances annotations "
                    "(annotations.json; category id = label + 1; boxes, and polygon/RLE masks) to DIR.")
    s.add_argument("--task", required=True, choices=_task_names(), help="which view of the shapes")
    s.add_argument("--n", required=True, type=int, metavar="N", help="number of images")
    s.add_argument("--out", required=True, metavar="DIR", help="output folder")
    s.add_argument("--seed", type=int, default=0, help="the generator's seed (default 0)")
    s.add_argument("--image-size", type=int, default=None, metavar="S",
                   help="image side in pixels (default: the task's)")
    s.add_argument("--rle", action="store_true", help="masks as compressed RLE instead of polygons")
    s.set_defaults(func=_cmd_data_shapes)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _cmd_data_shapes(args):
    from .data.shapes import write_shapes

    if args.n < 1:
        raise CLIError(f"--n must be >= 1, got {args.n}")
    if args.image_size is not None and args.image_size < 8:
        raise CLIError(f"--image-size must be >= 8, got {args.image_size}")
    path = write_shapes(args.task, args.n, args.out, seed=args.seed, image_size=args.image_size,
                        segmentation="rle" if args.rle else "polygon")
    print(f"wrote {args.n} images and {path}")
    return 0


# ---- coco-eval ------------------------------------------------------------------------------
def _add_coco_eval(subparsers):
    p = subparsers.add_parser(
        "coco-eval",
        help="COCO box evaluation (pycocotools' numbers) of a results file",
        description="Evaluate COCO-format detection results against a COCO ground truth and print "
                    "pycocotools' summary table (12 stats).")
    p.add_argument("gt", metavar="GT.json", help="COCO ground-truth annotations")
    p.add_argument("results", metavar="RESULTS.json",
                   help="COCO results: a list of {image_id, category_id, bbox [x,y,w,h], score}")
    p.add_argument("--json", metavar="OUT.json", dest="json_out",
                   help="also write the stats (and per-category AP) as JSON to this file")
    p.add_argument("--fixed", action="store_true",
                   help="faster-coco-eval's numbers: no np.spacing in precision, AP at maxDets[-1]")
    p.add_argument("--ignore-unknown-categories", action="store_true",
                   help="drop detections whose category is not in the ground truth (pycocotools' "
                        "behaviour) instead of failing")
    p.set_defaults(func=_cmd_coco_eval)


def _cmd_coco_eval(args):
    from .metrics.coco import COCOEvaluator, COCOFormatError

    mode = "fixed" if args.fixed else "pycocotools"
    try:
        evaluator = COCOEvaluator(args.gt, mode=mode)
        result = evaluator.evaluate(
            args.results, unknown_categories="ignore" if args.ignore_unknown_categories else "raise")
    except (COCOFormatError, ValueError, TypeError) as exc:
        print(f"tinyvision coco-eval: error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    if args.json_out:
        names = result.category_names()
        payload = {
            "mode": mode,
            "stats": result.stats_dict(),
            "stats_list": [float(v) for v in result.stats],
            "per_category_ap": {str(c): {"name": names[c], "AP": ap}
                                for c, ap in result.ap_per_category().items()},
        }
        try:
            with open(args.json_out, "w") as f:
                json.dump(payload, f, indent=2)
                f.write("\n")
        except OSError as exc:
            print(f"tinyvision coco-eval: error: cannot write {args.json_out!r} ({exc})", file=sys.stderr)
            return 2
    return 0


# ---- figures --------------------------------------------------------------------------------
def _add_figures(subparsers):
    p = subparsers.add_parser(
        "figures", help="write the lesson's figures (IoU, focal loss, AP/AR areas, Dice vs CE, ...)",
        description="Write the lesson figures (tinyvision.viz.lesson.lesson_figures) as PNG files to DIR.")
    p.add_argument("--out", default="figures", metavar="DIR", help="output folder (default: figures)")
    p.set_defaults(func=_cmd_figures)


def _cmd_figures(args):
    from .viz.lesson import lesson_figures

    for name, path in lesson_figures(args.out).items():
        print(f"{name}: {path}")
    return 0


# ---- entry point ----------------------------------------------------------------------------
_SUBCOMMANDS = [_add_demo, _add_train, _add_eval, _add_predict, _add_data, _add_figures, _add_coco_eval]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tinyvision",
        description="tinyvision: a from-scratch reference engine for computer vision.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"tinyvision {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv=None):
    """Run the command line; returns the exit status (also used by ``python -m tinyvision``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return _run(args)


def _run(args):
    """``args.func(args)``, with every failure turned into one line on stderr and an exit status."""
    from .engine import CheckpointError, NonFiniteLossError
    from .tasks import TaskUnavailableError

    prog = f"tinyvision {args.command}"
    if os.environ.get("TINYVISION_DEBUG"):
        return args.func(args)
    try:
        return args.func(args)
    except (CLIError, CheckpointError, TaskUnavailableError) as exc:
        message, status = str(exc), 2
    except NonFiniteLossError as exc:
        message, status = f"non-finite loss: {exc}", 1
    except BrokenPipeError:                  # e.g. `tinyvision eval run | head`: stop quietly
        sys.stdout = open(os.devnull, "w")
        return 141
    except FileNotFoundError as exc:
        message, status = f"no such file: {exc.filename or exc}", 2
    except json.JSONDecodeError as exc:
        message, status = f"bad JSON: {exc}", 2
    except OSError as exc:
        message, status = f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}", 2
    except (ValueError, TypeError, KeyError) as exc:
        message, status = f"{type(exc).__name__}: {exc}", 2
    except KeyboardInterrupt:
        message, status = "interrupted (a 'train' run continues with --resume from its last checkpoint)", 130
    except Exception as exc:  # the promise is one line, never a traceback
        message, status = (f"{type(exc).__name__}: {exc} (set TINYVISION_DEBUG=1 to see the traceback)", 1)
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
