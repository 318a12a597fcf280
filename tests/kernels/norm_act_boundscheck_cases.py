"""Bounds-check cases for the batch-norm and ReLU kernels (see boundscheck_runner.py).

Reference and fast kernels on odd shapes: one value per row (N, C) input, one channel, a
channel range cut into uneven chunks (the range kernels are called directly). float64 only.
"""
import numpy as np

from tinyvision.kernels.cpu import activation as A
from tinyvision.kernels.cpu import batch_norm as B


def _bn_case(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    w, b = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    gy = rng.standard_normal(shape)

    def run():
        y, mean, var_sum, mu, r = B.batch_norm_train_forward(x, w, b, 1e-5)
        out = [y, mean, var_sum]
        out += B.batch_norm_train_forward_reference(x, w, b, 1e-5)[:3]
        out.append(B.batch_norm_eval_forward(x, w, b, mu, r))
        out.append(B.batch_norm_eval_forward_reference(x, w, b, mu, r))
        for training in (True, False):
            out += B.batch_norm_backward(gy, x, w, mu, r, training)
            out += B.batch_norm_backward_reference(gy, x, w, mu, r, training)
        # The range kernels over uneven chunks [0, 1), [1, C) (what the chunked path runs).
        C = shape[1]
        y2 = np.empty_like(x)
        m2, v2, mu2, r2 = np.empty(C), np.empty(C), np.empty(C), np.empty(C)
        gx2, gw2, gb2, coef = np.empty_like(x), np.empty(C), np.empty(C), np.empty((C, 3))
        for c0, c1 in ((0, 1), (1, C)):
            B._train_forward_range(x, w, b, 1e-5, y2, m2, v2, mu2, r2, c0, c1)
            B._backward_range(gy, x, w, mu2, r2, True, gx2, gw2, gb2, coef, c0, c1)
        return tuple(out) + (y2, gx2, gw2, gb2)

    return run


def _relu_case(size, seed):
    rng = np.random.default_rng(seed)
    x, gy = rng.standard_normal(size), rng.standard_normal(size)

    def run():
        y = A.relu_forward(x)
        y2, gx2 = np.empty_like(x), np.empty_like(x)
        for i0, i1 in ((0, size // 3), (size // 3, size)):
            A._relu_forward_range(x, y2, i0, i1)
            A._relu_backward_range(gy, y2, gx2, i0, i1)
        return (y, A.relu_forward_reference(x), A.relu_backward(gy, y), A.relu_backward_reference(gy, y), y2, gx2)

    return run


def boundscheck_cases():
    return [("batch_norm (5, 3, 1)", _bn_case((5, 3, 1), 0)), ("batch_norm (2, 4, 7)", _bn_case((2, 4, 7), 1)),
            ("relu 13", _relu_case(13, 2))]
