"""randvis: saliency maps, DeconvNet and Guided Backpropagation by hand-written
forward/backward passes, and the theory of why they look the way they do
(Nie, Zhang & Patel, ICML 2018).

Examples
--------
>>> import numpy as np, randvis
>>> net = randvis.three_layer_cnn(16, input_shape=(3, 32, 32), rng=0)
>>> maps = randvis.visualize(net, np.random.default_rng(0).random((1, 3, 32, 32)))
>>> sorted(maps)
['deconvnet', 'gbp', 'saliency']
"""
from .layers import (AvgPool2d, Conv2d, Dense, DepthwiseConv2d, Flatten, GlobalAvgPool2d,
                     MaxPool2d, ReLU, ReLU6, Residual, StreamedDense)
from .methods import METHODS, make_seed, visualize
from .models import fcn, random_cnn, three_layer_cnn, vgg16
from .network import Sequential
from .rules import DECONVNET, GBP, SALIENCY, Rule, get_rule

__version__ = "0.1.0"

__all__ = [
    "AvgPool2d", "Conv2d", "DECONVNET", "Dense", "DepthwiseConv2d", "Flatten", "GlobalAvgPool2d",
    "Residual", "GBP", "METHODS", "MaxPool2d",
    "ReLU", "ReLU6", "Rule", "SALIENCY", "Sequential", "StreamedDense", "fcn", "get_rule",
    "make_seed", "random_cnn", "three_layer_cnn", "vgg16", "visualize",
]
