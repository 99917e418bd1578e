"""The ``randvis`` command line.

::

    randvis visualize [IMAGE ...] [--model cnn3|fcn|vgg16|efficientnet-lite0] [--target T ... | --top-k K]
                      [--display rgb|heatmap|blend|mask] [--clip P] ... (--out maps.png | --out-dir DIR)
    randvis theory [IMAGE] [--size 64] [--cnn-ns ...] [--fcn-ns ...] [--seeds 10] [--seed 0] [--quick]
    randvis reproduce [--quick] [--out figures] [--stamp-readme [PATH]] ...
    randvis corpus IMAGES... --model M [--out corpus] [--scheduler ADDRESS|local] | --summarize
    randvis convert SRC DST.npz

Errors are reported as one line on stderr starting ``randvis: error:`` (exit
status 2), never a traceback: bad options, unreadable files, outputs that
would replace an input, and jobs larger than a limit of :mod:`randvis.limits`
(estimated from the shapes before anything is built; ``--max-memory``,
``--max-streamed-weights`` and ``--max-image-pixels`` raise the limits).

``randvis --debug ...`` prints the traceback behind an error before its line;
``RANDVIS_TRACEBACK=1 randvis ...`` lets an unexpected error's traceback through.

Examples
--------
>>> main(["visualize", "--model", "cnn3", "--classes", "0"])   # one line on stderr, exit status 2
2
"""
from __future__ import annotations

import argparse
import decimal
import os
import stat
import sys
import time

_T0 = time.perf_counter()

#: a job streaming more random weights than this, or needing more memory, is announced first
ANNOUNCE_WEIGHTS = 10 ** 9
ANNOUNCE_BYTES = 1 << 30
#: limit name -> the option that sets it
LIMIT_OPTIONS = {"memory": "--max-memory", "streamed_weights": "--max-streamed-weights",
                 "image_pixels": "--max-image-pixels"}


class CLIError(Exception):
    """A user-facing error: printed as one line."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``randvis: error: ...``)."""

    def error(self, message):
        raise CLIError(f"{message} (see {self.prog} --help)")


def _integer(low, what=None):
    """An argparse type: an integer >= ``low``; "1e9" and "1_000" are accepted
    when they are whole numbers."""
    def parse(text):
        try:
            d = decimal.Decimal(text.strip().replace("_", ""))
        except (decimal.InvalidOperation, ValueError):
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if not d.is_finite() or d != d.to_integral_value():
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}")
        v = int(d)
        if v < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {text!r}")
        return v
    parse.__name__ = what or f"integer >= {low}"
    return parse


def _size(text):
    from .limits import parse_bytes

    try:
        return parse_bytes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _limit_options(memory_only=False):
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the traceback behind an error")
    g = p.add_argument_group("limits (see randvis.limits)")
    g.add_argument("--max-memory", type=_size, metavar="SIZE", default=None,
                   help="refuse jobs estimated to need more memory (default 8G or $RANDVIS_MAX_MEMORY)")
    if memory_only:
        return p
    g.add_argument("--max-streamed-weights", type=_integer(1), metavar="N", default=None,
                   help="refuse random layers streaming more weights per pass (default 5e10 or "
                        "$RANDVIS_MAX_STREAMED_WEIGHTS)")
    g.add_argument("--max-image-pixels", type=_integer(1), metavar="N", default=None,
                   help="refuse larger images and --size (default 50,000,000 or $RANDVIS_MAX_IMAGE_PIXELS)")
    return p


def _version():
    """The installed distribution's version (setup.cfg), else the package's."""
    from importlib import metadata

    try:
        return metadata.version("randvis")
    except metadata.PackageNotFoundError:
        from . import __version__
        return __version__


class _OnlyHelp(argparse.HelpFormatter):
    """Lists the experiments in --only's help, imported only when the help is shown."""

    def _get_help_string(self, action):
        if action.dest == "only":
            from .experiments import EXPERIMENTS
            return f"{action.help}: {', '.join(EXPERIMENTS)}"
        return action.help


def _parser():
    lim = _limit_options()
    positive, nonneg = _integer(1), _integer(0)
    p = _Parser(prog="randvis", description=(
        "Saliency maps, DeconvNet and Guided Backpropagation with hand-written "
        "forward/backward passes, for random networks and VGG-16."))
    p.add_argument("--version", action="version", version=f"randvis {_version()}")
    p.add_argument("--debug", action="store_true",
                   help="show the traceback behind an error (as RANDVIS_TRACEBACK=1 does)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    from .visualize_cli import add_parser as add_visualize

    add_visualize(sub, [lim])
    t = sub.add_parser("theory", parents=[lim], help="Monte Carlo check of the closed forms over N and seeds",
                       description="Simulate random CNNs and FCNs over a range of widths N and compare "
                                   "GBP's relative error, its correlation with the input and the "
                                   "normality of saliency/DeconvNet maps with randvis.theory. Prints one "
                                   "tab-separated row per check (estimate, 95%% bootstrap interval over "
                                   "weight draws, criterion declared in randvis.montecarlo, verdict).")
    t.add_argument("image", nargs="?", default=None, help="PNG/JPEG (default: built-in sample)")
    t.add_argument("--size", type=positive, default=None, help="image side (default 64; 32 with --quick)")
    t.add_argument("--cnn-ns", default=None,
                   help="CNN filter counts, comma list (default 4,16,64,256,1024,4096; 4,16,64,256 with --quick)")
    t.add_argument("--fcn-ns", default=None,
                   help="FCN hidden sizes, comma list (default 16,256,4096,70000; 16,256,4096 with --quick)")
    t.add_argument("--seeds", type=positive, default=None,
                   help="independent networks (weight draws) per N (default 10; 5 with --quick)")
    t.add_argument("--seed", type=nonneg, default=0,
                   help="seed of the weight draws (default 0; each network also depends on the image)")
    t.add_argument("--kernel-size", type=positive, default=7, help="CNN filter size (default 7)")
    t.add_argument("--fcn-sampler", choices=("auto", "network", "exact"), default="auto",
                   help="FCN maps from the network or the exact O(N + d) sampler (default auto)")
    t.add_argument("--quick", action="store_true",
                   help="small sweep: N up to 256, 5 seeds, 32x32 (options given explicitly win)")
    t.add_argument("--out", default="theory_sweep",
                   help="output prefix: PREFIX.json/.txt/.png (and PREFIX.checkpoint.npz while it runs)")
    t.add_argument("--scheduler", metavar="ADDRESS", default=None, help=_SCHEDULER_HELP)
    c = sub.add_parser("convert", parents=[_limit_options(memory_only=True)], help="convert VGG-16 weights to randvis's npz (no torch needed)",
                       description="Convert a PyTorch VGG-16 state_dict (.pth, legacy or zip), the "
                                   "paper's vgg16_weights.npz or Keras VGG-16 .h5 weights into randvis's "
                                   "npz layout, or an ONNX model (VGG-style chain, needs the onnx "
                                   "package) into a randvis network file; prints the layer-by-layer "
                                   "mapping.")
    c.add_argument("src")
    c.add_argument("dst")
    c.add_argument("--format", choices=("randvis", "paper", "torch", "keras", "onnx"), default=None,
                   help="source format (default: detected)")
    c.add_argument("--float64", action="store_true", help="store float64 (default float32)")
    r = sub.add_parser("reproduce", parents=[lim], formatter_class=_OnlyHelp,
                       help="regenerate the paper's experiments: figures and claims",
                       description="Run every experiment of the paper offline and write OUT/NAME.png, "
                                   "OUT/results.json and OUT/README.md (claim -> figure -> number -> holds). "
                                   "Checkpointed: re-running after an interruption resumes.")
    r.add_argument("--quick", action="store_true", help="small images and sweeps (one to two minutes on 2 cores)")
    r.add_argument("--only", nargs="+", metavar="NAME", help="run only these experiments")
    r.add_argument("--images", metavar="DIR", help="use the images in DIR instead of the built-in samples")
    r.add_argument("--vgg-weights", metavar="FILE", help="trained VGG-16 weights (.npz, .pth or .h5: any format randvis convert reads)")
    r.add_argument("--out", default="figures", help="output folder (default figures/)")
    r.add_argument("--seed", type=nonneg, default=0)
    r.add_argument("--jobs", type=positive, default=1, help="experiments run in J processes (default 1)")
    r.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help=_SCHEDULER_HELP + "; one task per experiment, the workers write into --out")
    r.add_argument("--stamp-readme", nargs="?", const=True, default=None, metavar="PATH",
                   help="after a full run, write its run time between the run-time markers of PATH "
                        "(default: the README.md beside --out); not with --quick")
    k = sub.add_parser("corpus", parents=[lim], help="per-image statistics of the maps over a folder of images",
                       description="For every image: corr(map, x) and corr(map, patch-normalised x) per method, "
                                   "normality of saliency and DeconvNet, L2/SSIM/Spearman between the maps of "
                                   "two logits (top vs random, and a fixed pair), the top class. Rows go to "
                                   "OUT/rows.csv as they finish (a rerun resumes); OUT/summary.json, .txt and "
                                   ".png at the end. Random networks are drawn per image from its pixels.")
    k.add_argument("images", nargs="*", metavar="IMAGES", help="image files, folders or glob patterns")
    k.add_argument("--model", choices=("cnn3", "fcn", "vgg16", "efficientnet-lite0", "vgg16-trained"),
                   default=None, help="random cnn3/fcn/vgg16 (drawn per image) or a trained network (required)")
    k.add_argument("--out", default="corpus", help="output folder (default corpus/)")
    k.add_argument("--size", type=positive, default=None, help="image side (default 224; 240 for vgg16-trained)")
    k.add_argument("--seed", type=nonneg, default=0, help="seed of the random networks and random classes")
    k.add_argument("--filters", type=positive, default=64, help="cnn3: filters (default 64)")
    k.add_argument("--kernel-size", type=positive, default=7, help="cnn3: filter size (default 7)")
    k.add_argument("--hidden", type=positive, default=1000, help="fcn: hidden units (default 1000)")
    k.add_argument("--classes", type=positive, default=10, help="random models: logits (default 10)")
    k.add_argument("--pair", default="0,1", metavar="A,B", help="the fixed pair of classes (default 0,1)")
    k.add_argument("--jobs", type=positive, default=1, help="rows computed in J processes (default 1)")
    k.add_argument("--scheduler", metavar="ADDRESS", default=None, help=_SCHEDULER_HELP)
    k.add_argument("--summarize", action="store_true", help="only (re)write the summary of OUT's table")
    return p


_SCHEDULER_HELP = ("run on a Dask cluster: tcp://HOST:PORT, or 'local' for a local cluster (default: "
                   "$DASK_SCHEDULER_ADDRESS, else in this process); needs randvis[dask]")


# ---------------------------------------------------------------------------
# paths
# ---------------------------------------------------------------------------

def _input_file(path, what):
    """Check that ``path`` is a readable regular file (named ``what`` in errors)."""
    if path is None:
        return None
    if not path or "\0" in path:
        raise CLIError(f"{what}: not a usable path: {path!r}")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CLIError(f"{what}: no such file: {path}") from None
    except OSError as exc:
        raise CLIError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise CLIError(f"{what}: {path} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise CLIError(f"{what}: {path} is not a regular file")
    if not os.access(path, os.R_OK):
        raise CLIError(f"{what}: cannot read {path}: permission denied")
    return path


def _output_file(path, what):
    """Check that ``path`` can be written as a file: a name, not a folder, in an
    existing folder."""
    if not path or "\0" in path:
        raise CLIError(f"{what}: not a usable path: {path!r}")
    if os.path.isdir(path):
        raise CLIError(f"{what} {path} is a directory; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CLIError(f"{what} {path}: output folder does not exist: {folder}")
    return path


def _refuse_overwrite(outputs, inputs):
    from ._io import check_outputs

    try:
        check_outputs(outputs, inputs)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


# ---------------------------------------------------------------------------
# job sizes
# ---------------------------------------------------------------------------

def _announce(what, est):
    """Print a large job's estimate before it starts (after it passed the limits)."""
    from .limits import format_bytes

    if est.total >= ANNOUNCE_BYTES or est.streamed_weights >= ANNOUNCE_WEIGHTS:
        line = f"randvis: {what} needs about {format_bytes(est.total)}"
        if est.streamed_weights:
            minutes = est.streamed_weights * 5e-9 / 60
            line += (f" and streams {est.streamed_weights:.3g} random weights per pass (forward, then "
                     f"backward: about {minutes:.0f} min each at 5 ns per weight)")
        print(line, file=sys.stderr)


def _check_pixels(size, what):
    from . import limits

    limits.check_image_pixels(size, size, what)


# ---------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------

def cmd_convert(args):
    import numpy as np

    from .weights import convert

    _input_file(args.src, "SRC")
    dst = args.dst if args.dst.endswith(".npz") else args.dst + ".npz"   # as convert names it
    _output_file(dst, "DST")
    _refuse_overwrite([("DST", dst)], [("SRC", args.src)])
    report = convert(args.src, args.dst, format=args.format,
                     dtype=np.float64 if args.float64 else np.float32)
    print(report)
    return 0


def cmd_reproduce(args):
    from .reproduce import reproduce

    if args.vgg_weights is not None:
        _input_file(args.vgg_weights, "--vgg-weights")
    if args.images is not None and not os.path.isdir(args.images):
        raise CLIError(f"--images: no such folder: {args.images}")
    t = time.perf_counter()
    with _cluster(args) as client:
        reproduce(out=args.out, only=args.only, quick=args.quick, image_dir=args.images,
                  vgg_weights=args.vgg_weights, seed=args.seed, jobs=args.jobs, stamp=args.stamp_readme,
                  log=lambda msg: print(msg, file=sys.stderr), client=client)
    print(f"randvis: wrote {args.out}/README.md, results.json and figures in "
          f"{time.perf_counter() - t:.0f} s", file=sys.stderr)
    return 0


def _ints(text, flag):
    try:
        vals = [_integer(1)(v) for v in text.split(",") if v.strip()]
    except argparse.ArgumentTypeError as exc:
        raise CLIError(f"{flag}: every N {exc} (a comma-separated list of positive integers)") from None
    dup = sorted({v for v in vals if vals.count(v) > 1})
    if dup:
        raise CLIError(f"{flag} lists {', '.join(map(str, dup))} more than once")
    return vals


def cmd_theory(args):
    import numpy as np

    from . import images
    from ._io import atomic_write, atomic_write_text
    from .montecarlo import _memory_estimates, plot_sweep, theory_sweep

    quick = args.quick
    given = [f for f, v in (("--size", args.size), ("--cnn-ns", args.cnn_ns), ("--fcn-ns", args.fcn_ns),
                            ("--seeds", args.seeds)) if v is not None]
    if quick and given:
        print(f"randvis: --quick: {', '.join(given)} given explicitly, kept instead of --quick's values",
              file=sys.stderr)
    size = args.size or (32 if quick else 64)
    seeds = args.seeds or (5 if quick else 10)
    cnn_ns = _ints(args.cnn_ns if args.cnn_ns is not None else ("4,16,64,256" if quick else "4,16,64,256,1024,4096"),
                   "--cnn-ns")
    fcn_ns = _ints(args.fcn_ns if args.fcn_ns is not None else ("16,256,4096" if quick else "16,256,4096,70000"),
                   "--fcn-ns")
    if not cnn_ns and not fcn_ns:
        raise CLIError("nothing to simulate: --cnn-ns and --fcn-ns are both empty")
    _input_file(args.image, "IMAGE")
    outs = {ext: args.out + ext for ext in (".json", ".txt", ".png", ".checkpoint.npz")}
    for path in outs.values():
        _output_file(path, "--out")
    _refuse_overwrite([("--out", p) for p in outs.values()], [("IMAGE", args.image)])
    _check_pixels(size, f"--size {size}")
    shape = (3, size, size)
    widths = {("cnn", n) for n in cnn_ns} | {("fcn", n) for n in fcn_ns}
    ests = _memory_estimates(shape, widths, args.kernel_size, args.fcn_sampler)
    for est in ests:
        est.check()
    n_nets = len(widths) * seeds
    if ests:
        _announce(f"the largest of the sweep's {n_nets} networks", ests[0])
    if args.image is None:
        img, name = images.sample_image("grace_hopper", size=size), "grace_hopper"
    else:
        img, name = images.load_image(args.image, size=size), os.path.basename(args.image)
    x = images.preprocess(img)[0].astype(np.float64)
    with _cluster(args) as client:
        res = theory_sweep(x, cnn_ns, fcn_ns, seeds=seeds, kernel_size=args.kernel_size,
                           fcn_sampler=args.fcn_sampler, checkpoint=outs[".checkpoint.npz"],
                           image_name=f"{name} {size}x{size}", seed=args.seed,
                           log=lambda msg: print(f"randvis: {msg}", file=sys.stderr), client=client)
    atomic_write_text(outs[".json"], res.to_json())
    table = res.table() + "\n\n" + res.checks_table()
    atomic_write_text(outs[".txt"], table + "\n")
    fig = plot_sweep(res)
    atomic_write(outs[".png"], lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    if os.path.exists(outs[".checkpoint.npz"]):
        os.unlink(outs[".checkpoint.npz"])
    print(table)
    print(f"wrote {outs['.json']}, {outs['.txt']}, {outs['.png']}")
    return 0


def _cluster(args):
    """A Dask client for ``--scheduler`` / $DASK_SCHEDULER_ADDRESS (see randvis.cluster), or a
    context giving None: run here."""
    import contextlib

    from .cluster import connect, resolve_scheduler

    given = getattr(args, "scheduler", None)
    address = resolve_scheduler(given)
    if address is None:
        return contextlib.nullcontext()
    print(f"randvis: running on the Dask cluster {address}", file=sys.stderr)
    return connect(address, label="--scheduler" if given is not None else "$DASK_SCHEDULER_ADDRESS")


def cmd_corpus(args):
    from .corpus import CorpusSpec, find_images, run_corpus, summarize_table, summary_text

    def log(msg):
        print(f"randvis: {msg}", file=sys.stderr)

    if args.summarize:
        if args.images:
            raise CLIError("--summarize reads the table in --out; give no IMAGES with it")
        print(summary_text(summarize_table(args.out, log=log)))
        return 0
    if not args.images:
        raise CLIError("corpus: give IMAGES (files, folders or glob patterns), or --summarize")
    if args.model is None:
        raise CLIError("corpus: --model is required (cnn3, fcn, vgg16, efficientnet-lite0 or vgg16-trained)")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CLIError(f"--out {args.out} is a file, not a folder")
    pair = [int(v) for v in args.pair.split(",")] if all(v.strip().isdigit() for v in args.pair.split(",")) else []
    if len(pair) != 2:
        raise CLIError(f"--pair must be two different class indices A,B (e.g. 0,1), got {args.pair!r}")
    spec = CorpusSpec(args.model, size=args.size, seed=args.seed, filters=args.filters,
                      kernel_size=args.kernel_size, hidden=args.hidden, classes=args.classes, pair=tuple(pair))
    _check_pixels(spec.size, f"--size {spec.size}")
    spec.check_memory()
    paths = find_images(args.images)
    with _cluster(args) as client:
        res = run_corpus(paths, spec, args.out, client=client, jobs=args.jobs, log=log)
    print(summary_text(res))
    print(f"wrote {os.path.join(args.out, 'rows.csv')} and summary.json, summary.txt, summary.png")
    return 0


def cmd_visualize(args):
    from .visualize_cli import cmd_visualize as run

    return run(args)


# ---------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------

def _error(msg, debug=False):
    if debug and sys.exc_info()[1] is not None:
        import traceback

        traceback.print_exc()
    lines = str(msg).strip().splitlines()
    print(f"randvis: error: {lines[0] if lines else msg}", file=sys.stderr)
    return 2


def _limit_hint(exc):
    from . import limits

    text = str(exc)
    for name, (_, var, _) in limits.LIMITS.items():
        if var in text:
            return f"{text} (command line: {LIMIT_OPTIONS[name]})"
    return text


def main(argv=None):
    """Run the ``randvis`` command with ``argv`` (default ``sys.argv[1:]``);
    returns the exit status (0, 2 on an error, 130 on an interrupt)."""
    from . import limits

    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except CLIError as exc:
        return _error(exc)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    if args.command is None:
        parser.print_help()
        return 0
    given = {name: getattr(args, opt[2:].replace("-", "_"), None) for name, opt in LIMIT_OPTIONS.items()}
    given = {name: value for name, value in given.items() if value is not None}
    debug = getattr(args, "debug", False)
    try:
        for name, value in given.items():
            limits.set_limit(name, value)
        commands = {"visualize": cmd_visualize, "theory": cmd_theory, "reproduce": cmd_reproduce,
                    "convert": cmd_convert, "corpus": cmd_corpus}
        return commands[args.command](args)
    except KeyboardInterrupt:
        print("randvis: interrupted", file=sys.stderr)
        return 130
    except limits.ResourceLimitError as exc:
        return _error(_limit_hint(exc), debug)
    except MemoryError as exc:
        return _error(f"out of memory{': ' + str(exc) if str(exc) else ''} (lower the sizes, or the "
                      "memory limit --max-memory so that such jobs are refused before they start)", debug)
    except (CLIError, ValueError, TypeError, OSError, KeyError, ImportError) as exc:
        return _error(str(exc).strip() or type(exc).__name__, debug)
    except Exception as exc:
        if os.environ.get("RANDVIS_TRACEBACK"):
            raise
        return _error(f"unexpected {type(exc).__name__}: {exc} (run with --debug "
                      "for the traceback; please report it)", debug)
    finally:
        for name in given:  # the options set the limits of this command only
            limits.set_limit(name, None)
