"""The ``tinyvision demo`` report: train each task, then one folder with the numbers and pictures.

    report/
        metrics.json     {"localize": {...}, "detect": {...}, "segment": {...},
                          "seconds": {"localize", "detect", "segment", "total"}}
        losses.png       the training loss of every task (one panel each)
        <task>.png       held-out images: truth and prediction (task.draw)
        <task>_*.png     the task's extra figures (task.extra_figures: PR curves, confusion matrix)
        runs/<task>/     each run's checkpoint, log.jsonl, epochs.jsonl, metrics.json
        index.html       all of the above on one page

The metrics are the held-out evaluation after the last epoch; "seconds" is the wall time of each
task (data, training, evaluation and its pictures) and of the whole demo.
"""
from __future__ import annotations

import html
import os
import time

from .loop import _write_json

__all__ = ["run_demo", "write_report"]


def _rel(path, root):
    return os.path.relpath(os.fspath(path), os.fspath(root)).replace(os.sep, "/")


def run_task(task, config, out_dir, progress=True):
    """Train and evaluate one task into ``out_dir``; returns the report's entry for it."""
    from .loop import fit

    started = time.perf_counter()
    run_dir = os.path.join(out_dir, "runs", task.name)
    history = fit(task, config, run_dir, progress=progress)
    picture = task.draw(history.model, history.val_set, os.path.join(out_dir, f"{task.name}.png"))
    extra_dir = os.path.join(out_dir, f"{task.name}_figures")
    os.makedirs(extra_dir, exist_ok=True)
    extras = task.extra_figures(history.model, history.val_set, extra_dir) or {}
    if not os.listdir(extra_dir):
        os.rmdir(extra_dir)
    return {"name": task.name, "metrics": history.metrics, "steps": history.steps,
            "epochs": history.epochs, "picture": picture, "extra_figures": dict(extras),
            "run_dir": run_dir, "config": config.to_dict(),
            "seconds": time.perf_counter() - started}


def run_demo(task_names, out_dir, quick=False, progress=True, say=print):
    """Run ``task_names`` (their ``config(quick)``) and write the report to ``out_dir``.

    A task that cannot be loaded (``TaskUnavailableError``) is reported as skipped, not fatal.
    Returns ``(metrics, skipped)``: the metrics.json content and ``{task: reason}``.
    """
    from ..tasks import TaskUnavailableError, get_task

    os.makedirs(out_dir, exist_ok=True)
    started = time.perf_counter()
    results, skipped = [], {}
    for name in task_names:
        try:
            task = get_task(name)
        except TaskUnavailableError as exc:
            skipped[name] = str(exc)
            say(f"tinyvision demo: skipping {name}: {exc}")
            continue
        say(f"tinyvision demo: {name} ({'quick' if quick else 'full'} recipe)")
        results.append(run_task(task, task.config(quick=quick), out_dir, progress=progress))
    metrics = write_report(results, out_dir, total_seconds=time.perf_counter() - started,
                           skipped=skipped, quick=quick)
    return metrics, skipped


def write_report(results, out_dir, total_seconds=None, skipped=None, quick=False):
    """Write metrics.json, losses.png and index.html for ``results`` (entries of
    :func:`run_task`); returns the metrics.json content."""
    from ..viz.draw import plot_losses
    from ..viz.metrics import _figure_and_axes

    skipped = skipped or {}
    metrics = {r["name"]: r["metrics"] for r in results}
    seconds = {r["name"]: round(r["seconds"], 3) for r in results}
    seconds["total"] = round(total_seconds if total_seconds is not None else sum(seconds.values()), 3)
    metrics["seconds"] = seconds
    if skipped:
        metrics["skipped"] = dict(skipped)
    _write_json(os.path.join(out_dir, "metrics.json"), metrics)

    losses_png = None
    if results:
        fig, axes = _figure_and_axes(None, nrows=1, ncols=len(results), figsize=(5.0 * len(results), 3.8))
        for ax, r in zip(axes, results):
            plot_losses(r["steps"], ax=ax, title=f"{r['name']}: training loss")
        losses_png = os.path.join(out_dir, "losses.png")
        fig.savefig(losses_png, dpi=100)
    _write_html(results, out_dir, metrics, losses_png, skipped, quick)
    return metrics


def _metric_rows(values):
    rows = []
    for k, v in values.items():
        if isinstance(v, float):
            rows.append(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>")
    return "\n".join(rows)


def _write_html(results, out_dir, metrics, losses_png, skipped, quick):
    e = html.escape
    parts = [
        "<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
        "<title>tinyvision demo</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "img{max-width:100%;border:1px solid #ddd}table{border-collapse:collapse;margin:.5em 0}"
        "td{padding:2px 10px;border-bottom:1px solid #eee;font-family:monospace}"
        "figure{margin:1em 0}figcaption{color:#555;font-size:90%}</style>",
        "</head><body>",
        f"<h1>tinyvision demo{' (--quick)' if quick else ''}</h1>",
        "<p>Each task trained from scratch on the synthetic shapes data, then evaluated on "
        "held-out images. Numbers: <a href='metrics.json'>metrics.json</a>.</p>",
    ]
    sec = metrics["seconds"]
    parts.append("<p>Wall time: " + ", ".join(f"{e(k)} {v:.1f} s" for k, v in sec.items()) + "</p>")
    if losses_png:
        parts.append(f"<figure><img src='{_rel(losses_png, out_dir)}' alt='training losses'>"
                     "<figcaption>Training loss per optimizer step (faint: raw; solid: moving "
                     "average; dotted lines: epochs).</figcaption></figure>")
    for r in results:
        parts.append(f"<h2>{e(r['name'])}</h2>")
        parts.append(f"<table>{_metric_rows(r['metrics'])}</table>")
        parts.append(f"<p>{len(r['epochs'])} epochs, {len(r['steps'])} steps, {r['seconds']:.1f} s; "
                     f"run folder <a href='{_rel(r['run_dir'], out_dir)}/'>{e(_rel(r['run_dir'], out_dir))}</a>"
                     "</p>")
        if r.get("picture"):
            parts.append(f"<figure><img src='{_rel(r['picture'], out_dir)}' alt='{e(r['name'])} predictions'>"
                         "<figcaption>Held-out images: truth and prediction.</figcaption></figure>")
        for caption, path in r["extra_figures"].items():
            parts.append(f"<figure><img src='{_rel(path, out_dir)}' alt='{e(caption)}'>"
                         f"<figcaption>{e(caption)}</figcaption></figure>")
    for name, reason in skipped.items():
        parts.append(f"<h2>{e(name)}</h2><p>Skipped: {e(reason)}</p>")
    parts.append("</body></html>")
    with open(os.path.join(out_dir, "index.html"), "w") as f:
        f.write("\n".join(parts) + "\n")
