"""The ``tinyvision`` command.

    tinyvision coco-eval GT.json RESULTS.json [--json OUT.json] [--fixed]

Each subcommand is a function ``_cmd_<name>(args) -> exit status`` registered in
:func:`build_parser` by a ``_add_<name>`` function; add new ones the same way.
Exit status: 0 on success, 2 on bad input (the message names the field and the record).
"""
from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main", "build_parser"]


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


# ---- entry point ----------------------------------------------------------------------------
_SUBCOMMANDS = [_add_coco_eval]


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
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
