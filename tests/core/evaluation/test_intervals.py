"""Wilson score intervals against published values (Newcombe, Statistics in Medicine 17, 1998).

Newcombe's Table II lists the Wilson score interval (his method 3) for his worked examples.
"""

import numpy as np
import pytest

from robustlearn.evaluation import wilson_interval


@pytest.mark.parametrize(
    "k, n, low, high",
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_matches_newcombe_1998(k, n, low, high):
    assert wilson_interval(k, n) == pytest.approx((low, high), abs=1e-4)


@pytest.mark.parametrize(
    "k, n, low, high",
    [(5, 10, 0.236593, 0.763407), (0, 10, 0.0, 0.277533), (10, 10, 0.722467, 1.0)],
)
def test_matches_closed_form(k, n, low, high):
    got = wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=1e-6)


def test_closed_form_formula():
    z = 1.959963984540054
    k, n = 37, 120
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert wilson_interval(k, n) == pytest.approx((centre - half, centre + half), rel=1e-12)


def test_vectorised_contains_point_estimate_and_narrows_with_n():
    k = np.array([0, 3, 50, 97, 100])
    low, high = wilson_interval(k, 100)
    p = k / 100
    assert np.all(low <= p) and np.all(p <= high)
    low_big, high_big = wilson_interval(k * 10, 1000)
    assert np.all(high_big - low_big < high - low)


def test_higher_confidence_is_wider():
    narrow = wilson_interval(30, 100, confidence=0.9)
    wide = wilson_interval(30, 100, confidence=0.99)
    assert wide[0] < narrow[0] and wide[1] > narrow[1]


def test_no_samples_gives_the_unit_interval():
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize("k, n, confidence", [(5, 3, 0.95), (-1, 3, 0.95), (1, 3, 1.0)])
def test_rejects_bad_input(k, n, confidence):
    with pytest.raises(ValueError):
        wilson_interval(k, n, confidence)
