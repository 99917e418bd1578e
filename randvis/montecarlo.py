"""Monte Carlo verification of the closed forms: sweeps over N and seeds.

:func:`theory_sweep` simulates random three-layer CNNs and FCNs on one image
for a range of widths N and several seeds, and reports per N the GBP relative
error against :func:`randvis.theory.expected_map`, the fitted log-log slope
against N, normality of the saliency and DeconvNet maps, and the GBP-input
correlation, next to the theory's predictions. Each finished (model, N, seed)
cell is written to a checkpoint at once (atomically), so an interrupted sweep
resumes where it stopped and gives the same numbers.

CNN maps come from the real networks (:func:`randvis.three_layer_cnn` and
:func:`randvis.visualize`). FCN maps can also be drawn by an exact sampler
that needs O(N + d) work instead of O(N d) (see :func:`sample_fcn_maps`),
which makes N = 70,000 on a 224x224x3 image a matter of milliseconds; the
tests check it against the networks.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from . import _checks
from . import kernels as K
from . import theory as T
from .claims import above, below, inside, judge, verdict_table  # noqa: F401  (above: for callers' criteria)
from ._io import CheckpointError, array_digest, code_version, load_checkpoint, save_checkpoint
from .methods import visualize
from .models import fcn, he_std, three_layer_cnn
from .stats import fit_loglog_slope, pearson, relative_error

__all__ = ["sample_fcn_maps", "simulate_maps", "theory_sweep", "cell_seed", "SweepResult", "plot_sweep"]

_KIND_ID = {"cnn": 1, "fcn": 2}

# The checks of a sweep and their criteria, declared before any number is seen.
# Each is judged on a bootstrap interval over weight draws (randvis.claims).
SLOPE_CRITERION = inside(-0.6, -0.4)
"""Theorem 2: GBP's error shrinks like N^(-1/2); the CNN slope fitted to each
draw's errors across N must have its 95% interval inside (-0.6, -0.4)."""
RMS_CRITERION = inside(0.75 ** 2, 1.25 ** 2)
"""The exact closed form: (relative error / predicted RMS)^2 per draw, whose
mean is (RMS measured / predicted)^2; |RMS ratio - 1| < 0.25 means the interval
lies inside (0.5625, 1.5625)."""
RMS_MIN_N = {"cnn": 16, "fcn": 256}
"""Widths from which the RMS and correlation checks apply."""
KS_CRITERION = below(0.03)
"""Theorem 1: saliency and DeconvNet maps of a CNN are Gaussian; the KS distance
of standardised interior pixels to N(0, 1) has its upper 95% bound below 0.03."""
KS_MIN_N = 16
CORR_CRITERION = inside(-0.02, 0.02)
"""The exact correlation: measured corr(GBP, patch-normalised x) minus
predicted_correlation, interval inside (-0.02, 0.02)."""


def sample_fcn_maps(spec, x, rng=None):
    """Draw the three maps of a random FCN exactly, without the d x N weights.

    With ``x^ = x/|x|``, split each hidden unit's weights as w_i = a_i x^ + u_i:
    a_i = w_i . x^ ~ N(0, s_w^2) decides the ReLU (``h_i = |x| a_i``) and u_i ~
    N(0, s_w^2 (I - x^ x^T)) is independent of it. A map with coefficients
    c_i (V_i 1(a_i > 0), relu(V_i), relu(V_i) 1(a_i > 0)) is
    ``(sum c_i a_i) x^ + sum c_i u_i``, and the three ``sum c_i u_i`` are
    jointly Gaussian with covariance ``s_w^2 (c . c') (I - x^ x^T)``: sampled
    from a 3x3 square root and three standard normal images.

    Parameters
    ----------
    spec : RandomNetSpec with kind "fcn"
    x : ndarray, shape (c, h, w)
    rng : Generator, int or None

    Returns
    -------
    dict of ndarray (c, h, w), float64

    Examples
    --------
    >>> import numpy as np
    >>> from randvis.theory import RandomNetSpec
    >>> maps = sample_fcn_maps(RandomNetSpec("fcn", 70_000), np.ones((3, 8, 8)), rng=0)
    >>> sorted(maps), maps["gbp"].shape
    (['deconvnet', 'gbp', 'saliency'], (3, 8, 8))
    """
    if spec.kind != "fcn":
        raise ValueError("the exact sampler is for fully connected networks (kind='fcn')")
    rng = _checks.generator(rng)
    x = np.asarray(x, dtype=np.float64)
    norm = float(K.norm(x))
    if norm == 0:
        raise ValueError("x is all zeros")
    xh = x.ravel() / norm
    a = rng.standard_normal(spec.n) * spec.w_std
    v = rng.standard_normal(spec.n) * spec.v_std
    on = a > 0
    coef = np.stack([v * on, np.maximum(v, 0), np.maximum(v, 0) * on])  # sal, deconv, gbp
    gram = K.matmul(coef, coef.T)
    with K.one_blas_thread():  # a 3 x 3 eigenproblem; one thread keeps LAPACK's bits fixed
        evals, evecs = np.linalg.eigh(gram)
    root = evecs * np.sqrt(np.clip(evals, 0, None))  # root @ root.T = gram
    z = rng.standard_normal((3, xh.size))
    z -= np.outer(K.matmul(z, xh[:, None])[:, 0], xh)  # project out x^
    perp = spec.w_std * K.matmul(root, z)
    maps = K.matmul(coef, a[:, None]) * xh[None, :] + perp
    return {m: maps[k].reshape(x.shape) for k, m in enumerate(("saliency", "deconvnet", "gbp"))}


def simulate_maps(kind, n, x, rng, kernel_size=7, sampler="network", dtype=np.float64):
    """The three maps of one random network of width ``n`` (target: logit 0).

    ``sampler="network"`` builds the network and runs :func:`randvis.visualize`;
    ``"exact"`` (FCN only) uses :func:`sample_fcn_maps` with the same stds.

    Parameters
    ----------
    kind : {"cnn", "fcn"}
        :func:`randvis.three_layer_cnn` or :func:`randvis.fcn`, one logit.
    n : int
        Filters (CNN) or hidden units (FCN), >= 1.
    x : ndarray, shape (c, h, w)
        The input image.
    rng : Generator, int or None
        Draws the weights.
    kernel_size : int
        The CNN's filter size ("same" padding, stride 1).
    sampler : {"network", "exact"}
    dtype : float32 or float64

    Returns
    -------
    spec : RandomNetSpec
        The network's description for :mod:`randvis.theory` (its actual stds).
    maps : dict
        ``"saliency"``, ``"deconvnet"``, ``"gbp"``: arrays of shape (c, h, w).

    Examples
    --------
    >>> import numpy as np
    >>> spec, maps = simulate_maps("cnn", 8, np.ones((3, 10, 10)), rng=0, kernel_size=3)
    >>> spec.n, maps["saliency"].shape
    (8, (3, 10, 10))
    """
    if kind == "cnn":
        net = three_layer_cnn(n, kernel_size=kernel_size, input_shape=x.shape, n_classes=1,
                              dtype=dtype, rng=rng)
    elif kind == "fcn":
        if sampler == "exact":
            # the stds fcn() uses by default (He scale)
            spec = T.RandomNetSpec("fcn", n, he_std(x.size), he_std(n))
            return spec, sample_fcn_maps(spec, x, rng)
        net = fcn(n, input_shape=x.shape, n_classes=1, dtype=dtype, rng=rng)
    else:
        raise ValueError(f"kind must be 'cnn' or 'fcn', got {kind!r}")
    maps = visualize(net, x[None], target=0)
    return T.RandomNetSpec.from_network(net), {k: v[0].astype(np.float64) for k, v in maps.items()}


def _corr(a, b):
    return pearson(a, b)


def _normality(m, border):
    from .stats import normality

    r = normality(m, per_channel=True, interior=border, rng=0)
    return {"ks": float(r.pooled.ks_statistic), "shapiro_p": float(r.pooled.shapiro_pvalue),
            "skew": float(r.pooled.skewness), "kurt": float(r.pooled.excess_kurtosis)}


@dataclass
class SweepResult:
    """Per-cell measurements and per-N summaries of a :func:`theory_sweep`.

    Attributes
    ----------
    config : dict
        The sweep's settings (image digest ``x_sha`` and ``seed`` included).
    rows : list of dict
        One per (kind, N, seed): the measurements of one network.
    summary : list of dict
        One per (kind, N): means and standard deviations over seeds, and the
        theory's predictions.
    slopes : dict
        Per kind with two or more N: the log-log fit of the mean relative
        error against N (``slope``, ``intercept``, ``r2``) and ``per_seed``,
        the slope fitted to each draw's errors across N.
    """

    config: dict
    rows: list = field(default_factory=list)
    summary: list = field(default_factory=list)
    slopes: dict = field(default_factory=dict)
    checks: list = field(default_factory=list)

    def to_json(self):
        return json.dumps(asdict(self), indent=1)

    def draws(self, kind, key):
        """One measurement ``key`` of every cell of model ``kind``: an array of
        shape (number of N, seeds), rows in the order of the configuration's N.
        Draw s of every N is an independent network, so a statistic computed
        per column (e.g. a slope across N) is one number per weight draw.

        Examples
        --------
        >>> import numpy as np
        >>> res = theory_sweep(np.random.default_rng(0).normal(size=(3, 10, 10)), cnn_ns=(4, 16),
        ...                    fcn_ns=(), seeds=2, kernel_size=3, progress=False)
        >>> res.draws("cnn", "rel_error").shape
        (2, 2)
        """
        ns, seeds = self.config[f"{kind}_ns"], self.config["seeds"]
        out = np.full((len(ns), seeds), np.nan)
        for r in self.rows:
            if r["kind"] == kind:
                out[ns.index(r["n"]), r["seed"]] = r[key]
        return out

    def table(self):
        """A plain-text table of the per-N summary."""
        head = (f"{'model':<5} {'N':>7} {'seeds':>5} {'GBP rel.err':>15} {'RMS':>8} {'theory':>8} "
                f"{'corr(GBP,x)':>11} {'theory':>7} {'corr(GBP,pni)':>13} {'theory':>7} {'KS sal':>7} "
                f"{'KS dec':>7} {'SW p sal':>9} {'SW p dec':>9}")
        lines = [head, "-" * len(head)]
        for s in self.summary:
            lines.append(
                f"{s['kind']:<5} {s['n']:>7} {s['seeds']:>5} "
                f"{s['rel_error']:>8.3f}+-{s['rel_error_sd']:<5.3f} {s['rel_error_rms']:>8.3f} "
                f"{s['rel_error_theory']:>8.3f} {s['corr_input']:>11.3f} {s['corr_input_theory']:>7.3f} "
                f"{s['corr_target']:>13.3f} {s['corr_target_theory']:>7.3f} "
                f"{s['ks_saliency']:>7.3f} {s['ks_deconvnet']:>7.3f} "
                f"{s['shapiro_p_saliency']:>9.3f} {s['shapiro_p_deconvnet']:>9.3f}")
        for kind, sl in self.slopes.items():
            lines.append(f"{kind}: log-log slope of GBP relative error vs N = {sl['slope']:.3f} "
                         f"(theory -0.5), r^2 = {sl['r2']:.4f}")
        return "\n".join(lines)

    def checks_table(self):
        """The checks, one tab-separated line each under a header line
        (:func:`randvis.claims.verdict_table`)."""
        return verdict_table(self.checks)


def _sweep_key(config):
    return {"randvis": code_version(), "sweep": config}


def _load_checkpoint(path, config, note):
    """The finished rows of a sweep checkpoint written for ``config`` by this code;
    a missing one gives none, an unusable one (damaged, or another sweep's) is
    reported through ``note`` in one line and the sweep starts over."""
    if not path or not os.path.exists(path):
        return {}
    try:
        numbers, _, _ = load_checkpoint(path, _sweep_key(config))
        rows = numbers["rows"]
        done = {(r["kind"], int(r["n"]), int(r["seed"])): r for r in rows}
    except CheckpointError as exc:
        note(f"{exc}; starting the sweep over")
        return {}
    except (KeyError, TypeError, ValueError) as exc:
        note(f"checkpoint {path}: damaged rows ({type(exc).__name__}: {exc}); starting the sweep over")
        return {}
    return done


def _save_checkpoint(path, config, rows):
    save_checkpoint(path, _sweep_key(config), {"rows": list(rows.values())})


@K.one_blas_thread()  # scipy's statistics too: no BLAS call of the sweep is threaded
def theory_sweep(x, cnn_ns=(4, 16, 64, 256, 1024), fcn_ns=(16, 256, 4096, 70000), seeds=3,
                 kernel_size=7, fcn_sampler="auto", checkpoint=None, progress=True, image_name=None,
                 log=None, seed=0, client=None):
    """Simulate random CNNs/FCNs over N and seeds and compare with the theory.

    Parameters
    ----------
    x : ndarray, shape (c, h, w)
        The network input (preprocessed image).
    cnn_ns, fcn_ns : sequences of int
        Widths to simulate (either may be empty).
    seeds : int
        Independent networks (weight draws) per width.
    kernel_size : int
        CNN filter size (stride 1, "same" padding).
    fcn_sampler : "auto", "network" or "exact"
        "auto" uses the real network while its first layer has at most 2^26
        weights and the exact sampler beyond.
    checkpoint : path or None
        File (an npz archive) rewritten atomically after every cell with the
        finished cells and their key: this configuration, the image's digest
        and the randvis code version (:func:`randvis._io.code_version`). An
        existing checkpoint with an equal key is resumed; one that is damaged
        or has another key is reported in one line and replaced.
    progress : bool
        Show a progress bar.
    image_name : str, optional
        Recorded in the configuration.
    log : callable, optional
        Receives the one-line note about an unusable checkpoint (default: a
        ``RuntimeWarning``).
    seed : int >= 0
        The sweep's seed. Cell (model, N, s) draws its network from
        ``[image digest, seed, model, N, s]`` (:func:`cell_seed`): another
        image or another ``seed`` gives independent networks, the same image
        and seed the same ones.
    client : distributed.Client, optional
        Send every cell still to compute to this Dask cluster as a task
        (:mod:`randvis.cluster`); the checkpoint is rewritten as each one
        finishes and the rows are assembled in the cells' order, so the
        result equals the in-process one.

    Returns
    -------
    SweepResult

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(3, 16, 16))
    >>> res = theory_sweep(x, cnn_ns=(4, 16), fcn_ns=(16,), seeds=1, kernel_size=3, progress=False)
    >>> [(s["kind"], s["n"]) for s in res.summary]
    [('cnn', 4), ('cnn', 16), ('fcn', 16)]
    """
    from tqdm.auto import tqdm

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"x must be one image (c, h, w), got shape {x.shape}")
    if not np.isfinite(x).all() or not np.any(x):
        raise ValueError("x must be finite and not all zeros")
    if int(seeds) < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    seed = _checks.nonnegative_int(seed, "seed")
    for n in tuple(cnn_ns) + tuple(fcn_ns):
        if int(n) < 1:
            raise ValueError(f"every N must be >= 1, got {n}")
    if fcn_sampler not in ("auto", "network", "exact"):
        raise ValueError(f"fcn_sampler must be 'auto', 'network' or 'exact', got {fcn_sampler!r}")
    config = {"image": image_name, "shape": list(x.shape), "cnn_ns": [int(n) for n in cnn_ns],
              "fcn_ns": [int(n) for n in fcn_ns], "seeds": int(seeds), "kernel_size": int(kernel_size),
              "fcn_sampler": fcn_sampler, "x_sha": array_digest(x), "seed": seed}
    if log is None:
        def log(msg):
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
    done = _load_checkpoint(checkpoint, config, log)
    cells = [(k, int(n), s) for k, ns in (("cnn", cnn_ns), ("fcn", fcn_ns)) for n in ns for s in range(seeds)]
    # every network still to simulate must fit, checked before the first one runs
    for est in _memory_estimates(x.shape, {(k, n) for k, n, s in cells if (k, n, s) not in done},
                                 kernel_size, fcn_sampler):
        est.check()
    cache = {}

    def theory_of(kind):
        if kind not in cache:
            spec = (T.RandomNetSpec("cnn", 1, 1.0, 1.0, kernel_size=kernel_size) if kind == "cnn"
                    else T.RandomNetSpec("fcn", 1))
            mean1 = T.expected_map(spec, x, "gbp")
            cache[kind] = (spec, mean1, T.relative_error_constant(spec, x),
                           T.patch_normalized_input(spec, x))
        return cache[kind]

    todo = [c for c in cells if c not in done]
    for kind in dict.fromkeys(k for k, _, _ in todo):
        theory_of(kind)
    jobs = [(x, config, kind, n, s, _sampler(kind, n, x.size, fcn_sampler), cache[kind][1], cache[kind][3])
            for kind, n, s in todo]
    if client is None:
        finished = ((job, _sweep_cell(job)) for job in jobs)
    else:
        from .cluster import stream

        finished = stream(client, _sweep_cell, jobs, key=lambda job: f"randvis-theory-{job[2]}-{job[3]}-{job[4]}-"
                                                                     f"{config['x_sha']}-{seed}")
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="theory sweep",
               disable=not progress or None, leave=False)
    with bar:
        for job, row in finished:
            bar.update()
            done[tuple(job[2:5])] = row
            if checkpoint:
                _save_checkpoint(checkpoint, config, done)
    return _summarise(config, [done[c] for c in cells], theory_of, x)


def _sweep_cell(job):
    """The row of one cell of a sweep: a pure function of ``job`` = (x, config,
    kind, n, s, sampler, GBP mean of a width-1 network, patch-normalised x)."""
    x, config, kind, n, s, sampler, mean1, pni = job
    with K.one_blas_thread():  # scipy's statistics too: no BLAS call of a cell is threaded
        spec, maps = simulate_maps(kind, n, x, rng=cell_seed(config["x_sha"], config["seed"], kind, n, s),
                                   kernel_size=config["kernel_size"], sampler=sampler)
        expected = mean1 * (spec.n * spec.v_std * spec.w_std)
        g = maps["gbp"]
        row = {"kind": kind, "n": n, "seed": s, "sampler": sampler if kind == "fcn" else "network",
               "rel_error": relative_error(g, expected),
               "corr_input": _corr(g, x), "corr_target": _corr(g, pni)}
        b = config["kernel_size"] // 2 if kind == "cnn" else 0
        for m in ("saliency", "deconvnet"):
            for key, val in _normality(maps[m], b).items():
                row[f"{key}_{m}"] = val
    return row


def cell_seed(x_sha, seed, kind, n, s):
    """The entropy of cell (``kind``, ``n``, draw ``s``) of a sweep on the image
    whose :func:`randvis._io.array_digest` is ``x_sha``, under the sweep's ``seed``.

    Examples
    --------
    >>> import numpy as np
    >>> from randvis._io import array_digest
    >>> a = cell_seed(array_digest(np.ones((1, 2, 2))), 0, "cnn", 16, 0)
    >>> b = cell_seed(array_digest(np.zeros((1, 2, 2))), 0, "cnn", 16, 0)
    >>> a[1:] == b[1:], a[0] != b[0]
    (True, True)
    """
    return [int(x_sha, 16), int(seed), _KIND_ID[kind], int(n), int(s)]


def _sampler(kind, n, d, fcn_sampler):
    """How the maps of a width-``n`` network on ``d`` input values are drawn."""
    if kind != "fcn":
        return "network"
    if fcn_sampler == "auto":
        return "exact" if n * d > (1 << 26) else "network"
    return fcn_sampler


def _memory_estimates(shape, widths, kernel_size=7, fcn_sampler="auto"):
    """:class:`randvis.models.MemoryEstimate` of each network ``(kind, n)`` in
    ``widths`` that :func:`simulate_maps` would build on an input of ``shape``
    (the exact FCN sampler builds none), largest first."""
    from .models import memory_estimate

    d = int(np.prod(shape))
    out = []
    for kind, n in sorted(widths):
        if _sampler(kind, n, d, fcn_sampler) == "exact":
            continue
        if kind == "cnn":
            out.append(memory_estimate("three_layer_cnn", int(n), kernel_size=int(kernel_size),
                                       input_shape=tuple(shape), n_classes=1, dtype="float64"))
        else:
            out.append(memory_estimate("fcn", int(n), input_shape=tuple(shape), n_classes=1,
                                       dtype="float64"))
    return sorted(out, key=lambda e: -e.total)


def _summarise(config, rows, theory_of, x):
    res = SweepResult(config=config, rows=rows)
    for kind in ("cnn", "fcn"):
        ns = config[f"{kind}_ns"]
        if not ns:
            continue
        spec1, _, c, _ = theory_of(kind)
        widths = np.array(ns, dtype=np.float64)
        corr_input = np.atleast_1d(T.predicted_correlation(spec1, x, ref=x, n=widths))
        corr_target = np.atleast_1d(T.predicted_correlation(spec1, x, n=widths))
        for k, n in enumerate(ns):
            cell = [r for r in rows if r["kind"] == kind and r["n"] == n]
            s = {"kind": kind, "n": n, "seeds": len(cell),
                 "rel_error_theory": c / np.sqrt(n),
                 "corr_input_theory": float(corr_input[k]),
                 "corr_target_theory": float(corr_target[k])}
            s["rel_error_rms"] = float(np.sqrt(np.mean([r["rel_error"] ** 2 for r in cell])))
            for key in ("rel_error", "corr_input", "corr_target", "ks_saliency", "ks_deconvnet",
                        "shapiro_p_saliency", "shapiro_p_deconvnet", "skew_saliency",
                        "skew_deconvnet", "kurt_saliency", "kurt_deconvnet"):
                vals = np.array([r[key] for r in cell])
                s[key] = float(vals.mean())
                s[key + "_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
            res.summary.append(s)
        if len(ns) >= 2:
            fit = fit_loglog_slope([s["n"] for s in res.summary if s["kind"] == kind],
                                   [s["rel_error"] for s in res.summary if s["kind"] == kind])
            per_seed = [fit_loglog_slope(ns, errs).slope for errs in res.draws(kind, "rel_error").T]
            res.slopes[kind] = {"slope": fit.slope, "intercept": fit.intercept, "r2": fit.r2,
                                "per_seed": per_seed}
    res.checks = _judge_checks(res)
    return res


def _judge_checks(res):
    """Every declared check of the sweep, judged on an interval over weight draws."""
    todo = []
    if "cnn" in res.slopes:
        todo.append(("cnn GBP error log-log slope vs N (per draw)", res.slopes["cnn"]["per_seed"], SLOPE_CRITERION))
    for s in res.summary:
        kind, n, k = s["kind"], s["n"], res.config[f"{s['kind']}_ns"].index(s["n"])
        if n >= RMS_MIN_N[kind]:
            ratio = res.draws(kind, "rel_error")[k] / s["rel_error_theory"]
            todo.append((f"{kind} N={n} (GBP error / predicted RMS)^2", ratio ** 2, RMS_CRITERION))
        if kind == "cnn" and n >= KS_MIN_N:
            for m in ("saliency", "deconvnet"):
                todo.append((f"cnn N={n} KS {m} pixels to N(0,1)", res.draws(kind, f"ks_{m}")[k], KS_CRITERION))
        if n >= RMS_MIN_N[kind]:
            diff = res.draws(kind, "corr_target")[k] - s["corr_target_theory"]
            todo.append((f"{kind} N={n} corr(GBP, pni) measured - predicted", diff, CORR_CRITERION))
    return [_check(what, np.asarray(vals, dtype=np.float64), crit) for what, vals, crit in todo]


def _check(what, values, criterion):
    """One row of :data:`randvis.claims.ROW_COLUMNS`: the mean over draws, its
    bootstrap interval over draws and the verdict (with a single draw there is no
    interval and no verdict). One image: the draws are the rows of
    :func:`randvis.claims.judge`'s table, so its interval is over draws."""
    return judge(what, np.asarray(values, dtype=np.float64).reshape(1, -1), criterion).row()


def plot_sweep(res, fig=None):
    """Theory curves over simulation points with error bars (one panel for the
    relative error, one for the GBP-input correlation).

    Parameters
    ----------
    res : SweepResult
        What :func:`theory_sweep` returned.
    fig : matplotlib.figure.Figure, optional
        Drawn into (default: a new 10x4 inch figure).

    Returns
    -------
    matplotlib.figure.Figure
        Two panels: relative error against N and corr(GBP, x) against N, each
        with the closed form as a line.

    Examples
    --------
    >>> import numpy as np
    >>> res = theory_sweep(np.random.default_rng(0).normal(size=(3, 12, 12)), cnn_ns=(4, 16),
    ...                    fcn_ns=(), seeds=1, kernel_size=3, progress=False)
    >>> len(plot_sweep(res).axes)
    2
    """
    if fig is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    colors = {"cnn": "C0", "fcn": "C3"}
    for kind in ("cnn", "fcn"):
        rows = [s for s in res.summary if s["kind"] == kind]
        if not rows:
            continue
        ns = np.array([s["n"] for s in rows], dtype=float)
        grid = np.geomspace(ns.min(), ns.max(), 100)
        c = rows[0]["rel_error_theory"] * np.sqrt(rows[0]["n"])
        label = "CNN" if kind == "cnn" else "FCN"
        ax1.errorbar(ns, [s["rel_error"] for s in rows], yerr=[s["rel_error_sd"] for s in rows],
                     fmt="o", color=colors[kind], label=f"{label} simulated")
        ax1.plot(grid, c / np.sqrt(grid), "-", color=colors[kind], alpha=0.7, label=f"{label} theory")
        ax2.errorbar(ns, [s["corr_input"] for s in rows], yerr=[s["corr_input_sd"] for s in rows],
                     fmt="o", color=colors[kind], label=f"{label} corr(GBP, x)")
        ax2.plot(ns, [s["corr_input_theory"] for s in rows], "-", color=colors[kind], alpha=0.7)
        ax2.errorbar(ns, [s["corr_target"] for s in rows], yerr=[s["corr_target_sd"] for s in rows],
                     fmt="s", mfc="none", color=colors[kind], label=f"{label} corr(GBP, patch-norm. x)")
        ax2.plot(ns, [s["corr_target_theory"] for s in rows], "--", color=colors[kind], alpha=0.7)
    ax1.set(xscale="log", yscale="log", xlabel="N (filters / hidden units)",
            ylabel="||s - E s|| / ||E s||", title="GBP relative error")
    ax2.set(xscale="log", xlabel="N (filters / hidden units)", ylabel="Pearson correlation",
            title="GBP similarity to the input", ylim=(-0.05, 1.02))
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig
