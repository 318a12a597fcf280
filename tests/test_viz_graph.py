"""draw_graph: the graph backward walks — one node per Function (name, output shape), one per
leaf that requires grad (parameter names), edges in data-flow order; DOT text and a PNG."""
import shutil

import numpy as np
import pytest

import tinyvision as tv
import tinyvision.functional as F
from tinyvision import nn
from tinyvision.autograd import _topological_order
from tinyvision.viz import draw_graph


def test_small_mlp_graph_nodes_edges_names():
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    x = tv.tensor(np.ones((5, 4), np.float32))            # no grad: not drawn
    loss = F.cross_entropy(m(x), np.array([0, 1, 0, 1, 1]))
    g = draw_graph(loss, params=m)
    leaves = [n for n in g.nodes if n.kind == "leaf"]
    funcs = [n for n in g.nodes if n.kind == "function"]
    assert sorted(n.label for n in leaves) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert len(funcs) == len(_topological_order(loss))     # exactly the Functions backward runs
    assert funcs[-1].label == "NLLLoss" and funcs[-1].shape == ()
    assert ("ReLU", (5, 3)) in [(n.label, n.shape) for n in funcs]
    # data-flow order: every edge goes from an earlier node to a later one
    index = {n.id: k for k, n in enumerate(g.nodes)}
    assert all(index[a] < index[b] for a, b in g.edges)
    # each parameter feeds exactly one op; every function but the first matmul's inputs is fed
    assert sum(1 for a, _ in g.edges if a in {n.id for n in leaves}) == 4
    assert g.dot.count("->") == len(g.edges) and g.dot.startswith("digraph autograd {")


def test_shared_input_gives_two_edges_and_leaf_graph():
    w = tv.tensor(np.ones(3), requires_grad=True)
    g = draw_graph((w * w).sum(), params={"w": w})
    assert [n.label for n in g.nodes] == ["w", "Mul", "Sum"]
    assert g.edges == [("t0", "f1"), ("t0", "f1"), ("f1", "f2")]
    single = draw_graph(w)
    assert [n.kind for n in single.nodes] == ["leaf"] and single.edges == []


def test_render_png(tmp_path):
    pytest.importorskip("matplotlib")
    w = tv.tensor(np.ones((2, 2)), requires_grad=True)
    g = draw_graph(F.sum(F.tanh(w @ w)), params={"w": w})
    out = g.render(tmp_path / "graph.png", engine="matplotlib")
    assert open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    if shutil.which("dot"):
        assert open(g.render(tmp_path / "graph.svg", engine="dot")).read().lstrip().startswith("<?xml")
    with pytest.raises(ValueError, match="png or .svg"):
        g.render(tmp_path / "graph.jpg")
