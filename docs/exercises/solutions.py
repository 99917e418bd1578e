"""Solutions of the three exercises of the documentation, written from the maths
with numpy only. ``python docs/exercises/solutions.py`` checks each one."""
import numpy as np


# Exercise 1: the backward signal at one ReLU, T = h(r) * g'(y)
def relu_backward(r, y, rule):
    t = np.maximum(r, 0.0) if rule in ("deconvnet", "gbp") else r.copy()   # h
    if rule in ("saliency", "gbp"):
        t = t * (y > 0)                                                    # g' = forward mask
    return t


# Exercise 2: max-pooling's backward pass, through the switches
def maxpool_backward(g, x, size, stride):
    dx = np.zeros_like(x)
    n, c, ho, wo = g.shape
    for b, ch, i, j in np.ndindex(n, c, ho, wo):
        window = x[b, ch, i * stride:i * stride + size, j * stride:j * stride + size]
        u, v = divmod(int(np.argmax(window)), size)    # first maximum in row-major order
        dx[b, ch, i * stride + u, j * stride + v] += g[b, ch, i, j]   # add: windows may overlap
    return dx


# Exercise 3: the expected GBP map, N s_v s_w / (2 pi) sum_j place_j(x_j / |x_j|)
def gbp_expected_map(x, kernel_size, n, w_std, v_std):
    c, h, w = x.shape
    r = kernel_size // 2
    xp = np.pad(x, ((0, 0), (r, r), (r, r)))
    out = np.zeros_like(xp)
    for i in range(h):
        for j in range(w):
            patch = xp[:, i:i + kernel_size, j:j + kernel_size]
            norm = np.sqrt((patch ** 2).sum())
            if norm > 0:                                # a zero patch adds nothing
                out[:, i:i + kernel_size, j:j + kernel_size] += patch / norm
    return n * v_std * w_std / (2 * np.pi) * out[:, r:r + h, r:r + w]


if __name__ == "__main__":
    from randvis.exercises import check_gbp_expected_map, check_maxpool_backward, check_relu_rule

    for rule in ("saliency", "deconvnet", "gbp"):
        print(check_relu_rule(lambda r, y: relu_backward(r, y, rule), rule))
    print(check_maxpool_backward(maxpool_backward))
    print(check_gbp_expected_map(gbp_expected_map))
