"""RDMs and RDM comparisons against rsatoolbox and scipy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from brainlid.alignment import dissimilarity
from brainlid.alignment.rsa import compare_rdms, rdm, rdm_timecourse, rsa_timecourse
from brainlid.errors import InputError

rt = pytest.importorskip("rsatoolbox")
# rsatoolbox's Dataset casts NaN descriptors internally and warns; not ours
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
from rsatoolbox.rdm import calc_rdm, compare  # noqa: E402
from rsatoolbox.rdm.calc_unbalanced import calc_rdm_unbalanced  # noqa: E402


@pytest.fixture
def X():
    rng = np.random.default_rng(0)
    return rng.standard_normal((25, 40)) + rng.standard_normal((1, 40))


@pytest.mark.parametrize("method", ["correlation", "euclidean"])
def test_rdm_matches_rsatoolbox(X, method):
    ref = calc_rdm(rt.data.Dataset(X), method=method).get_vectors()[0]
    np.testing.assert_allclose(rdm(X, method, dtype=np.float64), ref, rtol=1e-9, atol=1e-9)
    d32 = rdm(X, method)
    assert d32.dtype == np.float32 and d32.shape == (25 * 24 // 2,)
    np.testing.assert_allclose(d32, ref, rtol=1e-5, atol=1e-5)


def test_rdm_cosine_matches_scipy(X):
    np.testing.assert_allclose(rdm(X, "cosine", dtype=np.float64), pdist(X, "cosine"), atol=1e-12)


@pytest.mark.parametrize("method", ["correlation", "euclidean", "cosine"])
def test_float32_rdm_is_the_rounded_float64_rdm_whatever_the_blas_threads(method):
    """A float32 RDM is the float64 computation rounded once (products accumulated in float64), so it does
    not depend on BLAS threads or summation order: float32 GEMMs changed it by 1 ulp with 1 vs 2 threads,
    which reorders near-tied pairs and moved a Spearman RSA score by ~1e-6 between serial and Dask runs."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(3)
    X = np.maximum(rng.standard_normal((92, 16384)) + 0.3 * rng.standard_normal((92, 1)), 0).astype(np.float32)
    exact = rdm(X.astype(np.float64), method, dtype=np.float64)
    runs = []
    for threads in (1, 2):
        with threadpoolctl.threadpool_limits(threads):
            runs.append(rdm(X, method))
    assert runs[0].dtype == np.float32
    np.testing.assert_array_equal(runs[0], exact.astype(np.float32))
    np.testing.assert_array_equal(runs[1], runs[0])
    Y = rng.standard_normal((6, 3, 16384)).astype(np.float32) + rng.standard_normal((6, 1, 16384)).astype(np.float32)
    with threadpoolctl.threadpool_limits(1):
        one = rdm(Y, "crossnobis")
    with threadpoolctl.threadpool_limits(2):
        two = rdm(Y, "crossnobis")
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, rdm(Y.astype(np.float64), "crossnobis", dtype=np.float64).astype(np.float32))


def test_rdm_blocked_equals_unblocked(X, monkeypatch):
    full = rdm(X, "correlation", dtype=np.float64)
    monkeypatch.setattr(dissimilarity, "_BLOCK_BYTES", 8 * 25 * 3)  # 3 rows per block
    np.testing.assert_allclose(rdm(X, "correlation", dtype=np.float64), full, atol=1e-14)


def _reps(seed=1, n=10, r=4, p=30):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, r, p)) + 2 * rng.standard_normal((n, 1, p))


def _dataset(Y):
    n, r, p = Y.shape
    keep = ~np.isnan(Y).all(axis=2)
    cond = np.repeat(np.arange(n), r).reshape(n, r)[keep]
    fold = np.tile(np.arange(r), (n, 1))[keep]
    return rt.data.Dataset(Y[keep], obs_descriptors={"cond": cond, "fold": fold})


@pytest.mark.parametrize("with_noise", [False, True])
def test_crossnobis_balanced_matches_rsatoolbox(with_noise):
    Y = _reps()
    prec = np.diag(1 / np.random.default_rng(2).uniform(0.5, 2, Y.shape[2])) if with_noise else None
    ref = calc_rdm(_dataset(Y), method="crossnobis", descriptor="cond", cv_descriptor="fold", noise=prec)
    got = rdm(Y, "crossnobis", noise=prec, dtype=np.float64)
    np.testing.assert_allclose(got, ref.get_vectors()[0], rtol=1e-9, atol=1e-12)
    # a (p,) diagonal precision is the same as the diagonal matrix
    if with_noise:
        np.testing.assert_allclose(rdm(Y, "crossnobis", noise=np.diag(prec), dtype=np.float64), got, atol=1e-12)


def test_crossnobis_ragged_matches_rsatoolbox_unbalanced():
    Y = _reps()
    Y[0, 3] = np.nan
    Y[2, 1] = np.nan
    Y[5, 2:] = np.nan
    ds = _dataset(Y)
    ref = calc_rdm_unbalanced(ds, method="crossnobis", descriptor="cond", cv_descriptor="fold").get_vectors()[0]
    np.testing.assert_allclose(rdm(Y, "crossnobis", dtype=np.float64), ref, rtol=1e-9, atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rsatoolbox warns that it assumes independent trials
        ref_t = calc_rdm_unbalanced(ds, method="crossnobis", descriptor="cond").get_vectors()[0]
    np.testing.assert_allclose(rdm(Y, "crossnobis", cv="trials", dtype=np.float64), ref_t, rtol=1e-9, atol=1e-12)


def test_crossnobis_is_unbiased():
    # pure noise around identical patterns: crossnobis ~ 0 on average, plain euclidean > 0
    rng = np.random.default_rng(3)
    Y = rng.standard_normal((30, 6, 200)) + rng.standard_normal((1, 1, 200))
    assert abs(rdm(Y, "crossnobis").mean()) < 0.02
    assert rdm(Y, "euclidean").mean() > 0.2  # averaged reps: 2 * 1/6 noise variance


def test_noise_precision_diag():
    Y = _reps()
    prec = dissimilarity.noise_precision_from_residuals(Y)
    res = Y - Y.mean(axis=1, keepdims=True)
    dof = Y.shape[0] * (Y.shape[1] - 1)
    np.testing.assert_allclose(prec, dof / (res**2).sum(axis=(0, 1)))


COMPARE_PAIRS = [
    ("spearman", "spearman"),
    ("pearson", "corr"),
    ("kendall_tau_a", "tau-a"),
    ("cosine", "cosine"),
    ("cosine_whitened", "cosine_cov"),
    ("pearson_whitened", "corr_cov"),
]


@pytest.mark.parametrize("mine,theirs", COMPARE_PAIRS)
def test_compare_matches_rsatoolbox(mine, theirs):
    rng = np.random.default_rng(4)
    n_pairs = 20 * 19 // 2
    a = np.abs(rng.standard_normal((3, n_pairs)))
    b = np.abs(rng.standard_normal((2, n_pairs))) + 0.3 * a[:2]
    b[0, :30] = b[0, 0]  # ties
    ref = compare(rt.rdm.RDMs(a), rt.rdm.RDMs(b), method=theirs)
    got = compare_rdms(a, b, mine)
    assert got.shape == (3, 2)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    # one vs many and many vs one, scalars
    np.testing.assert_allclose(compare_rdms(a, b[1], mine), ref[:, 1], atol=1e-12)
    np.testing.assert_allclose(compare_rdms(a[2], b, mine), ref[2], atol=1e-12)
    assert isinstance(compare_rdms(a[0], b[0], mine), float)
    # rsatoolbox's names work as aliases
    np.testing.assert_allclose(compare_rdms(a, b, theirs), ref, atol=1e-12)


def test_compare_bad_input():
    a = np.arange(10.0)
    with pytest.raises(InputError, match="different lengths"):
        compare_rdms(a, np.arange(6.0))
    with pytest.raises(InputError, match="constant"):
        compare_rdms(a, np.ones(10), "spearman")
    with pytest.raises(InputError, match="constant"):
        compare_rdms(a, np.ones(10), "kendall_tau_a")
    b = a.copy()
    b[3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        compare_rdms(a, b)
    with pytest.raises(InputError, match="unknown"):
        compare_rdms(a, a, "nope")


@pytest.mark.parametrize("method", ["correlation", "euclidean", "cosine"])
def test_rdm_keeps_constant_units_like_rsatoolbox(X, method):
    """A unit constant across stimuli (a dead ReLU channel) changes each pattern's mean and norm;
    rsatoolbox keeps it, so must we. Only non-finite units are dropped, with the count reported."""
    def reference(A):  # rsatoolbox; it has no cosine RDM, scipy's pdist does (and keeps every column)
        if method == "cosine":
            return pdist(A, "cosine")
        return calc_rdm(rt.data.Dataset(A), method=method).dissimilarities[0]

    Xc = X.copy()
    Xc[:, 1] = 3.0
    Xc[:, 5] = 0.0
    want = reference(Xc)
    np.testing.assert_allclose(rdm(Xc, method, dtype=np.float64), want, rtol=1e-9, atol=1e-12)
    assert not np.allclose(rdm(Xc, method, dtype=np.float64), rdm(np.delete(Xc, [1, 5], 1), method, dtype=np.float64))
    Xb = Xc.copy()
    Xb[:, 0] = np.nan
    with pytest.warns(UserWarning, match="dropped 1 of 40 features \\(1 with NaN/inf, 0 constant"):
        d = rdm(Xb, method, dtype=np.float64)
    np.testing.assert_allclose(d, reference(Xc[:, 1:]), rtol=1e-9, atol=1e-12)


def test_rdm_bad_input_and_dropped_units(X):
    Xc = X.copy()
    Xc[4] = 1.0  # a constant pattern: correlation distance undefined
    Xc[:, 0] = np.arange(25)  # keep the column non-constant
    Xc[4] = 1.0
    with pytest.raises(InputError, match="1 stimuli have patterns constant"):
        rdm(Xc, "correlation")
    with pytest.raises(InputError, match="unknown RDM method"):
        rdm(X, "manhattan")
    with pytest.raises(InputError, match="repeated measurements"):
        rdm(X, "crossnobis")
    Y = _reps()
    Y[3, 1:] = np.nan
    with pytest.raises(InputError, match="at least 2 repetitions"):
        rdm(Y, "crossnobis")


def test_time_resolved():
    rng = np.random.default_rng(5)
    n, p, t = 15, 20, 6
    feats = rng.standard_normal((n, 8))
    W = rng.standard_normal((8, p))
    signal = np.linspace(0, 2, t)  # signal grows over time
    resp = (feats @ W)[:, :, None] * signal + rng.standard_normal((n, p, t))
    R = rdm_timecourse(resp, "correlation")
    assert R.shape == (t, n * (n - 1) // 2)
    np.testing.assert_allclose(R[2], rdm(resp[:, :, 2], "correlation"))
    scores = rsa_timecourse(resp, feats, compare="pearson")
    ref = [compare_rdms(rdm(resp[:, :, i]), rdm(feats), "pearson") for i in range(t)]
    np.testing.assert_allclose(scores, ref, atol=1e-6)
    assert scores[-1] > scores[0] + 0.2
    # time-resolved reference with the same number of time points
    s2 = rsa_timecourse(resp, resp, compare="pearson")
    np.testing.assert_allclose(s2, 1.0, atol=1e-5)
    with pytest.raises(InputError, match="time points"):
        rsa_timecourse(resp, resp[:, :, :3])
    with pytest.raises(InputError, match="stimuli"):
        rsa_timecourse(resp, feats[:10])


def test_time_resolved_crossnobis():
    rng = np.random.default_rng(7)
    n, r, p, t = 8, 3, 12, 4
    Y = rng.standard_normal((n, r, p, t)) + rng.standard_normal((n, 1, p, t))
    Y[2, 2] = np.nan  # a missing repetition (all units, all times)
    R = rdm_timecourse(Y, "crossnobis", dtype=np.float64)
    assert R.shape == (t, n * (n - 1) // 2)
    for i in range(t):
        np.testing.assert_allclose(R[i], rdm(Y[..., i], "crossnobis", dtype=np.float64))
    feats = rng.standard_normal((n, 5))
    s = rsa_timecourse(Y, feats, rdm_method="crossnobis", compare="pearson")
    ref = [compare_rdms(R[i], rdm(feats, "correlation"), "pearson") for i in range(t)]
    np.testing.assert_allclose(s, ref, atol=1e-5)
