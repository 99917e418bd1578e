"""The ``randvis`` command line.

    randvis visualize [IMAGE] --model cnn3|fcn|vgg16 [--filters N] [--seed S] --out maps.png
    randvis theory [IMAGE] [--size 64] [--cnn-ns ...] [--fcn-ns ...] [--seeds 3] [--quick]

Errors are reported as one line on stderr (exit status 2), never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

_T0 = time.perf_counter()

MODELS = ("cnn3", "fcn", "vgg16", "efficientnet-lite0")


class CLIError(Exception):
    """A user-facing error: printed as one line."""


def _parser():
    p = argparse.ArgumentParser(prog="randvis", description=(
        "Saliency maps, DeconvNet and Guided Backpropagation with hand-written "
        "forward/backward passes, for random networks and VGG-16."))
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    v = sub.add_parser("visualize", help="draw input, saliency, DeconvNet and GBP side by side",
                       description="Compute the three maps of one image and write a labelled panel.")
    v.add_argument("image", nargs="?", default=None,
                   help="PNG/JPEG file (default: the built-in grace_hopper sample)")
    v.add_argument("--model", choices=MODELS, default="cnn3",
                   help="random three-layer CNN, random fully connected net, VGG-16 (random or --weights), "
                        "or the ImageNet-trained EfficientNet-Lite0 (default cnn3)")
    v.add_argument("--filters", type=int, default=64, help="cnn3: number of filters N (default 64)")
    v.add_argument("--kernel-size", type=int, default=7, help="cnn3: filter size (default 7)")
    v.add_argument("--pool", type=int, default=None, help="cnn3: max-pooling window (default none)")
    v.add_argument("--hidden", type=int, default=1000, help="fcn: hidden units (default 1000)")
    v.add_argument("--classes", type=int, default=None,
                   help="number of logits (default 10 for cnn3/fcn, 1000 for vgg16)")
    v.add_argument("--init", choices=("gaussian", "he", "paper"), default=None,
                   help="random initialisation (default gaussian; he for vgg16)")
    v.add_argument("--size", type=int, default=224, help="image side after resize/crop (default 224)")
    v.add_argument("--target", default="max", help="'max', 'random' or a class index (default max)")
    v.add_argument("--seed", type=int, default=0, help="random seed for the weights (default 0)")
    v.add_argument("--normalize", choices=("minmax", "signed", "abs"), default="minmax",
                   help="display normalisation of the maps (default minmax, as the paper)")
    v.add_argument("--weights", metavar="FILE", default=None,
                   help="vgg16: trained weights (randvis/paper npz, PyTorch .pth, Keras .h5)")
    v.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    v.add_argument("--out", default="maps.png", help="output PNG (default maps.png)")
    v.add_argument("--save-maps", default=None, metavar="NPZ", help="also write the raw maps to an .npz")
    t = sub.add_parser("theory", help="Monte Carlo check of the closed forms over N and seeds",
                       description="Simulate random CNNs and FCNs over a range of widths N and compare "
                                   "GBP's relative error, its correlation with the input and the "
                                   "normality of saliency/DeconvNet maps with randvis.theory.")
    t.add_argument("image", nargs="?", default=None, help="PNG/JPEG (default: built-in sample)")
    t.add_argument("--size", type=int, default=64, help="image side (default 64)")
    t.add_argument("--cnn-ns", default="4,16,64,256,1024,4096", help="CNN filter counts (comma list)")
    t.add_argument("--fcn-ns", default="16,256,4096,70000", help="FCN hidden sizes (comma list)")
    t.add_argument("--seeds", type=int, default=3, help="networks per N (default 3)")
    t.add_argument("--kernel-size", type=int, default=7)
    t.add_argument("--fcn-sampler", choices=("auto", "network", "exact"), default="auto",
                   help="FCN maps from the network or the exact O(N + d) sampler (default auto)")
    t.add_argument("--quick", action="store_true", help="small sweep: N up to 256, 2 seeds, 32x32")
    t.add_argument("--out", default="theory_sweep", help="output prefix: PREFIX.json/.txt/.png")
    c = sub.add_parser("convert", help="convert VGG-16 weights to randvis's npz (no torch needed)",
                       description="Convert a PyTorch VGG-16 state_dict (.pth, legacy or zip), the "
                                   "paper's vgg16_weights.npz or Keras VGG-16 .h5 weights into randvis's "
                                   "npz layout; prints the layer-by-layer mapping.")
    c.add_argument("src")
    c.add_argument("dst")
    c.add_argument("--format", choices=("randvis", "paper", "torch", "keras"), default=None,
                   help="source format (default: detected)")
    c.add_argument("--float64", action="store_true", help="store float64 (default float32)")
    r = sub.add_parser("reproduce", help="regenerate the paper's experiments: figures and claims",
                       description="Run every experiment of the paper offline and write OUT/NAME.png, "
                                   "OUT/results.json and OUT/README.md (claim -> figure -> number -> holds). "
                                   "Checkpointed: re-running after an interruption resumes.")
    r.add_argument("--quick", action="store_true", help="small images and sweeps (one to two minutes on 2 cores)")
    r.add_argument("--only", nargs="+", metavar="NAME", help="run only these experiments")
    r.add_argument("--images", metavar="DIR", help="use the images in DIR instead of the built-in samples")
    r.add_argument("--vgg-weights", metavar="FILE", help="trained VGG-16 weights (.npz, .pth or .h5: any format randvis convert reads)")
    r.add_argument("--out", default="figures", help="output folder (default figures/)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--jobs", type=int, default=1, help="experiments run in J processes (default 1)")
    return p


def cmd_convert(args):
    import numpy as np

    from .weights import convert

    report = convert(args.src, args.dst, format=args.format,
                     dtype=np.float64 if args.float64 else np.float32)
    print(report)
    return 0


def cmd_reproduce(args):
    from .reproduce import reproduce

    t = time.perf_counter()
    reproduce(out=args.out, only=args.only, quick=args.quick, image_dir=args.images,
              vgg_weights=args.vgg_weights, seed=args.seed, jobs=args.jobs,
              log=lambda msg: print(msg, file=sys.stderr))
    print(f"randvis: wrote {args.out}/README.md, results.json and figures in "
          f"{time.perf_counter() - t:.0f} s", file=sys.stderr)
    return 0


def _ints(text, flag):
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CLIError(f"{flag} must be a comma-separated list of integers, got {text!r}") from None
    if any(v < 1 for v in vals):
        raise CLIError(f"{flag}: every N must be >= 1")
    return vals


def cmd_theory(args):
    import numpy as np

    from . import images
    from ._io import atomic_write
    from .montecarlo import plot_sweep, theory_sweep

    if args.quick:
        args.size, args.seeds = 32, 2
        cnn_ns, fcn_ns = [4, 16, 64, 256], [16, 256, 4096]
    else:
        cnn_ns, fcn_ns = _ints(args.cnn_ns, "--cnn-ns"), _ints(args.fcn_ns, "--fcn-ns")
    if args.size < 1:
        raise CLIError(f"--size must be >= 1, got {args.size}")
    if args.image is None:
        img, name = images.sample_image("grace_hopper", size=args.size), "grace_hopper"
    else:
        img, name = images.load_image(args.image, size=args.size), os.path.basename(args.image)
    x = images.preprocess(img)[0].astype(np.float64)
    res = theory_sweep(x, cnn_ns, fcn_ns, seeds=args.seeds, kernel_size=args.kernel_size,
                       fcn_sampler=args.fcn_sampler, checkpoint=args.out + ".checkpoint.json",
                       image_name=f"{name} {args.size}x{args.size}")
    atomic_write(args.out + ".json", lambda tmp: open(tmp, "w").write(res.to_json()))
    table = res.table()
    atomic_write(args.out + ".txt", lambda tmp: open(tmp, "w").write(table + "\n"))
    fig = plot_sweep(res)
    atomic_write(args.out + ".png", lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    os.unlink(args.out + ".checkpoint.json")
    print(table)
    print(f"wrote {args.out}.json, {args.out}.txt, {args.out}.png")
    return 0


def _target(text):
    if text in ("max", "random"):
        return text
    try:
        return int(text)
    except ValueError:
        raise CLIError(f"--target must be 'max', 'random' or a class index, got {text!r}") from None


def _build(args, shape, np):
    from . import models

    if args.model == "cnn3":
        return models.three_layer_cnn(args.filters, kernel_size=args.kernel_size, pool=args.pool,
                                      n_classes=args.classes or 10, input_shape=shape,
                                      init=args.init or "gaussian", dtype=args.dtype, rng=args.seed)
    if args.model == "fcn":
        return models.fcn(args.hidden, n_classes=args.classes or 10, input_shape=shape,
                          init=args.init or "gaussian", dtype=args.dtype, rng=args.seed)
    if args.model == "efficientnet-lite0":
        from .efficientnet import efficientnet_lite0

        return efficientnet_lite0("pretrained", dtype=args.dtype, input_shape=shape)
    return models.vgg16(n_classes=args.classes or 1000, input_shape=shape, init=args.init or "he",
                        dtype=args.dtype, rng=args.seed, weights=args.weights)


def _title(args):
    if args.model == "cnn3":
        return f"random 3-layer CNN, N={args.filters}, {args.kernel_size}x{args.kernel_size} filters"
    if args.model == "fcn":
        return f"random fully connected net, N={args.hidden}"
    if args.model == "efficientnet-lite0":
        return "EfficientNet-Lite0 (ImageNet-trained)"
    return "VGG-16 (" + (os.path.basename(args.weights) if args.weights else "random") + ")"


def cmd_visualize(args):
    import numpy as np

    from . import images
    from .methods import visualize
    from .plotting import save_panel

    if args.size < 1:
        raise CLIError(f"--size must be >= 1, got {args.size}")
    trained = args.model == "efficientnet-lite0"
    if args.image is None:
        img, label = images.sample_image("grace_hopper", size=None if trained else args.size), "grace_hopper (built-in)"
    else:
        img, label = images.load_image(args.image, size=None if trained else args.size), os.path.basename(args.image)
    if trained:
        from .efficientnet import MEAN_RGB, STDDEV_RGB, preprocess_efficientnet

        x = preprocess_efficientnet(img, size=args.size)
        img = np.clip((x[0] * STDDEV_RGB + MEAN_RGB) / 255.0, 0, 1)  # what the network sees
    else:
        x = images.preprocess(img)
    net = _build(args, x.shape[1:], np)
    print(f"randvis: ready in {time.perf_counter() - _T0:.2f} s; computing {_title(args)} "
          f"on {label} ...", file=sys.stderr)
    t = time.perf_counter()
    maps, info = visualize(net, x, target=_target(args.target), rng=args.seed, return_info=True)
    print(f"randvis: maps in {time.perf_counter() - t:.2f} s (target class {info['classes'][0]})",
          file=sys.stderr)
    title = f"{_title(args)} - target class {info['classes'][0]}"
    if trained or (args.model == "vgg16" and args.weights and net.n_classes == 1000):
        from .efficientnet import top_k

        top = top_k(info["logits"][0], k=5)
        for idx, name, p in top:
            print(f"  {p:6.3f}  {name} ({idx})")
        title = f"{_title(args)}\ntop-5: " + ", ".join(f"{name} {p:.2f}" for _, name, p in top)
    save_panel(args.out, img, {k: v[0] for k, v in maps.items()}, title=title, normalize=args.normalize)
    if args.save_maps:
        from ._io import atomic_savez
        atomic_savez(args.save_maps, {k: v[0] for k, v in maps.items()})
    print(args.out)
    return 0


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        commands = {"visualize": cmd_visualize, "theory": cmd_theory, "reproduce": cmd_reproduce,
                    "convert": cmd_convert}
        return commands[args.command](args)
    except KeyboardInterrupt:
        print("randvis: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, TypeError, OSError, KeyError, ImportError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"randvis: error: {msg}", file=sys.stderr)
        return 2
