"""
Max-pooling makes DeconvNet image-like
======================================

Without pooling, DeconvNet's map of the random three-layer CNN is
``sum relu(V) place(w)``: no forward mask, so **no trace of the image** (see
:ref:`sphx_glr_auto_examples_plot_03_three_rules.py`). Yet DeconvNet maps of real
networks look like the image. The paper's explanation: max-pooling. Its
backward pass routes each signal to the window's winner, a position that the
*forward pass on this image* chose. The switches carry the image into the
backward pass even though DeconvNet ignores the ReLU masks, and the winners sit
where the filter responded most: DeconvNet starts to behave like GBP.

Average pooling has no switches (its backward is linear and the same for every
image), so with it DeconvNet stays blind to the image. We check both.
"""

import matplotlib.pyplot as plt
import numpy as np

import randvis
from randvis.images import normalize_map, sample_image, to_hwc
from randvis.stats import pearson

img = sample_image("grace_hopper", size=64)
x = (img - img.mean(axis=(1, 2), keepdims=True))[None].astype(np.float64)
noise = np.random.default_rng(9).normal(size=x.shape)
N, draws = 64, 3


def deconv_maps(pool, pool_type, seed, inp):
    net = randvis.three_layer_cnn(N, kernel_size=7, pool=pool, pool_type=pool_type, n_classes=1,
                                  input_shape=(3, 64, 64), dtype=np.float64, rng=seed)
    return randvis.visualize(net, inp, target=0)


rows = {}
for label, pool, kind in (("no pooling", None, "max"), ("2x2 average pooling", 2, "avg"),
                          ("2x2 max-pooling", 2, "max"), ("4x4 max-pooling", 4, "max")):
    corr, same = [], []
    for seed in range(draws):
        m = deconv_maps(pool, kind, seed, x)
        other = deconv_maps(pool, kind, seed, noise)
        # channel-centred: DeconvNet's positive per-channel offset is not image structure
        corr.append(pearson(m["deconvnet"][0], x[0], center="channel"))
        same.append(np.array_equal(m["deconvnet"], other["deconvnet"]))
    rows[label] = (np.mean(corr), np.std(corr, ddof=1) / np.sqrt(draws), all(same), m)
    print(f"{label:22s} DeconvNet corr. with input {rows[label][0]:6.3f} +- {rows[label][1]:.3f}"
          f"   same map for another input: {all(same)}")

# %%
# Without switches the map is exactly the same for the photo and for noise;
# with max-pooling it is not, and it correlates with the photo, the more so
# the larger the windows (more of the backward pass is decided by the image).
# The bounds are many standard errors (over the weight draws, printed above)
# away from the measured means.

assert rows["no pooling"][2] and rows["2x2 average pooling"][2]
assert not rows["2x2 max-pooling"][2]
assert abs(rows["no pooling"][0]) < 0.1
assert rows["2x2 max-pooling"][0] > 0.15
assert rows["4x4 max-pooling"][0] - 4 * rows["4x4 max-pooling"][1] > rows["2x2 max-pooling"][0]

fig, axes = plt.subplots(1, 5, figsize=(13, 3))
axes[0].imshow(img.transpose(1, 2, 0))
axes[0].set_title("input")
for ax, (label, (c, _, _, m)) in zip(axes[1:], rows.items()):
    ax.imshow(to_hwc(normalize_map(m["deconvnet"][0])))
    ax.set_title(f"DeconvNet, {label}\ncorr {c:.2f}", fontsize=9)
for ax in axes:
    ax.axis("off")
fig.tight_layout()
plt.show()
