"""Images in and out: loading, resizing, the built-in sample, ImageNet
preprocessing, and display normalisation of maps.

Images are float arrays in channel-first layout: one image is ``(3, h, w)``
with RGB values in ``[0, 1]``; a batch is ``(n, 3, h, w)``.  Nothing here
downloads anything: the default sample image ships with matplotlib.

Resampling is Pillow's bilinear filter (``Image.Resampling.BILINEAR``) applied
to each channel as a 32-bit float (``'F'`` mode) image, so no 8-bit rounding
happens.  When shrinking, Pillow widens the triangle filter by the shrink
factor, i.e. the result is antialiased (every source pixel contributes); when
enlarging it is ordinary bilinear interpolation.  Pixel centres are mapped
onto pixel centres (no corner alignment).  This is the float counterpart of
``scipy.misc.imresize(img, (h, w))`` (Pillow bilinear on uint8) used by the
paper's code.

Examples
--------
>>> from randvis import images
>>> img = images.sample_image("grace_hopper", size=64)   # (3, 64, 64) in [0, 1]
>>> x = images.preprocess(img)                           # (1, 3, 64, 64), mean-subtracted
>>> x.shape, x.dtype
((1, 3, 64, 64), dtype('float32'))
>>> bool(abs(images.deprocess(x)[0] - img).max() < 1e-5)
True
"""
from __future__ import annotations

import numbers
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps

from .limits import ResourceLimitError, check_image_pixels, check_memory

__all__ = [
    "IMAGENET_MEAN_RGB_255", "NORMALIZE_MODES", "RESIZE_MODES", "deprocess", "load_image",
    "normalize_map", "preprocess", "resize_image", "sample_image", "sample_names", "to_hwc",
]

#: Per-channel ImageNet mean (R, G, B) on the 0-255 scale, as subtracted by the
#: VGG-16 code the paper uses.  Read-only.
IMAGENET_MEAN_RGB_255 = np.array([123.68, 116.779, 103.939], dtype=np.float32)
IMAGENET_MEAN_RGB_255.setflags(write=False)

#: Modes accepted by :func:`resize_image` / :func:`load_image`.
RESIZE_MODES = ("center-crop", "stretch")

#: Modes accepted by :func:`normalize_map`.
NORMALIZE_MODES = ("minmax", "signed", "abs")

_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR

#: bytes per pixel that decoding may take at its peak: Pillow's image (up to 4),
#: its orientation-corrected copy (4), the float32 (h, w, 3) array and the
#: (3, h, w) result (12 each)
_DECODE_BYTES_PER_PIXEL = 32

# scikit-image sample images: all in its bundled ("legacy") data set, so
# loading them never triggers a download.
_SKIMAGE_SAMPLES = {
    "astronaut": lambda data: data.astronaut(),
    "coffee": lambda data: data.coffee(),
    "chelsea": lambda data: data.chelsea(),
    "rocket": lambda data: data.rocket(),
    "motorcycle": lambda data: data.stereo_motorcycle()[0],  # left view of the stereo pair
}


# --------------------------------------------------------------------------- validation

def _as_real_array(x, what):
    """``np.asarray(x)``; TypeError unless it holds real numbers (not bool)."""
    try:
        a = np.asarray(x)
    except Exception as exc:
        raise TypeError(f"{what} must be an array of numbers, got {type(x).__name__}") from exc
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.integer)
                                   or np.issubdtype(a.dtype, np.floating)):
        raise TypeError(f"{what} must hold real numbers (integer or float), got dtype {a.dtype}")
    return a


def _check_finite(a, what):
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        bad = "NaN" if np.isnan(a).any() else "infinite values"
        raise ValueError(f"{what} contains {bad}")


def _check_images(x, what, batch_ok=True, single_ok=True):
    """Validate a (3, h, w) and/or (n, 3, h, w) array of finite real numbers."""
    a = _as_real_array(x, what)
    shapes = []
    if single_ok:
        shapes.append("(3, h, w)")
    if batch_ok:
        shapes.append("(n, 3, h, w)")
    want = " or ".join(shapes)
    ndim_ok = (single_ok and a.ndim == 3) or (batch_ok and a.ndim == 4)
    if not ndim_ok:
        raise ValueError(f"{what} must have shape {want}, got {a.shape}")
    if a.shape[-3] != 3:
        hint = ""
        if a.shape[-1] in (3, 4):
            hint = " (it looks channel-last: move the channel axis first, e.g. x.transpose(2, 0, 1))"
        raise ValueError(f"{what} must have 3 (RGB) channels on axis {a.ndim - 3} "
                         f"i.e. shape {want}, got {a.shape}{hint}")
    if a.size == 0:
        raise ValueError(f"{what} is empty: shape {a.shape}")
    _check_finite(a, what)
    return a


def _check_size(size):
    """``size`` (int or (h, w)) -> (h, w) of ints >= 1."""
    def one(v, label):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"size{label} must be an integer, got {v!r}")
        if v < 1:
            raise ValueError(f"size{label} must be >= 1, got {v}")
        return int(v)

    if isinstance(size, (tuple, list, np.ndarray)):
        if len(size) != 2:
            raise ValueError(f"size must be an int or a pair (h, w), got {size!r}")
        return one(size[0], "[0] (height)"), one(size[1], "[1] (width)")
    s = one(size, "")
    return s, s


def _check_scale(scale):
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be a positive number, got {scale!r}")
    scale = float(scale)
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a finite number > 0, got {scale}")
    return scale


def _resolve_mean(mean, scale):
    """The per-channel mean, shape (3,) float64, in the units of ``img * scale``."""
    if mean is None:
        return np.zeros(3)
    if isinstance(mean, str):
        if mean == "imagenet":
            return IMAGENET_MEAN_RGB_255.astype(np.float64) * (scale / 255.0)
        raise ValueError(f"mean must be 'imagenet', None, a number or 3 numbers, got {mean!r}")
    m = _as_real_array(mean, "mean").astype(np.float64)
    if m.shape not in ((), (3,)):
        raise ValueError(f"mean must be a number or 3 numbers (R, G, B), got shape {m.shape}")
    _check_finite(m, "mean")
    return np.broadcast_to(m, (3,)).copy()


# --------------------------------------------------------------------------- loading

def _to_float_rgb(im):
    """A decoded Pillow image -> float32 array (3, h, w) in [0, 1]."""
    mode = im.mode
    if mode == "1":
        grey = np.asarray(im, dtype=np.float32)
    elif mode == "L":
        grey = np.asarray(im, dtype=np.float32) / 255.0
    elif mode in ("LA", "La"):
        grey = np.asarray(im.convert("LA"), dtype=np.float32)[..., 0] / 255.0
    elif mode.startswith("I;16"):
        grey = np.asarray(im).astype(np.float32) / 65535.0
    elif mode == "I":
        # 32-bit integer pixels: read as 16-bit data (the usual source of
        # mode "I", e.g. 16-bit PNG/TIFF in older Pillow versions).
        grey = np.clip(np.asarray(im).astype(np.float32) / 65535.0, 0.0, 1.0)
    elif mode == "F":
        grey = np.asarray(im, dtype=np.float32)
        if not np.isfinite(grey).all():
            raise ValueError("the float image contains NaN or infinite values")
        grey = np.clip(grey, 0.0, 1.0)
    elif mode == "RGB":
        rgb = np.asarray(im, dtype=np.float32) / 255.0
        return np.ascontiguousarray(rgb.transpose(2, 0, 1))
    else:
        # P/PA (palette), RGBA/RGBa/RGBX, CMYK, YCbCr, ...: via RGBA, then drop alpha.
        rgb = np.asarray(im.convert("RGBA"), dtype=np.float32)[..., :3] / 255.0
        return np.ascontiguousarray(rgb.transpose(2, 0, 1))
    return np.ascontiguousarray(np.broadcast_to(grey, (3,) + grey.shape), dtype=np.float32)


def load_image(path: str | os.PathLike, size: int | tuple[int, int] | None = None,
               resize: str = "center-crop") -> np.ndarray:
    """Read an image file as a float RGB array.

    Anything Pillow decodes is accepted (PNG, JPEG, GIF, BMP, TIFF, WebP ...).
    Conversions:

    * alpha is **dropped**, not composited: RGBA, LA and transparent palette
      images keep the colour stored under each pixel, whatever its opacity;
    * greyscale (modes ``1``, ``L``, ``LA``, ``I;16*``, ``I``, ``F``) becomes
      three identical channels;
    * palette (``P``) images are expanded through their palette;
    * 16-bit images (``I;16``, e.g. 16-bit greyscale PNG) are divided by 65535,
      32-bit integer (``I``) images are read as 16-bit data (divided by 65535,
      clipped), 32-bit float (``F``) images are taken as already in [0, 1]
      (clipped); 8-bit data are divided by 255;
    * the EXIF orientation tag, if any, is applied (as image viewers do);
    * of a multi-frame file (animated GIF, multi-page TIFF) the first frame is read.

    The image's size is read from the file's header before anything is
    decoded: an image of more pixels than the ``image_pixels`` limit of
    :mod:`randvis.limits` (default 50,000,000, about 7071 x 7071; raise it
    with the environment variable ``RANDVIS_MAX_IMAGE_PIXELS`` or
    ``randvis.limits.set_limit("image_pixels", n)``) is refused with
    :class:`~randvis.limits.ResourceLimitError`, as is one whose decoding
    (about 32 bytes per pixel) would exceed the memory limit. A 268 KB PNG
    can declare 9600 x 9600 pixels, 3.3 GB once decoded. Pillow's own guard
    against decompression bombs (``PIL.Image.MAX_IMAGE_PIXELS``) applies too.

    Parameters
    ----------
    path : str or os.PathLike
        The image file.
    size : int or (int, int), optional
        If given, the image is resized to ``(size, size)`` or ``(h, w)`` with
        :func:`resize_image`; default: the file's own size.
    resize : {"center-crop", "stretch"}
        The ``mode`` passed to :func:`resize_image`.

    Returns
    -------
    img : ndarray of float32, shape (3, h, w)
        RGB values in [0, 1].

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (the message names the path).
    ValueError
        If the file is not an image Pillow can decode, is corrupt or truncated,
        or is a directory (the message names the path and the problem); or if
        ``size`` / ``resize`` are invalid.
    randvis.limits.ResourceLimitError
        (a ``ValueError``) If the header declares more pixels than the
        ``image_pixels`` limit, or more than the memory limit allows to decode.
    TypeError
        If ``path`` is not a str or os.PathLike.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from randvis.images import load_image
    >>> pixels = np.zeros((20, 30, 3), dtype=np.uint8)
    >>> pixels[..., 0] = 255                                  # pure red
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "red.png")
    >>> Image.fromarray(pixels).save(path)
    >>> img = load_image(path)
    >>> img.shape, img.dtype, img[:, 0, 0].tolist()
    ((3, 20, 30), dtype('float32'), [1.0, 0.0, 0.0])
    >>> load_image(path, size=8).shape                        # scaled and centre-cropped
    (3, 8, 8)
    >>> tmp.cleanup()
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    p = os.fspath(path)
    if isinstance(p, bytes):
        p = os.fsdecode(p)
    if resize not in RESIZE_MODES:  # check arguments before the (slow) decode
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    if size is not None:
        _check_size(size)
    if not os.path.exists(p):
        raise FileNotFoundError(f"cannot read image {p!r}: no such file")
    if os.path.isdir(p):
        raise ValueError(f"cannot read image {p!r}: it is a directory")
    try:
        with Image.open(p) as im:
            width, height = im.size           # from the header: nothing is decoded yet
            check_image_pixels(width, height, what=f"image {p!r}")
            check_memory(width * height * _DECODE_BYTES_PER_PIXEL, f"decoding image {p!r} "
                         f"({width}x{height})")
            im.load()
            try:
                im = ImageOps.exif_transpose(im) or im
            except Exception:  # malformed EXIF: keep the pixels as stored
                pass
            img = _to_float_rgb(im)
    except ResourceLimitError:
        raise
    except Image.DecompressionBombError as exc:
        raise ResourceLimitError(f"cannot read image {p!r}: {exc}") from None
    except Image.UnidentifiedImageError as exc:
        raise ValueError(f"cannot read image {p!r}: not a recognised image file") from exc
    except PermissionError as exc:
        raise ValueError(f"cannot read image {p!r}: permission denied") from exc
    except Exception as exc:  # truncated data, decoder errors, decompression bombs, ...
        raise ValueError(f"cannot read image {p!r}: corrupt or unsupported image data "
                         f"({type(exc).__name__}: {exc})") from exc
    if size is not None:
        img = resize_image(img, size, mode=resize)
    return img


# --------------------------------------------------------------------------- resizing

def resize_image(img: np.ndarray, size: int | tuple[int, int], mode: str = "center-crop") -> np.ndarray:
    """Resize a (3, h, w) image, keeping or ignoring its aspect ratio.

    Each channel is resampled as a 32-bit float Pillow image with
    ``Image.Resampling.BILINEAR``: a triangle filter that Pillow widens by the
    shrink factor when shrinking (antialiased), ordinary bilinear interpolation
    when enlarging.  Output values are clipped to each input channel's
    [min, max] (the filter's weights are non-negative, so this only removes
    float rounding); a constant image stays exactly constant.

    Parameters
    ----------
    img : array_like, shape (3, h, w)
        Finite real values (any range).
    size : int or (int, int)
        Output size: ``(size, size)`` for an int, else ``(h, w)``; each >= 1.
    mode : {"center-crop", "stretch"}
        ``"center-crop"``: scale by ``max(H / h, W / w)`` so the image covers
        the ``(H, W)`` target (for an int size: the shorter side becomes
        ``size``), then keep the centred ``(H, W)`` window; the aspect ratio is
        kept.  The crop is taken in source coordinates with sub-pixel accuracy
        (Pillow's ``box`` argument), so it is one resampling, not two.
        ``"stretch"``: resample straight to ``(H, W)``, distorting the aspect
        ratio, like the paper's ``scipy.misc.imresize(img, (H, W))``.

    Returns
    -------
    ndarray of float32, shape (3, H, W)

    Raises
    ------
    ValueError
        If ``img`` is not (3, h, w), is empty or contains NaN/inf; if a size
        is < 1; if ``mode`` is unknown.
    TypeError
        If ``size`` is not an integer or a pair of integers.

    Examples
    --------
    >>> import numpy as np
    >>> from randvis.images import resize_image
    >>> img = np.random.default_rng(0).random((3, 50, 100))   # landscape
    >>> resize_image(img, 32).shape                           # middle 50x50 square, scaled
    (3, 32, 32)
    >>> resize_image(img, (20, 30), mode="stretch").shape
    (3, 20, 30)
    >>> flat = np.full((3, 7, 9), 0.25)
    >>> bool((resize_image(flat, 4) == 0.25).all())
    True
    """
    a = _check_images(img, "img", batch_ok=False)
    th, tw = _check_size(size)
    if mode not in RESIZE_MODES:
        raise ValueError(f"mode must be one of {RESIZE_MODES}, got {mode!r}")
    h, w = a.shape[1:]
    if mode == "stretch":
        box = (0.0, 0.0, float(w), float(h))
    else:
        s = max(th / h, tw / w)
        bw, bh = min(tw / s, float(w)), min(th / s, float(h))
        left, top = (w - bw) / 2.0, (h - bh) / 2.0
        box = (max(left, 0.0), max(top, 0.0), min(left + bw, float(w)), min(top + bh, float(h)))
    src = a.astype(np.float32)
    out = np.empty((3, th, tw), dtype=np.float32)
    for c in range(3):
        channel = Image.fromarray(np.ascontiguousarray(src[c]))  # mode 'F'
        out[c] = np.asarray(channel.resize((tw, th), _BILINEAR, box=box), dtype=np.float32)
        np.clip(out[c], src[c].min(), src[c].max(), out=out[c])
    return out


# --------------------------------------------------------------------------- samples

def _skimage_data():
    """``skimage.data`` or None if scikit-image is missing or broken."""
    try:
        from skimage import data
    except Exception:  # ImportError, or a broken install
        return None
    return data


def sample_names() -> list[str]:
    """Names accepted by :func:`sample_image`.

    Returns
    -------
    list of str
        ``"grace_hopper"`` (bundled with matplotlib, always present), then, if
        scikit-image is installed, ``"astronaut"``, ``"coffee"``, ``"chelsea"``,
        ``"rocket"`` and ``"motorcycle"`` (left view of
        ``skimage.data.stereo_motorcycle``); all of these are in
        scikit-image's bundled data, so none is downloaded.

    Examples
    --------
    >>> from randvis.images import sample_names
    >>> sample_names()[0]
    'grace_hopper'
    """
    names = ["grace_hopper"]
    if _skimage_data() is not None:
        names.extend(_SKIMAGE_SAMPLES)
    return names


def _array_to_chw(a):
    """An (h, w), (h, w, 3) or (h, w, 4) image array -> float32 (3, h, w) in [0, 1]."""
    a = np.asarray(a)
    if np.issubdtype(a.dtype, np.integer):
        f = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    else:
        f = a.astype(np.float32)
    f = np.clip(f, 0.0, 1.0)
    if f.ndim == 2:
        f = np.broadcast_to(f, (3,) + f.shape)
    else:
        f = f[..., :3].transpose(2, 0, 1)
    return np.ascontiguousarray(f, dtype=np.float32)


def sample_image(name: str = "grace_hopper", size: int | tuple[int, int] | None = 224) -> np.ndarray:
    """A built-in photograph, needing no download.

    ``"grace_hopper"`` is the portrait of Grace Hopper (600 x 512 JPEG) that
    matplotlib ships in its sample data
    (``matplotlib.cbook.get_sample_data("grace_hopper.jpg")``).  With
    scikit-image installed, more names are available: see :func:`sample_names`.

    Parameters
    ----------
    name : str
        One of :func:`sample_names`.
    size : int, (int, int) or None
        Output size, as for :func:`resize_image` in ``"center-crop"`` mode
        (scaled so the image covers the target, then centre-cropped); ``None``
        keeps the original resolution.

    Returns
    -------
    img : ndarray of float32, shape (3, size, size)
        RGB values in [0, 1].

    Raises
    ------
    ValueError
        If ``name`` is unknown (the message lists the available names), or
        ``size`` is invalid.

    Examples
    --------
    >>> from randvis.images import sample_image
    >>> img = sample_image("grace_hopper", size=224)
    >>> img.shape, img.dtype
    ((3, 224, 224), dtype('float32'))
    >>> bool(0.0 <= img.min() and img.max() <= 1.0)
    True
    """
    if size is not None:
        _check_size(size)
    if name == "grace_hopper":
        from matplotlib import cbook

        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        return load_image(os.fspath(path), size=size)
    if isinstance(name, str) and name in _SKIMAGE_SAMPLES:
        data = _skimage_data()
        if data is None:
            raise ValueError(f"sample image {name!r} needs scikit-image, which is not installed; "
                             f"available: {', '.join(map(repr, sample_names()))}")
        img = _array_to_chw(_SKIMAGE_SAMPLES[name](data))
        return img if size is None else resize_image(img, size)
    raise ValueError(f"unknown sample image {name!r}; available: "
                     f"{', '.join(map(repr, sample_names()))}")


# --------------------------------------------------------------------------- preprocessing

def preprocess(img: np.ndarray, mean: str | float | Sequence[float] | None = "imagenet",
               scale: float = 255.0) -> np.ndarray:
    """Turn [0, 1] RGB images into a network input batch, as the paper's code does.

    ``x = img * scale - mean`` per channel.  With the defaults this is the
    VGG-16 (TensorFlow) convention: RGB on the 0-255 scale minus the ImageNet
    mean :data:`IMAGENET_MEAN_RGB_255` = (123.68, 116.779, 103.939).

    Parameters
    ----------
    img : array_like of float, shape (3, h, w) or (n, 3, h, w)
        RGB values, nominally in [0, 1] (not enforced).  Must be finite.
    mean : "imagenet", None, float or sequence of 3 floats
        ``"imagenet"``: the ImageNet mean expressed on the output scale,
        ``IMAGENET_MEAN_RGB_255 * scale / 255`` (so exactly the constant for
        the default ``scale=255``).  ``None``: nothing subtracted.  Numbers
        are subtracted as given (output units).
    scale : float > 0
        Multiplier applied before subtracting the mean.

    Returns
    -------
    x : ndarray of float32, shape (n, 3, h, w)
        A new array; ``n = 1`` for a single image.

    Raises
    ------
    ValueError
        Wrong shape, NaN/inf values, unknown ``mean`` string, ``scale <= 0``.
    TypeError
        Non-float input (e.g. a uint8 0-255 image: divide by 255 first).

    Examples
    --------
    >>> import numpy as np
    >>> from randvis.images import preprocess, IMAGENET_MEAN_RGB_255
    >>> x = preprocess(np.full((3, 2, 2), 0.5))
    >>> x.shape
    (1, 3, 2, 2)
    >>> np.round(x[0, :, 0, 0].astype(float), 3).tolist()    # 127.5 - mean
    [3.82, 10.721, 23.561]
    >>> float(preprocess(np.ones((4, 3, 2, 2)), mean=None).max())
    255.0
    """
    a = _check_images(img, "img")
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"img must be a float array with values in [0, 1], got dtype {a.dtype}"
                        + (" (divide 0-255 integer images by 255 first)"
                           if np.issubdtype(a.dtype, np.integer) else ""))
    scale = _check_scale(scale)
    mu = _resolve_mean(mean, scale)
    if a.ndim == 3:
        a = a[None]
    x = a.astype(np.float64) * scale - mu[None, :, None, None]
    return np.ascontiguousarray(x, dtype=np.float32)


def deprocess(x: np.ndarray, mean: str | float | Sequence[float] | None = "imagenet",
              scale: float = 255.0) -> np.ndarray:
    """Invert :func:`preprocess`: ``(x + mean) / scale``, clipped to [0, 1].

    Parameters
    ----------
    x : array_like, shape (n, 3, h, w) or (3, h, w)
        Network inputs (or anything in input space, e.g. a map to view as an image).
    mean, scale
        As given to :func:`preprocess`.

    Returns
    -------
    img : ndarray of float32, same shape as ``x``
        RGB values in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from randvis.images import preprocess, deprocess
    >>> img = np.random.default_rng(0).random((3, 4, 4))
    >>> back = deprocess(preprocess(img))
    >>> back.shape, bool(np.allclose(back[0], img, atol=1e-5))
    ((1, 3, 4, 4), True)
    """
    a = _check_images(x, "x")
    scale = _check_scale(scale)
    mu = _resolve_mean(mean, scale)
    shape = (3, 1, 1) if a.ndim == 3 else (1, 3, 1, 1)
    img = (a.astype(np.float64) + mu.reshape(shape)) / scale
    return np.ascontiguousarray(np.clip(img, 0.0, 1.0), dtype=np.float32)


# --------------------------------------------------------------------------- display

def normalize_map(m: np.ndarray, mode: str = "minmax", clip: float | None = None) -> np.ndarray:
    """Map values to [0, 1] for display, one map (sample) at a time.

    Parameters
    ----------
    m : array_like, shape (3, h, w) or (n, 3, h, w)
        A saliency / DeconvNet / GBP map, or a batch of them.  Finite values.
    mode : {"minmax", "signed", "abs"}
        ``"minmax"`` (the paper's code): ``(m - min) / (max - min)`` with min and
        max over all RGB values of the map.  Sign is not preserved (zero lands
        wherever it falls).
        ``"signed"``: ``0.5 + 0.5 * m / max|m|``: zero is grey 0.5, positive
        values brighter, negative darker; the sign is preserved.
        ``"abs"``: ``a = sum_c |m_c|`` (per pixel), divided by ``max a``, and
        repeated on the 3 channels (a grey-level magnitude map, same shape).
        Degenerate maps never divide by zero: a constant map gives 0 under
        ``"minmax"``; an all-zero map gives 0.5 under ``"signed"`` and 0 under
        ``"abs"``.  (A constant non-zero map is not degenerate for these two:
        ``"signed"`` gives 1 or 0 by its sign and ``"abs"`` gives 1.)
    clip : float in (0, 100], optional
        Percentile clipping of outliers (Captum's ``outlier_perc`` is
        ``100 - clip``), with rank percentiles (``numpy.percentile``, linear
        interpolation) over the values each mode scales: ``"minmax"`` maps the
        ``100 - clip`` and ``clip`` percentiles of the map's values to 0 and 1;
        ``"signed"`` divides by the ``clip`` percentile of ``|m|``; ``"abs"`` by
        the ``clip`` percentile of the per-pixel magnitudes. Values beyond
        saturate at 0 or 1. ``None`` (default) and ``100`` use the extremes,
        i.e. the three modes above exactly.

    Returns
    -------
    ndarray, same shape as ``m``
        Values in [0, 1]; float32 for float32 input, else float64.  A new array.

    Raises
    ------
    ValueError
        Wrong shape, NaN/inf values, unknown ``mode``.

    Examples
    --------
    >>> import numpy as np
    >>> from randvis.images import normalize_map
    >>> m = np.array([-2.0, 0.0, 1.0, 2.0]).reshape(1, 1, 4) * np.ones((3, 1, 1))
    >>> normalize_map(m, "minmax")[0, 0].tolist()
    [0.0, 0.5, 0.75, 1.0]
    >>> normalize_map(m, "signed")[0, 0].tolist()
    [0.0, 0.5, 0.75, 1.0]
    >>> normalize_map(m, "abs")[0, 0].tolist()
    [1.0, 0.0, 0.5, 1.0]
    >>> normalize_map(m, "signed", clip=75)[0, 0].tolist()   # 75th percentile of |m|: 2
    [0.0, 0.5, 0.75, 1.0]
    >>> normalize_map(np.arange(5.0) * np.ones((3, 1, 1)), "signed", clip=50)[0].tolist()
    [[0.5, 0.75, 1.0, 1.0, 1.0]]
    """
    a = _check_images(m, "m")
    if mode not in NORMALIZE_MODES:
        raise ValueError(f"mode must be one of {NORMALIZE_MODES}, got {mode!r}")
    hi_q = 100.0 if clip is None else _check_clip(clip)
    out_dtype = np.float32 if a.dtype == np.float32 else np.float64
    single = a.ndim == 3
    x = a[None].astype(np.float64) if single else a.astype(np.float64)
    if mode == "minmax":
        lo = _quantile(x, 100.0 - hi_q, np.min)
        hi = _quantile(x, hi_q, np.max)
        span = hi - lo
        y = np.where(span > 0, (x - lo) / np.where(span > 0, span, 1.0), 0.0)
    elif mode == "signed":
        peak = _quantile(np.abs(x), hi_q, np.max)
        y = np.where(peak > 0, 0.5 + 0.5 * (x / np.where(peak > 0, peak, 1.0)), 0.5)
    else:
        mag = np.abs(x).sum(axis=1, keepdims=True)                 # (n, 1, h, w)
        peak = _quantile(mag, hi_q, np.max)
        y = np.where(peak > 0, mag / np.where(peak > 0, peak, 1.0), 0.0)
        y = np.repeat(y, 3, axis=1)
    y = np.clip(y, 0.0, 1.0).astype(out_dtype)
    return y[0] if single else y


def _check_clip(clip):
    """``clip`` as a float percentile in (0, 100]."""
    if isinstance(clip, bool) or not isinstance(clip, numbers.Real):
        raise TypeError(f"clip must be a percentile in (0, 100], got {clip!r}")
    c = float(clip)
    if not (0.0 < c <= 100.0):
        raise ValueError(f"clip must be a percentile in (0, 100], got {clip!r}")
    return c


def _quantile(x, q, extreme):
    """Per-sample ``q``-th percentile of ``x`` (n, ...), shaped (n, 1, 1, 1);
    the exact ``extreme`` (min or max) at 0 and 100."""
    flat = x.reshape(x.shape[0], -1)
    v = extreme(flat, axis=1) if q in (0.0, 100.0) else np.percentile(flat, q, axis=1)
    return v[:, None, None, None]


def to_hwc(img: np.ndarray) -> np.ndarray:
    """Channel-first to channel-last, for ``matplotlib.pyplot.imshow``.

    Parameters
    ----------
    img : array_like, shape (3, h, w) or (n, 3, h, w)

    Returns
    -------
    ndarray, shape (h, w, 3) or (n, h, w, 3)
        A view of ``img`` (no copy) with the channel axis moved last.

    Examples
    --------
    >>> import numpy as np
    >>> from randvis.images import to_hwc
    >>> to_hwc(np.zeros((3, 5, 7))).shape
    (5, 7, 3)
    """
    a = np.asarray(img)
    if a.ndim not in (3, 4) or a.shape[-3] != 3:
        raise ValueError(f"img must have shape (3, h, w) or (n, 3, h, w), got {a.shape}")
    return np.moveaxis(a, -3, -1)
