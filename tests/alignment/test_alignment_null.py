"""Permutation nulls: fast paths equal brute-force recomputation; p-values uniform under the null."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from brainlid.alignment import similarity as sim
from brainlid.alignment.null import permutation_null, permutations
from brainlid.errors import InputError


def _pair(seed=0, n=60, signal=1.0):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, 5))
    A = signal * Z @ rng.standard_normal((5, 30)) + rng.standard_normal((n, 30))
    B = signal * Z @ rng.standard_normal((5, 20)) + rng.standard_normal((n, 20))
    return A, B


def test_permutations_reproducible_and_batch_independent():
    a = np.concatenate(list(permutations(50, 30, seed=1, batch=7)))
    b = np.concatenate(list(permutations(50, 30, seed=1)))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (30, 50)
    assert all(np.array_equal(np.sort(p), np.arange(50)) for p in a)
    c = np.concatenate(list(permutations(50, 30, seed=2)))
    assert not np.array_equal(a, c)


CASES = [
    ("mutual_knn", {"k": 5}),
    ("cknna", {"k": 5}),
    ("cknna", {"k": 6, "unbiased": False}),
    ("rsa", {}),
    ("rsa", {"compare": "pearson"}),
    ("rsa", {"compare": "cosine"}),
    ("rsa", {"compare": "cosine_whitened"}),
    ("rsa", {"compare": "pearson_whitened"}),
    ("rsa", {"compare": "kendall_tau_a", "rdm_method": "euclidean"}),
    ("cka_linear", {}),
    ("cka_linear_unbiased", {}),
]


@pytest.mark.parametrize("metric,kw", CASES)
def test_fast_paths_equal_recomputation(metric, kw):
    A, B = _pair()
    res = permutation_null(metric, A, B, 40, seed=3, **kw)
    brute = [sim.similarity(A, B[pi], metric, **kw) for perms in permutations(60, 40, 3) for pi in perms]
    np.testing.assert_allclose(res.null, brute, atol=1e-7)
    assert res.score == pytest.approx(sim.similarity(A, B, metric, **kw), abs=1e-9)
    assert res.null_mean == pytest.approx(np.mean(brute), abs=1e-7)
    assert res.calibrated == pytest.approx(res.score - np.mean(brute), abs=1e-7)
    assert res.z == pytest.approx((res.score - np.mean(brute)) / np.std(brute, ddof=1), rel=1e-5)
    # strong shared signal: the true pairing beats every permutation -> the smallest possible p
    assert res.p == pytest.approx(1 / 41)


def test_callable_metric_and_p_formula():
    A, B = _pair(n=30)

    def first_col_corr(a, b):
        return float(np.corrcoef(a[:, 0], b[:, 0])[0, 1])

    res = permutation_null(first_col_corr, A, B, 99, seed=0)
    null = np.array([first_col_corr(A, B[pi]) for perms in permutations(30, 99, 0) for pi in perms])
    np.testing.assert_allclose(res.null, null)
    assert res.p == pytest.approx((1 + np.sum(null >= res.score)) / 100)
    assert res.metric == "first_col_corr"
    d = res.as_dict()
    assert "null" not in d and d["n_permutations"] == 99


@pytest.mark.parametrize("metric,kw", [("mutual_knn", {"k": 3}), ("rsa", {"compare": "pearson"})])
def test_p_values_uniform_under_null(metric, kw):
    # independent A and B: p should be U(0,1) (discrete on a grid of 1/(n_perm+1)); deterministic seeds
    ps = []
    for seed in range(150):
        rng = np.random.default_rng(1000 + seed)
        A = rng.standard_normal((25, 6))
        B = rng.standard_normal((25, 4))
        ps.append(permutation_null(metric, A, B, 99, seed=seed, **kw).p)
    ps = np.array(ps)
    assert stats.kstest(ps, "uniform").pvalue > 0.01
    assert 0.4 < ps.mean() < 0.6


def test_bad_input():
    A, B = _pair()
    with pytest.raises(InputError, match="n_permutations"):
        permutation_null("rsa", A, B, 0)
    with pytest.raises(InputError, match="unknown metric"):
        permutation_null("nope", A, B, 5)
    with pytest.raises(InputError, match="stimuli"):
        permutation_null("mutual_knn", A, B[:50], 5)
