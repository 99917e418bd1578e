"""The exercises' checkers accept correct solutions and name the first difference of
wrong ones.

The correct solutions here are written from the maths (loops over windows and
patches), not with randvis; each wrong solution carries one classic mistake, and
the test asserts which case, element, expected and returned value the checker
reports, worked out by hand from the cases' inputs.
"""
import numpy as np
import pytest

from randvis.exercises import (CheckResult, check_gbp_expected_map, check_maxpool_backward,
                               check_relu_rule)

# --------------------------------------------------------------------------- exercise 1


def relu_rule(name):
    """T = h(r) * g'(y) from the paper's table, written out."""
    def fn(r, y):
        t = np.maximum(r, 0.0) if name in ("deconvnet", "gbp") else r.copy()
        return t * (y > 0) if name in ("saliency", "gbp") else t
    return fn


@pytest.mark.parametrize("name", ["saliency", "deconvnet", "gbp"])
def test_relu_rule_accepts_the_formula(name):
    res = check_relu_rule(relu_rule(name), name)
    assert isinstance(res, CheckResult) and res.passed and bool(res)
    assert res.index is None and "matches" in res.message


def test_relu_rule_accepts_rule_objects_and_other_draws():
    from randvis.rules import GBP

    assert check_relu_rule(relu_rule("gbp"), GBP, rng=5).passed


@pytest.mark.parametrize("name, wrong, index, expected, got, words", [
    # hand-picked case: r = [1, -1, 0, 2, -2, .5, -.5, 0, 3], y = [2, 2, 2, 0, 0, -1, -1, -1, -3]
    ("saliency", lambda r, y: r * (y >= 0), 3, 0.0, 2.0, "y = 0 closes the ReLU"),
    ("gbp", lambda r, y: r * (y > 0), 1, 0.0, -1.0, "That is what saliency would give"),
    ("deconvnet", lambda r, y: np.maximum(r, 0) * (y > 0), 3, 2.0, 0.0,
     "That is what saliency and GBP would give"),
    ("gbp", lambda r, y: np.abs(r) * (y > 0), 1, 0.0, 1.0, "keeps the positive signal"),
])
def test_relu_rule_names_the_first_difference(name, wrong, index, expected, got, words):
    res = check_relu_rule(wrong, name)
    assert not res.passed and not bool(res)
    assert res.case == "hand-picked values"
    assert res.index == (0, 0, 0, index)
    assert (res.expected, res.got) == (expected, got)
    assert words in res.message
    assert f"expected {expected:g}, got {got:g}" in res.message


def test_relu_rule_finds_a_mistake_only_random_cases_show():
    # right on the hand-picked values, wrong where |y| > 2.5 (only random values go there)
    def fn(r, y):
        return relu_rule("gbp")(r, y) * (np.abs(y) < 2.5)

    res = check_relu_rule(fn, "gbp")
    assert not res.passed and res.case != "hand-picked values" and res.got == 0.0 and res.expected > 0


def test_relu_rule_reports_learner_errors_in_words():
    def in_place(r, y):
        r[r < 0] = 0
        return r

    assert "changed its input r in place" in check_relu_rule(in_place, "deconvnet").message
    assert "raised ZeroDivisionError" in check_relu_rule(lambda r, y: 1 / 0, "gbp").message
    assert "shape (9,)" in check_relu_rule(lambda r, y: np.maximum(r, 0).ravel(), "deconvnet").message
    assert "not an array of numbers" in check_relu_rule(lambda r, y: "relu", "gbp").message
    res = check_relu_rule(lambda r, y: np.full(r.shape, np.nan), "gbp")
    assert not res.passed and res.index == (0, 0, 0, 0)


def test_checkers_refuse_what_is_not_a_function():
    for check in (check_relu_rule, check_maxpool_backward, check_gbp_expected_map):
        with pytest.raises(TypeError, match="fn must be a function"):
            check("relu")
    with pytest.raises(ValueError):
        check_relu_rule(relu_rule("gbp"), "backprop-ish")

# --------------------------------------------------------------------------- exercise 2


def pool_backward(g, x, size, stride, accumulate=True, first=True):
    dx = np.zeros_like(x)
    n, c, ho, wo = g.shape
    for b, ch, i, j in np.ndindex(n, c, ho, wo):
        win = x[b, ch, i * stride:i * stride + size, j * stride:j * stride + size]
        flat = win.ravel() if first else win.ravel()[::-1]
        k = int(np.argmax(flat)) if first else win.size - 1 - int(np.argmax(flat))
        u, v = divmod(k, size)
        if accumulate:
            dx[b, ch, i * stride + u, j * stride + v] += g[b, ch, i, j]
        else:
            dx[b, ch, i * stride + u, j * stride + v] = g[b, ch, i, j]
    return dx


def test_maxpool_accepts_the_loop():
    res = check_maxpool_backward(pool_backward)
    assert res.passed and "all 4 cases" in res.message


def test_maxpool_overwriting_fails_where_windows_overlap():
    res = check_maxpool_backward(lambda g, x, s, t: pool_backward(g, x, s, t, accumulate=False))
    assert not res.passed and "overlapping" in res.case and "sum of their signals" in res.message
    # the reported pixel wins at least two windows: its expected value is a sum
    assert res.expected != res.got and res.got != 0.0


def test_maxpool_last_of_ties_fails_on_the_tie_case():
    res = check_maxpool_backward(lambda g, x, s, t: pool_backward(g, x, s, t, first=False))
    assert not res.passed and res.case.startswith("ties")
    assert "first maximum in row-major order" in res.message


def test_maxpool_mean_instead_of_max_fails_at_once():
    def avg(g, x, size, stride):
        dx = np.zeros_like(x)
        for b, ch, i, j in np.ndindex(g.shape):
            dx[b, ch, i * stride:i * stride + size, j * stride:j * stride + size] += g[b, ch, i, j] / size ** 2
        return dx

    res = check_maxpool_backward(avg)
    assert not res.passed and res.case == "2x2 windows, stride 2" and res.index[0] == 0

# --------------------------------------------------------------------------- exercise 3


def gbp_mean(x, k, n, w_std, v_std, skip_zero=True, border="zero-pad"):
    """N v_std w_std / (2 pi) sum_j place_j(x_j / |x_j|): every patch cut at once
    (numpy's sliding windows over the zero-padded image), then placed back."""
    from numpy.lib.stride_tricks import sliding_window_view

    c, h, w = x.shape
    r = k // 2
    xp = np.pad(x, ((0, 0), (r, r), (r, r)))
    cut = sliding_window_view(xp, (k, k), axis=(1, 2)).transpose(1, 2, 0, 3, 4)   # (h, w, c, k, k)
    size = np.sqrt((cut ** 2).sum(axis=(2, 3, 4)))[..., None, None, None]
    unit = np.where(size > 0, cut / np.where(size > 0, size, 1.0), 0.0 if skip_zero else np.nan)
    if border == "interior only":
        centre = np.zeros((h, w), dtype=bool)
        centre[r:h - r, r:w - r] = True
        unit = unit * centre[..., None, None, None]
    out = np.zeros_like(xp)
    for (i, j), patch in zip(np.ndindex(h, w), unit.reshape(h * w, c, k, k)):
        out[:, i:i + k, j:j + k] += patch
    return n * v_std * w_std / (2 * np.pi) * out[:, r:r + h, r:r + w]


def test_gbp_mean_accepts_the_loop():
    res = check_gbp_expected_map(gbp_mean)
    assert res.passed and "all 4 cases" in res.message


def test_gbp_mean_wrong_constant_is_named_with_its_factor():
    res = check_gbp_expected_map(lambda *a: gbp_mean(*a) * 2 * np.pi)
    assert not res.passed and res.index == (0, 0, 0)
    assert f"{2 * np.pi:.6g} times the expected one" in res.message
    assert res.got == pytest.approx(2 * np.pi * res.expected, rel=1e-12)


def test_gbp_mean_zero_patches_must_be_skipped():
    with np.errstate(invalid="ignore", divide="ignore"):
        res = check_gbp_expected_map(lambda *a: gbp_mean(*a, skip_zero=False))
    assert not res.passed and res.case == "a zero corner, kernel 3"
    assert "zero patch has no direction" in res.message
    # the first NaN: pixel (0, 0) is covered by the all-zero patch centred at (1, 1)
    assert res.index == (0, 0, 0) and res.expected == 0.0


def test_gbp_mean_border_mistakes_are_located():
    res = check_gbp_expected_map(lambda *a: gbp_mean(*a, border="interior only"))
    assert not res.passed and res.index == (0, 0, 0)
    assert "near the border" in res.message


def test_gbp_mean_tolerance_is_rounding_not_more():
    # a relative error of 1e-12 is rounding (accepted), 1e-6 is a mistake (refused)
    assert check_gbp_expected_map(lambda *a: gbp_mean(*a) * (1 + 1e-12)).passed
    assert not check_gbp_expected_map(lambda *a: gbp_mean(*a) * (1 + 1e-6)).passed

# --------------------------------------------------------------------------- the published solutions


def test_the_solutions_on_the_exercises_page_pass_their_checkers():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "docs" / "exercises" / "solutions.py"
    spec = importlib.util.spec_from_file_location("exercise_solutions", path)
    sol = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sol)
    for rule in ("saliency", "deconvnet", "gbp"):
        assert check_relu_rule(lambda r, y, rule=rule: sol.relu_backward(r, y, rule), rule).passed
        wrong = "gbp" if rule != "gbp" else "saliency"
        assert not check_relu_rule(lambda r, y, w=wrong: sol.relu_backward(r, y, w), rule).passed
    assert check_maxpool_backward(sol.maxpool_backward).passed
    assert check_gbp_expected_map(sol.gbp_expected_map).passed


def test_an_unfinished_exercise_says_so():
    res = check_maxpool_backward(lambda g, x, size, stride: None)   # the page's "..." stub
    assert not res.passed and "returned None" in res.message and "return statement" in res.message


def test_the_reply_quoted_on_the_exercises_page_is_the_checkers():
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "exercises" / "index.md").read_text()
    quoted = re.search(r"`r \* \(y >= 0\)`, gets this reply:\n\n```text\n(.*?)```", page, re.S).group(1)
    res = check_relu_rule(lambda r, y: r * (y >= 0), "saliency")
    assert " ".join(quoted.split()) == " ".join(res.message.split())
