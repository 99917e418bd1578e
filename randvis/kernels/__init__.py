"""Compute kernels: the only package that imports numba.

Public functions validate nothing (the layers do) and take/return plain
ndarrays; ``reference`` holds naive loop versions of each, used as test oracle. Every
matrix product goes through :mod:`.gemm`, whose results do not depend on any
thread count.

Examples
--------
>>> import numpy as np
>>> from randvis import kernels as K
>>> x = np.random.default_rng(0).normal(size=(1, 2, 6, 6))
>>> w = np.random.default_rng(1).normal(size=(3, 2, 3, 3))
>>> y = K.conv2d_forward(x, w, None, (1, 1), K.resolve_padding("same", (6, 6), (3, 3), (1, 1)))
>>> y.shape
(1, 3, 6, 6)
"""
from ._numba import get_num_threads, set_num_threads, threading_layer
from .conv import (col2im, conv2d_backward_bias, conv2d_backward_input,
                   conv2d_backward_weight, conv2d_forward, im2col)
from .elementwise import clip_mask, relu_backward
from .padding import as_pair, output_hw, resolve_padding
from .pool import (avgpool2d_backward, avgpool2d_forward, maxpool2d_backward,
                   maxpool2d_forward)
from .conv import winograd_suits
from .gemm import dot, matmul, matmul_many, norm, one_blas_thread
from .winograd import filter_transform as winograd_filter_transform

__all__ = [
    "as_pair", "avgpool2d_backward", "avgpool2d_forward", "clip_mask",
    "col2im", "conv2d_backward_bias", "conv2d_backward_input", "conv2d_backward_weight",
    "conv2d_forward", "get_num_threads", "im2col", "maxpool2d_backward",
    "maxpool2d_forward", "output_hw", "relu_backward", "resolve_padding",
    "set_num_threads", "threading_layer", "winograd_filter_transform", "winograd_suits",
    "dot", "matmul", "matmul_many", "norm", "one_blas_thread",
]

from .depthwise import (depthwise_backward_bias, depthwise_backward_input,  # noqa: E402
                        depthwise_backward_weight, depthwise_forward)

__all__ += ["depthwise_backward_bias", "depthwise_backward_input", "depthwise_backward_weight",
            "depthwise_forward"]
