"""Exact kNN (brainlid.geometry.knn) against a float64 brute force (scipy cdist + stable argsort)."""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from brainlid.errors import InputError
from brainlid.geometry import DuplicatePointsWarning, knn
from brainlid.geometry._validate import parse_memory_budget


def brute(X, k, Y=None, metric="euclidean"):
    """float64 brute force: (values, indices); ties by smaller index (stable sort)."""
    X64 = np.asarray(X, dtype=np.float64)
    self_mode = Y is None
    Y64 = X64 if self_mode else np.asarray(Y, dtype=np.float64)
    if metric == "euclidean":
        key = cdist(X64, Y64)
    elif metric == "inner_product":
        key = -(X64 @ Y64.T)
    else:
        nx = np.linalg.norm(X64, axis=1)
        ny = np.linalg.norm(Y64, axis=1)
        key = -(X64 @ Y64.T) / (nx[:, None] * ny[None, :])
    if self_mode:
        np.fill_diagonal(key, np.inf)
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    vals = np.take_along_axis(key, order, axis=1)
    return (vals if metric == "euclidean" else -vals), order


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DuplicatePointsWarning)
        return fn(*a, **kw)


@pytest.fixture(scope="module")
def tie_data():
    """Integer coordinates in {0,1,2}^6: many exact ties and duplicates, exact in float64."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 3, size=(400, 6)).astype(np.float32)


@pytest.mark.parametrize("metric", ["euclidean", "inner_product", "cosine"])
@pytest.mark.parametrize("budget", [None, 40_000, 120_000])
def test_ties_and_duplicates_match_brute_force(tie_data, metric, budget):
    X = tie_data + (1 if metric == "cosine" else 0)  # no zero rows for cosine
    k = 7
    res = _quiet(knn, X, k, metric=metric, memory_budget=budget)
    vals, idx = brute(X, k, metric=metric)
    assert res.indices.dtype == np.int32 and res.distances.dtype == np.float64
    assert res.indices.shape == (400, k)
    np.testing.assert_array_equal(res.indices, idx)
    np.testing.assert_allclose(res.distances, vals, rtol=1e-12, atol=1e-12)


def test_duplicates_counted_and_warned(tie_data):
    X = tie_data
    u, inv, cnt = np.unique(X, axis=0, return_inverse=True, return_counts=True)
    expected = int((cnt[inv.ravel()] > 1).sum())
    assert expected > 0
    with pytest.warns(DuplicatePointsWarning, match=f"{expected} of 400 points"):
        res = knn(X, 3)
    assert res.n_duplicates == expected
    # duplicates have zero distance to their first neighbour, and that neighbour is identical
    dup = res.distances[:, 0] == 0
    assert dup.sum() == expected
    np.testing.assert_array_equal(X[dup], X[res.indices[dup, 0]])
    # inner-product metric counts identical rows the same way
    res_ip = _quiet(knn, X, 3, metric="inner_product")
    assert res_ip.n_duplicates == expected


@pytest.mark.parametrize("metric", ["euclidean", "inner_product", "cosine"])
def test_random_float32_several_block_sizes(metric):
    rng = np.random.default_rng(1)
    X = (rng.standard_normal((600, 40)) + 3.0).astype(np.float32)  # off-centre: exercises centring
    vals, idx = brute(X, 15, metric=metric)
    for budget in (200_000, 1_000_000, None):  # 1 .. all rows per block
        res = knn(X, 15, metric=metric, memory_budget=budget)
        np.testing.assert_array_equal(res.indices, idx)
        np.testing.assert_allclose(res.distances, vals, rtol=1e-10)


def test_query_against_other_set_and_float64_input():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((150, 12))  # float64 input: distances from the float64 rows
    Y = rng.standard_normal((300, 12))
    res = knn(X, 9, Y=Y, memory_budget=30_000)
    vals, idx = brute(X, 9, Y=Y)
    np.testing.assert_array_equal(res.indices, idx)
    np.testing.assert_allclose(res.distances, vals, rtol=1e-12)
    # k may equal n_Y when Y is given (no self to exclude)
    res = knn(X[:5], 300, Y=Y)
    assert res.indices.shape == (5, 300)
    assert sorted(res.indices[0]) == list(range(300))


def test_certificate_fallback_with_zero_margin():
    """margin=0 keeps exactly k candidates; near-ties then fail the float32 certificate and the
    fallback must still return the float64 brute force."""
    rng = np.random.default_rng(3)
    base = rng.standard_normal((50, 30)).astype(np.float32)
    # each base point gets 6 copies perturbed by ~1e-4 relative: many near-ties at the k-th neighbour
    X = np.repeat(base, 6, axis=0) + (rng.standard_normal((300, 30)) * 1e-4).astype(np.float32)
    for k in (3, 5, 8):
        vals, idx = brute(X, k)
        for budget, symmetric in ((None, True), (60_000, True), (60_000, False)):  # one block / several
            res = knn(X, k, margin=0, memory_budget=budget, symmetric=symmetric)
            np.testing.assert_array_equal(res.indices, idx)
            np.testing.assert_allclose(res.distances, vals, rtol=1e-12)


@pytest.mark.parametrize("metric", ["euclidean", "inner_product"])
def test_symmetric_and_plain_blocking_agree(metric):
    X = np.random.default_rng(7).standard_normal((900, 16)).astype(np.float32)
    vals, idx = brute(X, 12, metric=metric)
    for symmetric in (True, False):
        res = knn(X, 12, metric=metric, memory_budget=300_000, symmetric=symmetric)  # ~60-row blocks
        np.testing.assert_array_equal(res.indices, idx)
        np.testing.assert_allclose(res.distances, vals, rtol=1e-12)


def test_planted_exact_tie_at_kth_neighbour():
    # point 0 at the origin; points 1..4 at distance 1 (ties), point 5 at distance 2
    X = np.zeros((6, 3), dtype=np.float32)
    X[1, 0], X[2, 1], X[3, 2], X[4, 0], X[5, 0] = 1, 1, 1, -1, 2
    res = knn(X, 2, margin=0)
    assert list(res.indices[0]) == [1, 2]  # smaller index first among the four ties
    assert list(res.distances[0]) == [1.0, 1.0]


def test_return_distance_false_and_int_input():
    X = np.arange(40, dtype=np.int64).reshape(20, 2) ** 2
    res = knn(X, 3, return_distance=False)
    assert res.distances is None
    _, idx = brute(X.astype(np.float32), 3)
    np.testing.assert_array_equal(res.indices, idx)


def test_k_capped_by_memory_budget_warns():
    X = np.random.default_rng(4).standard_normal((100, 5)).astype(np.float32)
    with pytest.warns(UserWarning, match="capped at 8"):
        res = knn(X, 50, memory_budget=100 * 8 * 12)
    assert res.indices.shape == (100, 8)
    _, idx = brute(X, 8)
    np.testing.assert_array_equal(res.indices, idx)


def test_memory_budget_parsing(monkeypatch):
    assert parse_memory_budget("512MB") == 512_000_000
    assert parse_memory_budget("1GiB") == 1024**3
    assert parse_memory_budget(1e6) == 1_000_000
    monkeypatch.setenv("BRAINLID_MEMORY_BUDGET", "2MiB")
    assert parse_memory_budget(None) == 2 * 1024**2
    with pytest.raises(InputError, match="not understood"):
        parse_memory_budget("lots")
    with pytest.raises(InputError, match="positive"):
        parse_memory_budget(0)


def test_bad_inputs():
    X = np.random.default_rng(5).standard_normal((10, 3)).astype(np.float32)
    with pytest.raises(InputError, match="largest valid k is 9"):
        knn(X, 10)
    with pytest.raises(InputError, match=r"reshape\(-1, 1\)"):
        knn(X[:, 0], 2)
    Xn = X.copy()
    Xn[[2, 7]] = np.nan
    with pytest.raises(InputError, match=r"2 row\(s\) with NaN or inf values \(rows 2, 7\)"):
        knn(Xn, 2)
    with pytest.raises(InputError, match="unknown metric"):
        knn(X, 2, metric="manhattan")
    with pytest.raises(InputError, match="same number of features"):
        knn(X, 2, Y=np.zeros((5, 4)))
    Xz = X.copy()
    Xz[4] = 0
    with pytest.raises(InputError, match=r"all-zero row.*rows 4"):
        knn(Xz, 2, metric="cosine")
    with pytest.raises(InputError, match="at least 2"):
        knn(X[:1], 1)


def test_float16_input_upcast():
    X = np.random.default_rng(6).standard_normal((50, 4)).astype(np.float16)
    res = knn(X, 4)
    vals, idx = brute(X.astype(np.float32), 4)
    np.testing.assert_array_equal(res.indices, idx)
    np.testing.assert_allclose(res.distances, vals, rtol=1e-12)


def test_float64_input_far_from_origin_uses_float64_rows():
    """float32 rounding of 1e4 + small spread would scramble neighbours; centring the float64 rows first keeps them exact."""
    rng = np.random.default_rng(8)
    X = 1e4 + rng.standard_normal((300, 5)) * 1e-2
    res = knn(X, 6, memory_budget=60_000)
    vals, idx = brute(X, 6)
    np.testing.assert_array_equal(res.indices, idx)
    np.testing.assert_allclose(res.distances, vals, rtol=1e-9)


def test_concurrent_calls_from_threads():
    """The compiled kernels run in caller threads (no numba parallel runtime): concurrent calls are safe."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(9)
    data = [rng.standard_normal((700, 64)).astype(np.float32) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda A: knn(A, 10), data))
    for A, res in zip(data, results):
        np.testing.assert_array_equal(res.indices, brute(A, 10)[1])


# ---- the two implementations of every kernel (compiled numba / NumPy twins), and the torch selection


@pytest.fixture(params=["numba", "numpy"])
def kernels(request, monkeypatch):
    """Force the compiled kernels or their NumPy twins (auto picks by problem size)."""
    from brainlid.geometry import _kernels

    monkeypatch.setattr(_kernels, "KERNELS", request.param)
    return request.param


@pytest.mark.parametrize("metric", ["euclidean", "inner_product", "cosine"])
def test_both_kernel_paths_match_brute_force(kernels, tie_data, metric):
    """Ties, duplicates, one block and several (symmetric and plain): exact with either implementation."""
    X = tie_data + (1 if metric == "cosine" else 0)
    vals, idx = brute(X, 7, metric=metric)
    for budget, symmetric in ((None, True), (40_000, True), (40_000, False)):
        res = _quiet(knn, X, 7, metric=metric, memory_budget=budget, symmetric=symmetric)
        np.testing.assert_array_equal(res.indices, idx)
        np.testing.assert_allclose(res.distances, vals, rtol=1e-12, atol=1e-12)
    rng = np.random.default_rng(11)
    Xr = (rng.standard_normal((500, 24)) + 2.0).astype(np.float32)
    vals, idx = brute(Xr, 12, metric=metric)
    res = knn(Xr, 12, metric=metric, memory_budget=150_000, margin=0)  # several blocks, certificate fallbacks
    np.testing.assert_array_equal(res.indices, idx)
    np.testing.assert_allclose(res.distances, vals, rtol=1e-12)


def test_torch_candidate_selection_gives_the_same_result(monkeypatch):
    """CANDIDATE_BACKEND="torch" (torch.topk, for benchmarking) and the default give the brute force."""
    pytest.importorskip("torch")
    knn_module = importlib.import_module("brainlid.geometry.knn")  # the module (the package exports the function)

    X = np.random.default_rng(12).standard_normal((700, 10)).astype(np.float32)
    vals, idx = brute(X, 9)
    for backend in ("torch", "numpy"):
        monkeypatch.setattr(knn_module, "CANDIDATE_BACKEND", backend)
        for budget in (None, 200_000):
            res = knn(X, 9, memory_budget=budget)
            np.testing.assert_array_equal(res.indices, idx)
            np.testing.assert_allclose(res.distances, vals, rtol=1e-12)


def _rows_for_selection():
    rng = np.random.default_rng(13)
    m = 2000
    random = rng.standard_normal((40, m))
    increasing = np.sort(random, axis=1)  # worst order for a heap: every value beats the c-th best
    peak = -np.abs(np.arange(m)[None, :] - rng.integers(0, m, size=(40, 1))).astype(float)  # time-ordered data
    ties = rng.integers(0, 4, size=(40, m)).astype(float)  # many values equal to the c-th best
    return np.vstack([random, increasing, peak, ties]).astype(np.float32)


@pytest.mark.parametrize("c", [1, 5, 64, 2000])
def test_top_candidates_rows_and_columns_against_numpy_partition(kernels, c):
    from brainlid.geometry._kernels import top_candidates, top_candidates_cols

    V = _rows_for_selection()
    want = np.sort(np.partition(V, V.shape[1] - c, axis=1)[:, V.shape[1] - c:], axis=1)
    vals, idx = top_candidates(V, c, compiled=kernels == "numba")
    np.testing.assert_array_equal(np.sort(vals, axis=1), want)
    np.testing.assert_array_equal(np.take_along_axis(V, idx, axis=1), vals)  # indices point at the values
    assert all(np.unique(r).size == c for r in idx)  # no position twice
    # columns: the same selection on the transpose (a column slice, as the symmetric pass uses it)
    W = np.ascontiguousarray(np.hstack([V.T, V.T]))[:, 7:7 + V.shape[0]]
    cc = min(c, W.shape[0])
    vals_c, idx_c = top_candidates_cols(W, cc, compiled=kernels == "numba")
    want_c = np.sort(np.partition(W, W.shape[0] - cc, axis=0)[W.shape[0] - cc:].T, axis=1)
    np.testing.assert_array_equal(np.sort(vals_c, axis=1), want_c)
    np.testing.assert_array_equal(np.take_along_axis(W.T, idx_c, axis=1), vals_c)


# ---- magnitude and offset: the float32 search works on centred, power-of-two-rescaled copies


# cosine is not translation-invariant (far from the origin all rows are parallel to float64 precision): scales only
@pytest.mark.parametrize(
    "metric,factor,offset",
    [(m, f, o) for m in ("euclidean", "inner_product", "cosine")
     for f, o in ((1e20, 0.0), (1e-20, 0.0), (1.0, 1e4), (1e-3, 1e8), (1e100, 0.0)) if not (m == "cosine" and o)],
)
def test_any_magnitude_and_offset_is_exact(kernels, metric, factor, offset):
    """float64 data at 1e20 overflowed the float32 search (every point reported as a duplicate); 1e-20
    underflowed it. Now the result equals the float64 brute force at any scale float64 can square."""
    rng = np.random.default_rng(14)
    base = rng.standard_normal((400, 8)) + (3.0 if metric != "euclidean" else 0.0)
    X = base * factor + offset
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no (near-)duplicate warning: the points are well separated
        res = knn(X, 10, metric=metric, memory_budget=200_000)
    vals, idx = brute(X, 10, metric=metric)
    np.testing.assert_array_equal(res.indices, idx)
    np.testing.assert_allclose(res.distances, vals, rtol=1e-9)
    assert res.n_duplicates == 0 and res.n_near_duplicates == 0


def test_magnitudes_beyond_float64_squares_are_refused():
    X = np.random.default_rng(16).standard_normal((50, 4))
    for factor in (1e200, 1e-200):
        with pytest.raises(InputError, match="leave the float64 range; multiply the data by a constant"):
            knn(X * factor, 3)


def test_near_duplicates_are_counted_and_warned():
    """Points at 1e-12 relative distance of another (numerical noise, not a real neighbour) are flagged."""
    rng = np.random.default_rng(15)
    X = rng.standard_normal((300, 16))
    radius = np.sqrt(((X - X.mean(0)) ** 2).sum(1).mean())
    Xn = np.vstack([X, X[:7] + 1e-12 * radius * rng.standard_normal((7, 16)) / 4])
    with pytest.warns(DuplicatePointsWarning, match="14 of 307 points have a near-duplicate"):
        res = knn(Xn, 5)
    assert res.n_near_duplicates == 14 and res.n_duplicates == 0
    assert 0 < res.distances[:7, 0].max() <= res.near_duplicate_threshold
    assert res.near_duplicate_threshold == pytest.approx(1e-6 * radius, rel=0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clean = knn(X, 5)  # ordinary data: no warning
    assert clean.n_near_duplicates == 0
