"""The analysis itself: correlate every measure with every target across models, at every scope; write the results."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import plotting, stats
from .._atomic import atomic_path
from .._docs import fill_doc
from ..errors import InputError
from ..geometry import DEFAULT_K
from ..report import analysis_report
from .inputs import check_data_sources
from .table import GLOBAL_MEASURES, model_table

@dataclass
class AnalysisResult:
    """Tables of an across-model analysis (and, when written, the files).

    Attributes
    ----------
    models : DataFrame
        One row per model: ``model, layer, n_params, lid`` (headline), the global measures,
        ``lid_K<k>`` for every K, and every alignment target.
    correlations : DataFrame
        One row per (measure, target, scope): ``target, measure, kind`` (``local``/``global``/
        ``pairwise``), ``headline`` (the pre-registered K), ``scope`` (``pooled``/``within``/
        ``between``), the :func:`brainlid.stats.family_decomposition` fields (the same r / p / CI
        columns on every scope, ``p_method``, ``ci_method``) and ``warning`` (words; "" if none).
    k_curve : DataFrame
        ``target, scope, K, r, p, p_corrected, n_models, n_families`` (Pearson) for the LID
        estimator; ``p_corrected`` is the max-``|r|`` over K permutation p under the scope's scheme.
    baselines : DataFrame
        Test scores of the control models (not in the correlations).
    settings : dict
    files : dict of name → Path
    """

    models: pd.DataFrame
    correlations: pd.DataFrame
    k_curve: pd.DataFrame
    baselines: pd.DataFrame
    settings: dict
    files: dict = field(default_factory=dict)

    def headline(self, scope: str | None = "pooled") -> pd.DataFrame:
        """The pre-registered rows: local LID at the fixed K against every target.

        ``scope``: ``"pooled"`` (default, one row per target), ``"within"``, ``"between"``, or
        None for all three scopes.
        """
        c = self.correlations
        if not len(c):
            return c
        keep = c["headline"].astype(bool)
        if scope is not None and "scope" in c:
            keep &= c["scope"] == scope
        return c[keep].reset_index(drop=True)

    def warnings(self, headline_only: bool = False) -> list[str]:
        """Every warning of the analysis in words: data sources and families first, then the
        correlation rows' warnings (Simpson's paradox; too few families or models per family),
        identical texts grouped with the rows they concern. ``headline_only``: only the rows of
        the pre-registered measure (every scope)."""
        out = list(self.settings.get("notes_auto", []))
        c = self.correlations
        if not len(c) or "warning" not in c:
            return out
        c = c[c["warning"].fillna("") != ""]
        if headline_only:
            c = c[c["headline"].astype(bool)]
        for (scope, text), part in c.groupby(["scope", "warning"], sort=False):
            which = [f"{m} vs {t}" for m, t in zip(part["measure"], part["target"])]
            more = f" and {len(which) - 3} more" if len(which) > 3 else ""
            out.append(f"{text} [{scope}: {', '.join(which[:3])}{more}]")
        return out



# --------------------------------------------------------------------------- the analysis
@fill_doc
def analyze(
    scores: pd.DataFrame,
    geometry: pd.DataFrame,
    generalization=None,
    *,
    k: int = DEFAULT_K,
    estimator: str = "mle",
    layer: str = "last",
    stimulus_set: str | None = None,
    metric: str | None = None,
    value: str = "value",
    reference: str | None = None,
    include_baselines: bool = False,
    families=None,
    family_rule=None,
    allow_mixed_sources: bool = False,
    n_boot: int = 2000,
    n_perm: int = 5000,
    seed: int = 0,
    out: str | os.PathLike | None = None,
    report: bool = True,
    title: str = "brainlid analysis",
    notes: list[str] | None = None,
    extra_figures: dict | None = None,
) -> AnalysisResult:
    """Correlate LID (and global dimension) with alignment and generalization across models.

    Parameters
    ----------
    %(analysis_tables)s
    %(analysis_generalization)s
    %(analysis_selection)s
    allow_mixed_sources : bool
        Analyse real and synthetic score rows together (refused by default).
    %(n_boot)s
    n_perm : int
        Permutations of the family-aware p-values, the max-over-K correction and the Mantel tests (>= 100).
    %(seed)s
    out : path or None
        Folder for ``models.csv``, ``correlations.csv``, ``k_curve.csv``, figures and
        ``report.html``.
    report : bool
        Write ``report.html`` too (with ``out``).
    %(analysis_report)s

    Returns
    -------
    AnalysisResult
    """
    test_rows = scores[scores["split"].fillna("test") == "test"] if scores is not None and len(scores) else scores
    sources, source_notes = check_data_sources(test_rows if test_rows is not None else pd.DataFrame(), allow_mixed_sources)
    models, baselines, info = model_table(
        scores, geometry, generalization, k=k, estimator=estimator, layer=layer, stimulus_set=stimulus_set,
        metric=metric, value=value, reference=reference, include_baselines=include_baselines, families=families,
        family_rule=family_rule,
    )
    if len(models) < 3:
        raise InputError(
            f"an across-model analysis needs at least 3 models (baselines excluded); found {len(models)}: "
            f"{models['model'].tolist()}"
        )
    if models["lid"].isna().all():
        have = sorted({c[5:] for c in models.columns if c.startswith("lid_K")})
        raise InputError(f"no {estimator} LID at K={k} on {info['stimulus_set']}; K measured: {', '.join(have) or 'none'}")
    logp = np.log(models["n_params"].to_numpy(dtype=float)) if models["n_params"].notna().all() else None
    fam = models["family"].to_numpy(dtype=object)
    structured = models["family"].nunique() < len(models)  # some family has two or more models
    scopes = stats.SCOPES if structured else ("pooled",)
    corr_rows, curve_rows = [], []
    kcols = sorted((c for c in models.columns if c.startswith("lid_K")), key=lambda c: int(c[5:]))
    measures = [("lid", "local")] + [(g, "global") for g in GLOBAL_MEASURES if g in models and models[g].notna().all()]
    opts = {"n_boot": n_boot, "n_perm": n_perm, "seed": seed}
    for target in info["targets"]:
        y = models[target].to_numpy(dtype=float)
        ok = np.isfinite(y)
        # a model's mean alignment with the others depends on the other models: permute over models
        # (within families when there are families), never a t-test that treats them as independent
        pperm = ("within" if structured else "free") if target.startswith("model_model:") else "auto"
        for measure, kind in measures:
            x = models[measure].to_numpy(dtype=float)
            m = ok & np.isfinite(x)
            if m.sum() < 3 or np.ptp(x[m]) == 0 or np.ptp(y[m]) == 0:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                dec = stats.family_decomposition(x[m], y[m], fam[m] if structured else None,
                                                 None if logp is None else logp[m], scopes=scopes, pooled_perm=pperm,
                                                 **opts)
            name = measure if measure != "lid" else f"lid_{estimator}_K{k}"
            for rec in dec.to_dict("records"):
                corr_rows.append({"target": target, "measure": name, "kind": kind, "headline": measure == "lid", **rec})
        if kcols:
            V = models[kcols].to_numpy(dtype=float)
            m = ok & np.all(np.isfinite(V), axis=1)
            if m.sum() >= 3 and np.ptp(y[m]) > 0 and np.all(np.ptp(V[m], axis=0) > 0):
                for scope in scopes:
                    kc = stats.family_max_over_k_test(V[m], y[m], fam[m] if structured else None, scope,
                                                      ks=[int(c[5:]) for c in kcols], pooled_perm=pperm,
                                                      n_perm=n_perm, seed=seed)
                    if len(kc):
                        kc.insert(0, "target", target)
                        curve_rows.append(kc)
    corr_rows += _pairwise_rows(models, info["pairwise"], measures, estimator, k, fam if structured else None,
                                n_perm=n_perm, seed=seed)
    correlations = pd.DataFrame(corr_rows)
    if len(correlations):
        correlations["warning"] = correlations["warning"].fillna("")
    kc_cols = ["target", "scope", "K", "r", "p", "p_corrected", "n_models", "n_families"]
    k_curve = pd.concat(curve_rows, ignore_index=True)[kc_cols] if curve_rows else pd.DataFrame(columns=kc_cols)
    n_fam = int(models["family"].nunique())
    fam_notes = []
    if not structured:
        fam_notes.append("every model is its own family: the models are treated as independent draws")
    elif n_fam == 1:
        fam_notes.append(f"one model family ({models['family'].iloc[0]}): within-family r = pooled r; the "
                         "between-family correlation is undefined — nothing is known about differences between families")
    elif n_fam < stats.MIN_FAMILIES_INFERENCE:
        fam_notes.append(f"{n_fam} model families: between-family correlations are "
                         f"{'undefined' if n_fam < stats.MIN_FAMILIES_POINT else 'point estimates only'} (a CI and p-value "
                         f"need {stats.MIN_FAMILIES_INFERENCE} families); intervals are conditional on these families")
    settings = {"k": k, "estimator": estimator, "layer": layer, "value": value, "reference": reference,
                "n_boot": n_boot, "n_perm": n_perm, "seed": seed, "n_models": len(models), "n_families": n_fam,
                "data_sources": sources, "allow_mixed_sources": allow_mixed_sources,
                "data_source_kinds": sorted(set(sources.values())),
                "notes_auto": source_notes + fam_notes,
                **{k_: v for k_, v in info.items() if k_ not in ("layers", "pairwise")}}
    res = AnalysisResult(models, correlations, k_curve, baselines, settings)
    if out is not None:
        write_analysis(res, out, scores=scores, geometry=geometry, report=report, title=title, notes=notes,
                       extra_figures=extra_figures)
    return res


def _pairwise_rows(models: pd.DataFrame, pairwise: dict, measures, estimator: str, k: int, fam, *, n_perm: int,
                   seed: int) -> list[dict]:
    """|Δmeasure| against each pairwise model–model alignment: Mantel tests, pooled and within families."""
    rows = []
    n = len(models)
    for metric, M in pairwise.items():
        if np.isfinite(M[np.triu_indices(n, 1)]).sum() < 3:
            continue
        for measure, kind in measures:
            v = models[measure].to_numpy(dtype=float)
            D = np.abs(v[:, None] - v[None, :])
            name = measure if measure != "lid" else f"lid_{estimator}_K{k}"
            recs = {}
            for scope in ("pooled", "within") if fam is not None else ("pooled",):
                res = {mt: stats.mantel_test(D, M, fam, mt, n_perm=n_perm, seed=seed, scope=scope) for mt in stats.METHODS}
                p = res["pearson"]
                recs[scope] = {
                    "target": f"pairwise:{metric}", "measure": f"|delta {name}|", "kind": "pairwise", "headline": False,
                    "scope": scope, "n_models": p["n_models"], "n_pairs": p["n_pairs"],
                    "n_families": len(set(fam)) if fam is not None else n,
                    "pearson_r": p["r"], "pearson_p": p["p"], "spearman_r": res["spearman"]["r"],
                    "spearman_p": res["spearman"]["p"], "p_method": p["p_method"], "ci_method": "",
                    "warning": p["note"],
                }
            if "within" in recs:
                rp, rw = recs["pooled"]["pearson_r"], recs["within"]["pearson_r"]
                if np.isfinite(rp) and np.isfinite(rw) and rp * rw < 0:
                    text = (f"Simpson's paradox: over all pairs r = {rp:+.2f}, over pairs within a family r = {rw:+.2f}")
                    for r in recs.values():
                        r["warning"] = "; ".join(t for t in (text, r["warning"]) if t)
            rows += recs.values()
    return rows


@fill_doc
def write_analysis(res: AnalysisResult, out, *, scores=None, geometry=None, report: bool = True,
                   title: str = "brainlid analysis", notes: list[str] | None = None, extra_figures: dict | None = None) -> dict:
    """Write the tables (CSV), the figures (PNG + SVG) and the HTML report into ``out``.

    Parameters
    ----------
    res : AnalysisResult
        The analysis; its ``files`` are set to the paths written.
    out : path-like
        The folder (created when missing): ``models.csv``, ``correlations.csv``, ``k_curve.csv``,
        ``baselines.csv``, ``figures/`` and ``report.html``.
    scores, geometry : DataFrame or None
        The score and geometry tables, for the layer-profile and time figures.
    report : bool
        Write ``report.html``.
    %(analysis_report)s

    Returns
    -------
    dict
        What was written: ``models``, ``correlations``, ``k_curve``, ``baselines``, ``fig:<name>``
        for each figure and ``report`` → path.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for name in ("models", "correlations", "k_curve", "baselines"):
        path = out / f"{name}.csv"
        with atomic_path(path) as tmp:
            getattr(res, name).to_csv(tmp, index=False)
        files[name] = path
    figs = plotting.analysis_figures(res, out / "figures", scores=scores, geometry=geometry)
    figs.update({str(k): Path(v) for k, v in (extra_figures or {}).items()})
    files.update({f"fig:{k}": v for k, v in figs.items()})
    if report:
        files["report"] = analysis_report(res, out / "report.html", figures=figs, title=title, notes=notes, scores=scores)
    res.files = files
    return files
