"""How maps become pixels: sign modes, channel reductions, percentile clipping,
the RGB, heat map, blend and mask modes, and figure files by extension.

The maps are tiny and hand-made so that every expected pixel is computed here
by hand: a 1 x 101 strip holding 0, 1, ..., 100 has its P-th percentile at
exactly P (numpy's linear interpolation lands on a sample), also when the
three channels repeat it.
"""
import numpy as np
import pytest
from matplotlib import colormaps

from randvis.images import normalize_map
from randvis.plotting import (Display, colour_range_used, figure_format, grid, panel, reduce_channels,
                              render, save_panel, select_sign)

STRIP = np.arange(101.0).reshape(1, 1, 101) * np.ones((3, 1, 1))   # percentile P == P
IMG = np.stack([np.full((1, 101), v) for v in (0.2, 0.4, 0.6)])     # grey level 0.4


def _one_channel(v):
    """A map whose channel sum is ``v`` (channels 2 and 3 zero)."""
    m = np.zeros((3,) + np.shape(v))
    m[0] = v
    return m


# --------------------------------------------------------------------------- RGB mode

def test_default_is_the_papers_global_minmax():
    m = np.random.default_rng(0).normal(size=(3, 5, 6)) * 3 + 1
    got = render(np.zeros_like(m), m).rgb
    want = np.moveaxis((m - m.min()) / (m.max() - m.min()), 0, -1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)
    for mode in ("minmax", "signed", "abs"):   # clip None or 100: the modes as they always were
        np.testing.assert_array_equal(normalize_map(m, mode, clip=100), normalize_map(m, mode))


def test_minmax_clips_at_both_percentiles():
    shown = render(IMG, STRIP, Display(clip=90))      # 10th and 90th percentiles: 10 and 90
    row = shown.rgb[0, :, 0]
    np.testing.assert_allclose(row, np.clip((np.arange(101) - 10) / 80, 0, 1), atol=1e-12)
    assert row[10] == 0 and row[50] == 0.5 and row[90] == 1 and row[100] == 1 and row[3] == 0


def test_signed_and_abs_rgb_clip_at_the_percentile_of_the_magnitudes():
    m = STRIP - 0.0                                   # all >= 0: |m| = m
    signed = normalize_map(m, "signed", clip=80)       # 80th percentile of |m| = 80
    np.testing.assert_allclose(signed[0, 0], 0.5 + 0.5 * np.minimum(np.arange(101) / 80, 1), atol=1e-12)
    absolute = normalize_map(m, "abs", clip=80)        # per-pixel sum over channels = 3v: percentile 240
    np.testing.assert_allclose(absolute[1, 0], np.minimum(3 * np.arange(101) / 240, 1), atol=1e-12)


def test_rgb_shows_the_selected_sign():
    m = STRIP - 50                                    # -50 ... 50
    pos = render(IMG, m, Display(sign="positive")).rgb[0, :, 0]
    np.testing.assert_allclose(pos, np.maximum(np.arange(101) - 50, 0) / 50, atol=1e-12)
    neg = render(IMG, m, Display(sign="negative")).rgb[0, :, 0]
    np.testing.assert_allclose(neg, np.maximum(50 - np.arange(101), 0) / 50, atol=1e-12)


# --------------------------------------------------------------------------- sign and channels

def test_sign_selection_by_hand():
    m = np.array([[-3.0, -0.5, 0.0, 2.0]]) * np.ones((3, 1, 1))
    assert select_sign(m, "all")[0, 0].tolist() == [-3.0, -0.5, 0.0, 2.0]
    assert select_sign(m, "positive")[0, 0].tolist() == [0.0, 0.0, 0.0, 2.0]
    assert select_sign(m, "negative")[0, 0].tolist() == [3.0, 0.5, 0.0, 0.0]
    assert select_sign(m, "absolute")[0, 0].tolist() == [3.0, 0.5, 0.0, 2.0]


def test_channel_reductions_by_hand():
    m = np.array([[[3.0, 1.0, -2.0]], [[-4.0, 1.0, 2.0]], [[0.0, -1.0, 0.0]]])  # three pixels
    np.testing.assert_array_equal(reduce_channels(m, "sum")[0], [-1.0, 1.0, 0.0])
    np.testing.assert_array_equal(reduce_channels(m, "maxabs")[0], [-4.0, 1.0, -2.0])  # ties: first channel
    np.testing.assert_allclose(reduce_channels(m, "l2")[0], [5.0, np.sqrt(3.0), np.sqrt(8.0)], rtol=1e-15)


# --------------------------------------------------------------------------- heat map, blend, mask

def test_heatmap_clips_at_the_percentile_and_uses_the_colormap():
    d = Display(mode="heatmap", clip=90)                # signed values: bwr, zero in the middle
    shown = render(IMG, _one_channel(np.arange(101.0).reshape(1, 101)), d)
    levels = (np.minimum(np.arange(101) / 90, 1) + 1) / 2
    np.testing.assert_allclose(shown.levels[0], levels, atol=1e-12)
    np.testing.assert_allclose(shown.rgb[0], colormaps["bwr"](levels)[:, :3], atol=1e-12)
    assert shown.limits == (-90.0, 90.0) and shown.cmap == "bwr"
    assert shown.levels[0, 45] == 0.75 and shown.levels[0, 95] == 1.0


def test_heatmap_sign_modes_pick_their_pixels():
    m = _one_channel(np.linspace(-2, 2, 5).reshape(1, 5))     # -2 -1 0 1 2
    pos = render(IMG[:, :, :5], m, Display(mode="heatmap", sign="positive"))
    np.testing.assert_allclose(pos.levels[0], [0, 0, 0, 0.5, 1.0])
    assert pos.cmap == "inferno" and pos.limits == (0.0, 2.0)
    neg = render(IMG[:, :, :5], m, Display(mode="heatmap", sign="negative", cmap="Blues"))
    np.testing.assert_allclose(neg.levels[0], [1.0, 0.5, 0, 0, 0])
    np.testing.assert_allclose(neg.rgb[0], colormaps["Blues"]([1.0, 0.5, 0, 0, 0])[:, :3])
    both = render(IMG[:, :, :5], m, Display(mode="heatmap", sign="absolute"))
    np.testing.assert_allclose(both.levels[0], [1.0, 0.5, 0, 0.5, 1.0])


def test_blend_is_alpha_times_heat_over_the_grey_image():
    m = _one_channel(np.arange(101.0).reshape(1, 101))
    for alpha in (0.0, 0.3, 1.0):
        d = Display(mode="blend", sign="positive", alpha=alpha, cmap="viridis")
        got = render(IMG, m, d).rgb[0]
        heat = colormaps["viridis"](np.arange(101) / 100)[:, :3]
        np.testing.assert_allclose(got, (1 - alpha) * 0.4 + alpha * heat, atol=1e-12)


def test_mask_scales_the_image_by_the_clipped_map():
    m = _one_channel(np.arange(101.0).reshape(1, 101))
    shown = render(IMG, m, Display(mode="mask", sign="absolute", clip=50))     # 50 and above: the image
    weight = np.minimum(np.arange(101) / 50, 1)
    np.testing.assert_allclose(shown.rgb[0], weight[:, None] * [0.2, 0.4, 0.6], atol=1e-12)
    with pytest.raises(ValueError, match="mask mode needs non-negative"):
        Display(mode="mask")


def test_sparse_maps_still_show_their_values():
    """A percentile of 0 (most pixels exactly zero, as in GBP) falls back to the maximum."""
    m = _one_channel(np.r_[np.zeros(99), 1.0, 4.0].reshape(1, 101))
    shown = render(IMG, m, Display(mode="heatmap", sign="positive", clip=95))
    assert shown.limits == (0.0, 4.0) and shown.levels[0, -1] == 1.0 and shown.levels[0, -2] == 0.25


def test_all_zero_maps_do_not_divide_by_zero():
    for d in (Display(), Display(mode="heatmap", clip=99), Display(mode="mask", sign="absolute")):
        shown = render(IMG, np.zeros((3, 1, 101)), d)
        assert np.isfinite(shown.rgb).all()


# --------------------------------------------------------------------------- settings in words

def test_descriptions_name_every_setting():
    assert Display(clip=99).describe() == "RGB, min-max, sign all, clip 1st-99th percentile"
    text = Display(mode="blend", sign="positive", reduce="l2", clip=99.5, alpha=0.4).describe()
    assert text == ("heat map over the image, sign positive, channels l2, clip 99.5th percentile, "
                    "colormap inferno, alpha 0.4")
    assert Display(mode="heatmap", clip=100).describe() == "heat map, sign all, channels sum, colormap bwr"


@pytest.mark.parametrize("kwargs, words", [
    (dict(mode="contour"), "mode must be one of"), (dict(sign="both"), "sign must be one of"),
    (dict(reduce="mean"), "reduce must be one of"), (dict(clip=0), "clip must be a percentile"),
    (dict(clip=100.5), "clip must be a percentile"), (dict(clip="99"), "clip must be a percentile"),
    (dict(alpha=1.5), "alpha must be in"), (dict(cmap="no-such-map"), "cmap must be the name"),
    (dict(normalize="log"), "normalize must be one of")])
def test_bad_settings_are_named(kwargs, words):
    with pytest.raises((ValueError, TypeError), match=words):
        Display(**kwargs)


def test_colour_range_of_a_flat_panel_and_a_clipped_one():
    m = np.linspace(0, 1, 400).reshape(20, 20) * np.ones((3, 1, 1))
    m[:, 3, 4] = 1000.0                               # one outlier pixel flattens min-max
    img = np.zeros((3, 20, 20))
    assert colour_range_used(render(img, m)) == pytest.approx(0.98 * 1 / 1000, rel=0.05)
    assert colour_range_used(render(img, m, Display(clip=99))) == pytest.approx(1.0, abs=1e-3)


# --------------------------------------------------------------------------- figures and files

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF", "jpg": b"\xff\xd8\xff", "jpeg": b"\xff\xd8\xff"}


@pytest.mark.parametrize("ext", ["png", "pdf", "svg", "jpg", "jpeg"])
def test_the_extension_sets_the_format(tmp_path, ext):
    img = np.random.default_rng(0).random((3, 8, 8))
    path = tmp_path / f"panel.{ext}"
    save_panel(path, img, {"saliency": img - 0.5}, title="t", display=Display(mode="heatmap"))
    head = path.read_bytes()[:400]
    if ext == "svg":
        assert head.startswith(b"<?xml") and b"<svg" in head
    else:
        assert head.startswith(MAGIC[ext])
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_unknown_extension_is_refused_before_drawing(tmp_path, monkeypatch):
    import randvis.plotting as plotting

    monkeypatch.setattr(plotting, "panel", lambda *a, **k: pytest.fail("drew a figure"))
    with pytest.raises(ValueError, match=r"\.tiff.*\.png, \.pdf, \.svg, \.jpg, \.jpeg"):
        save_panel(tmp_path / "x.tiff", np.zeros((3, 4, 4)), {})
    with pytest.raises(ValueError, match="from its extension"):
        figure_format("maps")
    assert not list(tmp_path.iterdir())


def test_grid_rows_titles_and_colour_bars():
    img = np.random.default_rng(1).random((3, 6, 6))
    maps = {"saliency": img - 0.5, "deconvnet": img, "gbp": 2 * img}
    fig = grid(img, [("281 tabby", maps), ("285 Egyptian cat", maps)], title="model\ndisplay",
               display=Display(mode="heatmap", sign="positive"))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:4] == ["input", "Saliency", "DeconvNet", "GBP"]
    assert [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()] == ["281 tabby", "285 Egyptian cat"]
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 6
    assert bars[2].get_ylim() == pytest.approx((0.0, 2 * img.sum(axis=0).max()))   # GBP: channel sum
    rgb = panel(img, maps)                            # the RGB mode has no colour bar
    assert len(rgb.axes) == 4
