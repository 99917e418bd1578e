"""An independent dense-matrix model of a randvis network, for tests.

Every linear layer (convolution, depthwise convolution, dense, max and average
pooling, global average pooling) becomes an explicit matrix built from its
definition (not from the kernels), every ReLU and ReLU6 a mask, a residual
block its body's steps plus the identity, and the three rules are applied by
the paper's formula T = h(R) * dg(y)/dy. Only for tiny networks.
"""
import numpy as np

from randvis.layers import (AvgPool2d, Conv2d, Dense, DepthwiseConv2d, Flatten, GlobalAvgPool2d,
                            MaxPool2d, ReLU, ReLU6, Residual, StreamedDense)


def same_pads(n, k, s):
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def pads_of(padding, hw, k, s):
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        return same_pads(hw[0], k[0], s[0]) + same_pads(hw[1], k[1], s[1])
    if isinstance(padding, int):
        return (padding,) * 4
    if isinstance(padding[0], int):
        return (padding[0], padding[0], padding[1], padding[1])
    return tuple(padding[0]) + tuple(padding[1])


def windows(in_shape, k, s, pads):
    """Yield (out_index, list of in-image flat indices in row-major window order)."""
    c, h, w = in_shape
    t, b, l, r = pads
    ho = (h + t + b - k[0]) // s[0] + 1
    wo = (w + l + r - k[1]) // s[1] + 1
    for ci in range(c):
        for i in range(ho):
            for j in range(wo):
                idx = [ci * h * w + (i * s[0] - t + u) * w + (j * s[1] - l + v)
                       for u in range(k[0]) for v in range(k[1])
                       if 0 <= i * s[0] - t + u < h and 0 <= j * s[1] - l + v < w]
                yield (ci * ho + i) * wo + j, idx
    return


def conv_matrix(weight, in_shape, stride, pads, depthwise=False):
    """The convolution as a (out elements, in elements) matrix: filter ``f`` reads
    every input channel, or (``depthwise``, weight ``(c, 1, kh, kw)``) only channel
    ``f``; taps outside the padded image read zeros."""
    f, c, kh, kw = weight.shape
    _, h, w = in_shape
    t, b, l, r = pads
    ho = (h + t + b - kh) // stride[0] + 1
    wo = (w + l + r - kw) // stride[1] + 1
    m = np.zeros((f * ho * wo, in_shape[0] * h * w))
    for fi in range(f):
        taps = [(fi, 0)] if depthwise else [(ci, ci) for ci in range(c)]
        for i in range(ho):
            for j in range(wo):
                row = (fi * ho + i) * wo + j
                for ci, wi in taps:
                    for u in range(kh):
                        for v in range(kw):
                            ih, iw = i * stride[0] - t + u, j * stride[1] - l + v
                            if 0 <= ih < h and 0 <= iw < w:
                                m[row, (ci * h + ih) * w + iw] += weight[fi, wi, u, v]
    return m, (f, ho, wo)


def pool_matrix(layer, v, shape):
    """Max pooling (a 1 at each window's first largest input: the forward's
    switches) or average pooling (1 / window size) as a matrix."""
    pads = pads_of(layer.padding, shape[1:], layer.size, layer.stride)
    outs = list(windows(shape, layer.size, layer.stride, pads))
    m = np.zeros((len(outs), v.size))
    for o, idx in outs:
        if isinstance(layer, MaxPool2d):
            best = idx[0]
            for q in idx[1:]:
                if v[q] > v[best]:
                    best = q
            m[o, best] = 1
        else:
            m[o, idx] = 1 / len(idx)
    t, b, l, r = pads
    return m, (shape[0], (shape[1] + t + b - layer.size[0]) // layer.stride[0] + 1,
               (shape[2] + l + r - layer.size[1]) // layer.stride[1] + 1)


def rule_formula(name, r, mask):
    """The paper's backward ReLU formulas, written out here rather than taken from
    randvis.rules: R * mask (saliency), max(R, 0) (DeconvNet), max(R, 0) * mask
    (GBP), with mask the forward activation mask (y > 0, or 0 < y < 6 for ReLU6)."""
    if name == "saliency":
        return r * mask
    if name == "deconvnet":
        return np.maximum(r, 0)
    if name == "gbp":
        return np.maximum(r, 0) * mask
    raise ValueError(name)


def dense_steps(layers, v, shape):
    """Forward through ``layers`` as explicit matrices and masks, for one flat
    float64 sample ``v`` of ``shape``: (steps, output, output shape) with steps
    ("lin", M), ("mask", mask) or ("res", substeps of a residual body)."""
    steps = []
    for layer in layers:
        if isinstance(layer, (Conv2d, DepthwiseConv2d)):
            pads = pads_of(layer.padding, shape[1:], layer.weight.shape[2:], layer.stride)
            m, shape = conv_matrix(layer.weight.astype(np.float64), shape, layer.stride, pads,
                                   depthwise=isinstance(layer, DepthwiseConv2d))
            bias = 0 if layer.bias is None else np.repeat(layer.bias.astype(np.float64), shape[1] * shape[2])
            steps.append(("lin", m))
            v = m @ v + bias
        elif isinstance(layer, (Dense, StreamedDense)):
            w = layer.weight if isinstance(layer, Dense) else layer.rows(0, layer.out_features)
            m = w.astype(np.float64)
            steps.append(("lin", m))
            v = m @ v + (0 if layer.bias is None else layer.bias)
            shape = (m.shape[0],)
        elif isinstance(layer, ReLU6):
            steps.append(("mask", (v > 0) & (v < 6)))
            v = np.clip(v, 0, 6)
        elif isinstance(layer, ReLU):
            steps.append(("mask", v > 0))
            v = np.maximum(v, 0)
        elif isinstance(layer, (MaxPool2d, AvgPool2d)):
            m, shape = pool_matrix(layer, v, shape)
            steps.append(("lin", m))
            v = m @ v
        elif isinstance(layer, GlobalAvgPool2d):
            c, h, w = shape
            m = np.kron(np.eye(c), np.full((1, h * w), 1.0 / (h * w)))
            steps.append(("lin", m))
            v = m @ v
            shape = (c,)
        elif isinstance(layer, Residual):
            sub, vb, shape_b = dense_steps(layer.body, v, shape)
            assert shape_b == shape
            steps.append(("res", sub))
            v = v + vb
        elif isinstance(layer, Flatten):
            shape = (v.size,)
        else:
            raise TypeError(type(layer))
    return steps, v, shape


def dense_backward(steps, r, name):
    """Rule ``name`` backward through ``steps``: transposed matrices, the rule's
    formula at every mask, and ``r + body(r)`` through a residual block."""
    for kind, a in reversed(steps):
        if kind == "lin":
            r = a.T @ r
        elif kind == "mask":
            r = rule_formula(name, r, a)
        else:  # y = x + body(x): the identity branch plus the body's rule backward
            r = r + dense_backward(a, r, name)
    return r


def dense_maps(net, x, seed, rules):
    """(logits, {rule name: map}) for one sample x (c, h, w) and seed (k,), float64."""
    steps, logits, _ = dense_steps(net.layers, np.asarray(x, dtype=np.float64).ravel(), tuple(x.shape))
    seed = np.asarray(seed, dtype=np.float64)
    return logits, {rule.name: dense_backward(steps, seed, rule.name).reshape(x.shape) for rule in rules}
