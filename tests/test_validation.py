"""Bad arguments get a named error, never a raw Python error or a silent wrong result.

Every row of the table is a bad call; the test asserts the exception type and
that the one-line message names the argument (and the bad value where it has a
short form). Memory refusals are checked against randvis.limits before any
weight is drawn.
"""
import functools
import tracemalloc

import numpy as np
import pytest

import randvis
from randvis import limits
from randvis import models as M
from randvis import stats as S
from randvis import theory as T
from randvis.attacks import cross_entropy_seed, fgsm, fgsm_flip
from randvis.efficientnet import efficientnet_lite0, fold_batchnorm
from randvis.layers import Conv2d, Dense, DepthwiseConv2d, StreamedDense
from randvis.methods import make_seed
from randvis.rules import Rule, get_rule

INF, NAN = float("inf"), float("nan")
SHAPE = (3, 8, 8)
cnn = functools.partial(randvis.three_layer_cnn, 4, input_shape=SHAPE)


@functools.lru_cache(maxsize=None)
def _net():
    return randvis.three_layer_cnn(4, input_shape=SHAPE, n_classes=5, dtype=np.float64, rng=0)


def _x():
    return np.random.default_rng(0).random((1,) + SHAPE)


def _spec():
    return T.RandomNetSpec("cnn", 4, kernel_size=3)


def _img(c=1):
    return np.random.default_rng(1).normal(size=(c, 6, 6))


P = pytest.param
BAD_CALLS = [
    # ---- models: zero and negative sizes (were ZeroDivisionError / IndexError / misleading)
    P(lambda: randvis.three_layer_cnn(4, input_shape=(0, 8, 8)), ValueError, ["input_shape", "(0, 8, 8)"], id="cnn-zero-channels"),
    P(lambda: randvis.three_layer_cnn(4, input_shape=(3, 0, 8)), ValueError, ["input_shape", "(3, 0, 8)"], id="cnn-zero-height"),
    P(lambda: randvis.fcn(4, input_shape=(0, 8, 8)), ValueError, ["input_shape", "(0, 8, 8)"], id="fcn-zero-channels"),
    P(lambda: randvis.fcn(4, input_shape=(3, 8, 0)), ValueError, ["input_shape", "(3, 8, 0)"], id="fcn-zero-width"),
    P(lambda: randvis.random_cnn(2, input_shape=(0, 8, 8)), ValueError, ["input_shape"], id="random-cnn-zero-channels"),
    P(lambda: randvis.vgg16(input_shape=(0, 32, 32)), ValueError, ["input_shape"], id="vgg-zero-channels"),
    P(lambda: randvis.three_layer_cnn(4, input_shape=()), ValueError, ["input_shape", "()"], id="cnn-empty-shape"),
    P(lambda: randvis.fcn(4, input_shape=()), ValueError, ["input_shape", "()"], id="fcn-empty-shape"),
    P(lambda: randvis.random_cnn(2, input_shape=()), ValueError, ["input_shape", "()"], id="random-cnn-empty-shape"),
    P(lambda: randvis.three_layer_cnn(4, input_shape=(-3, 16, 16)), ValueError, ["input_shape", "-3"], id="negative-channels"),
    P(lambda: randvis.three_layer_cnn(4, input_shape=(3, 16.5, 16)), TypeError, ["input_shape", "16.5"], id="fractional-size"),
    P(lambda: randvis.three_layer_cnn(4, input_shape=(3, 16)), ValueError, ["input_shape", "(c, h, w)"], id="two-axes"),
    P(lambda: randvis.three_layer_cnn(4, input_shape="3x8x8"), TypeError, ["input_shape"], id="shape-string"),
    P(lambda: randvis.three_layer_cnn(0), ValueError, ["n_filters", "0"], id="zero-filters"),
    P(lambda: randvis.three_layer_cnn(2.5, input_shape=SHAPE), TypeError, ["n_filters", "2.5"], id="fractional-filters"),
    P(lambda: cnn(kernel_size=0), ValueError, ["kernel_size", "0"], id="zero-kernel"),
    P(lambda: cnn(n_classes=0), ValueError, ["n_classes", "0"], id="zero-classes"),
    P(lambda: randvis.fcn(0, input_shape=SHAPE), ValueError, ["n_hidden", "0"], id="zero-hidden"),
    P(lambda: randvis.fcn(4, n_classes=0, input_shape=SHAPE), ValueError, ["n_classes", "0"], id="fcn-zero-classes"),
    P(lambda: randvis.random_cnn(0, input_shape=SHAPE), ValueError, ["depth", "0"], id="zero-depth"),
    P(lambda: randvis.random_cnn(2, width=0, input_shape=SHAPE), ValueError, ["width", "0"], id="zero-width"),
    P(lambda: randvis.random_cnn(2, kernel_size=0, input_shape=SHAPE), ValueError, ["kernel_size"], id="random-cnn-zero-kernel"),
    P(lambda: randvis.random_cnn(2, pool_every=0, input_shape=SHAPE), ValueError, ["pool_every"], id="zero-pool-every"),
    P(lambda: randvis.random_cnn(4, pool_every=1, input_shape=SHAPE), ValueError, ["pool_every", "smaller than the window"], id="pooled-away"),
    P(lambda: randvis.vgg16(input_shape=(3, 32, 32), widths=(0, 1, 1, 1, 1)), ValueError, ["widths[0]", "0"], id="vgg-zero-width"),
    P(lambda: randvis.vgg16(input_shape=(3, 32, 32), widths=(1, 1)), ValueError, ["widths"], id="vgg-two-widths"),
    P(lambda: randvis.vgg16(input_shape=(3, 32, 32), widths=(1,) * 5, fc_width=0), ValueError, ["fc_width", "0"], id="vgg-zero-fc"),
    P(lambda: randvis.vgg16(input_shape=(3, 100, 100)), ValueError, ["input_shape", "divisible by 32"], id="vgg-size"),
    P(lambda: cnn(kernel_size=9, padding="valid"), ValueError, ["kernel_size=9", "smaller than the window"], id="kernel-too-big"),
    # ---- models: wrong kinds of values
    P(lambda: cnn(pool=(2,)), ValueError, ["pool", "(2,)"], id="pool-one-value"),
    P(lambda: cnn(pool=(2, 0)), ValueError, ["pool", "(2, 0)"], id="pool-zero-stride"),
    P(lambda: cnn(pool="2"), TypeError, ["pool", "'2'"], id="pool-string"),
    P(lambda: cnn(pool_type="min"), ValueError, ["pool_type", "'min'"], id="pool-type"),
    P(lambda: cnn(v_std="1"), TypeError, ["v_std", "'1'"], id="v-std-string"),
    P(lambda: cnn(w_std="1"), TypeError, ["w_std", "'1'"], id="w-std-string"),
    P(lambda: cnn(rng="abc"), TypeError, ["rng", "'abc'"], id="rng-string"),
    P(lambda: cnn(rng=-1), ValueError, ["rng", "-1"], id="rng-negative"),
    P(lambda: cnn(rng=1.5), TypeError, ["rng", "1.5"], id="rng-float"),
    P(lambda: cnn(dtype=int), TypeError, ["dtype", "int64"], id="dtype-int"),
    P(lambda: cnn(dtype="abc"), TypeError, ["dtype", "'abc'"], id="dtype-junk"),
    P(lambda: cnn(init="xavier"), ValueError, ["init", "'xavier'"], id="init"),
    P(lambda: cnn(stream="yes"), TypeError, ["stream", "'yes'"], id="stream-string"),
    P(lambda: cnn(stride=0), ValueError, ["stride", "0"], id="stride-zero"),
    # ---- models: stds that are not finite positive reals (inf passed silently)
    P(lambda: cnn(w_std=INF), ValueError, ["w_std", "inf"], id="w-std-inf"),
    P(lambda: cnn(w_std=NAN), ValueError, ["w_std", "nan"], id="w-std-nan"),
    P(lambda: cnn(w_std=0.0), ValueError, ["w_std", "0.0"], id="w-std-zero"),
    P(lambda: cnn(v_std=-1.0), ValueError, ["v_std", "-1.0"], id="v-std-negative"),
    P(lambda: cnn(w_std=1 + 1j), TypeError, ["w_std", "(1+1j)"], id="w-std-complex"),
    P(lambda: cnn(v_std=np.complex128(2)), TypeError, ["v_std", "complex"], id="v-std-numpy-complex"),
    P(lambda: randvis.fcn(4, input_shape=SHAPE, v_std=INF), ValueError, ["v_std", "inf"], id="fcn-v-std-inf"),
    P(lambda: randvis.random_cnn(2, input_shape=SHAPE, std=INF), ValueError, ["std", "inf"], id="random-cnn-std-inf"),
    P(lambda: M.memory_estimate("resnet50"), ValueError, ["builder", "'resnet50'"], id="estimate-builder"),
    P(lambda: M.he_std(0), ValueError, ["fan_in", "0"], id="he-std-fan-in"),
    P(lambda: M.he_std(8, gain=-2.0), ValueError, ["gain", "-2.0"], id="he-std-gain"),
    # ---- layers: complex, non-finite or empty parameters
    P(lambda: Dense(np.ones((2, 3)) * 1j), TypeError, ["dense weight", "complex"], id="dense-complex"),
    P(lambda: Conv2d(np.ones((2, 3, 1, 1)) * 1j), TypeError, ["conv weight", "complex"], id="conv-complex"),
    P(lambda: DepthwiseConv2d(np.ones((2, 1, 3, 3)) * 1j), TypeError, ["depthwise weight", "complex"], id="depthwise-complex"),
    P(lambda: Dense(np.ones((2, 3)), bias=np.ones(2) * 1j), TypeError, ["dense bias", "complex"], id="bias-complex"),
    P(lambda: Dense(np.full((2, 3), NAN), name="fc"), ValueError, ["fc: dense weight", "NaN"], id="dense-nan"),
    P(lambda: Conv2d(np.ones((2, 3, 1, 1)), bias=[INF, 0.0]), ValueError, ["conv bias", "Inf"], id="conv-bias-inf"),
    P(lambda: Dense(np.ones((2, 3), dtype=bool)), TypeError, ["dense weight", "bool"], id="dense-bool"),
    P(lambda: Dense(np.ones((0, 3))), ValueError, ["dense weight", "(0, 3)"], id="dense-empty"),
    P(lambda: Conv2d(np.ones((0, 3, 1, 1))), ValueError, ["conv weight", "(0, 3, 1, 1)"], id="conv-no-filters"),
    P(lambda: Conv2d(np.ones((2, 0, 3, 3))), ValueError, ["conv weight", "(2, 0, 3, 3)"], id="conv-no-channels"),
    P(lambda: Conv2d(np.ones((2, 3, 0, 1))), ValueError, ["conv weight", "(2, 3, 0, 1)"], id="conv-no-kernel"),
    P(lambda: Dense(np.ones((2, 3)), name=3), TypeError, ["name", "3"], id="layer-name"),
    P(lambda: StreamedDense(3, 2, INF, 0), ValueError, ["std", "inf"], id="streamed-std-inf"),
    P(lambda: StreamedDense(3, 2, 1j, 0), TypeError, ["std", "1j"], id="streamed-std-complex"),
    P(lambda: StreamedDense(3, 2, 0.0, 0), ValueError, ["std", "0.0"], id="streamed-std-zero"),
    P(lambda: StreamedDense(0, 2, 1.0, 0), ValueError, ["in_features", "0"], id="streamed-zero-in"),
    P(lambda: StreamedDense(3, 2.5, 1.0, 0), TypeError, ["out_features", "2.5"], id="streamed-fractional-out"),
    P(lambda: StreamedDense(3, 2, 1.0, -1), ValueError, ["seed", "-1"], id="streamed-seed"),
    P(lambda: StreamedDense(3, 2, 1.0, 0, bias=np.ones(3)), ValueError, ["bias", "(2,)"], id="streamed-bias-shape"),
    P(lambda: StreamedDense(3, 2, 1.0, 0, dtype=np.int32), TypeError, ["dtype"], id="streamed-dtype"),
    # ---- methods
    P(lambda: randvis.visualize(None, _x()), TypeError, ["net", "NoneType"], id="visualize-none"),
    P(lambda: randvis.visualize(_net(), _x(), target=np.ones(5) * 1j), TypeError, ["target", "complex"], id="complex-seed"),
    P(lambda: randvis.visualize(_net(), _x(), target=np.array([1 + 2j])), TypeError, ["target", "complex"], id="complex-class"),
    P(lambda: randvis.visualize(_net(), _x(), target=1.5), TypeError, ["target", "1.5"], id="fractional-target"),
    P(lambda: randvis.visualize(_net(), _x(), target="random", rng="abc"), TypeError, ["rng", "'abc'"], id="random-rng"),
    P(lambda: randvis.visualize(_net(), _x(), return_info="yes"), TypeError, ["return_info"], id="return-info"),
    P(lambda: randvis.visualize(_net(), _x(), methods=[]), ValueError, ["method", "gbp"], id="no-methods"),
    P(lambda: make_seed(np.array([[NAN, 1.0, 0.0]]), "max"), ValueError, ["logits", "NaN"], id="nan-logits-max"),
    P(lambda: make_seed(np.array([[1.0, INF, 0.0]]), 0), ValueError, ["logits", "Inf"], id="inf-logits"),
    P(lambda: make_seed(np.zeros(3), "max"), ValueError, ["logits", "(3,)"], id="logits-1d"),
    P(lambda: make_seed(np.zeros((1, 3), complex), "max"), TypeError, ["logits", "complex"], id="logits-complex"),
    P(lambda: make_seed(np.zeros((2, 3)), np.array([1j, 0, 0])), TypeError, ["target", "complex"], id="make-seed-complex"),
    # ---- rules
    P(lambda: Rule("x", 1, True), TypeError, ["forward_mask", "1"], id="rule-flag"),
    P(lambda: Rule(3, True, True), TypeError, ["name", "3"], id="rule-name"),
    P(lambda: get_rule(3), TypeError, ["rule", "int"], id="get-rule"),
    # ---- theory
    P(lambda: T.RandomNetSpec("cnn", True), TypeError, ["N must be", "True"], id="spec-n-bool"),
    P(lambda: T.RandomNetSpec("cnn", 2.0), TypeError, ["N must be", "2.0"], id="spec-n-float"),
    P(lambda: T.RandomNetSpec("cnn", -1), ValueError, ["N must be", "-1"], id="spec-n-negative"),
    P(lambda: T.RandomNetSpec("cnn", 4, w_std=INF), ValueError, ["w_std", "inf"], id="spec-w-std-inf"),
    P(lambda: T.RandomNetSpec("cnn", 4, v_std="1"), TypeError, ["v_std", "'1'"], id="spec-v-std-string"),
    P(lambda: T.RandomNetSpec("cnn", 4, w_std=1j), TypeError, ["w_std", "1j"], id="spec-w-std-complex"),
    P(lambda: T.RandomNetSpec("cnn", 4, kernel_size=0), ValueError, ["kernel_size", "0"], id="spec-kernel"),
    P(lambda: T.RandomNetSpec("cnn", 4, stride=(1, 0)), ValueError, ["stride"], id="spec-stride"),
    P(lambda: T.RandomNetSpec("cnn", 4, padding="full"), ValueError, ["padding", "'full'"], id="spec-padding"),
    P(lambda: T.fcn_units_to_match(_spec(), _img(), n=-1), ValueError, ["N must be", "-1"], id="fcn-units-negative"),
    P(lambda: T.fcn_units_to_match(_spec(), _img(), n=0), ValueError, ["N must be", "0"], id="fcn-units-zero"),
    P(lambda: T.fcn_units_to_match(_spec(), _img(), n=np.array([4.0, NAN])), ValueError, ["N must be", "nan"], id="fcn-units-nan"),
    P(lambda: T.fcn_units_to_match(_spec(), _img(), n="4"), TypeError, ["n must hold real numbers", "<U1"], id="fcn-units-string"),
    P(lambda: T.predicted_correlation(_spec(), _img(), n=-1), ValueError, ["N must be", "-1"], id="correlation-negative-n"),
    P(lambda: T.predicted_relative_error(_spec(), _img(), n=INF), ValueError, ["N must be", "inf"], id="relative-error-inf-n"),
    P(lambda: T.predicted_correlation(_spec(), _img(), ref=np.full((1, 6, 6), NAN)), ValueError, ["ref", "NaN"], id="ref-nan"),
    P(lambda: T.predicted_correlation(_spec(), _img(), ref=_img() * 1j), TypeError, ["ref", "complex"], id="ref-complex"),
    P(lambda: T.expected_map(_spec(), _img() * 1j), TypeError, ["x", "complex"], id="image-complex"),
    P(lambda: T.expected_map(_spec(), np.ones((0, 4, 4))), ValueError, ["x", "(0, 4, 4)"], id="image-empty"),
    P(lambda: T.expected_map(_spec(), "abc"), TypeError, ["x must hold real numbers", "<U3"], id="image-string"),
    P(lambda: T.expected_map("cnn", _img()), TypeError, ["spec", "str"], id="spec-type"),
    P(lambda: T.patches(T.RandomNetSpec("cnn", 1, kernel_size=7, padding="valid"), np.ones((1, 4, 4))), ValueError,
      ["kernel_size=7", "smaller than the window"], id="patch-too-big"),
    P(lambda: T.place(_spec(), np.ones((2, 2, 1, 3, 3)), (1, 6, 6)), ValueError, ["p must have shape", "(6, 6, 1, 3, 3)"], id="place-shape"),
    P(lambda: T.pixel_covariance(_spec(), _img(3), "deconvnet", [[2, 2], [3, 3]]), ValueError, ["pixels", "3 channels"], id="pairs-on-rgb"),
    P(lambda: T.pixel_covariance(_spec(), _img(), "saliency", [[0, 2.5, 2]]), TypeError, ["pixels", "float64"], id="pixel-fraction"),
    P(lambda: T.pixel_covariance(_spec(), _img(), "saliency", [0, 2, 2]), ValueError, ["pixels", "(3,)"], id="pixel-1d"),
    P(lambda: T.pixel_covariance(_spec(), _img(), "saliency", [[0, 9, 2]]), ValueError, ["pixel 0", "(0, 9, 2)"], id="pixel-outside"),
    P(lambda: T.pixel_covariance(_spec(), _img(), "gbp", [[0, 2, 2]]), ValueError, ["GBP"], id="pixel-gbp"),
    # ---- attacks
    P(lambda: fgsm(_net(), _x(), INF), ValueError, ["eps", "inf"], id="eps-inf"),
    P(lambda: fgsm(_net(), _x(), "1"), TypeError, ["eps", "'1'"], id="eps-string"),
    P(lambda: fgsm(_net(), _x(), -1.0), ValueError, ["eps", "-1.0"], id="eps-negative"),
    P(lambda: fgsm(_net(), _x(), 1j), TypeError, ["eps", "1j"], id="eps-complex"),
    P(lambda: fgsm(None, _x(), 0.1), TypeError, ["net", "NoneType"], id="fgsm-none"),
    P(lambda: fgsm(_net(), _x(), 0.1, label=[1.5]), TypeError, ["label", "float64"], id="label-fraction"),
    P(lambda: fgsm(_net(), _x(), 0.1, label=[9]), ValueError, ["label", "9"], id="label-range"),
    P(lambda: fgsm(_net(), _x(), 0.1, target=[0, 1]), ValueError, ["target", "(2,)"], id="target-shape"),
    P(lambda: fgsm(_net(), _x(), 0.1, label=[0], target=1), ValueError, ["label", "target"], id="label-and-target"),
    P(lambda: fgsm(_net(), _x(), 0.1, lo=1.0, hi=0.0), ValueError, ["lo", "hi"], id="clip-empty"),
    P(lambda: fgsm(_net(), _x(), 0.1, lo=NAN), ValueError, ["lo", "NaN"], id="clip-nan"),
    P(lambda: fgsm_flip(_net(), _x(), []), ValueError, ["eps_grid"], id="grid-empty"),
    P(lambda: fgsm_flip(_net(), _x(), [1.0, 0.1]), ValueError, ["eps_grid", "increasing"], id="grid-order"),
    P(lambda: cross_entropy_seed(np.zeros((1, 3)), np.array([5])), ValueError, ["labels", "5"], id="ce-label-range"),
    P(lambda: cross_entropy_seed(np.full((1, 3), NAN), np.array([0])), ValueError, ["logits", "NaN"], id="ce-nan"),
    # ---- stats
    P(lambda: S.normality([[1.0, 2.0], [3.0]]), ValueError, ["m must be a real numeric array", "[[1.0, 2.0], [3.0]]"], id="ragged-map"),
    P(lambda: S.normality(np.zeros((1, 8, 8)), rng=-1), ValueError, ["rng", "-1"], id="stats-rng"),
    # ---- efficientnet
    P(lambda: efficientnet_lite0(None, input_shape=(3, 32.5, 32)), TypeError, ["input_shape", "32.5"], id="lite0-fraction"),
    P(lambda: efficientnet_lite0(None, input_shape=(3, 32, 32), rng="abc"), TypeError, ["rng", "'abc'"], id="lite0-rng"),
    P(lambda: efficientnet_lite0(None, input_shape=(3, 32, 32), dtype=int), TypeError, ["dtype"], id="lite0-dtype"),
    P(lambda: fold_batchnorm(np.ones((2, 1, 1, 1)), None, np.ones(2), np.zeros(2), np.zeros(2), np.array([-1.0, 1.0]),
                             eps=0.0), ValueError, ["var + eps", "-1.0", "channel 0"], id="fold-negative-var"),
    P(lambda: fold_batchnorm(np.ones((2, 1, 1, 1)), None, np.ones(2) * 1j, np.zeros(2), np.zeros(2), np.ones(2)),
      TypeError, ["gamma", "complex"], id="fold-complex-gamma"),
    P(lambda: fold_batchnorm(np.ones((2, 1, 1, 1)), None, np.ones(3), np.zeros(2), np.zeros(2), np.ones(2)),
      ValueError, ["gamma", "(2,)"], id="fold-shape"),
]


@pytest.mark.parametrize("call, exc, words", BAD_CALLS)
def test_bad_call_gets_a_named_error(call, exc, words):
    with pytest.raises(Exception) as err:
        call()
    assert type(err.value) is exc or (exc is ValueError and isinstance(err.value, ValueError)), \
        f"{type(err.value).__name__}: {err.value}"
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"


# ---- memory: estimated from the shapes, checked before anything is drawn ----------

HUGE = [
    P(lambda: randvis.three_layer_cnn(10 ** 9, input_shape=(3, 64, 64)), ["n_filters=1000000000", "memory limit"], id="filters"),
    P(lambda: randvis.three_layer_cnn(16, input_shape=(3, 100_000, 100_000)), ["(3, 100000, 100000)", "memory limit"], id="image"),
    P(lambda: randvis.three_layer_cnn(64, kernel_size=2000), ["kernel_size=2000", "memory limit"], id="kernel"),
    P(lambda: randvis.fcn(1000, input_shape=(3, 8, 8), n_classes=10 ** 8), ["n_classes=100000000", "streams"], id="classes-streamed"),
    P(lambda: randvis.fcn(1000, input_shape=(3, 8, 8), n_classes=10 ** 8, stream=False), ["stream=False", "memory limit"], id="classes-stored"),
    P(lambda: randvis.fcn(10_000_000), ["n_hidden=10000000", "streams"], id="hidden"),
    P(lambda: randvis.random_cnn(10 ** 12), ["depth=1000000000000", "memory limit"], id="depth"),
    P(lambda: randvis.vgg16(input_shape=(3, 7168, 7168)), ["vgg16(input_shape=(3, 7168, 7168))", "memory limit"], id="vgg"),
    P(lambda: StreamedDense(10 ** 6, 10 ** 6, 1.0, 0, name="big"), ["big", "streams"], id="streamed-layer"),
]


@pytest.mark.parametrize("call, words", HUGE)
def test_oversized_builds_are_refused_up_front(call, words):
    """Each would need terabytes or hours; the refusal names the call and the limit
    and comes before a weight is drawn (traced peak below 1 MiB)."""
    tracemalloc.start()
    try:
        with pytest.raises(limits.ResourceLimitError) as err:
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    assert peak < 1 << 20, peak


@pytest.fixture
def memory_limit():
    yield lambda v: limits.set_limit("memory", v)
    limits.set_limit("memory", None)


def test_the_builder_checks_its_own_estimate_before_drawing(memory_limit):
    """The limit sits exactly at memory_estimate's total: one byte less refuses, with
    nothing drawn (a 30 MB float64 filter bank would otherwise be traced); at the
    total the network is built."""
    kw = dict(kernel_size=31, input_shape=(3, 32, 32), n_classes=2, rng=0)
    est = M.memory_estimate("three_layer_cnn", 4000, **kw)
    assert est.weights >= 4000 * 3 * 31 * 31 * (8 + 4)   # drawn in float64, kept in float32
    memory_limit(est.total - 1)
    tracemalloc.start()
    try:
        with pytest.raises(limits.ResourceLimitError, match="three_layer_cnn"):
            randvis.three_layer_cnn(4000, **kw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak
    memory_limit(est.total)
    net = randvis.three_layer_cnn(4000, **kw)
    stored = sum(v.nbytes for v in net.parameters().values())
    assert stored <= est.weights


@pytest.mark.parametrize("builder, args, kw", [
    ("three_layer_cnn", (128,), dict(input_shape=(3, 64, 64))),
    ("fcn", (600,), dict(input_shape=(3, 64, 64))),
    ("fcn", (300,), dict(input_shape=(3, 64, 64), init="paper", dtype=np.float64)),
    ("random_cnn", (4,), dict(width=32, input_shape=(3, 64, 64), pool_every=2)),
    ("vgg16", (), dict(input_shape=(3, 64, 64), n_classes=10, widths=(16, 32, 64, 128, 128), fc_width=512)),
])
def test_estimate_is_within_a_factor_of_two_of_the_traced_peak(builder, args, kw):
    """The weights estimate against the peak traced while building, the activation
    estimate against the peak traced above the network during visualize (one
    image, three maps)."""
    est = M.memory_estimate(builder, *args, **kw)
    tracemalloc.start()
    try:
        net = getattr(randvis, builder)(*args, rng=0, **kw)
        build_peak = tracemalloc.get_traced_memory()[1]
        x = np.random.default_rng(0).random((1,) + net.input_shape)
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        randvis.visualize(net, x, target=0)
        pass_peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert 0.5 <= build_peak / est.weights <= 2, (build_peak, est)
    assert 0.5 <= pass_peak / est.activations <= 2, (pass_peak, est)


def test_memory_estimate_takes_the_builders_arguments():
    est = M.memory_estimate(randvis.fcn, 64, input_shape=(3, 16, 16), stream=True)
    assert est.streamed_weights == 64 * 768 + 10 * 64 and est.weights == 0
    assert "fcn(n_hidden=64" in str(est)
    with pytest.raises(TypeError, match="fcn"):
        M.memory_estimate("fcn", 64, hidden=3)


# ---- silent wrong results -------------------------------------------------------

def test_overflowing_input_is_refused_not_ranked():
    """3e38 overflows float32: the logits are not finite and no target can be picked."""
    net = randvis.three_layer_cnn(4, input_shape=SHAPE, rng=0)
    with np.errstate(all="ignore"), pytest.raises(ValueError) as err:
        randvis.visualize(net, np.full((1,) + SHAPE, 3e38, dtype=np.float32), target="max")
    assert any(w in str(err.value) for w in ("non-finite", "NaN", "Inf")), str(err.value)


def test_real_seeds_and_integer_logits_keep_their_values():
    """A float seed is taken as given; integer logits give a float seed (a cast to
    int would cut 0.5 to 0)."""
    seed, classes = make_seed(np.zeros((2, 3), dtype=np.int64), np.array([0.5, -0.25, 0.0]))
    assert classes is None and seed.dtype == np.float64
    np.testing.assert_array_equal(seed, [[0.5, -0.25, 0.0]] * 2)


def test_integer_weights_do_not_cut_a_float_bias():
    layer = Dense(np.ones((2, 3), dtype=np.int64), bias=[0.5, -0.5])
    y, _ = layer.forward(np.ones((1, 3)))
    np.testing.assert_array_equal(y, [[3.5, 2.5]])


def test_fcn_units_to_match_is_linear_in_n():
    spec, x = _spec(), _img()
    one = T.fcn_units_to_match(spec, x, n=1)
    np.testing.assert_allclose(T.fcn_units_to_match(spec, x, n=[4, 8]), [4 * one, 8 * one], rtol=1e-12)
    assert one > 0


def test_streamed_layer_checks_every_pass():
    """The streamed-weights limit holds per pass, also when it is lowered after the
    layer was made: a forward pass streams all 40 x 6 weights, a one-hot backward
    only the row it needs."""
    layer = StreamedDense(6, 40, 0.5, seed=1, dtype=np.float64, block_rows=4, name="head")
    x = np.ones((1, 6))
    try:
        limits.set_limit("streamed_weights", 100)
        with pytest.raises(limits.ResourceLimitError, match="head .* one pass"):
            layer.forward(x)
        g = np.zeros((1, 40))
        g[0, 7] = 1.0
        np.testing.assert_allclose(layer.backward(g), layer.rows(7, 8))
    finally:
        limits.set_limit("streamed_weights", None)
    np.testing.assert_allclose(layer.forward(x)[0], x @ layer.rows(0, 40).T)
