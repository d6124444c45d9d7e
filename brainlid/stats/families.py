"""Correlations across models that respect model families: pooled, within- and between-family scopes; Mantel test.

Each scope has a family-aware p-value (permutation within families, of family means, or both) and
interval (cluster bootstrap over families); the resampling itself lives in :mod:`.scopes`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._docs import fill_doc
from ..errors import InputError
from .correlation import (METHODS, _check_method, _pair, _rank, bootstrap_corr_ci, correlation, max_over_k_test,
                          partial_correlation)
from .scopes import (MIN_FAMILIES_INFERENCE, MIN_FAMILIES_POINT, MIN_WITHIN_DF, SCOPES, _centre, _perm_p,
                     _permuted_targets, _pooled_scheme, _r_rows, _residualise, _scope_bootstrap, _scope_items,
                     _scope_null, _scope_transform, _structure, _within_permutations, family_codes)


@fill_doc
def family_correlation(
    x, y, groups=None, scope: str = "pooled", method: str = "pearson", covariates=None, *,
    pooled_perm: str = "auto", n_boot: int = 2000, n_perm: int = 5000, level: float = 0.95, seed: int | None = 0,
) -> dict:
    """One scope of a correlation across models that belong to families.

    Parameters
    ----------
    %(models_xy)s
    %(groups)s
    scope : {"pooled", "within", "between"}
        ``pooled``: all models as they are; ``within``: values centred on their family's mean over
        the families with ≥ 2 models (the pooled within-family estimator, ``df = n_w − G_w − 1``);
        ``between``: the correlation of the G family means (``df = G − 2``).
    method : {"pearson", "spearman"}
        Spearman ranks the scope's items (within: ranks within each family).
    covariates : array-like of shape (n_models,) or (n_models, n_cov) or None
        Partial correlation: the scope-transformed x and y are residualised on the same transform
        of the covariates (within: family fixed effects), and the residuals are tested with the
        scope's permutation scheme.
    pooled_perm : {"auto", "t", "free", "within", "two_level"}
        The pooled test. ``auto``: the t-test (scipy) with the ordinary model bootstrap when no
        family has two models, else ``two_level`` (family means permuted across families and
        deviations within families) with a family-aware bootstrap. ``within`` (permutation within
        families) suits dependent per-model targets such as a model's mean alignment with the others.
    n_boot : int
        Bootstrap replicates of the interval (0: no interval, else >= 100).
    %(n_perm)s
    %(level)s
    %(seed)s

    Returns
    -------
    dict
        dict with ``r, p, ci_low, ci_high, partial_r, partial_p, n_models, n_families, df, p_method,
        ci_method, note``. Undefined parts are NaN and ``note`` says why in words: a between-family
        r needs ≥ 3 families, its p-value and every cluster-bootstrap interval ≥ 5; with fewer
        families, pooled and within intervals come from a bootstrap of models within their families
        (conditional on these families, said in ``ci_method``); the within scope needs
        Σ_f (n_f − 1) ≥ 3 over families with two or more models. Intervals: bootstrap quantiles of
        Fisher's z around their median, widened by √(u/(u − 1)) for u resampled units and centred on
        the observed r (a plain percentile interval over 8 families covered 0.89 at a nominal 0.95).
    """
    method = _check_method(method)
    if scope not in SCOPES:
        raise InputError(f"unknown scope {scope!r}; choose one of {', '.join(SCOPES)}")
    if n_perm < 100 or (n_boot and n_boot < 100):
        raise InputError(f"n_perm must be >= 100 and n_boot 0 or >= 100, got {n_perm} and {n_boot}")
    x, y = _pair(x, y)
    n = x.size
    codes, G = family_codes(groups, n)
    nan = float("nan")
    out = {"r": nan, "p": nan, "ci_low": nan, "ci_high": nan, "partial_r": nan, "partial_p": nan,
           "n_models": n, "n_families": G, "df": nan, "p_method": "", "ci_method": "", "note": ""}
    Z = None
    if covariates is not None:
        Z = np.asarray(covariates, dtype=np.float64)
        Z = Z[:, None] if Z.ndim == 1 else Z
        if Z.shape[0] != n or not np.all(np.isfinite(Z)):
            raise InputError(f"covariates must be finite with one row per model ({n}), got shape {Z.shape}")
    rng = np.random.default_rng(seed)
    sizes = np.bincount(codes, minlength=G)
    if scope == "within":
        keep = sizes[codes] >= 2
        G_s, n_s = int((sizes >= 2).sum()), int(keep.sum())
        df = n_s - G_s - 1
        out.update(n_models=n_s, n_families=G_s)
        if n_s - G_s < MIN_WITHIN_DF:
            out["note"] = (f"within-family r undefined: {G_s} famil{'y has' if G_s == 1 else 'ies have'} two or more "
                           f"models, {n_s - G_s} within-family degree(s) of freedom (needs {MIN_WITHIN_DF})")
            return out
        scheme, cluster = "within", G_s >= MIN_FAMILIES_INFERENCE
    elif scope == "between":
        G_s, df = G, G - 2
        if G < MIN_FAMILIES_POINT:
            out["note"] = (f"between-family r undefined: {G} famil{'y' if G == 1 else 'ies'} "
                           f"(a point estimate needs {MIN_FAMILIES_POINT}, a CI and p-value {MIN_FAMILIES_INFERENCE})")
            return out
        scheme, cluster = "families", True
    else:
        G_s, df = G, n - 2
        scheme = _pooled_scheme(codes, G, pooled_perm)
        cluster = G >= MIN_FAMILIES_INFERENCE or not _structure(codes, G)
    out["df"] = float(df)
    xt = _scope_transform(x, codes, G, scope, method)
    yt = _scope_transform(y, codes, G, scope, method)
    r = float(_r_rows(xt[None, :], yt)[0])
    out["r"] = r
    if not np.isfinite(r):
        out["note"] = f"{scope} r undefined: a variable is constant at this scope"
        return out
    if scope == "pooled" and scheme == "t":
        out["p"] = correlation(x, y, method)[1]
        if n_boot:
            out["ci_low"], out["ci_high"] = bootstrap_corr_ci(x, y, method, n_boot=n_boot, level=level, seed=seed)
        out["p_method"], out["ci_method"] = "t-test (models independent)", "bootstrap over models" if n_boot else ""
        if Z is not None:
            try:
                out["partial_r"], out["partial_p"] = partial_correlation(x, y, Z, method)
            except InputError as exc:
                out["note"] = f"partial correlation skipped: {exc}"
        return out
    enough = not (scope == "between" and G < MIN_FAMILIES_INFERENCE)
    if enough:
        null, exact = _scope_null(xt[:, None], y, codes, G, scope, method, scheme, n_perm, rng)
        out["p"] = float(_perm_p(null[:, 0], abs(r), exact))
        out["p_method"] = {"within": "permutation within families", "families": "permutation of family means",
                           "two_level": "permutation of family means and within families",
                           "free": "permutation over models"}[scheme] + (" (exact)" if exact else "")
        if n_boot:
            out["ci_low"], out["ci_high"] = _scope_bootstrap(x, y, codes, G, scope, method, n_boot, level, rng, cluster, r)
        out["ci_method"] = "" if not n_boot else ("cluster bootstrap over families" if cluster and _structure(codes, G)
                            else "bootstrap over models" if cluster
                            else f"bootstrap of models within families (conditional on these {G_s} families)")
    else:
        out["note"] = (f"between-family r from {G} families is a point estimate only: a CI and p-value need "
                       f"{MIN_FAMILIES_INFERENCE} families (a permutation of {G} family means cannot reach p < 0.05)")
    if Z is not None:
        k = Z.shape[1]
        if df - k < 1:
            out["note"] = (out["note"] + "; " if out["note"] else "") + f"partial r skipped: df {df} too small for {k} covariate(s)"
            return out
        Zt = np.column_stack([_scope_transform(Z[:, j], codes, G, scope, method) for j in range(k)])
        res = _residualise(np.column_stack([xt, yt]), Zt)
        pr = float(_r_rows(res[:, 0][None, :], res[:, 1])[0])
        out["partial_r"] = pr
        if enough and np.isfinite(pr):
            # residuals permuted under the scope's scheme (Kennedy 1995): items are families for
            # `between`, the kept models for `within`, all models for `pooled`
            if scope == "between":
                icodes, iG = np.arange(G), G
                Rp, exact = _permuted_targets(res[:, 1], icodes, iG, "families", n_perm, rng)
            else:
                keep, items = _scope_items(codes, G, scope)
                icodes = codes if keep is None else items
                iG = int(icodes.max()) + 1
                Rp, exact = _permuted_targets(res[:, 1], icodes, iG, scheme, n_perm, rng)
            Rp = _residualise(_centre(Rp, None).T, Zt).T
            null = np.abs(_r_rows(Rp, res[:, 0]))
            out["partial_p"] = float(_perm_p(null, abs(pr), exact))
    return out


@fill_doc
def family_decomposition(
    x, y, groups, log_params=None, *, scopes=SCOPES, pooled_perm: str = "auto", n_boot: int = 2000,
    n_perm: int = 5000, level: float = 0.95, seed: int | None = 0,
) -> pd.DataFrame:
    """Pooled, within-family and between-family correlations of one (x, y) pair, with warnings.

    Parameters
    ----------
    %(models_xy)s
    %(groups)s
    log_params : array-like of shape (n_models,) or None
        Covariate of the partial correlations (log parameter count).
    scopes : sequence of {"pooled", "within", "between"}
        The scopes computed (default all three, in :data:`SCOPES` order); the Simpson's-paradox
        warning needs both ``pooled`` and ``within``.
    pooled_perm, n_boot, n_perm, level, seed :
        As in :func:`family_correlation` (the same seed for every scope and method).

    Returns
    -------
    DataFrame
        DataFrame, one row per scope (``pooled, within, between``; those of ``scopes``), columns ``scope, n_models,
        n_families, df, pearson_r, pearson_p, pearson_ci_low, pearson_ci_high, spearman_r, spearman_p,
        spearman_ci_low, spearman_ci_high, partial_pearson_r, partial_pearson_p, partial_spearman_r,
        partial_spearman_p, p_method, ci_method, warning``. ``warning`` says in words when the pooled
        and within-family Pearson r have opposite signs (Simpson's paradox: the pooled r is carried by
        differences between families) and when too few families or models per family make a scope's
        estimate, interval or p-value impossible.
    """
    if set(scopes) - set(SCOPES):
        raise InputError(f"unknown scope(s) {sorted(set(scopes) - set(SCOPES))}; choose from {', '.join(SCOPES)}")
    rows = {}
    for scope in (s for s in SCOPES if s in scopes):
        row: dict = {"scope": scope}
        notes = []
        for m in METHODS:
            fc = family_correlation(x, y, groups, scope, m, log_params, pooled_perm=pooled_perm, n_boot=n_boot,
                                    n_perm=n_perm, level=level, seed=seed)
            row.update({"n_models": fc["n_models"], "n_families": fc["n_families"], "df": fc["df"],
                        f"{m}_r": fc["r"], f"{m}_p": fc["p"], f"{m}_ci_low": fc["ci_low"], f"{m}_ci_high": fc["ci_high"],
                        f"partial_{m}_r": fc["partial_r"], f"partial_{m}_p": fc["partial_p"]})
            if m == "pearson":
                row.update(p_method=fc["p_method"], ci_method=fc["ci_method"])
            if fc["note"] and fc["note"] not in notes:
                notes.append(fc["note"])
        row["_notes"] = notes
        rows[scope] = row
    nan_row = {"pearson_r": np.nan, "_notes": []}
    pooled, within, between = (rows.get(s, dict(nan_row)) for s in SCOPES)
    rp, rw, rb = pooled["pearson_r"], within["pearson_r"], between["pearson_r"]
    if np.isfinite(rp) and np.isfinite(rw) and np.sign(rp) != np.sign(rw) and rp != 0 and rw != 0:
        text = (f"Simpson's paradox: the pooled r ({rp:+.2f}) and the within-family r ({rw:+.2f}) have opposite signs"
                + (f"; between families r = {rb:+.2f}" if np.isfinite(rb) else "")
                + " — the pooled correlation is carried by differences between families, not by models within a family")
        pooled["_notes"].insert(0, text)
        within["_notes"].insert(0, text)
    n_models = np.size(x)
    codes, G = family_codes(groups, n_models)
    if 1 < G < MIN_FAMILIES_INFERENCE and G < n_models:
        pooled["_notes"].append(
            f"only {G} families: the pooled r mixes within- and between-family variation and the between part "
            f"cannot be tested (needs {MIN_FAMILIES_INFERENCE} families); its interval is conditional on these families")
    elif G == 1:
        pooled["_notes"].append("one family: the pooled r is the within-family r; nothing is known between families")
    singles = int((np.bincount(codes) == 1).sum()) if groups is not None else 0
    if singles and np.isfinite(rw) and within["n_families"]:
        within["_notes"].append(f"{singles} famil{'y' if singles == 1 else 'ies'} with a single model do not contribute")
    for row in rows.values():
        row["warning"] = "; ".join(row.pop("_notes"))
    return pd.DataFrame(list(rows.values()))


@fill_doc
def family_max_over_k_test(
    values, y, groups, scope: str = "pooled", ks=None, method: str = "pearson", *, pooled_perm: str = "auto",
    n_perm: int = 5000, seed: int | None = 0,
) -> pd.DataFrame:
    """:func:`max_over_k_test` for one scope of a family decomposition.

    Every K's r is the scope's correlation (:func:`family_correlation`); the null permutes ``y``
    with the scope's scheme (within families / family means / both levels), the same permutation
    for every K, and records ``T* = max_K |r*_K|``. ``p`` is each K's own permutation p-value and
    ``p_corrected`` its max-``|r|`` family-wise p-value. With ``groups=None`` and the pooled scope this
    is :func:`max_over_k_test` exactly.

    Parameters
    ----------
    %(values_y)s
    %(groups)s
    scope : {"pooled", "within", "between"}
        The scope of every K's correlation (:func:`family_correlation`).
    ks : array-like of shape (n_K,) or None
        The K values (labels of the columns; default 0..n_K−1).
    %(corr_method)s
    pooled_perm : {"auto", "t", "free", "within", "two_level"}
        The pooled scope's test (:func:`family_correlation`).
    %(n_perm)s
    %(seed)s

    Returns
    -------
    DataFrame
        Columns ``K, r, p, p_corrected, n_models, n_families, scope``, one row per K (empty when
        the scope is undefined: fewer than :data:`MIN_FAMILIES_INFERENCE` families for
        ``between``, fewer than :data:`MIN_WITHIN_DF` within-family degrees of freedom for ``within``).
    """
    method = _check_method(method)
    V = np.asarray(values, dtype=np.float64)
    V = V[:, None] if V.ndim == 1 else V
    yv = np.asarray(y, dtype=np.float64).ravel()
    if V.ndim != 2 or V.shape[0] != yv.size:
        raise InputError(f"values must have shape (n_models, n_K) with n_models = {yv.size}, got {np.shape(values)}")
    codes, G = family_codes(groups, yv.size)
    cols = ["K", "r", "p", "p_corrected", "n_models", "n_families", "scope"]
    scheme = _pooled_scheme(codes, G, pooled_perm) if scope == "pooled" else scope
    if scope == "pooled" and scheme == "t":
        out = max_over_k_test(V, yv, ks=ks, method=method, n_perm=n_perm, seed=seed)
        out["n_families"], out["scope"] = G, scope
        return out[cols]
    ks = np.arange(V.shape[1]) if ks is None else np.asarray(ks)
    if n_perm < 100:
        raise InputError(f"n_perm must be >= 100, got {n_perm}")
    sizes = np.bincount(codes, minlength=G)
    if scope == "between":
        n_items, n_fam = yv.size, G
        if G < MIN_FAMILIES_INFERENCE:
            return pd.DataFrame(columns=cols)
    elif scope == "within":
        n_items, n_fam = int(sizes[codes].__ge__(2).sum()), int((sizes >= 2).sum())
        if n_items - n_fam < MIN_WITHIN_DF:
            return pd.DataFrame(columns=cols)
        scheme = "within"
    else:
        n_items, n_fam = yv.size, G
    Xt = _scope_transform(V.T, codes, G, scope, method).T  # (m, K)
    yt = _scope_transform(yv, codes, G, scope, method)
    r = _r_rows(Xt.T, yt)
    null, exact = _scope_null(Xt, yv, codes, G, scope, method, scheme, n_perm, np.random.default_rng(seed))
    p = _perm_p(null, np.abs(r), exact)
    tmax = null.max(axis=1)
    p_corr = _perm_p(tmax[:, None], np.abs(r)[None, :], exact)
    return pd.DataFrame({"K": ks, "r": r, "p": p, "p_corrected": p_corr, "n_models": n_items, "n_families": n_fam,
                         "scope": scope})


@fill_doc
def mantel_test(
    a, b, groups=None, method: str = "pearson", n_perm: int = 5000, seed: int | None = 0, *, scope: str = "pooled",
) -> dict:
    """Correlation of two pairwise (model × model) quantities with a Mantel permutation p-value.

    Pairs share models, so they are not independent: a t-test over the n(n−1)/2 pairs inflates
    false positives. The Mantel test permutes the *model labels* of one matrix (rows and columns
    together) and recomputes r over the pairs.

    Parameters
    ----------
    a, b : array-like of shape (n_models, n_models)
        Pairwise values (e.g. ``|ΔLID|`` and the symmetrised model–model alignment); only the upper
        triangle is used. A permutation needs complete matrices: models with a missing (NaN) pair
        are left out, the most incomplete first, and ``note`` says how many.
    groups : array-like of shape (n_models,) or None
        Families: labels are then permuted within families only (a restricted Mantel test: the
        family block structure is kept in the null).
    %(corr_method)s
    %(n_perm)s
    %(seed)s
    scope : {"pooled", "within"}
        ``within``: only pairs of models of the same family.

    Returns
    -------
    dict
        ``r, p, n_pairs, n_models, p_method, note`` (r NaN when fewer than 3 pairs).
    """
    method = _check_method(method)
    A = np.asarray(a, dtype=np.float64)
    B = np.asarray(b, dtype=np.float64)
    n = A.shape[0]
    if A.shape != (n, n) or B.shape != (n, n):
        raise InputError(f"a and b must be square matrices of the same shape, got {A.shape} and {B.shape}")
    if n_perm < 100:
        raise InputError(f"n_perm must be >= 100, got {n_perm}")
    codes, G = family_codes(groups, n)
    # a permutation moves every pair's value to another pair: the matrices must be complete, so
    # models with a missing pair are left out (most missing first) until the rest are complete
    ok = np.isfinite(A) & np.isfinite(B)
    np.fill_diagonal(ok, True)
    keep = np.ones(n, dtype=bool)
    while not ok[np.ix_(keep, keep)].all():
        bad = np.where(keep, (~ok[np.ix_(np.arange(n), keep)]).sum(axis=1), -1)
        keep[int(np.argmax(bad))] = False
    dropped = int(n - keep.sum())
    if dropped:
        A, B, codes = A[np.ix_(keep, keep)], B[np.ix_(keep, keep)], pd.factorize(codes[keep])[0]
        G, n = int(codes.max()) + 1 if keep.any() else 0, int(keep.sum())
    iu, ju = np.triu_indices(n, 1)
    sel = np.ones(iu.size, dtype=bool)
    if scope == "within":
        sel &= codes[iu] == codes[ju]
    elif scope != "pooled":
        raise InputError(f"scope must be 'pooled' or 'within' for a pairwise target, got {scope!r}")
    iu, ju = iu[sel], ju[sel]
    out = {"r": np.nan, "p": np.nan, "n_pairs": int(iu.size), "n_models": n, "p_method": "",
           "note": f"{dropped} model(s) with missing pairs left out" if dropped else ""}
    if iu.size < 3:
        out["note"] = "; ".join(t for t in (out["note"], f"{iu.size} pair(s) in scope {scope!r}: a pairwise correlation needs 3") if t)
        return out

    def prep(v):
        v = _rank(v, axis=-1) if method == "spearman" else v
        v = v - v.mean(axis=-1, keepdims=True)
        return v / np.sqrt((v * v).sum(axis=-1, keepdims=True))

    av = prep(A[iu, ju])
    r = float(av @ prep(B[iu, ju]))
    out["r"] = r
    rng = np.random.default_rng(seed)
    structured = _structure(codes, G) and groups is not None
    hits, step = 0, 500
    for s in range(0, n_perm, step):
        m = min(step, n_perm - s)
        P = _within_permutations(codes, m, rng) if structured else np.argsort(rng.random((m, n)), axis=1)
        Bp = B[P[:, iu], P[:, ju]]  # (m, n_pairs): b with its model labels permuted
        hits += int((np.abs(prep(Bp) @ av) >= abs(r) - 1e-12).sum())
    out["p"] = (1 + hits) / (1 + n_perm)
    out["p_method"] = "Mantel permutation of model labels" + (" within families" if structured else "")
    return out
