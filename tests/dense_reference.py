"""An independent dense-matrix model of a randvis network, for tests.

Every linear layer becomes an explicit matrix built from its definition (not
from the kernels), every ReLU a mask, and the three rules are applied by the
paper's formula T = h(R) * dg(y)/dy. Only for tiny networks.
"""
import numpy as np

from randvis.layers import AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d, ReLU, ReLU6, StreamedDense


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


def conv_matrix(weight, in_shape, stride, pads):
    f, c, kh, kw = weight.shape
    _, h, w = in_shape
    t, b, l, r = pads
    ho = (h + t + b - kh) // stride[0] + 1
    wo = (w + l + r - kw) // stride[1] + 1
    m = np.zeros((f * ho * wo, c * h * w))
    for fi in range(f):
        for i in range(ho):
            for j in range(wo):
                row = (fi * ho + i) * wo + j
                for ci in range(c):
                    for u in range(kh):
                        for v in range(kw):
                            ih, iw = i * stride[0] - t + u, j * stride[1] - l + v
                            if 0 <= ih < h and 0 <= iw < w:
                                m[row, (ci * h + ih) * w + iw] += weight[fi, ci, u, v]
    return m, (f, ho, wo)


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


def dense_maps(net, x, seed, rules):
    """Maps of each rule for one sample x (c, h, w) and seed (k,), float64."""
    steps = []  # ("lin", M, b) or ("relu", mask)
    v = np.asarray(x, dtype=np.float64).ravel()
    shape = tuple(x.shape)
    for layer in net.layers:
        if isinstance(layer, Conv2d):
            k = layer.weight.shape[2:]
            pads = pads_of(layer.padding, shape[1:], k, layer.stride)
            m, shape = conv_matrix(layer.weight.astype(np.float64), shape, layer.stride, pads)
            b = 0 if layer.bias is None else np.repeat(layer.bias.astype(np.float64), shape[1] * shape[2])
            steps.append(("lin", m))
            v = m @ v + b
        elif isinstance(layer, (Dense, StreamedDense)):
            w = layer.weight if isinstance(layer, Dense) else layer.rows(0, layer.out_features)
            m = w.astype(np.float64)
            steps.append(("lin", m))
            v = m @ v + (0 if layer.bias is None else layer.bias)
            shape = (m.shape[0],)
        elif isinstance(layer, ReLU):
            mask = v > 0
            steps.append(("relu", mask))
            v = v * mask
        elif isinstance(layer, ReLU6):
            mask = (v > 0) & (v < 6)
            steps.append(("relu", mask))
            v = np.clip(v, 0, 6)
        elif isinstance(layer, (MaxPool2d, AvgPool2d)):
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
            shape = (shape[0], (shape[1] + t + b - layer.size[0]) // layer.stride[0] + 1,
                     (shape[2] + l + r - layer.size[1]) // layer.stride[1] + 1)
            steps.append(("lin", m))
            v = m @ v
        elif isinstance(layer, Flatten):
            shape = (v.size,)
        else:
            raise TypeError(type(layer))
    maps = {}
    for rule in rules:
        r = np.asarray(seed, dtype=np.float64)
        for kind, a in reversed(steps):
            r = a.T @ r if kind == "lin" else rule_formula(rule.name, r, a)
        maps[rule.name] = r.reshape(x.shape)
    return v, maps
