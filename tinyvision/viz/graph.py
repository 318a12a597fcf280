"""The autograd graph that ``backward`` will walk, drawn.

``draw_graph(loss)`` collects one node per :class:`~tinyvision.autograd.Function` reached from
``loss.grad_fn`` (its class name and output shape) and one per leaf tensor that requires grad (its
parameter name when ``params`` names it, else "leaf"), with edges in data-flow order: from each
input to the Function that consumes it. Tensors that do not require grad are not drawn — the
backward pass never visits them.

The result always has the DOT text (``graph.dot``); ``graph.render(path)`` writes a PNG or SVG
through Graphviz when the ``dot`` program is installed, otherwise a matplotlib layout (nodes in
columns by depth: leaves on the left, the output on the right).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import NamedTuple

__all__ = ["draw_graph", "AutogradGraph", "GraphNode"]


class GraphNode(NamedTuple):
    id: str            # "f3" (a Function) or "t5" (a leaf tensor)
    kind: str          # "function" | "leaf"
    label: str         # "Mul" / "conv1.weight"
    shape: tuple       # output shape of the Function, or the leaf's shape


class AutogradGraph:
    """Nodes (in topological order: a node after every node it reads), edges ``(src, dst)``
    in data-flow direction, the DOT text, and :meth:`render`."""

    def __init__(self, nodes, edges):
        self.nodes = nodes
        self.edges = edges

    @property
    def dot(self) -> str:
        lines = ["digraph autograd {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
        for n in self.nodes:
            shape = "x".join(str(s) for s in n.shape) or "scalar"
            if n.kind == "leaf":
                lines.append(f'  {n.id} [label="{n.label}\\n({shape})", shape=box, style=filled, fillcolor="#d9ead3"];')
            else:
                lines.append(f'  {n.id} [label="{n.label}\\n({shape})", shape=box, style="rounded,filled", '
                             'fillcolor="#dae8fc"];')
        lines += [f"  {a} -> {b};" for a, b in self.edges]
        lines.append("}")
        return "\n".join(lines) + "\n"

    def __repr__(self):
        n_f = sum(n.kind == "function" for n in self.nodes)
        return f"AutogradGraph({n_f} functions, {len(self.nodes) - n_f} leaves, {len(self.edges)} edges)"

    def render(self, path, engine: str | None = None) -> str:
        """Write the picture to ``path`` (.png or .svg). ``engine``: "dot" (Graphviz, needs the
        ``dot`` program), "matplotlib", or None (dot when available). Returns ``path``."""
        path = os.fspath(path)
        fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
        if fmt not in ("png", "svg"):
            raise ValueError(f"render: path must end in .png or .svg, got {path!r}")
        if engine not in (None, "dot", "matplotlib"):
            raise ValueError(f"render: engine must be 'dot', 'matplotlib' or None, got {engine!r}")
        dot = shutil.which("dot")
        if engine == "dot" and dot is None:
            raise RuntimeError("render: engine='dot' needs Graphviz's dot program on the PATH")
        if dot is not None and engine != "matplotlib":
            with tempfile.NamedTemporaryFile("w", suffix=".dot", delete=False) as f:
                f.write(self.dot)
            try:
                subprocess.run([dot, f"-T{fmt}", f.name, "-o", path], check=True, capture_output=True)
            finally:
                os.unlink(f.name)
            return path
        self.figure().savefig(path, dpi=130)
        return path

    def figure(self):
        """A matplotlib layout: each node in the column just before its first consumer's (the
        output rightmost, columns counted back along the longest path); rows in node order."""
        from matplotlib.figure import Figure
        from matplotlib.patches import FancyBboxPatch

        succs = {n.id: [] for n in self.nodes}
        for a, b in self.edges:
            succs[a].append(b)
        height = {}                               # longest path to the output
        for n in reversed(self.nodes):            # reverse topological order: consumers first
            height[n.id] = 1 + max((height[b] for b in succs[n.id]), default=-1)
        top = max(height.values(), default=0)
        depth = {k: top - h for k, h in height.items()}   # each node as late as it can run
        columns = {}
        for n in self.nodes:
            columns.setdefault(depth[n.id], []).append(n)
        n_cols = max(columns) + 1 if columns else 1
        n_rows = max((len(c) for c in columns.values()), default=1)
        fig = Figure(figsize=(max(4.0, 2.1 * n_cols), max(2.0, 0.9 * n_rows + 0.6)))
        ax = fig.add_axes([0, 0, 1, 1])
        ax.set_xlim(-0.6, n_cols - 0.4)
        ax.set_ylim(-0.7, n_rows - 0.3)
        ax.axis("off")
        pos = {}
        for col, members in columns.items():
            offset = (n_rows - len(members)) / 2
            for row, n in enumerate(members):
                pos[n.id] = (col, n_rows - 1 - (row + offset))
        for a, b in self.edges:
            (x0, y0), (x1, y1) = pos[a], pos[b]
            ax.annotate("", xy=(x1 - 0.42, y1), xytext=(x0 + 0.42, y0),
                        arrowprops=dict(arrowstyle="->", color="#555555", lw=1))
        for n in self.nodes:
            x, y = pos[n.id]
            color = "#d9ead3" if n.kind == "leaf" else "#dae8fc"
            ax.add_patch(FancyBboxPatch((x - 0.42, y - 0.28), 0.84, 0.56, boxstyle="round,pad=0.02",
                                        facecolor=color, edgecolor="#333333", lw=0.8))
            shape = "x".join(str(s) for s in n.shape) or "scalar"
            ax.text(x, y + 0.07, n.label, ha="center", va="center", fontsize=8, weight="bold")
            ax.text(x, y - 0.14, f"({shape})", ha="center", va="center", fontsize=7, color="#333333")
        return fig


def draw_graph(tensor, params=None) -> AutogradGraph:
    """The graph ``tensor.backward()`` would walk.

    Args:
        tensor: a Tensor produced by differentiable ops (``tensor.grad_fn`` not None), or a
            leaf (a one-node graph).
        params: optional names for leaves — a Module (its ``named_parameters()``), or an
            iterable of ``(name, tensor)`` pairs, or a dict ``name -> tensor``.

    >>> import numpy as np, tinyvision as tv
    >>> w = tv.tensor(np.ones(3), requires_grad=True)
    >>> g = draw_graph((w * w).sum(), params={"w": w})
    >>> [n.label for n in g.nodes], g.edges
    (['w', 'Mul', 'Sum'], [('t0', 'f1'), ('t0', 'f1'), ('f1', 'f2')])
    """
    names = {}
    if params is not None:
        items = params.named_parameters() if hasattr(params, "named_parameters") else (
            params.items() if hasattr(params, "items") else params)
        for name, t in items:
            names[id(t)] = name
    nodes, edges, ids = [], [], {}

    def leaf_id(t):
        key = ("t", id(t))
        if key not in ids:
            ids[key] = f"t{len(ids)}"
            nodes.append(GraphNode(ids[key], "leaf", names.get(id(t), "leaf"), tuple(t.shape)))
        return ids[key]

    if tensor.grad_fn is None:
        if tensor.requires_grad:
            leaf_id(tensor)
        return AutogradGraph(nodes, edges)

    # depth-first, emitting a Function after all of its inputs (data-flow order)
    order, seen = [], set()
    stack = [(tensor.grad_fn, False)]
    while stack:
        fn, done = stack.pop()
        if done:
            order.append(fn)
            continue
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        stack.append((fn, True))
        for t in reversed(fn.inputs):
            if t is not None and t.grad_fn is not None and id(t.grad_fn) not in seen:
                stack.append((t.grad_fn, False))
    for fn in order:
        for t in fn.inputs:                        # leaves first, so they are numbered before fn
            if t is not None and t.grad_fn is None and t.requires_grad:
                leaf_id(t)
        key = ("f", id(fn))
        ids[key] = f"f{len(ids)}"
        k = 0
        if fn is tensor.grad_fn:
            k = next((i for i, r in enumerate(fn.outputs) if r() is tensor), 0)
        shape = tuple(fn.output_meta[k][0]) if getattr(fn, "output_meta", None) else ()
        nodes.append(GraphNode(ids[key], "function", type(fn).__name__, shape))
        for t in fn.inputs:
            if t is None or not t.requires_grad:
                continue
            src = ids[("f", id(t.grad_fn))] if t.grad_fn is not None else ids[("t", id(t))]
            edges.append((src, ids[key]))
    return AutogradGraph(nodes, edges)
