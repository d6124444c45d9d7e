"""Across-model inference that sees model families (issue 18): simulated zoos with known structure.

* the three scopes agree with independent forms (scipy on family means, least squares with family
  dummies, pandas ranks within groups; bootstrap samples expanded by hand);
* a zoo with a within-family effect of −0.8 and a between-family effect of +0.8 (8 families) is
  recovered with the right signs, the true values inside the intervals, and a Simpson warning;
* with no effect anywhere (but shared family effects in both variables) the family-aware tests
  reject ≤ 9 % of 300 replications at a nominal 5 % — the t-test that treats models as
  independent does not; the max-|r| correction over K holds the family-wise rate per scope;
* a pairwise target: the Mantel test holds the band, a t-test over pairs inflates it;
* few families: point estimates only, said in words; families from a file, a generalization
  column or the id rule; real and synthetic rows are not mixed;
* the real CIFAR ResNet family on K92 (skipped without ``../shared/realdata``): one family, so
  within = pooled and between is undefined, said so.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from brainlid import analysis, stats
from brainlid.errors import InputError
from brainlid.scoring.tables import geometry_frame, score_frame, write_table
from brainlid.stats.scopes import _bootstrap_r, _weighted_r
from support import REALDATA


def family_zoo(rng, n_families=8, per=5, r_within=-0.8, r_between=0.8, spread=3.0):
    """x, y with correlation ``r_within`` of the deviations inside a family and ``r_between`` of the
    family effects; the family effects are ``spread`` times larger than the deviations."""
    fam = np.repeat(np.arange(n_families), per)
    a = rng.normal(size=n_families)
    b = r_between * a + np.sqrt(1 - r_between**2) * rng.normal(size=n_families)
    e = rng.normal(size=fam.size)
    f = r_within * e + np.sqrt(1 - r_within**2) * rng.normal(size=fam.size)
    return spread * a[fam] + e, spread * b[fam] + f, fam


def true_between(r_between=0.8, r_within=-0.8, spread=3.0, per=5):
    """Correlation of family means: the family effects plus the mean of `per` deviations."""
    return (spread**2 * r_between + r_within / per) / (spread**2 + 1 / per)


# ------------------------------------------------------------------------------ independent forms
def test_scopes_match_independent_forms():
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    x, y, fam = family_zoo(rng, n_families=6, per=4)
    fam = fam.astype(object)
    fam[-1] = "lonely"  # a family of one model: no within-family information
    dec = stats.family_decomposition(x, y, fam, n_boot=200, n_perm=200).set_index("scope")
    # pooled: scipy
    assert dec.loc["pooled", "pearson_r"] == pytest.approx(st.pearsonr(x, y)[0], abs=1e-12)
    assert dec.loc["pooled", "spearman_r"] == pytest.approx(st.spearmanr(x, y)[0], abs=1e-12)
    # between: scipy on the family means
    df = pd.DataFrame({"x": x, "y": y, "f": fam.astype(str)})
    means = df.groupby("f")[["x", "y"]].mean()
    assert dec.loc["between", "pearson_r"] == pytest.approx(st.pearsonr(means.x, means.y)[0], abs=1e-12)
    assert dec.loc["between", "spearman_r"] == pytest.approx(st.spearmanr(means.x, means.y)[0], abs=1e-12)
    assert dec.loc["between", "n_families"] == 7 and dec.loc["between", "df"] == 5
    # within: residuals of least squares on family dummies (fixed effects), singleton family dropped
    keep = df.groupby("f")["x"].transform("size") >= 2
    d = df[keep]
    D = pd.get_dummies(d.f).to_numpy(float)
    res = [v - LinearRegression(fit_intercept=False).fit(D, v).predict(D) for v in (d.x.to_numpy(), d.y.to_numpy())]
    assert dec.loc["within", "pearson_r"] == pytest.approx(np.corrcoef(*res)[0, 1], abs=1e-12)
    assert dec.loc["within", "n_models"] == 23 and dec.loc["within", "df"] == 23 - 6 - 1
    rk = d.groupby("f")[["x", "y"]].rank()
    rk = rk - rk.groupby(d.f).transform("mean")
    assert dec.loc["within", "spearman_r"] == pytest.approx(np.corrcoef(rk.x, rk.y)[0, 1], abs=1e-12)
    assert "single model" in dec.loc["within", "warning"]
    # partial r within families given a covariate = least squares on dummies + covariate
    z = rng.normal(size=x.size)
    part = stats.family_correlation(x, y, fam, "within", covariates=z, n_boot=0, n_perm=200)
    Dz = np.column_stack([D, z[keep.to_numpy()]])
    res = [v - LinearRegression(fit_intercept=False).fit(Dz, v).predict(Dz) for v in (d.x.to_numpy(), d.y.to_numpy())]
    assert part["partial_r"] == pytest.approx(np.corrcoef(*res)[0, 1], abs=1e-10)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_weighted_bootstrap_equals_expanded_samples(method):
    """A bootstrap sample given as copy counts gives the r of the expanded data set, ranks and all."""
    rng = np.random.default_rng(1)
    x, y, fam = family_zoo(rng, n_families=5, per=4)
    x[3] = x[2]  # a tie
    W = rng.multinomial(x.size, np.full(x.size, 1 / x.size), size=6).astype(float)
    corr = st.pearsonr if method == "pearson" else st.spearmanr
    got = _weighted_r(x, y, W, None, method)
    want = [corr(np.repeat(x, w.astype(int)), np.repeat(y, w.astype(int)))[0] for w in W]
    np.testing.assert_allclose(got, want, atol=1e-12)
    # within families, cluster bootstrap: each copy of a family is centred (and ranked) on its own
    C = rng.multinomial(5, np.full(5, 0.2), size=6).astype(float)
    got = _bootstrap_r(x, y, fam, 5, "within", method, C[:, fam], C, cluster=True)
    for s in range(6):
        parts = []
        for f in range(5):
            for c in range(int(C[s, f])):
                xi, yi = x[fam == f], y[fam == f]
                if method == "spearman":
                    xi, yi = st.rankdata(xi), st.rankdata(yi)
                parts.append(np.column_stack([xi - xi.mean(), yi - yi.mean()]))
        P = np.vstack(parts)
        want = (P[:, 0] @ P[:, 1]) / np.sqrt((P[:, 0] @ P[:, 0]) * (P[:, 1] @ P[:, 1]))
        assert got[s] == pytest.approx(want, abs=1e-12)


# ------------------------------------------------------------------------- known structure
def test_simpson_zoo_recovered_and_flagged():
    """Within −0.8, between +0.8 over 8 families: signs right, truths inside the CIs, warned."""
    hits = {"within": 0, "between": 0}
    R = 12
    for seed in range(R):
        x, y, fam = family_zoo(np.random.default_rng(100 + seed))
        dec = stats.family_decomposition(x, y, fam, n_boot=500, n_perm=500, seed=seed).set_index("scope")
        w, b, p = dec.loc["within"], dec.loc["between"], dec.loc["pooled"]
        assert w.pearson_r < -0.5 and w.pearson_ci_high < 0 and w.pearson_p < 0.01
        assert b.pearson_r > 0 and p.pearson_r > 0  # the pooled r follows the larger between-family spread
        assert w.pearson_ci_low <= w.pearson_r <= w.pearson_ci_high and b.pearson_ci_low <= b.pearson_r <= b.pearson_ci_high
        assert "Simpson" in p.warning and "Simpson" in w.warning
        assert w.p_method == "permutation within families" and b.p_method.startswith("permutation of family means")
        assert w.ci_method == b.ci_method == "cluster bootstrap over families"
        hits["within"] += w.pearson_ci_low <= -0.8 <= w.pearson_ci_high
        hits["between"] += b.pearson_ci_low <= true_between() <= b.pearson_ci_high
    # nominal 95 %: in 12 replications at least 9 must cover (P(≤ 8 | 0.95) < 0.003)
    assert hits["within"] >= 9 and hits["between"] >= 9, hits


def test_simpson_zoo_through_analyze(tmp_path):
    x, y, fam = family_zoo(np.random.default_rng(7))
    names = [f"arch{chr(97 + f)}_w{i}" for i, f in enumerate(fam)]  # rule: family = "archa", "archb", ...
    scores, geom = tables_from(names, x, y)
    res = analysis.analyze(scores, geom, n_boot=300, n_perm=300, out=tmp_path)
    models = pd.read_csv(tmp_path / "models.csv")
    assert models.groupby("family").size().tolist() == [5] * 8
    assert res.settings["family_source"] == "rule" and res.settings["n_families"] == 8
    corr = pd.read_csv(tmp_path / "correlations.csv", keep_default_na=False, na_values=[""])
    head = corr[corr.headline & (corr.target == "brain:b.s1.R.encoding")].set_index("scope")
    assert list(head.index) == ["pooled", "within", "between"]
    assert head.loc["within", "pearson_r"] < -0.5 < 0 < head.loc["between", "pearson_r"]
    assert "Simpson" in head.loc["pooled", "warning"]
    kc = res.k_curve[res.k_curve.target == "brain:b.s1.R.encoding"]
    assert set(kc.scope) == {"pooled", "within", "between"} and (kc.p_corrected >= kc.p - 1e-12).all()
    text = res.files["report"].read_text()
    assert "Model families: pooled, within and between" in text and "Simpson&#x27;s paradox" in text
    assert "fig:families:brain:b.s1.R.encoding" in res.files
    # the same data with every model its own family: the old, family-blind analysis
    flat = analysis.analyze(scores, geom, family_rule="model", n_boot=300, n_perm=300)
    assert set(flat.correlations.scope) == {"pooled"}
    assert flat.headline().pearson_r.iloc[0] == pytest.approx(head.loc["pooled", "pearson_r"], abs=1e-12)


def tables_from(names, lid, align, ks=(5, 10, 20)):
    """Score + geometry tables with `lid` at every K (plus a little K-dependent noise) and `align`."""
    rng = np.random.default_rng(0)
    g = [dict(model=m, layer="out", layer_index=0, stimulus_set="s", n=100, estimator="mle", K=k,
              value=float(v + 10 + 0.05 * rng.normal())) for m, v in zip(names, lid) for k in ks]
    s = [dict(model=m, layer="out", layer_index=0, benchmark="b.s1.R.encoding", dataset="b", subject="s1", roi="R",
              metric="encoding_r2", split="test", value=float(v), selected=True) for m, v in zip(names, align)]
    return score_frame(s), geometry_frame(g)


# ----------------------------------------------------------------------- no effect: error rates
def test_no_effect_family_aware_tests_hold_nominal_rate():
    """300 zoos of 6 families x 5 models; x and y have family effects but no relation."""
    R, alpha = 300, 0.05
    rej = {s: 0 for s in stats.SCOPES}
    fwer = {s: 0 for s in stats.SCOPES}
    naive = 0
    for i in range(R):
        x, y, fam = family_zoo(np.random.default_rng(1000 + i), n_families=6, per=5, r_within=0, r_between=0, spread=1.5)
        naive += st.pearsonr(x, y)[1] < alpha
        V = x[:, None] + 0.7 * np.random.default_rng(i).normal(size=(x.size, 3))  # 3 "K": noisy copies of x
        for scope in stats.SCOPES:
            rej[scope] += stats.family_correlation(x, y, fam, scope, n_boot=0, n_perm=200, seed=i)["p"] < alpha
            if i < 200:  # the max-|r| correction over K under each scope's permutations
                fwer[scope] += stats.family_max_over_k_test(V, y, fam, scope, n_perm=200, seed=i).p_corrected.min() < alpha
    rates = {s: v / R for s, v in rej.items()}
    fw = {s: v / 200 for s, v in fwer.items()}
    print(f"\nno effect, {R} zoos: family-aware rejection {rates}, t-test treating models as independent {naive / R:.3f}; "
          f"max-over-K family-wise rate (200 zoos) {fw}")
    for s in stats.SCOPES:
        assert 0.01 <= rates[s] <= 0.09, (s, rates)
        assert 0.01 <= fw[s] <= 0.09, (s, fw)
    assert naive / R > 0.15  # the family-blind t-test is far off nominal here


def test_pairwise_target_mantel_holds_t_test_inflates():
    """|ΔLID| against a pairwise alignment M_ij: pairs share models, so the t-test over pairs is invalid."""
    R, n = 300, 15
    iu, ju = np.triu_indices(n, 1)
    mantel = ttest = 0
    for i in range(R):
        rng = np.random.default_rng(5000 + i)
        lid, u = rng.exponential(size=n), rng.exponential(size=n)  # independent: no effect
        D = np.abs(lid[:, None] - lid[None, :])
        M = u[:, None] + u[None, :] + 0.3 * rng.normal(size=(n, n))
        M = (M + M.T) / 2
        mantel += stats.mantel_test(D, M, n_perm=200, seed=i)["p"] < 0.05
        ttest += st.pearsonr(D[iu, ju], M[iu, ju])[1] < 0.05
    print(f"\npairwise target, {R} zoos: Mantel {mantel / R:.3f}, t-test over pairs {ttest / R:.3f}")
    assert 0.01 <= mantel / R <= 0.09
    assert ttest / R > 0.2


def test_mantel_matches_brute_force_and_detects_a_relation():
    rng = np.random.default_rng(3)
    n = 8
    lid = rng.normal(size=n)
    D = np.abs(lid[:, None] - lid[None, :])
    M = -D + 0.2 * rng.normal(size=(n, n))
    M = (M + M.T) / 2
    res = stats.mantel_test(D, M, n_perm=999, seed=0)
    iu, ju = np.triu_indices(n, 1)
    assert res["r"] == pytest.approx(st.pearsonr(D[iu, ju], M[iu, ju])[0], abs=1e-12)
    assert res["r"] < -0.8 and res["p"] < 0.01 and res["n_pairs"] == 28
    # the p-value is the share of label permutations (rows and columns together) at least as extreme
    perm_rng = np.random.default_rng(0)
    P = np.argsort(perm_rng.random((999, n)), axis=1)
    null = np.array([abs(st.pearsonr(D[iu, ju], M[np.ix_(p, p)][iu, ju])[0]) for p in P])
    assert res["p"] == pytest.approx((1 + (null >= abs(res["r"]) - 1e-12).sum()) / 1000)
    # a pair that was not scored: its model is left out (a permutation needs complete matrices)
    M2 = M.copy()
    M2[2, 5] = M2[5, 2] = np.nan
    part = stats.mantel_test(D, M2, n_perm=999, seed=0)
    keep = np.array([i != 2 for i in range(n)])  # the first of the two incomplete models goes
    sub = stats.mantel_test(D[np.ix_(keep, keep)], M[np.ix_(keep, keep)], n_perm=999, seed=0)
    assert part["r"] == sub["r"] and part["p"] == sub["p"] and part["n_models"] == 7
    assert "1 model(s) with missing pairs left out" in part["note"]


# ------------------------------------------------------------------------------ few families
@pytest.mark.parametrize("n_families", [1, 2, 3, 4, 5])
def test_few_families_point_estimates_only(n_families):
    x, y, fam = family_zoo(np.random.default_rng(n_families), n_families=n_families, per=4, r_within=-0.5, r_between=0.5)
    dec = stats.family_decomposition(x, y, fam, n_boot=200, n_perm=200).set_index("scope")
    b = dec.loc["between"]
    if n_families < 3:
        assert np.isnan(b.pearson_r) and "undefined" in b.warning
    elif n_families < 5:
        assert np.isfinite(b.pearson_r) and np.isnan(b.pearson_p) and np.isnan(b.pearson_ci_low)
        assert "point estimate only" in b.warning and "5 families" in b.warning
    else:
        assert np.isfinite(b.pearson_p) and np.isfinite(b.pearson_ci_low)
        assert b.pearson_p >= 1 / 120 and b.p_method.endswith("(exact)")  # all 5! orders of the family means
    if n_families == 1:
        for col in ("pearson_r", "pearson_p", "pearson_ci_low", "pearson_ci_high", "spearman_r", "spearman_p"):
            assert dec.loc["within", col] == dec.loc["pooled", col]  # one family: within = pooled, exactly
        assert "one family" in dec.loc["pooled", "warning"]
    elif n_families < 5:
        assert "conditional" in dec.loc["within", "ci_method"] and f"only {n_families} families" in dec.loc["pooled", "warning"]


# ------------------------------------------------------------------------------ families, sources
def test_family_rule_file_and_generalization_column(tmp_path):
    assert analysis.family_of("timm:convnext_atto.d2_in1k") == "convnext"
    assert analysis.family_of("timm:convnextv2_tiny.fcmae") == "convnextv2"
    assert analysis.family_of("torchvision:resnet18@random:0") == "resnet"
    assert analysis.family_of("cifar_resnet:20@/x/resnet20-12fca82f.th") == "cifar_resnet"
    assert analysis.family_of("mlp_w64_d1") == "mlp"
    assert analysis.family_of("timm:vit_base_patch16_224.augreg_in21k", r"_(patch\d+)") == "patch16"
    assert analysis.family_of("a", "model") == "a"
    with pytest.raises(InputError, match="regular expression"):
        analysis.family_of("a", "(")
    x, y, fam = family_zoo(np.random.default_rng(2), n_families=3, per=3)
    names = [f"m{i}" for i in range(x.size)]
    scores, geom = tables_from(names, x, y)
    fam_csv = tmp_path / "families.csv"
    pd.DataFrame({"model": names, "family": [f"F{f}" for f in fam]}).to_csv(fam_csv, index=False)
    res = analysis.analyze(scores, geom, families=fam_csv, n_boot=200, n_perm=200)
    assert res.models["family"].tolist() == [f"F{f}" for f in fam] and res.settings["family_source"] == "file"
    gen = pd.DataFrame({"model": names, "top1": y + 50, "family": [f"G{f}" for f in fam]})
    res = analysis.analyze(scores, geom, gen, n_boot=200, n_perm=200)
    assert res.models["family"].tolist() == [f"G{f}" for f in fam] and res.settings["family_source"] == "generalization"
    pd.DataFrame({"model": names[:-1], "family": "F"}).to_csv(fam_csv, index=False)
    with pytest.raises(InputError, match="no family for 1 model"):
        analysis.analyze(scores, geom, families=fam_csv, n_boot=200, n_perm=200)
    (tmp_path / "bad.csv").write_text("name,group\na,b\n")
    with pytest.raises(InputError, match="'model' and 'family'"):
        analysis.read_families(tmp_path / "bad.csv")


def test_real_and_synthetic_rows_are_not_mixed():
    x, y, fam = family_zoo(np.random.default_rng(4), n_families=3, per=3)
    names = [f"m{i}" for i in range(x.size)]
    scores, geom = tables_from(names, x, y)
    scores = score_frame([*scores.to_dict("records"), *scores.assign(benchmark="c.s1.R.encoding", dataset="c").to_dict("records")])
    old = scores.drop(columns=["data_source"], errors="ignore")  # a table written before data sources existed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = analysis.analyze(old, geom, n_boot=200, n_perm=200)
    assert set(res.settings["data_sources"].values()) == {"unknown"}
    assert not [w for w in caught if "data source" in str(w.message)]
    scores["data_source"] = np.where(scores.benchmark == "b.s1.R.encoding", "real", "synthetic")
    with pytest.raises(InputError, match="mix real and synthetic"):
        analysis.analyze(scores, geom, n_boot=200, n_perm=200)
    with pytest.warns(RuntimeWarning, match="SYNTHETIC data mixed on request"):
        res = analysis.analyze(scores, geom, allow_mixed_sources=True, n_boot=200, n_perm=200)
    assert res.settings["data_sources"] == {"b.s1.R.encoding": "real", "c.s1.R.encoding": "synthetic"}
    assert any("SYNTHETIC" in w for w in res.warnings())
    scores["data_source"] = np.where(scores.benchmark == "b.s1.R.encoding", "real", "unknown")
    with pytest.warns(RuntimeWarning, match="unknown data source"):
        analysis.analyze(scores, geom, n_boot=200, n_perm=200)


def test_cli_analyze_families(tmp_path, capsys):
    from brainlid.cli import main

    x, y, fam = family_zoo(np.random.default_rng(9), n_families=5, per=3)
    names = [f"m{i}" for i in range(x.size)]
    scores, geom = tables_from(names, x, y)
    write_table(scores, tmp_path / "scores", formats=("csv",))
    write_table(geom, tmp_path / "geometry", formats=("csv",))
    fam_csv = tmp_path / "families.csv"
    pd.DataFrame({"model": names, "family": [f"F{f}" for f in fam]}).to_csv(fam_csv, index=False)
    assert main(["analyze", "--table", str(tmp_path / "scores.csv"), "--table", str(tmp_path / "geometry.csv"),
                 "--families", str(fam_csv), "--k", "10", "--out", str(tmp_path / "an")]) == 0
    out = capsys.readouterr()
    assert "within" in out.out and "between" in out.out and "5 families" in out.out
    models = pd.read_csv(tmp_path / "an" / "models.csv")
    assert dict(zip(models["model"], models["family"])) == {m: f"F{f}" for m, f in zip(names, fam)}
    corr = pd.read_csv(tmp_path / "an" / "correlations.csv")
    assert {"scope", "warning", "p_method", "ci_method"} <= set(corr.columns)
    assert set(corr.scope) == {"pooled", "within", "between"}
    # a families file that is not one: a one-line error
    (tmp_path / "nope.csv").write_text("x\n1\n")
    assert main(["analyze", "--table", str(tmp_path / "scores.csv"), "--table", str(tmp_path / "geometry.csv"),
                 "--families", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "an2")]) != 0
    err = capsys.readouterr().err
    assert "'model' and 'family'" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------ real data
CHECKPOINTS = {20: "resnet20-12fca82f.th", 32: "resnet32-d509ac18.th", 44: "resnet44-014dd654.th", 56: "resnet56-4bfd9763.th"}


@pytest.mark.slow  # four CNN forward passes over the 92 images and the K92 RDM scoring
@pytest.mark.skipif(not (REALDATA / "k92").is_dir() or not (REALDATA / "cifar_resnets").is_dir(),
                    reason=f"real data folder not found: {REALDATA} (set BRAINLID_REALDATA)")
def test_real_cifar_resnet_family_on_k92(tmp_path, monkeypatch):
    """One family (the CIFAR ResNets): within = pooled, between undefined — said so, end to end."""
    import brainlid
    from brainlid.features import load_model

    monkeypatch.setenv("BRAINLID_HOME", str(tmp_path / "home"))
    specs = [f"cifar_resnet:{d}@{REALDATA / 'cifar_resnets' / f}" for d, f in CHECKPOINTS.items()]
    gen = pd.DataFrame({"model": specs, "top1": [load_model(s).info["best_prec1"] for s in specs]})
    res = brainlid.score(specs, ["k92.human.IT.rsa"], layers=["layer3"], data_root=REALDATA / "k92", baselines=False,
                         store=False, return_result=True, extract_kwargs={"progress": False})
    an = analysis.analyze(res.scores, res.geometry, gen, k=10, n_boot=500, n_perm=500, out=tmp_path / "an")
    assert set(an.models["family"]) == {"cifar_resnet"} and an.settings["n_families"] == 1
    dec = an.headline(scope=None)
    print("\nreal CIFAR ResNets on K92 (one family):")
    print(dec[["target", "scope", "n_models", "pearson_r", "pearson_p", "pearson_ci_low", "pearson_ci_high",
               "warning"]].to_string(index=False))
    for target, part in dec.groupby("target"):
        part = part.set_index("scope")
        for col in ("pearson_r", "pearson_p", "pearson_ci_low", "pearson_ci_high", "spearman_r"):
            assert part.loc["within", col] == part.loc["pooled", col]
        assert np.isnan(part.loc["between", "pearson_r"]) and "undefined" in part.loc["between", "warning"]
        assert "one family" in part.loc["pooled", "warning"]
    assert any("one model family" in w for w in an.warnings())
    assert an.settings["data_sources"].get("k92.human.IT.rsa", "real") in ("real", "unknown")
    text = an.files["report"].read_text()
    assert "one model family (cifar_resnet)" in text and "between-family correlation is undefined" in text


def test_cli_refuses_real_with_synthetic(tmp_path, capsys):
    from brainlid.cli import main

    x, y, _ = family_zoo(np.random.default_rng(1), n_families=3, per=3)
    names = [f"m{i}" for i in range(x.size)]
    scores, geom = tables_from(names, x, y)
    other = scores.assign(benchmark="c.s1.R.encoding", dataset="c", data_source="synthetic")
    write_table(pd.concat([scores.assign(data_source="real"), other], ignore_index=True), tmp_path / "scores", formats=("csv",))
    write_table(geom, tmp_path / "geometry", formats=("csv",))
    args = ["analyze", "--table", str(tmp_path / "scores.csv"), "--table", str(tmp_path / "geometry.csv"), "--out", str(tmp_path / "an")]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "mix real and synthetic" in err and "--allow-mixed-sources" in err and "Traceback" not in err
    assert main(args + ["--allow-mixed-sources", "--family-rule", "model"]) == 0
    assert "SYNTHETIC data mixed on request" in capsys.readouterr().err
