"""Model–model similarity against dense float64 / torch reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainlid.alignment import similarity as sim
from brainlid.alignment.rsa import compare_rdms, rdm
from brainlid.errors import InputError


def _pair(seed=0, n=200, shared=8, da=40, db=30, noise=0.5):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, shared))
    A = Z @ rng.standard_normal((shared, da)) + noise * rng.standard_normal((n, da))
    B = Z @ rng.standard_normal((shared, db)) + noise * rng.standard_normal((n, db))
    return A, B


# ---- dense references written from the papers / reference code (float64 unless stated)
def ref_prepare(X, q=0.95):
    X = torch.tensor(X, dtype=torch.float32)
    t = torch.quantile(X.abs(), q, dim=1).mean()
    return torch.nn.functional.normalize(X.clamp(-t, t), dim=-1)


def ref_mutual_knn(A, B, k):
    a, b = ref_prepare(A).double(), ref_prepare(B).double()
    n = a.shape[0]

    def nn(f):  # dense n x n similarity + argsort, as platonic-rep's compute_nearest_neighbors
        return (f @ f.T).fill_diagonal_(-1e8).argsort(dim=1, descending=True)[:, :k]

    r = torch.arange(n)[:, None]
    ma = torch.zeros(n, n, dtype=torch.float64)
    mb = torch.zeros(n, n, dtype=torch.float64)
    ma[r, nn(a)] = 1
    mb[r, nn(b)] = 1
    per = (ma * mb).sum(1) / k
    return per.mean().item(), per.numpy()


def hsic_unbiased(K, L):
    m = K.shape[0]
    Kt = K.clone().fill_diagonal_(0)
    Lt = L.clone().fill_diagonal_(0)
    v = (Kt * Lt.T).sum() + Kt.sum() * Lt.sum() / ((m - 1) * (m - 2)) - 2 * (Kt @ Lt).sum() / (m - 2)
    return v / (m * (m - 3))


def hsic_biased(K, L):
    H = torch.eye(K.shape[0], dtype=K.dtype) - 1 / K.shape[0]
    return torch.trace(K @ H @ L @ H)


def ref_cknna(A, B, k, unbiased=True):
    a, b = ref_prepare(A).double(), ref_prepare(B).double()
    K, L = a @ a.T, b @ b.T
    n = K.shape[0]

    def align(K, L):
        Kh = K.clone().fill_diagonal_(float("-inf")) if unbiased else K
        Lh = L.clone().fill_diagonal_(float("-inf")) if unbiased else L
        mk = torch.zeros(n, n, dtype=K.dtype).scatter_(1, torch.topk(Kh, k, dim=1).indices, 1)
        ml = torch.zeros(n, n, dtype=K.dtype).scatter_(1, torch.topk(Lh, k, dim=1).indices, 1)
        m = mk * ml
        return hsic_unbiased(m * K, m * L) if unbiased else hsic_biased(m * K, m * L)

    return (align(K, L) / torch.sqrt(align(K, K) * align(L, L))).item()


def ref_cka(K, L, unbiased):
    f = hsic_unbiased if unbiased else hsic_biased
    return (f(K, L) / torch.sqrt(f(K, K) * f(L, L))).item()


def linear_grams(A, B):
    A = torch.tensor(A, dtype=torch.float64)
    B = torch.tensor(B, dtype=torch.float64)
    return A @ A.T, B @ B.T


# ---- mutual kNN
def test_mutual_knn_equals_dense_reference():
    A, B = _pair()
    for k in (1, 5, 10, 30):
        score, per = sim.mutual_knn(A, B, k, return_per_stimulus=True)
        ref, ref_per = ref_mutual_knn(A, B, k)
        assert score == pytest.approx(ref, abs=1e-12)
        np.testing.assert_allclose(per, ref_per, atol=1e-12)


def test_mutual_knn_identical_and_chance():
    A, _ = _pair(n=300)
    assert sim.mutual_knn(A, A, 10) == 1.0
    # isotropic scaling changes neither the clamp (it scales too) nor the unit rows
    assert sim.mutual_knn(A, 3.0 * A, 10) == 1.0
    rng = np.random.default_rng(1)
    n, k = 400, 10
    scores = [sim.mutual_knn(rng.standard_normal((n, 20)), rng.standard_normal((n, 20)), k) for _ in range(5)]
    chance = k / (n - 1)
    # mean of 5 x 400 x 10 hypergeometric-ish overlaps: sd of the mean ~ sqrt(chance/(k*n*5))
    assert abs(np.mean(scores) - chance) < 5 * np.sqrt(chance / (k * n * 5))


def test_prepare_features_clamp():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((50, 30))
    X[3, 4] = 100.0  # outlier
    P = sim.prepare_features(X)
    np.testing.assert_allclose(P, ref_prepare(X).numpy(), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(P, axis=1), 1, atol=1e-6)


def test_neighbours_reused_across_pairs():
    A, B = _pair()
    na = sim.neighbours(A, 20)
    nb = sim.neighbours(B, 20)
    assert sim.mutual_knn(na, nb, 10) == sim.mutual_knn(A, B, 10)
    assert sim.cknna(na, nb, 10) == pytest.approx(sim.cknna(A, B, 10), abs=1e-12)
    with pytest.raises(InputError, match="k=20"):
        sim.mutual_knn(na, nb, 25)


# ---- CKNNA
@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("k", [2, 10, 60])
def test_cknna_equals_dense_reference(k, unbiased):
    A, B = _pair(n=150)
    assert sim.cknna(A, B, k, unbiased=unbiased) == pytest.approx(ref_cknna(A, B, k, unbiased), abs=1e-6)


def test_cknna_recovers_cka_at_full_k():
    A, B = _pair(n=120)
    n = A.shape[0]
    pa, pb = sim.prepare_features(A), sim.prepare_features(B)
    full = sim.cknna(A, B, n - 1)
    assert full == pytest.approx(sim.cka_linear(pa, pb, unbiased=True), abs=1e-6)
    # and it moves toward it as k grows
    gaps = [abs(sim.cknna(A, B, k) - full) for k in (5, 40, 100)]
    assert gaps[2] < gaps[0]
    with pytest.raises(InputError, match="k >= 2"):
        sim.cknna(A, B, 1)


# ---- CKA
@pytest.mark.parametrize("unbiased", [False, True])
def test_cka_linear_equals_dense(unbiased):
    A, B = _pair(n=150, da=60, db=300)  # d > n on one side
    K, L = linear_grams(A, B)
    assert sim.cka_linear(A, B, unbiased=unbiased) == pytest.approx(ref_cka(K, L, unbiased), abs=1e-6)
    assert sim.cka(A, B, unbiased=unbiased) == pytest.approx(ref_cka(K, L, unbiased), abs=1e-6)


def test_cka_invariances():
    A, B = _pair(n=100, da=30)
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    for ub in (False, True):
        assert sim.cka_linear(A, A @ Q, unbiased=ub) == pytest.approx(1.0, abs=1e-6)
        assert sim.cka_linear(A, 7.5 * B, unbiased=ub) == pytest.approx(sim.cka_linear(A, B, unbiased=ub), abs=1e-6)
        assert sim.cka(A, 0.1 * (A @ Q), "rbf", unbiased=ub) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("unbiased", [False, True])
def test_cka_rbf_equals_dense(unbiased):
    A, B = _pair(n=80)

    def gram(X, sigma):
        X = torch.tensor(X, dtype=torch.float64)
        D = torch.cdist(X, X) ** 2
        s2 = sigma**2 if sigma is not None else float(np.median(D.numpy()))  # Kornblith: np.median
        return torch.exp(-D / (2 * s2))

    for sigma in (None, 5.0):
        ref = ref_cka(gram(A, sigma), gram(B, sigma), unbiased)
        assert sim.cka(A, B, "rbf", unbiased=unbiased, sigma=sigma) == pytest.approx(ref, abs=1e-6)
    with pytest.raises(InputError, match="max_n"):
        sim.cka(A, B, "rbf", max_n=50)


# ---- ridge R^2 and RSA
def test_ridge_r2_matches_sklearn_fixed_alpha():
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold

    A, B = _pair(n=120, da=25, db=15)
    got, dirs = sim.ridge_r2(A, B, n_components=10, alphas=[3.0], alpha_scale="absolute", return_directions=True, seed=4)
    kf = KFold(5, shuffle=True, random_state=4)
    ref = {}
    for name, X, Y in (("A->B", A, B), ("B->A", B, A)):
        s = []
        for tr, te in kf.split(X):
            px = PCA(10, svd_solver="full").fit(X[tr])
            py = PCA(10, svd_solver="full").fit(Y[tr])
            Xtr, Xte, Ytr, Yte = px.transform(X[tr]), px.transform(X[te]), py.transform(Y[tr]), py.transform(Y[te])
            pred = Ridge(alpha=3.0).fit(Xtr, Ytr).predict(Xte)
            s.append(1 - ((Yte - pred) ** 2).sum() / ((Yte - Yte.mean(0)) ** 2).sum())
        ref[name] = np.mean(s)
    assert dirs["A->B"] == pytest.approx(ref["A->B"], abs=1e-4)
    assert dirs["B->A"] == pytest.approx(ref["B->A"], abs=1e-4)
    assert got == pytest.approx((ref["A->B"] + ref["B->A"]) / 2, abs=1e-4)
    assert got > 0.8
    rng = np.random.default_rng(5)
    assert sim.ridge_r2(A, rng.standard_normal((120, 15)), n_components=5) < 0.05


def test_ridge_r2_relative_alphas_scale_invariant_and_match_sklearn(monkeypatch):
    """Default relative α grid: the score is the same for A → cA, B → cB (c = 1e-3, 1e3), and every fold's fit
    is reproduced by scikit-learn's PCA + Ridge with the absolute α the fit reports (grid = RELATIVE_ALPHAS ×
    trace(XᵀX)/p of the fold's training PCs). With the absolute grid the score moves with the scale."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold

    from brainlid.alignment import _ridge

    A, B = _pair(n=120, da=25, db=15)
    calls = []
    real = _ridge.ridge_cv_fit_predict

    def spy(*args, **kwargs):
        res = real(*args, **kwargs)
        calls.append((np.asarray(args[0], dtype=np.float64), res))
        return res

    monkeypatch.setattr(sim, "ridge_cv_fit_predict", spy)  # similarity calls the name it imported
    got, dirs = sim.ridge_r2(A, B, n_components=10, return_directions=True, seed=4)
    assert len(calls) == 10  # 2 directions × 5 folds
    kf, it = KFold(5, shuffle=True, random_state=4), iter(calls)
    for name, X, Y in (("A->B", A, B), ("B->A", B, A)):
        s = []
        for tr, te in kf.split(X):
            Xtr_b, res = next(it)
            Xc = Xtr_b - Xtr_b.mean(0)
            np.testing.assert_allclose(res.alphas, _ridge.RELATIVE_ALPHAS * np.trace(Xc.T @ Xc) / Xc.shape[1], rtol=1e-5)
            px = PCA(10, svd_solver="full").fit(X[tr])
            py = PCA(10, svd_solver="full").fit(Y[tr])
            pred = Ridge(alpha=res.best_alphas).fit(px.transform(X[tr]), py.transform(Y[tr])).predict(px.transform(X[te]))
            s.append(r2_score(py.transform(Y[te]), pred, multioutput="variance_weighted"))
        assert dirs[name] == pytest.approx(np.mean(s), abs=1e-4)
    assert got > 0.8
    monkeypatch.setattr(sim, "ridge_cv_fit_predict", real)
    for c in (1e-3, 1e3):
        assert sim.ridge_r2(c * A, c * B, n_components=10, seed=4) == pytest.approx(got, rel=1e-5)
    absolute = [sim.ridge_r2(c * A, c * B, n_components=10, seed=4, alpha_scale="absolute") for c in (1e-3, 1.0, 1e3)]
    assert max(absolute) - min(absolute) > 1e-3  # the old absolute grid is not scale-invariant
    with pytest.raises(InputError, match="alpha_scale"):
        sim.ridge_r2(A, B, alpha_scale="percent")


def test_rsa_similarity_and_pairwise():
    A, B = _pair(n=60)
    C = np.random.default_rng(6).standard_normal((60, 10))
    assert sim.rsa_similarity(A, B) == pytest.approx(compare_rdms(rdm(A), rdm(B), "spearman"))
    feats = {"a": A, "b": B, "c": C}
    for metric in ("mutual_knn", "rsa", "cka_linear", "cknna"):
        M = sim.pairwise_matrix(feats, metric)
        assert list(M.index) == ["a", "b", "c"]
        np.testing.assert_allclose(M.values, M.values.T)
        assert M.loc["a", "b"] == pytest.approx(sim.similarity(A, B, metric), abs=1e-9)
        assert M.loc["a", "b"] > M.loc["a", "c"]


# ---- bad input
def test_bad_input():
    A, B = _pair(n=50)
    with pytest.raises(InputError, match="50 stimuli .* and B has 40"):
        sim.mutual_knn(A, B[:40])
    with pytest.raises(InputError, match="time axis on one side only"):
        sim.cka_linear(A[:, :, None].repeat(3, axis=2), B)
    with pytest.raises(InputError, match="time axis"):
        sim.cka_linear(A[:, :, None].repeat(3, axis=2), B[:, :, None].repeat(3, axis=2))
    with pytest.raises(InputError, match="unknown similarity metric"):
        sim.similarity(A, B, "procrustes")
    Ab = A.copy()
    Ab[:, 0] = np.nan
    Ab[:, 1] = 2.0
    with pytest.warns(UserWarning, match="dropped 2 of 40 features"):
        s = sim.cka_linear(Ab, B)
    assert np.isfinite(s)
    assert s == pytest.approx(sim.cka_linear(A[:, 2:], B), abs=1e-7)
    with pytest.raises(InputError, match="all 3 features are unusable"):
        sim.mutual_knn(np.ones((50, 3)), B)
