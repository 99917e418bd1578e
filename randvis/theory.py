"""Closed forms for random three-layer CNNs and fully connected networks.

The network (built by :func:`randvis.three_layer_cnn` without pooling, or by
:func:`randvis.fcn`) is

    f_k(x) = sum_{i,j} V[k, (i, j)] relu(w_i . x_j)

with patches ``x_j`` in R^p (p = c kh kw), filters ``w_i ~ N(0, s_w^2 I_p)``
(i = 1..N), head ``V ~ N(0, s_v^2)`` and no biases. ``place_j`` puts a patch
back into the image (dropping padded positions). For the one-hot target k the
maps are

    saliency   s = sum_{i,j} V_ij 1(w_i . x_j > 0) place_j(w_i)
    DeconvNet  s = sum_{i,j} relu(V_ij)             place_j(w_i)
    GBP        s = sum_{i,j} relu(V_ij) 1(w_i . x_j > 0) place_j(w_i)

A fully connected first layer is the case "one patch = the whole image"
(kernel = image, ``valid`` padding), so every function here serves both.

Gaussian facts used (w ~ N(0, s_w^2 I), v ~ N(0, s_v^2), unit vectors u, t at
angle theta)::

    E relu(v) = s_v / sqrt(2 pi),   E relu(v)^2 = s_v^2 / 2
    E[w 1(w.u > 0)] = s_w u / sqrt(2 pi)
    E[w w^T 1(w.u > 0)] = s_w^2 I / 2
    E[w w^T 1(w.u > 0) 1(w.t > 0)] = s_w^2 M(u, t),
        M = (pi - theta) / (2 pi) I
            + (u t^T + t u^T - cos(theta) (u u^T + t t^T)) / (2 pi sin(theta))

The last one (the bivariate orthant integral; derivation in docs/theory.md)
gives the exact per-pixel variance of GBP. Zero patches never open a ReLU
(``w . 0 > 0`` is false), so they contribute nothing to saliency or GBP, but
DeconvNet, which ignores the forward masks, uses every patch.

Every function takes the network first and the image second: ``spec``, a
:class:`RandomNetSpec` (kind, N, kernel, stride, padding, weight stds; its
kernel, stride and padding define the patches, and an FCN has one patch, the
whole image), and ``x``, one image of shape (c, h, w) -- the network's input,
i.e. after preprocessing. The Parameters sections below name them only.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import _checks
from . import kernels as K
from .kernels.padding import as_pair, output_hw, resolve_padding

__all__ = ["RandomNetSpec", "patches", "place", "patch_normalized_input", "expected_map",
           "pixel_variance", "pixel_covariance", "map_sum_variance", "relative_error_constant",
           "predicted_relative_error", "predicted_correlation", "fcn_units_to_match"]

TWO_PI = 2.0 * np.pi


@dataclass(frozen=True)
class RandomNetSpec:
    """What the closed forms need to know about a random network.

    Parameters
    ----------
    kind : "cnn" or "fcn"
    n : int
        N: filters (CNN) or hidden units (FCN).
    w_std, v_std : float
        Standard deviations of the first layer and of the head.
    kernel_size, stride : int or pair
        CNN only.
    padding : "same", "valid" or ints
        CNN only.

    Examples
    --------
    >>> spec = RandomNetSpec("cnn", 64, w_std=0.1, v_std=0.01, kernel_size=7)
    >>> spec.with_n(128).n
    128
    """

    kind: str
    n: int
    w_std: float = 1.0
    v_std: float = 1.0
    kernel_size: object = 7
    stride: object = 1
    padding: object = "same"

    def __post_init__(self):
        if not isinstance(self.kind, str) or self.kind not in ("cnn", "fcn"):
            raise ValueError(f"kind must be 'cnn' or 'fcn', got {self.kind!r}")
        if isinstance(self.n, (bool, np.bool_)) or not isinstance(self.n, (int, np.integer)):
            raise TypeError(f"N must be an integer >= 1 (argument n), got {_checks.short_repr(self.n)} "
                            f"({type(self.n).__name__})")
        if self.n < 1:
            raise ValueError(f"N must be an integer >= 1 (argument n), got {self.n!r}")
        _checks.positive_real(self.w_std, "w_std")
        _checks.positive_real(self.v_std, "v_std")
        if self.kind == "cnn":
            as_pair(self.kernel_size, "kernel_size")
            as_pair(self.stride, "stride")
            resolve_padding(self.padding, (1, 1), (1, 1), (1, 1))  # validates the spec

    def with_n(self, n):
        """The same network family with another N.

        Examples
        --------
        >>> RandomNetSpec("cnn", 16, kernel_size=5).with_n(64).n
        64
        """
        return replace(self, n=n)

    @classmethod
    def from_network(cls, net):
        """Read the spec of a network built by ``three_layer_cnn`` (no pooling) or
        ``fcn`` with Gaussian initialisation.

        Parameters
        ----------
        net : Sequential
            Built by :func:`randvis.three_layer_cnn` or :func:`randvis.fcn`.

        Returns
        -------
        RandomNetSpec

        Raises
        ------
        ValueError
            For other builders, pooling or the truncated ``init="paper"``.

        Examples
        --------
        >>> import randvis
        >>> net = randvis.three_layer_cnn(8, kernel_size=5, input_shape=(3, 16, 16), rng=0)
        >>> spec = RandomNetSpec.from_network(net)
        >>> spec.kind, spec.n, spec.kernel_size
        ('cnn', 8, 5)
        """
        info = getattr(net, "info", {}) or {}
        builder = info.get("builder")
        if info.get("init") == "paper":
            raise ValueError("the closed forms assume Gaussian weights; init='paper' is truncated")
        if builder == "three_layer_cnn":
            if info.get("pool") is not None:
                raise ValueError("the closed forms cover three-layer CNNs without pooling")
            pad = info["padding"]
            if isinstance(pad, list):
                pad = tuple(tuple(p) if isinstance(p, list) else p for p in pad)
            return cls("cnn", info["n_filters"], info["w_std"], info["v_std"],
                       info["kernel_size"], info["stride"], pad)
        if builder == "fcn":
            return cls("fcn", info["n_hidden"], info["w_std"], info["v_std"])
        raise ValueError(f"no closed form for a network built by {builder!r}; "
                         "use three_layer_cnn (no pooling) or fcn")

    def geometry(self, image_shape):
        """(kernel (kh, kw), stride (sh, sw), pads (t, b, l, r), output (ho, wo)).

        Examples
        --------
        >>> RandomNetSpec("cnn", 1, kernel_size=3, stride=2).geometry((1, 5, 5))
        ((3, 3), (2, 2), (1, 1, 1, 1), (3, 3))
        """
        c, h, w = _checks.image_shape(image_shape, "image_shape")
        if self.kind == "fcn":
            k, s, pads = (h, w), (1, 1), (0, 0, 0, 0)
        else:
            k = as_pair(self.kernel_size, "kernel_size")
            s = as_pair(self.stride, "stride")
            pads = resolve_padding(self.padding, (h, w), k, s)
        try:
            out = output_hw((h, w), k, s, pads)
        except ValueError as exc:
            raise ValueError(f"kernel_size={self.kernel_size!r}, padding={self.padding!r} on an image of "
                             f"shape {(c, h, w)}: {exc}") from None
        return k, s, pads, out


def _image(x, name="x"):
    x = _checks.real_array(x, name)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(f"{name} must be one image of shape (c, h, w) with c, h, w >= 1, got {x.shape}")
    x = x.astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return x


def _spec(spec):
    if not isinstance(spec, RandomNetSpec):
        raise TypeError(f"spec must be a RandomNetSpec, got {type(spec).__name__}")
    return spec


def _widths(n, spec):
    """The widths N to predict at: ``spec.n`` or ``n`` (a number or an array, each
    finite and >= 1), as float64."""
    if n is None:
        return spec.n
    a = _checks.real_array(n, "n")
    if a.size == 0 or not np.isfinite(a).all() or (a < 1).any():
        raise ValueError(f"N must be finite and >= 1 (argument n), got {_checks.short_repr(n)}")
    return a.astype(np.float64)


def patches(spec, x):
    """All patches of ``x`` as an array of shape (ho, wo, c, kh, kw) (zeros where
    they overlap the padding).

    Parameters
    ----------
    spec : RandomNetSpec
        Its kernel size, stride and padding cut the patches.
    x : array_like, shape (c, h, w)

    Returns
    -------
    ndarray, shape (ho, wo, c, kh, kw)

    Examples
    --------
    >>> import numpy as np
    >>> p = patches(RandomNetSpec("cnn", 1, kernel_size=3), np.arange(16.0).reshape(1, 4, 4))
    >>> p.shape, p[0, 0, 0].tolist()
    ((4, 4, 1, 3, 3), [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 4.0, 5.0]])
    """
    x = _image(x)
    (kh, kw), (sh, sw), (t, b, l, r), (ho, wo) = _spec(spec).geometry(x.shape)
    xp = np.pad(x, ((0, 0), (t, b), (l, r)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))
    win = win[:, ::sh, ::sw][:, :ho, :wo]  # (c, ho, wo, kh, kw)
    return np.ascontiguousarray(win.transpose(1, 2, 0, 3, 4))


def place(spec, p, image_shape):
    """Sum of placed patches: ``sum_j place_j(p[j])`` for p of shape (ho, wo, c, kh, kw).

    Placing all-ones patches counts how many patches cover each pixel.

    Parameters
    ----------
    spec : RandomNetSpec
    p : ndarray, shape (ho, wo, c, kh, kw)
        One array per patch position, as :func:`patches` returns them.
    image_shape : tuple (c, h, w)

    Returns
    -------
    ndarray, shape image_shape

    Examples
    --------
    >>> import numpy as np
    >>> spec = RandomNetSpec("cnn", 1, kernel_size=3)
    >>> place(spec, np.ones((4, 4, 1, 3, 3)), (1, 4, 4))[0].astype(int).tolist()
    [[4, 6, 6, 4], [6, 9, 9, 6], [6, 9, 9, 6], [4, 6, 6, 4]]
    """
    c, h, w = _checks.image_shape(image_shape, "image_shape")
    (kh, kw), (sh, sw), (t, b, l, r), (ho, wo) = _spec(spec).geometry(image_shape)
    p = _checks.finite_array(p, "p")
    if p.shape != (ho, wo, c, kh, kw):
        raise ValueError(f"p must have shape (ho, wo, c, kh, kw) = {(ho, wo, c, kh, kw)} for this "
                         f"network and image, got {p.shape}")
    canvas = np.zeros((c, h + t + b + sh, w + l + r + sw))
    for u in range(kh):
        for v in range(kw):
            canvas[:, u:u + sh * ho:sh, v:v + sw * wo:sw] += p[:, :, :, u, v].transpose(2, 0, 1)
    return canvas[:, t:t + h, l:l + w]


def _unit_patches(spec, x):
    p = patches(spec, x)
    norms = np.sqrt((p ** 2).sum(axis=(2, 3, 4)))
    live = norms > 0
    safe = np.where(live, norms, 1.0)
    return p / safe[:, :, None, None, None], live


def patch_normalized_input(spec, x):
    """The theorem's target ``sum_j place_j(x_j / |x_j|)`` (zero patches add nothing).

    Parameters
    ----------
    spec : RandomNetSpec
    x : array_like, shape (c, h, w)

    Returns
    -------
    ndarray, shape (c, h, w)
        GBP's limit as N grows, up to a positive scale: each patch scaled to
        unit norm and placed back where it came from.

    Examples
    --------
    >>> import numpy as np
    >>> spec = RandomNetSpec("cnn", 1, kernel_size=1)
    >>> patch_normalized_input(spec, np.array([[[3.0, -2.0]]])).tolist()
    [[[1.0, -1.0]]]
    """
    x = _image(x)
    xhat, _ = _unit_patches(_spec(spec), x)
    return place(spec, xhat, x.shape)


def _method(method):
    from .rules import get_rule

    return get_rule(method).name


def expected_map(spec, x, method="gbp"):
    """E[s] over the random weights.

    ``E[s_GBP] = N s_v s_w / (2 pi) sum_j place_j(x_j / |x_j|)``; the saliency
    map and DeconvNet have mean zero (E V = 0, E w = 0).

    Parameters
    ----------
    spec : RandomNetSpec
    x : ndarray, shape (c, h, w)
    method : "saliency", "deconvnet" or "gbp"

    Returns
    -------
    ndarray, shape (c, h, w)

    Examples
    --------
    >>> import numpy as np
    >>> spec = RandomNetSpec("fcn", 100, w_std=1.0, v_std=1.0)
    >>> m = expected_map(spec, np.ones((1, 2, 2)))
    >>> np.allclose(m, 100 / (2 * np.pi) * 0.5)
    True
    """
    _spec(spec)
    x = _image(x)
    if _method(method) != "gbp":
        return np.zeros_like(x)
    return spec.n * spec.v_std * spec.w_std / TWO_PI * patch_normalized_input(spec, x)


def _coverage(x, spec, live_only):
    (kh, kw), _, _, (ho, wo) = spec.geometry(x.shape)
    live = _unit_patches(spec, x)[1] if live_only else np.ones((ho, wo), bool)
    ind = np.broadcast_to(live[:, :, None, None, None], (ho, wo, x.shape[0], kh, kw))
    return place(spec, ind.astype(np.float64), x.shape)


def _gbp_cross_terms(x, spec):
    """sum over ordered pairs j != j' covering each pixel of M(x^_j, x^_j')[q_j, q_j'],
    accumulated in patch space and placed once."""
    (kh, kw), (sh, sw), _, (ho, wo) = spec.geometry(x.shape)
    xhat, _ = _unit_patches(spec, x)
    acc = np.zeros_like(xhat)
    for dy in range(-((kh - 1) // sh), (kh - 1) // sh + 1):
        for dx in range(-((kw - 1) // sw), (kw - 1) // sw + 1):
            if (dy, dx) == (0, 0) or abs(dy) >= ho or abs(dx) >= wo:
                continue
            # patches j = (a, b) and j' = (a + dy, b + dx), both in range
            ja = slice(max(0, -dy), ho - max(0, dy))
            jb = slice(max(0, -dx), wo - max(0, dx))
            ka = slice(max(0, -dy) + dy, ho - max(0, dy) + dy)
            kb = slice(max(0, -dx) + dx, wo - max(0, dx) + dx)
            pj, pk = xhat[ja, jb], xhat[ka, kb]
            cos = np.clip((pj * pk).sum(axis=(2, 3, 4)), -1.0, 1.0)
            sin = np.sqrt(1.0 - cos ** 2)
            ok = sin > 1e-12
            inv = np.where(ok, 1.0 / (TWO_PI * np.where(ok, sin, 1.0)), 0.0)
            # pixel at offset o in patch j sits at offset o - d*s in patch j'
            oy, oyp = _overlap(kh, dy * sh)
            ox, oxp = _overlap(kw, dx * sw)
            u_q = pj[:, :, :, oy, ox]      # x^_j at q (the pixel's offset in j)
            t_qp = pk[:, :, :, oyp, oxp]   # x^_j' at q'
            u_qp = pj[:, :, :, oyp, oxp]   # x^_j at q'
            t_q = pk[:, :, :, oy, ox]      # x^_j' at q
            c = cos[:, :, None, None, None]
            term = (u_q * t_qp + t_q * u_qp - c * (u_q * u_qp + t_q * t_qp)) * inv[:, :, None, None, None]
            acc[ja, jb, :, oy, ox] += term
    return place(spec, acc, x.shape)


def _overlap(k, shift):
    """Offsets o in [0, k) with o - shift also in [0, k): (slice of o, slice of o - shift)."""
    lo, hi = max(0, shift), min(k, k + shift)
    return slice(lo, hi), slice(lo - shift, hi - shift)


def pixel_variance(spec, x, method="gbp"):
    """Exact per-pixel variance of a map over the random weights.

    saliency:  ``N s_v^2 s_w^2 / 2 * n_a`` (n_a = non-zero patches covering pixel a)
    DeconvNet: ``N s_v^2 s_w^2 / 2 * coverage_a`` (every patch)
    GBP:       ``N s_v^2 s_w^2 [n_a / 4 + C_a / (2 pi) - (sum_j x^_j[q_j(a)])^2 / (4 pi^2)]``
    where C_a sums the orthant factor M(x^_j, x^_j')[q_j(a), q_j'(a)] over
    ordered pairs of distinct patches covering a.

    Parameters
    ----------
    spec : RandomNetSpec
    x : array_like, shape (c, h, w)
    method : {"gbp", "saliency", "deconvnet"}
        The map whose pixels' variances are computed.

    Returns
    -------
    ndarray, shape (c, h, w)
        The variance of each pixel of the map of one network of width
        ``spec.n``.

    Examples
    --------
    >>> import numpy as np
    >>> spec = RandomNetSpec("cnn", 10, kernel_size=3)
    >>> float(pixel_variance(spec, np.ones((1, 5, 5)), "saliency")[0, 2, 2])
    45.0
    """
    _spec(spec)
    x = _image(x)
    method = _method(method)
    scale = spec.n * spec.v_std ** 2 * spec.w_std ** 2
    if method == "saliency":
        return scale / 2 * _coverage(x, spec, live_only=True)
    if method == "deconvnet":
        return scale / 2 * _coverage(x, spec, live_only=False)
    n_live = _coverage(x, spec, live_only=True)
    pni = patch_normalized_input(spec, x)
    return scale * (n_live / 4 + _gbp_cross_terms(x, spec) / TWO_PI - pni ** 2 / (4 * np.pi ** 2))


def pixel_covariance(spec, x, method, pixels):
    """Exact covariance between the given pixels of a saliency or DeconvNet map.

    Saliency is white: ``Cov = N s_v^2 s_w^2 / 2 diag(n_a)``. DeconvNet pixels
    of one channel covered at the same filter offsets share the positive mean
    of relu(V): ``Cov[a, b] = N s_v^2 s_w^2 K_ab / (2 pi)`` for a != b in one
    channel, with K_ab the number of filter offsets at which both are covered
    (k^2 for interior pixels at stride 1, i.e. correlation 1/pi).

    Parameters
    ----------
    spec : RandomNetSpec
    x : array_like, shape (c, h, w)
    method : "saliency" or "deconvnet"
    pixels : array of int, shape (m, 3) or (m, 2)
        One row per pixel: (channel, row, column); or (row, column) when the
        image has one channel. The width of the rows says which form is
        meant; (row, column) pairs on an image with several channels are
        refused (the channel would be a guess).

    Returns
    -------
    ndarray, shape (m, m)

    Examples
    --------
    >>> import numpy as np
    >>> spec = RandomNetSpec("cnn", 1, kernel_size=3)
    >>> cov = pixel_covariance(spec, np.ones((1, 6, 6)), "deconvnet", [[0, 2, 2], [0, 3, 3]])
    >>> bool(np.isclose(cov[0, 1] / cov[0, 0], 1 / np.pi))
    True
    >>> bool(np.array_equal(cov, pixel_covariance(spec, np.ones((1, 6, 6)), "deconvnet", [[2, 2], [3, 3]])))
    True
    """
    _spec(spec)
    x = _image(x)
    method = _method(method)
    if method == "gbp":
        raise ValueError("pixel_covariance covers saliency and deconvnet; GBP has pixel_variance")
    pix = _pixels(pixels, x.shape)
    var = pixel_variance(spec, x, method)[pix[:, 0], pix[:, 1], pix[:, 2]]
    cov = np.diag(var)
    if method == "deconvnet":
        (kh, kw), (sh, sw), (t, b, l, r), (ho, wo) = spec.geometry(x.shape)
        # ind[m, u, v]: pixel m is covered by some patch at offset (u, v)
        ry = pix[:, 1, None] + t - np.arange(kh)[None, :]
        rx = pix[:, 2, None] + l - np.arange(kw)[None, :]
        iy = (ry % sh == 0) & (ry >= 0) & (ry // sh < ho)
        ix = (rx % sw == 0) & (rx >= 0) & (rx // sw < wo)
        ind = (iy[:, :, None] & ix[:, None, :]).reshape(len(pix), -1).astype(np.float64)
        shared = K.matmul(ind, ind.T) * (pix[:, None, 0] == pix[None, :, 0])
        off = spec.n * spec.v_std ** 2 * spec.w_std ** 2 / TWO_PI * shared
        np.fill_diagonal(off, 0.0)
        cov = cov + off
    return cov


def _pixels(pixels, shape):
    """``pixels`` as an int array (m, 3) of (channel, row, column) inside ``shape``."""
    pix = _checks.real_array(pixels, "pixels", integer=True)
    if pix.ndim != 2 or pix.shape[0] == 0 or pix.shape[1] not in (2, 3):
        raise ValueError(f"pixels must have shape (m, 3), one (channel, row, column) per pixel, or (m, 2), "
                         f"one (row, column) per pixel of a one-channel image; got shape {pix.shape}")
    if pix.shape[1] == 2:
        if shape[0] != 1:
            raise ValueError(f"pixels are (row, column) pairs but the image has {shape[0]} channels: "
                             "give (channel, row, column) triples, shape (m, 3)")
        pix = np.column_stack([np.zeros(len(pix), dtype=pix.dtype), pix])
    outside = ((pix < 0) | (pix >= np.array(shape))).any(axis=1)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(f"pixel {i}, (channel, row, column) = {tuple(int(t) for t in pix[i])}, is outside "
                         f"the image of shape {tuple(shape)}")
    return pix.astype(np.intp)


#: pairs of patches per block of :func:`map_sum_variance` (bounds its working memory)
_PAIR_BLOCK = 1 << 20


def map_sum_variance(spec, x, method="gbp"):
    """Exact variance over the random weights of the map's sum ``sum_a s_a``.

    The sum of a map is ``sum_{i,j} c_ij (sigma_j . w_i)`` with ``c_ij`` the
    rule's coefficient (``V_ij 1(w_i.x_j > 0)``, ``relu(V_ij)`` or
    ``relu(V_ij) 1(w_i.x_j > 0)``) and ``sigma_j`` the 0/1 mask of patch j's
    entries inside the image (padding dropped), so with ``u_j = x_j / |x_j|``:

    saliency:  ``N s_v^2 s_w^2 / 2 sum_j |sigma_j|^2`` (non-zero patches)
    DeconvNet: ``N s_v^2 s_w^2 [sum_j |sigma_j|^2 / 2 + sum_{j != j'} sigma_j . sigma_j' / (2 pi)]``
    GBP:       ``N s_v^2 s_w^2 [sum_j |sigma_j|^2 / 4 + sum_{j != j'} sigma_j^T M(u_j, u_j') sigma_j' / (2 pi)
    - (sum_j sigma_j . u_j)^2 / (4 pi^2)]``

    with the orthant matrix M of the module docstring. Unlike the per-pixel
    variance, every pair of patches enters (the sum of one filter's entries is
    shared by all of them), so the GBP case costs O(J^2 p) for J patches of p
    entries, done in blocks of rows.

    Parameters
    ----------
    spec : RandomNetSpec
    x : array_like, shape (c, h, w)
    method : {"gbp", "saliency", "deconvnet"}
        The map whose sum over all pixels is considered.

    Returns
    -------
    float

    Examples
    --------
    For an FCN (one patch, sigma = all ones) GBP gives ``d / 4 - (sum_a x_a)^2 / (4 pi^2 |x|^2)``:

    >>> import numpy as np
    >>> x = np.array([[[1.0, 2.0], [0.0, -1.0]]])
    >>> v = map_sum_variance(RandomNetSpec("fcn", 1), x)
    >>> bool(np.isclose(v, 4 / 4 - 2.0 ** 2 / (4 * np.pi ** 2 * 6)))
    True
    """
    _spec(spec)
    x = _image(x)
    method = _method(method)
    scale = spec.n * spec.v_std ** 2 * spec.w_std ** 2
    u, live = _unit_patches(spec, x)
    sigma = patches(spec, np.ones_like(x))
    if method == "deconvnet":
        sig = sigma.reshape(-1, sigma[0, 0].size)
        total = sig.sum(axis=0)
        own = float((sig ** 2).sum())
        return scale * (own / 2 + (float(K.dot(total, total)) - own) / TWO_PI)
    u, sigma = u[live].reshape(int(live.sum()), -1), sigma[live].reshape(int(live.sum()), -1)
    own = float((sigma ** 2).sum())
    if method == "saliency":
        return scale * own / 2
    return scale * (own / 4 + _orthant_pair_sum(u, sigma) / TWO_PI - float((sigma * u).sum()) ** 2 / (4 * np.pi ** 2))


def _orthant_pair_sum(u, sigma):
    """``sum_{j != j'} sigma_j^T M(u_j, u_j') sigma_j'`` for unit rows u and masks sigma."""
    n = len(u)
    d = (sigma * u).sum(axis=1)                        # sigma_j . u_j
    rows = max(1, _PAIR_BLOCK // max(n, 1))
    total = 0.0
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        cos = np.clip(K.matmul(u[r0:r1], u.T), -1.0, 1.0)
        ss = K.matmul(sigma[r0:r1], sigma.T)           # sigma_j . sigma_j'
        su = K.matmul(sigma[r0:r1], u.T)               # sigma_j . u_j'
        us = K.matmul(u[r0:r1], sigma.T)               # u_j . sigma_j'
        dj, dk = d[r0:r1, None], d[None, :]
        theta = np.arccos(cos)
        sin = np.sqrt(1.0 - cos ** 2)
        num = dj * dk + su * us - cos * (dj * us + su * dk)
        ok = sin > 1e-12                               # parallel or opposite: the first term alone
        quad = (np.pi - theta) / TWO_PI * ss + np.where(ok, num / (TWO_PI * np.where(ok, sin, 1.0)), 0.0)
        idx = np.arange(r0, r1)
        quad[idx - r0, idx] = 0.0                      # j = j' is the diagonal term
        total += float(quad.sum())
    return total


def relative_error_constant(spec, x):
    """c in ``sqrt(E||s - E s||^2) / ||E s|| = c / sqrt(N)`` for GBP (exact).

    For an FCN, ``c^2 = pi^2 d - 1`` for any non-zero image of d pixels.

    Parameters
    ----------
    spec : RandomNetSpec
        Its N is not used.
    x : array_like, shape (c, h, w)
        Not all zeros.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> c = relative_error_constant(RandomNetSpec("fcn", 1), np.ones((3, 4, 4)))
    >>> bool(np.isclose(c ** 2, np.pi ** 2 * 48 - 1))
    True
    """
    x = _image(x)
    one = _spec(spec).with_n(1)
    mean = expected_map(one, x, "gbp")
    norm = float(K.norm(mean))
    if norm == 0:
        raise ValueError("the image is all zeros: GBP has zero expectation")
    return float(np.sqrt(pixel_variance(one, x, "gbp").sum()) / norm)


def predicted_relative_error(spec, x, n=None):
    """Predicted ``sqrt(E||s - E s||^2) / ||E s||`` of GBP at N = ``n`` (default
    ``spec.n``; an array of N gives an array).

    Parameters
    ----------
    spec : RandomNetSpec
    x : array_like, shape (c, h, w)
    n : int or array_like of int, optional
        Widths, each >= 1.

    Returns
    -------
    float or ndarray
        ``relative_error_constant(spec, x) / sqrt(n)``.

    Examples
    --------
    >>> import numpy as np
    >>> spec = RandomNetSpec("fcn", 100)
    >>> x = np.random.default_rng(0).normal(size=(1, 4, 4))
    >>> bool(np.isclose(predicted_relative_error(spec, x), np.sqrt((np.pi ** 2 * 16 - 1) / 100)))
    True
    """
    n = _widths(n, _spec(spec))
    c = relative_error_constant(spec, x)
    return c / np.sqrt(n)


def predicted_correlation(spec, x, ref=None, n=None):
    """Predicted Pearson correlation between the GBP map and ``ref`` at N = ``n``.

    With ``A = <s_c, r_c>`` and ``B = |s_c|^2`` (``_c``: the array minus its
    mean over all d values, as :func:`randvis.stats.pearson` centres), the
    correlation is ``A / (|r_c| sqrt(B))``, and A and B have exact
    expectations (``m = E s``)::

        E A = <m_c, r_c>
        E B = |m_c|^2 + sum_a Var_a - Var(sum_a s_a) / d

    (:func:`pixel_variance`, :func:`map_sum_variance`). This function returns
    ``E A / (|r_c| sqrt(E B))``, exact as a ratio of expectations. What is
    left is the difference between that and the expectation of the ratio,
    ``E[A / sqrt(B)]``: by the delta method it is
    ``E A / sqrt(E B) * (3 Var B / (8 (E B)^2) - Cov(A, B) / (2 E A E B))``,
    of order 1/N because A and B fluctuate by O(N^(-1/2)) of their means.
    Simulated on a 3x32x32 photo (tests/test_theory.py) the mean correlation of
    single networks is within the simulation's two standard errors (about
    0.003) of this value from N = 16 on.

    ``ref`` defaults to the patch-normalised input, whose limit is 1.

    Parameters
    ----------
    spec : RandomNetSpec
    x : array_like, shape (c, h, w)
    ref : array_like, shape (c, h, w), optional
        Not constant. Default: :func:`patch_normalized_input`.
    n : int or array_like, optional
        Widths (default ``spec.n``).

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(3, 16, 16))
    >>> spec = RandomNetSpec("cnn", 64, kernel_size=5)
    >>> bool(predicted_correlation(spec, x, n=16) < predicted_correlation(spec, x, n=1024) < 1)
    True
    """
    x = _image(x)
    n = _widths(n, _spec(spec))
    if ref is not None:
        r = _checks.finite_array(ref, "ref").astype(np.float64)
        if r.shape != x.shape:
            raise ValueError(f"ref must have the image's shape {x.shape}, got {r.shape}")
    one = spec.with_n(1)
    m = expected_map(one, x, "gbp")
    var = pixel_variance(one, x, "gbp").sum() - map_sum_variance(one, x, "gbp") / x.size
    if ref is None:
        r = patch_normalized_input(spec, x)
    mc, rc = m - m.mean(), r - r.mean()
    if not np.any(rc):
        raise ValueError("ref is constant: correlation is undefined")
    return np.sum(mc * rc) / (float(K.norm(rc)) * np.sqrt(np.sum(mc ** 2) + var / n))


def fcn_units_to_match(spec, x, n=None):
    """Hidden units an FCN needs for the GBP relative error of ``spec`` at N = ``n``.

    Both errors scale as N^(-1/2), so ``N_fcn = N (c_fcn / c_cnn)^2``; with
    c_fcn^2 = pi^2 d - 1 this is the local-connection argument in numbers.

    Parameters
    ----------
    spec : RandomNetSpec
        The CNN to match.
    x : array_like, shape (c, h, w)
    n : int or array_like, optional
        The CNN's filter count(s) (default ``spec.n``).

    Returns
    -------
    float or ndarray
        FCN hidden units with the same predicted GBP relative error.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(3, 32, 32))
    >>> n_fcn = fcn_units_to_match(RandomNetSpec("cnn", 100, kernel_size=7), x)
    >>> bool(n_fcn > 1000 * 100)
    True
    """
    x = _image(x)
    n = _widths(n, _spec(spec))
    c_cnn = relative_error_constant(spec, x)
    c_fcn = relative_error_constant(RandomNetSpec("fcn", 1, spec.w_std, spec.v_std), x)
    return n * (c_fcn / c_cnn) ** 2
