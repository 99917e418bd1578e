"""randvis.images: loading, resizing, the built-in sample, preprocessing, display."""
import os
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from randvis import images
from randvis.images import (IMAGENET_MEAN_RGB_255, deprocess, load_image, normalize_map,
                            preprocess, resize_image, sample_image, sample_names, to_hwc)

RNG = np.random.default_rng(1234)


def _chw(hwc_uint8, maxval=255.0):
    """The expected float32 (3, h, w) array for an (h, w, 3) integer image."""
    return (hwc_uint8.astype(np.float32) / np.float32(maxval)).transpose(2, 0, 1)


def _mode(path):
    """The PIL mode a file was saved in."""
    with Image.open(path) as im:
        return im.mode


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --------------------------------------------------------------------------- load_image

def test_rgb_png_exact(tmp_path):
    px = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    px[0, 0] = (0, 0, 0)
    px[0, 1] = (255, 255, 255)
    path = tmp_path / "rgb.png"
    Image.fromarray(px).save(path)
    img = load_image(path)  # pathlib.Path accepted
    assert img.shape == (3, 5, 7) and img.dtype == np.float32
    np.testing.assert_array_equal(img, _chw(px))
    assert img[:, 0, 0].tolist() == [0, 0, 0] and img[:, 0, 1].tolist() == [1, 1, 1]
    np.testing.assert_array_equal(load_image(str(path)), img)


def test_rgba_png_alpha_dropped(tmp_path):
    px = RNG.integers(0, 256, size=(4, 6, 4), dtype=np.uint8)
    px[..., 3] = 0            # fully transparent everywhere ...
    px[1, 2, 3] = 255         # ... except one pixel
    px[2, 3, 3] = 128
    path = tmp_path / "rgba.png"
    Image.fromarray(px).save(path)
    assert _mode(path) == "RGBA"
    img = load_image(path)
    assert img.shape == (3, 4, 6)
    # the stored colour is kept whatever the opacity: no compositing onto a background
    np.testing.assert_array_equal(img, _chw(px[..., :3]))


def test_greyscale_png_three_identical_channels(tmp_path):
    px = RNG.integers(0, 256, size=(6, 5), dtype=np.uint8)
    path = tmp_path / "grey.png"
    Image.fromarray(px).save(path)
    assert _mode(path) == "L"
    img = load_image(path)
    assert img.shape == (3, 6, 5) and img.dtype == np.float32
    np.testing.assert_array_equal(img[0], img[1])
    np.testing.assert_array_equal(img[1], img[2])
    np.testing.assert_array_equal(img[0], px.astype(np.float32) / np.float32(255))


def test_grey_alpha_png(tmp_path):
    px = RNG.integers(0, 256, size=(3, 4, 2), dtype=np.uint8)
    path = tmp_path / "la.png"
    Image.merge("LA", [Image.fromarray(px[..., 0]), Image.fromarray(px[..., 1])]).save(path)
    assert _mode(path) == "LA"
    img = load_image(path)
    for c in range(3):
        np.testing.assert_array_equal(img[c], px[..., 0].astype(np.float32) / np.float32(255))


def test_16bit_png_scaled_to_unit_range(tmp_path):
    px = np.array([[0, 1, 256, 65535], [1000, 30000, 50000, 65534]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(px).save(path)
    assert _mode(path).startswith("I;16")
    img = load_image(path)
    assert img.shape == (3, 2, 4) and img.dtype == np.float32
    expect = px.astype(np.float32) / np.float32(65535)
    for c in range(3):
        np.testing.assert_array_equal(img[c], expect)
    assert img[:, 0, 0].tolist() == [0, 0, 0] and img[:, 0, 3].tolist() == [1, 1, 1]
    # 16-bit precision kept: 1/65535 is distinguishable from 0
    assert 0 < img[0, 0, 1] < 1e-4


def test_palette_png(tmp_path):
    im = Image.new("P", (3, 2))
    im.putpalette([255, 0, 0, 0, 255, 0, 10, 20, 30])
    im.putdata([0, 1, 2, 2, 1, 0])
    path = tmp_path / "pal.png"
    im.save(path)
    assert _mode(path) == "P"
    img = load_image(path)
    assert img.shape == (3, 2, 3)
    assert (img[:, 0, 0] * 255).round().tolist() == [255, 0, 0]
    assert (img[:, 0, 1] * 255).round().tolist() == [0, 255, 0]
    assert (img[:, 0, 2] * 255).round().tolist() == [10, 20, 30]
    assert (img[:, 1, 2] * 255).round().tolist() == [255, 0, 0]


def test_palette_png_with_transparency(tmp_path, no_warnings):
    im = Image.new("P", (2, 2))
    im.putpalette([255, 0, 0, 0, 255, 0])
    im.putpixel((1, 1), 1)
    im.info["transparency"] = 0   # index 0 (red) is transparent: its colour is still kept
    path = tmp_path / "pal_t.png"
    im.save(path, transparency=0)
    img = load_image(path)
    assert (img[:, 0, 0] * 255).round().tolist() == [255, 0, 0]
    assert (img[:, 1, 1] * 255).round().tolist() == [0, 255, 0]


def test_bilevel_png(tmp_path):
    px = np.array([[True, False], [False, True]])
    path = tmp_path / "bw.png"
    Image.fromarray(px).save(path)
    assert _mode(path) == "1"
    img = load_image(path)
    np.testing.assert_array_equal(img, np.broadcast_to(px.astype(np.float32), (3, 2, 2)))


def test_jpeg_rgb_and_grey(tmp_path):
    yy, xx = np.mgrid[0:32, 0:48]
    px = np.stack([xx * 5, yy * 7, np.full_like(xx, 90)], axis=-1).astype(np.uint8)
    path = tmp_path / "photo.jpg"
    Image.fromarray(px).save(path, quality=95)
    img = load_image(path)
    assert img.shape == (3, 32, 48) and img.dtype == np.float32
    assert 0 <= img.min() and img.max() <= 1
    assert np.abs(img - _chw(px)).mean() < 0.02      # lossy, but close

    gpath = tmp_path / "grey.jpeg"
    Image.fromarray(px[..., 0]).save(gpath)
    g = load_image(gpath)
    assert g.shape == (3, 32, 48)
    np.testing.assert_array_equal(g[0], g[1])
    np.testing.assert_array_equal(g[0], g[2])


# EXIF orientation (tag 0x0112), as the EXIF/TIFF standard defines it: the screen
# side on which the stored image's row 0 and column 0 are to be displayed.
EXIF_SIDES = {1: ("top", "left"), 2: ("top", "right"), 3: ("bottom", "right"),
              4: ("bottom", "left"), 5: ("left", "top"), 6: ("right", "top"),
              7: ("right", "bottom"), 8: ("left", "bottom")}


def _displayed(stored, orientation):
    """The (h', w', 3) image a viewer shows for a stored (h, w, 3) one."""
    row0, col0 = EXIF_SIDES[orientation]
    h, w = stored.shape[:2]
    i, j = np.indices((h, w))                   # stored row and column of each pixel
    if row0 in ("top", "bottom"):               # rows stay rows
        r = i if row0 == "top" else h - 1 - i
        c = j if col0 == "left" else w - 1 - j
        out = np.empty((h, w, 3), stored.dtype)
    else:                                       # rows become columns
        c = i if row0 == "left" else h - 1 - i
        r = j if col0 == "top" else w - 1 - j
        out = np.empty((w, h, 3), stored.dtype)
    out[r, c] = stored[i, j]
    return out


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied(tmp_path, orientation):
    px = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)   # every pixel distinct
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"                     # lossless, with an eXIf chunk
    Image.fromarray(px).save(path, exif=exif)
    with Image.open(path) as im:
        assert im.getexif()[0x0112] == orientation
    np.testing.assert_array_equal(load_image(path), _chw(_displayed(px, orientation)))


def test_exif_orientation_of_a_jpeg(tmp_path):
    px = np.zeros((10, 20, 3), dtype=np.uint8)   # landscape: red left half, stored as is
    px[:, :10, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6                            # row 0 on the right: rotate 90 degrees clockwise
    path = tmp_path / "rotated.jpg"
    Image.fromarray(px).save(path, exif=exif, quality=95)
    img = load_image(path)
    assert img.shape == (3, 20, 10)             # displayed as portrait
    assert img[0, :8].mean() > 0.9 and img[0, 12:].mean() < 0.1   # the red half is on top


def test_load_with_size(tmp_path):
    px = RNG.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(px).save(path)
    assert load_image(path, size=16).shape == (3, 16, 16)
    assert load_image(path, size=(8, 30), resize="stretch").shape == (3, 8, 30)
    np.testing.assert_array_equal(load_image(path, size=16),
                                  resize_image(load_image(path), 16))
    np.testing.assert_array_equal(load_image(path, size=(8, 30), resize="stretch"),
                                  resize_image(load_image(path), (8, 30), mode="stretch"))


def test_text_file_with_png_extension(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image\n")
    with pytest.raises(ValueError) as info:
        load_image(bad)
    msg = str(info.value)
    assert str(bad) in msg and "not a recognised image file" in msg


def test_missing_file(tmp_path):
    missing = tmp_path / "no" / "such" / "image.png"
    with pytest.raises(FileNotFoundError) as info:
        load_image(missing)
    assert str(missing) in str(info.value) and "no such file" in str(info.value)
    with pytest.raises(FileNotFoundError, match="nothere.jpg"):
        load_image("nothere.jpg")


def test_truncated_png_and_directory(tmp_path):
    px = RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    good = tmp_path / "good.png"
    Image.fromarray(px).save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="cut.png"):
        load_image(cut)
    with pytest.raises(ValueError, match="directory"):
        load_image(tmp_path)


def test_load_image_argument_errors(tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    with pytest.raises(TypeError, match="path"):
        load_image(123)
    with pytest.raises(ValueError, match="resize"):
        load_image(path, size=2, resize="crop")
    with pytest.raises(ValueError, match=">= 1"):
        load_image(path, size=0)


# --------------------------------------------------------------------------- resize_image

def _stripes(h, w, axis):
    """Red / green / blue bands: the outer quarters red and blue, the middle half green."""
    img = np.zeros((3, h, w), np.float32)
    n = w if axis == 2 else h
    q = n // 4
    sl = [slice(None)] * 3
    for c, (a, b) in enumerate([(0, q), (q, n - q), (n - q, n)]):
        sl[axis] = slice(a, b)
        idx = [c] + sl[1:]
        img[tuple(idx)] = 1.0
    return img


def test_center_crop_landscape_takes_the_middle():
    img = _stripes(50, 100, axis=2)   # 50 rows, 100 columns: red 0-25, green 25-75, blue 75-100
    out = resize_image(img, 32)
    assert out.shape == (3, 32, 32) and out.dtype == np.float32
    # the centred 50x50 square is exactly the green band; only the outermost
    # output columns may pick up a little of the neighbours through the filter
    inner = out[:, :, 1:-1]
    np.testing.assert_allclose(inner[1], 1.0, atol=1e-6)
    np.testing.assert_allclose(inner[[0, 2]], 0.0, atol=1e-6)
    assert out[1, :, [0, -1]].min() > 0.7
    # stretch keeps everything: red on the left, blue on the right
    st = resize_image(img, 32, mode="stretch")
    assert st[0, :, :6].min() > 0.99 and st[2, :, -6:].min() > 0.99
    assert st[1, :, 10:22].min() > 0.99


def test_center_crop_portrait_takes_the_middle():
    img = _stripes(100, 50, axis=1)   # green band in rows 25-75
    out = resize_image(img, 20)
    assert out.shape == (3, 20, 20)
    np.testing.assert_allclose(out[1, 1:-1], 1.0, atol=1e-6)
    np.testing.assert_allclose(out[[0, 2], 1:-1], 0.0, atol=1e-6)


def test_center_crop_position_is_exact():
    # horizontal ramp: value = column index / 99; rows: vertical ramp in channel 1
    h, w, size = 50, 100, 32
    img = np.zeros((3, h, w), np.float64)
    img[0] = np.arange(w)[None, :] / (w - 1)
    img[1] = np.arange(h)[:, None] / (h - 1)
    out = resize_image(img, size)
    scale = h / size                                  # source pixels per output pixel
    j = np.arange(size)
    src_x = (w - h) / 2 + (j + 0.5) * scale - 0.5     # centred 50x50 window
    np.testing.assert_allclose(out[0, size // 2], src_x / (w - 1), atol=0.15 / (w - 1))
    src_y = (j + 0.5) * scale - 0.5                   # all rows are kept
    np.testing.assert_allclose(out[1, 2:-2, size // 2], src_y[2:-2] / (h - 1), atol=0.15 / (h - 1))


def test_center_crop_rectangular_target_covers():
    img = _stripes(50, 100, axis=1)                   # bands along rows: 0-12 red, 12-38 green, 38-50 blue
    # target 10x40: scale max(10/50, 40/100) = 0.4; keeps all columns, rows 12.5-37.5
    out = resize_image(img, (10, 40))
    assert out.shape == (3, 10, 40)
    np.testing.assert_allclose(out[1, 1:-1], 1.0, atol=1e-6)


@pytest.mark.parametrize("mode", ["center-crop", "stretch"])
@pytest.mark.parametrize("size", [1, 7, (5, 13), 64])
def test_constant_image_stays_constant(mode, size):
    img = np.full((3, 23, 31), 0.3, np.float32)
    img[1] = 0.8
    img[2] = 0.0
    out = resize_image(img, size, mode=mode)
    h, w = (size, size) if isinstance(size, int) else size
    assert out.shape == (3, h, w)
    assert (out[0] == np.float32(0.3)).all()
    assert (out[1] == np.float32(0.8)).all()
    assert (out[2] == 0).all()


def test_stretch_bilinear_upsampling_values():
    img = np.zeros((3, 2, 2))
    img[:, :, 1] = 1.0
    out = resize_image(img, (3, 4), mode="stretch")
    # pixel centres map to pixel centres: source x = -0.25, 0.25, 0.75, 1.25 (edges clamped)
    np.testing.assert_allclose(out, np.broadcast_to([0, 0.25, 0.75, 1], (3, 3, 4)), atol=1e-6)


def test_downscaling_is_antialiased():
    cb = (np.indices((64, 64)).sum(axis=0) % 2).astype(np.float32)
    out = resize_image(np.stack([cb] * 3), 16)
    # point sampling would give 0s and 1s; the widened filter averages to grey
    np.testing.assert_allclose(out, 0.5, atol=0.01)


def test_resize_identity_and_no_input_mutation():
    img = RNG.random((3, 9, 11)).astype(np.float32)
    before = img.copy()
    out = resize_image(img, (9, 11), mode="stretch")
    np.testing.assert_allclose(out, img, atol=1e-6)
    np.testing.assert_array_equal(img, before)


def test_resize_validation():
    img = np.zeros((3, 8, 8))
    with pytest.raises(ValueError, match=">= 1"):
        resize_image(img, 0)
    with pytest.raises(ValueError, match="width"):
        resize_image(img, (4, 0))
    with pytest.raises(ValueError, match="pair"):
        resize_image(img, (4, 4, 4))
    with pytest.raises(TypeError, match="integer"):
        resize_image(img, 4.5)
    with pytest.raises(TypeError, match="integer"):
        resize_image(img, True)
    with pytest.raises(ValueError, match="mode"):
        resize_image(img, 4, mode="crop")
    with pytest.raises(ValueError, match="channel-last"):
        resize_image(np.zeros((8, 8, 3)), 4)
    with pytest.raises(ValueError, match=r"\(3, h, w\)"):
        resize_image(np.zeros((8, 8)), 4)
    with pytest.raises(ValueError, match=r"\(3, h, w\)"):
        resize_image(np.zeros((1, 3, 8, 8)), 4)
    bad = img.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        resize_image(bad, 4)
    with pytest.raises(ValueError, match="empty"):
        resize_image(np.zeros((3, 0, 5)), 4)
    assert resize_image(np.zeros((3, 8, 8), dtype=np.uint8), np.int64(4)).shape == (3, 4, 4)


# --------------------------------------------------------------------------- sample images

def test_sample_image_is_a_real_photo():
    img = sample_image()
    assert img.shape == (3, 224, 224) and img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0
    assert img.std() > 0.05
    assert np.unique(img).size > 100
    assert not np.array_equal(img[0], img[2])  # colour, not grey
    small = sample_image("grace_hopper", size=32)
    assert small.shape == (3, 32, 32)


def test_sample_image_is_matplotlibs_grace_hopper():
    from matplotlib import cbook
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    full = sample_image("grace_hopper", size=None)
    np.testing.assert_array_equal(full, load_image(path))
    assert full.shape == (3, 600, 512)
    assert sample_image(size=(40, 20)).shape == (3, 40, 20)


def test_sample_names_and_unknown_name():
    names = sample_names()
    assert names[0] == "grace_hopper"
    with pytest.raises(ValueError) as info:
        sample_image("lena")
    assert "lena" in str(info.value) and "grace_hopper" in str(info.value)
    with pytest.raises(ValueError, match=">= 1"):
        sample_image(size=0)


def test_sample_names_without_scikit_image(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)   # makes `import skimage` raise ImportError
    monkeypatch.delitem(sys.modules, "skimage.data", raising=False)
    assert sample_names() == ["grace_hopper"]
    with pytest.raises(ValueError, match="scikit-image"):
        sample_image("astronaut")


def test_scikit_image_samples_with_fake_module(monkeypatch):
    class FakeData:
        @staticmethod
        def astronaut():
            return np.full((30, 40, 3), 255, np.uint8)

        @staticmethod
        def coffee():
            return np.zeros((20, 20, 3), np.uint8)

        chelsea = rocket = coffee

        @staticmethod
        def stereo_motorcycle():
            left = np.zeros((10, 12, 3), np.uint8)
            left[..., 1] = 51
            return left, np.ones((10, 12, 3), np.uint8), np.zeros((10, 12))

    monkeypatch.setattr(images, "_skimage_data", lambda: FakeData)
    assert sample_names() == ["grace_hopper", "astronaut", "coffee", "chelsea", "rocket",
                              "motorcycle"]
    a = sample_image("astronaut", size=16)
    assert a.shape == (3, 16, 16) and a.dtype == np.float32 and (a == 1).all()
    assert sample_image("astronaut", size=None).shape == (3, 30, 40)
    m = sample_image("motorcycle", size=None)
    np.testing.assert_allclose(m[1], 0.2)
    assert (m[[0, 2]] == 0).all()


# --------------------------------------------------------------------------- preprocess

def test_imagenet_mean_constant():
    np.testing.assert_allclose(IMAGENET_MEAN_RGB_255, [123.68, 116.779, 103.939], rtol=1e-6)
    with pytest.raises(ValueError):
        IMAGENET_MEAN_RGB_255[0] = 0


def test_preprocess_mean_values_and_shapes():
    zeros = np.zeros((3, 4, 5))
    x = preprocess(zeros)
    assert x.shape == (1, 3, 4, 5) and x.dtype == np.float32
    for c in range(3):
        np.testing.assert_allclose(x[0, c], -IMAGENET_MEAN_RGB_255[c], rtol=1e-6)
    ones = preprocess(np.ones((2, 3, 4, 5), np.float32))
    assert ones.shape == (2, 3, 4, 5)
    np.testing.assert_allclose(ones[1, :, 2, 3], 255 - np.array([123.68, 116.779, 103.939]),
                               rtol=1e-6)
    img = RNG.random((3, 4, 5))
    np.testing.assert_allclose(preprocess(img, mean=None)[0], img * 255, rtol=1e-6)
    np.testing.assert_allclose(preprocess(img, mean=None, scale=1.0)[0], img, rtol=1e-6)
    # the ImageNet mean follows the scale: on the [0, 1] scale it is mean / 255
    np.testing.assert_allclose(preprocess(zeros, scale=1.0)[0, :, 0, 0],
                               -np.array([123.68, 116.779, 103.939]) / 255, rtol=1e-6)
    np.testing.assert_allclose(preprocess(zeros, mean=[1, 2, 3])[0, :, 0, 0], [-1, -2, -3])
    np.testing.assert_allclose(preprocess(zeros, mean=0.5)[0], -0.5)


def test_preprocess_deprocess_round_trip():
    img = RNG.random((2, 3, 6, 7)).astype(np.float32)
    before = img.copy()
    x = preprocess(img)
    np.testing.assert_array_equal(img, before)       # input untouched
    back = deprocess(x)
    assert back.shape == img.shape and back.dtype == np.float32
    np.testing.assert_allclose(back, img, atol=2e-6)
    for kwargs in ({"mean": None}, {"scale": 1.0}, {"mean": [0.1, 0.2, 0.3], "scale": 2.0}):
        np.testing.assert_allclose(deprocess(preprocess(img, **kwargs), **kwargs), img, atol=2e-6)
    single = deprocess(preprocess(img[0])[0])
    assert single.shape == (3, 6, 7)
    np.testing.assert_allclose(single, img[0], atol=2e-6)


def test_deprocess_clips():
    x = np.zeros((1, 3, 2, 2))
    x[0, 0, 0, 0] = 1000.0
    x[0, 1, 0, 0] = -1000.0
    out = deprocess(x)
    assert out[0, 0, 0, 0] == 1.0 and out[0, 1, 0, 0] == 0.0
    np.testing.assert_allclose(out[0, :, 1, 1], IMAGENET_MEAN_RGB_255 / 255, rtol=1e-6)


def test_preprocess_validation():
    with pytest.raises(ValueError, match=r"\(3, h, w\)"):
        preprocess(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="channel"):
        preprocess(np.zeros((1, 4, 4, 3)))
    bad = np.zeros((3, 2, 2))
    bad[1, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        preprocess(bad)
    bad[1, 1, 1] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        preprocess(bad)
    with pytest.raises(TypeError, match="255"):
        preprocess(np.zeros((3, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="mean"):
        preprocess(np.zeros((3, 2, 2)), mean="caffe")
    with pytest.raises(ValueError, match="mean"):
        preprocess(np.zeros((3, 2, 2)), mean=[1, 2])
    with pytest.raises(ValueError, match="scale"):
        preprocess(np.zeros((3, 2, 2)), scale=0)
    with pytest.raises(ValueError, match="NaN"):
        deprocess(np.full((1, 3, 2, 2), np.nan))
    with pytest.raises(ValueError, match=r"\(n, 3, h, w\)"):
        deprocess(np.zeros((1, 1, 3, 2, 2)))


def test_preprocess_feeds_the_network():
    import randvis
    x = preprocess(sample_image(size=32))
    net = randvis.three_layer_cnn(4, input_shape=x.shape[1:], rng=0)
    maps = randvis.visualize(net, x)
    assert maps["gbp"].shape == x.shape


# --------------------------------------------------------------------------- normalize_map

def _rgb(values):
    """A (3, 1, k) map with the same row of values on every channel."""
    return np.tile(np.asarray(values, dtype=np.float64), (3, 1, 1))


def test_normalize_minmax(no_warnings):
    m = np.array([[[-2.0, 0.0]], [[1.0, 2.0]], [[6.0, 0.0]]])      # (3, 1, 2): min -2, max 6
    out = normalize_map(m, "minmax")
    assert out.shape == m.shape and out.dtype == np.float64
    np.testing.assert_allclose(out[:, 0, :], [[0.0, 0.25], [0.375, 0.5], [1.0, 0.25]])
    np.testing.assert_allclose(normalize_map(m), out)               # the default


def test_normalize_signed(no_warnings):
    m = np.array([[[-2.0, 0.0]], [[1.0, 4.0]], [[-4.0, 0.5]]])     # max |m| = 4
    out = normalize_map(m, "signed")
    np.testing.assert_allclose(out[:, 0, :], [[0.25, 0.5], [0.625, 1.0], [0.0, 0.5625]])
    # only positive values: still centred on 0.5, unlike minmax
    np.testing.assert_allclose(normalize_map(_rgb([1.0, 2.0]), "signed")[0, 0], [0.75, 1.0])


def test_normalize_abs(no_warnings):
    m = np.zeros((3, 1, 3))
    m[:, 0, 0] = [1.0, -2.0, 0.0]     # sum |m| = 3
    m[:, 0, 1] = [0.0, 0.0, -6.0]     # 6 (the max)
    m[:, 0, 2] = [0.5, 0.5, -0.5]     # 1.5
    out = normalize_map(m, "abs")
    assert out.shape == (3, 1, 3)
    for c in range(3):
        np.testing.assert_allclose(out[c, 0], [0.5, 1.0, 0.25])


def test_normalize_batch_is_per_sample(no_warnings):
    a = _rgb([0.0, 1.0, 2.0])
    b = 100 * _rgb([-1.0, 0.0, 3.0])
    batch = np.stack([a, b])
    for mode in ("minmax", "signed", "abs"):
        out = normalize_map(batch, mode)
        assert out.shape == batch.shape
        np.testing.assert_allclose(out[0], normalize_map(a, mode))
        np.testing.assert_allclose(out[1], normalize_map(b, mode))
    np.testing.assert_allclose(normalize_map(batch)[1, 0, 0], [0.0, 0.25, 1.0])


@pytest.mark.parametrize("value", [0.0, 3.0, -1e-30])
def test_normalize_constant_maps(no_warnings, value):
    m = np.full((2, 3, 4, 5), value)
    np.testing.assert_array_equal(normalize_map(m, "minmax"), 0.0)
    if value == 0.0:
        np.testing.assert_array_equal(normalize_map(m, "signed"), 0.5)
        np.testing.assert_array_equal(normalize_map(m, "abs"), 0.0)
    else:  # not degenerate for these two: the sign / magnitude is still shown
        np.testing.assert_array_equal(normalize_map(m, "signed"), 1.0 if value > 0 else 0.0)
        np.testing.assert_array_equal(normalize_map(m, "abs"), 1.0)


def test_normalize_dtype_range_and_no_mutation():
    m = RNG.normal(size=(3, 3, 8, 8)).astype(np.float32)
    before = m.copy()
    for mode in ("minmax", "signed", "abs"):
        out = normalize_map(m, mode)
        assert out.dtype == np.float32 and out.shape == m.shape
        assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(m, before)
    assert normalize_map(np.arange(12).reshape(3, 2, 2)).dtype == np.float64


def test_normalize_validation():
    with pytest.raises(ValueError, match="mode"):
        normalize_map(np.zeros((3, 2, 2)), "log")
    with pytest.raises(ValueError, match="NaN"):
        normalize_map(np.full((3, 2, 2), np.nan))
    with pytest.raises(ValueError, match="shape"):
        normalize_map(np.zeros((2, 2)))


# --------------------------------------------------------------------------- to_hwc

def test_to_hwc():
    x = RNG.random((3, 4, 5))
    y = to_hwc(x)
    assert y.shape == (4, 5, 3)
    assert y[2, 3, 1] == x[1, 2, 3]
    assert to_hwc(np.zeros((2, 3, 4, 5))).shape == (2, 4, 5, 3)
    with pytest.raises(ValueError, match="shape"):
        to_hwc(np.zeros((4, 5, 3)))


def test_panel_uses_images_helpers(tmp_path):
    from randvis.plotting import save_panel
    img = sample_image(size=16)
    maps = {"gbp": RNG.normal(size=(3, 16, 16)), "saliency": np.zeros((3, 16, 16))}
    for mode in ("minmax", "signed", "abs"):
        out = save_panel(tmp_path / f"p_{mode}.png", img, maps, normalize=mode)
        assert os.path.getsize(out) > 0

