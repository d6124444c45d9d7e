"""Across-model analysis: does a model's local intrinsic dimension predict its alignment?

Given the tidy **scores** and **geometry** tables (from ``brainlid score``, the results store or
the demo) and optionally a table of generalization accuracies, :func:`analyze` builds one row
per model and correlates, across models (METHODS §7; :mod:`brainlid.stats`):

* the **headline**: LID (``estimator``, default the Levina–Bickel MLE, mean over points) at a
  K fixed in advance (default 20) against each alignment target;
* the same for the **global** measures (participation ratio, PCA 90/95/99 % dimensions,
  TwoNN) — the paper's contrast;
* the exploratory **r-vs-K curve** for every K measured, with the maximum's p-value corrected
  for the number of K tried (max-|r| permutation over models, :func:`brainlid.stats.max_over_k_test`).

Alignment targets (columns of :attr:`AnalysisResult.models`):

* ``brain:<benchmark>`` — the model's test score on each brain benchmark (per subject), and
  ``brain:pooled:<dataset>.<roi>.<metric>`` — its mean over the subjects that have it;
* ``model_model:<metric>`` — the mean model–model alignment over every other model, and
  ``model_model_ref:<metric>`` — against the reference model (when given);
* ``generalization`` — held-out accuracy (e.g. ImageNet top-1 from timm's
  ``results-imagenet.csv``, or the demo zoo's digit accuracy).

Every correlation row has Pearson and Spearman r with p, percentile bootstrap CIs over models
and, when parameter counts are known, the partial correlation controlling for log(parameters).

Which layer: ``layer="last"`` (default; the model's final extracted layer, as the paper uses
final embeddings) or ``"selected"`` (per model, the layer chosen on the validation split of
the first brain benchmark). Baselines (pixels, random weights, shuffled) are excluded from the
correlations by default and listed separately.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .errors import InputError

__all__ = ["analyze", "AnalysisResult", "model_table", "read_generalization", "is_baseline", "GLOBAL_MEASURES"]

GLOBAL_MEASURES = ("participation_ratio", "pca90", "pca95", "pca99", "twonn", "mle_full")


def is_baseline(model: str) -> bool:
    """Pixels, random-weights and stimulus-shuffled controls (by their model names)."""
    m = str(model)
    return m.startswith("baseline:") or "#shuffled" in m or bool(re.search(r"@random(:\d+)?$", m))


@dataclass
class AnalysisResult:
    """Tables of an across-model analysis (and, when written, the files).

    Attributes
    ----------
    models : DataFrame
        One row per model: ``model, layer, n_params, lid`` (headline), the global measures,
        ``lid_K<k>`` for every K, and every alignment target.
    correlations : DataFrame
        One row per (measure, target): the :func:`brainlid.stats.correlation_summary` fields plus
        ``measure, target, kind`` (``local``/``global``), ``headline`` (the pre-registered K).
    k_curve : DataFrame
        ``target, K, r, p, p_corrected, n_models`` (Pearson) for the LID estimator.
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

    def headline(self) -> pd.DataFrame:
        """The pre-registered rows: local LID at the fixed K against every target."""
        return self.correlations[self.correlations["headline"]].reset_index(drop=True)


# --------------------------------------------------------------------------- generalization tables
def _bare_name(model: str) -> str:
    """``timm:convnext_atto.d2_in1k@x`` → ``convnext_atto.d2_in1k``; ``module:f.py:Net@w`` → ``Net``."""
    s = str(model)
    s = s.split("@", 1)[0]
    return s.rsplit(":", 1)[-1]


def read_generalization(path_or_df, img_size: int | None = None) -> pd.DataFrame:
    """Read a table of accuracies: ``model, top1`` (+ optional ``param_count``, ``img_size``).

    timm's ``results-imagenet.csv`` (columns ``model, img_size, top1, top1_err, top5, top5_err,
    param_count, crop_pct, interpolation``; ``param_count`` in millions) is read as is. When a
    model has rows for several image sizes, ``img_size`` picks one (default: the row with the
    highest top-1 is *not* chosen — the first row in file order is, with a warning, to avoid
    cherry-picking).

    Returns a DataFrame with ``model, top1`` and, when present, ``n_params`` (absolute count)
    and ``img_size``.
    """
    if isinstance(path_or_df, pd.DataFrame):
        df = path_or_df.copy()
    else:
        path = Path(path_or_df)
        if not path.exists():
            raise FileNotFoundError(f"generalization table not found: {path}")
        df = pd.read_csv(path)
    cols = {c.lower().strip(): c for c in df.columns}
    if "model" not in cols:
        raise InputError(f"generalization table needs a 'model' column; has {list(df.columns)}")
    acc = next((cols[c] for c in ("top1", "accuracy", "acc", "generalization") if c in cols), None)
    if acc is None:
        raise InputError(f"generalization table needs a 'top1' (or 'accuracy') column; has {list(df.columns)}")
    out = pd.DataFrame({"model": df[cols["model"]].astype(str), "top1": pd.to_numeric(df[acc], errors="coerce")})
    if "img_size" in cols:
        out["img_size"] = pd.to_numeric(df[cols["img_size"]], errors="coerce")
    if "param_count" in cols:  # timm: millions, may contain commas
        pc = pd.to_numeric(df[cols["param_count"]].astype(str).str.replace(",", ""), errors="coerce")
        out["n_params"] = pc * 1e6
    elif "n_params" in cols:
        out["n_params"] = pd.to_numeric(df[cols["n_params"]], errors="coerce")
    if img_size is not None and "img_size" in out:
        out = out[out["img_size"] == img_size]
    dup = out["model"].duplicated(keep="first")
    if dup.any():
        warnings.warn(
            f"{int(dup.sum())} model(s) have several rows (e.g. image sizes) — keeping the first of each; "
            "pass img_size to choose", RuntimeWarning, stacklevel=2,
        )
        out = out[~dup]
    return out.reset_index(drop=True)


def _match_generalization(models: list[str], gen: pd.DataFrame) -> pd.DataFrame:
    """Match scored model names to the table: exact name first, then the bare architecture name."""
    by_name = dict(zip(gen["model"], gen.index))
    rows = []
    for m in models:
        i = by_name.get(m, by_name.get(_bare_name(m)))
        rows.append({"model": m, **({k: gen.loc[i, k] for k in gen.columns if k != "model"} if i is not None else {})})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the per-model table
def _pick_layers(scores: pd.DataFrame, geometry: pd.DataFrame, layer: str) -> dict[str, str]:
    src = geometry if len(geometry) else scores
    out = {}
    for model, part in src.groupby("model"):
        if layer == "last":
            idx = part["layer_index"].astype("float64").fillna(-1)
            out[model] = str(part.loc[idx.idxmax(), "layer"])
        elif layer == "selected":
            sel = scores[(scores["model"] == model) & scores["selected"].astype(bool)]
            if sel.empty and part["layer"].nunique() == 1:
                sel = part
            if sel.empty:
                raise InputError(f"no selected layer for model {model!r}: score it on a brain benchmark first or use layer='last'")
            out[model] = str(sel["layer"].iloc[0])
        else:
            if not (part["layer"] == layer).any():
                raise InputError(f"model {model!r} has no layer {layer!r} (has {sorted(part['layer'].unique())})")
            out[model] = layer
    return out


def model_table(
    scores: pd.DataFrame,
    geometry: pd.DataFrame,
    generalization: pd.DataFrame | None = None,
    *,
    k: int = 20,
    estimator: str = "mle",
    layer: str = "last",
    stimulus_set: str | None = None,
    metric: str | None = None,
    value: str = "value",
    reference: str | None = None,
    include_baselines: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """One row per model with its LID, global measures and alignment targets.

    Returns ``(models, baselines, info)`` where ``info`` has the chosen stimulus set, metric and
    target column names.
    """
    if scores is None or len(scores) == 0:
        raise InputError("no scores to analyse: the store/table is empty (run `brainlid score` or `brainlid demo` first)")
    if geometry is None or len(geometry) == 0:
        raise InputError("no geometry rows (LID) to analyse: score the models with geometry enabled")
    test = scores[scores["split"].fillna("test") == "test"]
    brain = test[test["dataset"] != "models"]
    if metric is None:
        metric = "encoding_r2" if (brain["metric"] == "encoding_r2").any() else (brain["metric"].iloc[0] if len(brain) else None)
    if value not in ("value", "normalised"):
        raise InputError(f"value must be 'value' or 'normalised', got {value!r}")
    # the LID stimulus set: the one measured for the most models (then the largest n)
    if stimulus_set is None:
        cnt = geometry.groupby("stimulus_set").agg(models=("model", "nunique"), n=("n", "max"))
        stimulus_set = cnt.sort_values(["models", "n"], ascending=False).index[0]
    geo = geometry[geometry["stimulus_set"] == stimulus_set]
    if geo.empty:
        raise InputError(f"no geometry rows for stimulus set {stimulus_set!r}; have {sorted(geometry['stimulus_set'].unique())}")
    layers = _pick_layers(scores, geo, layer)
    rows = []
    for model, lay in layers.items():
        g = geo[(geo["model"] == model) & (geo["layer"] == lay)]
        row: dict = {"model": model, "layer": lay, "n": int(g["n"].max()) if len(g) else np.nan}
        loc = g[g["estimator"] == estimator]
        for kk, v in zip(loc["K"], loc["value"]):
            row[f"lid_K{int(kk)}"] = float(v)
        row["lid"] = row.get(f"lid_K{int(k)}", np.nan)
        for gm in GLOBAL_MEASURES:
            gv = g.loc[(g["estimator"] == gm), "value"]
            row[gm] = float(gv.iloc[0]) if len(gv) else np.nan
        mb = brain[(brain["model"] == model) & (brain["metric"] == metric) & (brain["layer"] == lay)]
        if layer == "selected":
            mb = brain[(brain["model"] == model) & (brain["metric"] == metric) & brain["selected"].astype(bool)]
        mb = mb.groupby(["benchmark", "dataset", "roi"], as_index=False)[value].mean()  # mean over time if any
        for rec in mb.itertuples(index=False):
            row[f"brain:{rec.benchmark}"] = float(getattr(rec, value))
        for (ds, roi), part in mb.groupby(["dataset", "roi"]):
            if len(part) > 1:
                row[f"brain:pooled:{ds}.{roi}.{metric}"] = float(part[value].mean())
        mm = test[(test["dataset"] == "models") & (test["model"] == model)]
        for mmetric, part in mm.groupby("metric"):
            others = part[~part["roi"].map(is_baseline)]
            if len(others):
                row[f"model_model:{mmetric}"] = float(others["value"].mean())
            if reference is not None:
                ref = part[part["roi"] == reference]
                if len(ref):
                    row[f"model_model_ref:{mmetric}"] = float(ref["value"].iloc[0])
        rows.append(row)
    models = pd.DataFrame(rows)
    if reference is not None and reference not in set(models["model"]):
        raise InputError(f"reference model {reference!r} is not among the scored models: {sorted(models['model'])}")
    if generalization is not None:
        gen = _match_generalization(models["model"].tolist(), read_generalization(generalization))
        if "top1" in gen:
            models["generalization"] = gen["top1"].to_numpy(dtype=float)
        if "n_params" in gen:
            models["n_params"] = gen["n_params"].to_numpy(dtype=float)
    if "n_params" not in models:
        models["n_params"] = np.nan
    base_mask = models["model"].map(is_baseline)
    baselines = models[base_mask].reset_index(drop=True)
    if not include_baselines:
        models = models[~base_mask]
    models = models.reset_index(drop=True)
    targets = [c for c in models.columns if c.startswith(("brain:", "model_model", "generalization"))]
    info = {"stimulus_set": stimulus_set, "metric": metric, "targets": targets, "layers": layers}
    return models, baselines, info


# --------------------------------------------------------------------------- the analysis
def analyze(
    scores: pd.DataFrame,
    geometry: pd.DataFrame,
    generalization=None,
    *,
    k: int = 20,
    estimator: str = "mle",
    layer: str = "last",
    stimulus_set: str | None = None,
    metric: str | None = None,
    value: str = "value",
    reference: str | None = None,
    include_baselines: bool = False,
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
    scores, geometry : DataFrame
        Tidy tables (:mod:`brainlid.scoring.tables`).
    generalization : path, DataFrame or None
        Accuracies (:func:`read_generalization`); its ``param_count``/``n_params`` column gives
        the parameter counts for the partial correlations.
    k : int
        The K fixed in advance for the headline (default 20).
    estimator : str
        Local estimator in the geometry table (default ``"mle"``).
    layer : {"last", "selected"} or a layer name
    stimulus_set : str or None
        The LID stimulus set (default: the one measured for the most models).
    metric : str or None
        Brain-score metric (default ``encoding_r2`` if present).
    value : {"value", "normalised"}
        Raw or ceiling-normalised brain scores.
    reference : str or None
        Reference model for ``model_model_ref`` targets.
    n_boot, n_perm, seed :
        Bootstrap replicates, permutations for the max-over-K correction, seed.
    out : path or None
        Folder for ``models.csv``, ``correlations.csv``, ``k_curve.csv``, figures and
        ``report.html``.
    extra_figures : dict name → PNG path, optional
        More figures for the report (e.g. brain maps).

    Returns
    -------
    AnalysisResult
    """
    models, baselines, info = model_table(
        scores, geometry, generalization, k=k, estimator=estimator, layer=layer, stimulus_set=stimulus_set,
        metric=metric, value=value, reference=reference, include_baselines=include_baselines,
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
    corr_rows, curve_rows = [], []
    kcols = sorted((c for c in models.columns if c.startswith("lid_K")), key=lambda c: int(c[5:]))
    measures = [("lid", "local")] + [(g, "global") for g in GLOBAL_MEASURES if g in models and models[g].notna().all()]
    for target in info["targets"]:
        y = models[target].to_numpy(dtype=float)
        ok = np.isfinite(y)
        for measure, kind in measures:
            x = models[measure].to_numpy(dtype=float)
            m = ok & np.isfinite(x)
            if m.sum() < 3 or np.ptp(x[m]) == 0 or np.ptp(y[m]) == 0:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                summ = stats.correlation_summary(x[m], y[m], None if logp is None else logp[m], n_boot=n_boot, seed=seed)
            corr_rows.append({"target": target, "measure": measure if measure != "lid" else f"lid_{estimator}_K{k}",
                              "kind": kind, "headline": measure == "lid", **summ})
        if kcols:
            V = models[kcols].to_numpy(dtype=float)
            m = ok & np.all(np.isfinite(V), axis=1)
            if m.sum() >= 3 and np.ptp(y[m]) > 0 and np.all(np.ptp(V[m], axis=0) > 0):
                kc = stats.max_over_k_test(V[m], y[m], ks=[int(c[5:]) for c in kcols], n_perm=n_perm, seed=seed)
                kc.insert(0, "target", target)
                curve_rows.append(kc)
    correlations = pd.DataFrame(corr_rows)
    k_curve = pd.concat(curve_rows, ignore_index=True) if curve_rows else pd.DataFrame(
        columns=["target", "K", "r", "p", "p_corrected", "n_models"])
    settings = {"k": k, "estimator": estimator, "layer": layer, "value": value, "reference": reference,
                "n_boot": n_boot, "n_perm": n_perm, "seed": seed, "n_models": len(models), **{
                    k_: v for k_, v in info.items() if k_ != "layers"}}
    res = AnalysisResult(models, correlations, k_curve, baselines, settings)
    if out is not None:
        write_analysis(res, out, scores=scores, geometry=geometry, report=report, title=title, notes=notes,
                       extra_figures=extra_figures)
    return res


def write_analysis(res: AnalysisResult, out, *, scores=None, geometry=None, report: bool = True,
                   title: str = "brainlid analysis", notes: list[str] | None = None, extra_figures: dict | None = None) -> dict:
    """Write the tables (CSV), the figures (PNG + SVG) and the HTML report into ``out``."""
    from . import plotting
    from ._atomic import atomic_path

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
        from .report import analysis_report

        files["report"] = analysis_report(res, out / "report.html", figures=figs, title=title, notes=notes)
    res.files = files
    return files
