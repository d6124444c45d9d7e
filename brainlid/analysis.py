"""Across-model analysis: does a model's local intrinsic dimension predict its alignment?

Given the tidy **scores** and **geometry** tables (from ``brainlid score``, the results store or
the demo) and optionally a table of generalization accuracies, :func:`analyze` builds one row
per model and correlates, across models (METHODS §7; :mod:`brainlid.stats`):

* the **headline**: LID (``estimator``, default the Levina–Bickel MLE, mean over points) at a
  K fixed in advance (default 20) against each alignment target;
* the same for the **global** measures (participation ratio, PCA 90/95/99 % dimensions,
  TwoNN) — the paper's contrast;
* the exploratory **r-vs-K curve** for every K measured, with the maximum's p-value corrected
  for the number of K tried (max-``|r|`` permutation over models, :func:`brainlid.stats.max_over_k_test`).

Alignment targets (columns of :attr:`AnalysisResult.models`):

* ``brain:<benchmark>`` — the model's test score on each brain benchmark (per subject), and
  ``brain:pooled:<dataset>.<roi>.<metric>`` — its mean over the subjects that have it;
* ``model_model:<metric>`` — the mean model–model alignment over every other model, and
  ``model_model_ref:<metric>`` — against the reference model (when given);
* ``generalization`` — held-out accuracy (e.g. ImageNet top-1 from timm's
  ``results-imagenet.csv``, or the demo zoo's digit accuracy).

Every correlation row has Pearson and Spearman r with p, percentile bootstrap CIs and, when
parameter counts are known, the partial correlation controlling for log(parameters).

**Model families.** A zoo is not a sample of independent models: widths and depths of one
architecture share a recipe, and the sign of a correlation can differ within and between families
(Simpson's paradox). Every model gets a family — from ``families=`` (a CSV ``model,family`` or a
mapping), else a ``family`` column of the generalization table, else :func:`family_of`'s rule on
the model id (default: one family per architecture prefix) — stored in ``models.csv``, and every
(measure, target) is reported at three scopes (``scope`` column of ``correlations.csv``): the
pooled r, the within-family r (values centred on their family mean) and the between-family r of
family means, each with a family-aware interval and p-value and a ``warning`` in words
(:func:`brainlid.stats.family_decomposition`). Pairwise targets (``|ΔLID|`` against the pairwise
model–model alignment) use a Mantel permutation of model labels (:func:`brainlid.stats.mantel_test`).

Rows of different data sources (``data_source``: real / synthetic) are not mixed unless
``allow_mixed_sources=True``; rows of unknown source mix with either, with a warning.

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

from . import plotting, stats
from ._atomic import atomic_path
from .errors import InputError
from .geometry import DEFAULT_K, GLOBAL_MEASURES as _GEOMETRY_MEASURES
from .report import analysis_report

__all__ = ["analyze", "AnalysisResult", "model_table", "read_generalization", "read_families", "family_of",
           "assign_families", "check_data_sources", "is_baseline", "GLOBAL_MEASURES", "DEFAULT_FAMILY_RULE"]

GLOBAL_MEASURES = tuple(m for m in _GEOMETRY_MEASURES if m != "twonn_mle")  # analysed: all but the TwoNN MLE

#: The default family rule: the leading letters of the architecture name, with a ``v<digits>``
#: version kept (``convnext_atto`` → ``convnext``, ``resnet50`` → ``resnet``, ``convnextv2_tiny`` →
#: ``convnextv2``, ``vit_base_patch16`` → ``vit``, ``mlp_w64_d1`` → ``mlp``).
DEFAULT_FAMILY_RULE = r"^(?:[A-Za-z]+?v\d+|[A-Za-z]+)"


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

    Returns a DataFrame with ``model, top1`` and, when present, ``n_params`` (absolute count),
    ``img_size`` and ``family`` (a model family label, see :func:`assign_families`).
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
    if "family" in cols:
        out["family"] = df[cols["family"]].astype("string").str.strip()
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


# --------------------------------------------------------------------------- model families
def family_of(model: str, rule=None) -> str:
    """The family of a model id by a rule (default :data:`DEFAULT_FAMILY_RULE`).

    The architecture name is the model id without its ``@weights`` / ``#shuffled`` suffix and
    without its ``source:`` prefix (``timm:convnext_atto.d2_in1k@x`` → ``convnext_atto.d2_in1k``;
    ``module:f.py:Net`` → ``Net``). ``rule`` is a regular expression searched in that name (its
    first group if it has one, else the whole match), a callable ``model → family``, or
    ``"model"`` (every model its own family: models treated as independent). When the regular
    expression finds nothing (``cifar_resnet:20`` → name ``20``), the source prefix is the family
    (``cifar_resnet``).
    """
    if callable(rule):
        return str(rule(model))
    if rule == "model":
        return str(model)
    spec = str(model).split("#", 1)[0].split("@", 1)[0]
    source, _, name = spec.rpartition(":")
    try:
        m = re.search(rule or DEFAULT_FAMILY_RULE, name)
    except re.error as exc:
        raise InputError(f"family rule {rule!r} is not a valid regular expression: {exc}") from None
    if m:
        fam = m.group(1) if m.groups() and m.group(1) else m.group(0)
        if fam:
            return fam
    return source.split(":", 1)[0] or name or str(model)


def read_families(path_or_data) -> dict[str, str]:
    """Model → family from a CSV with columns ``model,family`` (or a DataFrame / mapping)."""
    if isinstance(path_or_data, dict):
        return {str(k): str(v) for k, v in path_or_data.items()}
    if isinstance(path_or_data, pd.DataFrame):
        df = path_or_data
    else:
        path = Path(path_or_data)
        if not path.is_file():
            raise InputError(f"families file not found: {path}")
        try:
            df = pd.read_csv(path, dtype=str)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise InputError(f"families file {path} is not a readable CSV: {str(exc).splitlines()[0]}") from None
    cols = {str(c).lower().strip(): c for c in df.columns}
    if "model" not in cols or "family" not in cols:
        raise InputError(f"a families table needs columns 'model' and 'family'; has {list(df.columns)}")
    fam = df[[cols["model"], cols["family"]]].dropna()
    fam = fam.astype(str).apply(lambda c: c.str.strip())
    dup = fam[cols["model"]].duplicated(keep=False) & ~fam.duplicated(keep=False)
    if dup.any():
        raise InputError(f"the families table gives several families to {sorted(set(fam.loc[dup, cols['model']]))[:5]}")
    return dict(zip(fam[cols["model"]], fam[cols["family"]]))


def assign_families(models, families=None, generalization: pd.DataFrame | None = None, rule=None) -> tuple[list[str], str]:
    """A family for every model and where it came from (``"file"``, ``"generalization"``, ``"rule"``).

    Precedence: ``families`` (path / DataFrame / mapping; matched by exact name, then by the
    bare architecture name), else a ``family`` column of ``generalization``, else :func:`family_of`
    with ``rule``. A model missing from an explicit families table is an error (name it there).
    """
    models = [str(m) for m in models]
    if families is not None:
        table = read_families(families)
        out, missing = [], []
        for m in models:
            f = table.get(m, table.get(_bare_name(m)))
            (missing.append(m) if f is None else out.append(f))
        if missing:
            raise InputError(f"the families table has no family for {len(missing)} model(s): {missing[:5]} — add rows 'model,family'")
        return out, "file"
    if generalization is not None and "family" in generalization:
        gen = _match_generalization(models, generalization)
        fam = gen["family"] if "family" in gen else pd.Series([None] * len(models))
        if fam.notna().all() and (fam.astype(str).str.len() > 0).all():
            return fam.astype(str).tolist(), "generalization"
        missing = [m for m, f in zip(models, fam) if pd.isna(f) or not str(f)]
        warnings.warn(f"the generalization table has no family for {missing[:5]}: families from the rule on model ids instead",
                      RuntimeWarning, stacklevel=2)
    return [family_of(m, rule) for m in models], "rule"


# --------------------------------------------------------------------------- data sources
def check_data_sources(scores: pd.DataFrame, allow_mixed: bool = False) -> tuple[dict[str, str], list[str]]:
    """Each benchmark's data source and warnings; refuse to mix ``real`` with ``synthetic``.

    Returns ``({benchmark: source}, notes)``; a benchmark with rows of several sources gets the
    least trustworthy one (synthetic, then unknown).

    A table without a ``data_source`` column (written before it existed) is read as ``unknown``.
    Unknown rows mix with either kind, with a warning; real with synthetic is an
    :class:`~brainlid.errors.InputError` unless ``allow_mixed``.
    """
    if "data_source" in scores:
        src = scores["data_source"].astype("string").fillna("unknown").replace("", "unknown")
    else:
        src = pd.Series(["unknown"] * len(scores), index=scores.index, dtype="string")
    kinds = sorted(set(src))
    notes: list[str] = []
    if {"real", "synthetic"} <= set(kinds):
        syn = sorted(set(scores.loc[src == "synthetic", "benchmark"].astype(str)))
        if not allow_mixed:
            raise InputError(
                f"the scores mix real and synthetic data ({int((src == 'synthetic').sum())} synthetic rows, e.g. "
                f"{', '.join(syn[:3])}): analyse them apart (--benchmark) or pass --allow-mixed-sources")
        notes.append(f"real and SYNTHETIC data mixed on request (synthetic benchmarks: {', '.join(syn[:5])})")
    if "unknown" in kinds and len(kinds) > 1:
        notes.append(f"{int((src == 'unknown').sum())} score rows have an unknown data source (tables written before "
                     "data sources were recorded) and are analysed together with "
                     + " and ".join(k for k in kinds if k != "unknown") + " rows")
    for n in notes:
        warnings.warn(n, RuntimeWarning, stacklevel=3)
    rank = {"synthetic": 0, "unknown": 1, "real": 2}
    per_bench: dict[str, str] = {}
    for b, v in zip(scores["benchmark"].astype(str) if "benchmark" in scores else [], src):
        if b not in per_bench or rank.get(v, 1) < rank.get(per_bench[b], 1):
            per_bench[b] = str(v)
    return per_bench, notes


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
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """One row per model with its family, LID, global measures and alignment targets.

    ``families`` / ``family_rule``: see :func:`assign_families` (baselines get the family
    ``"baseline"``). Returns ``(models, baselines, info)`` where ``info`` has the chosen stimulus
    set, metric, target column names, the family source and the pairwise model–model matrices
    (``info["pairwise"]``: metric → ``(n_models, n_models)`` symmetrised alignment, NaN where a pair
    was not scored, in the order of ``models``).
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
    gen_table = read_generalization(generalization) if generalization is not None else None
    if gen_table is not None:
        gen = _match_generalization(models["model"].tolist(), gen_table)
        if "top1" in gen:
            models["generalization"] = gen["top1"].to_numpy(dtype=float)
        if "n_params" in gen:
            models["n_params"] = gen["n_params"].to_numpy(dtype=float)
    if "n_params" not in models:
        models["n_params"] = np.nan
    base_mask = models["model"].map(is_baseline)
    fams = pd.Series("baseline", index=models.index, dtype=object)
    fams[~base_mask], family_source = assign_families(models.loc[~base_mask, "model"], families, gen_table, family_rule)
    if include_baselines:
        fams[base_mask] = [family_of(m, family_rule) for m in models.loc[base_mask, "model"]]
    models.insert(1, "family", fams.astype(str))
    baselines = models[base_mask].reset_index(drop=True)
    if not include_baselines:
        models = models[~base_mask]
    models = models.reset_index(drop=True)
    targets = [c for c in models.columns if c.startswith(("brain:", "model_model", "generalization"))]
    info = {"stimulus_set": stimulus_set, "metric": metric, "targets": targets, "layers": layers,
            "family_source": family_source, "pairwise": _pairwise_matrices(test, models["model"].tolist())}
    return models, baselines, info


def _pairwise_matrices(test: pd.DataFrame, names: list[str]) -> dict[str, np.ndarray]:
    """metric → symmetric ``(n, n)`` model–model alignment (mean of both directions; NaN: not scored)."""
    mm = test[(test["dataset"] == "models") & test["model"].isin(names) & test["roi"].isin(names)]
    pos = {m: i for i, m in enumerate(names)}
    out = {}
    for metric, part in mm.groupby("metric"):
        v = part.groupby(["model", "roi"])["value"].mean()
        M = np.full((len(names), len(names)), np.nan)
        M[[pos[a] for a, _ in v.index], [pos[b] for _, b in v.index]] = v.to_numpy(dtype=float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # pairs scored in neither direction stay NaN
            out[str(metric)] = np.nanmean(np.stack([M, M.T]), axis=0)
    return out


# --------------------------------------------------------------------------- the analysis
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
    families : path, DataFrame, mapping or None
        Model families (CSV ``model,family``); default: a ``family`` column of the generalization
        table, else ``family_rule`` on the model ids (:func:`assign_families`).
    family_rule : str, callable or None
        Regular expression (default :data:`DEFAULT_FAMILY_RULE`: the architecture prefix) or
        ``"model"`` (every model its own family: the models are treated as independent, as before
        families existed; then only pooled rows are reported).
    allow_mixed_sources : bool
        Analyse real and synthetic score rows together (refused by default).
    n_boot, n_perm, seed :
        Bootstrap replicates, permutations (family-aware p-values, max-over-K correction, Mantel
        tests), seed.
    out : path or None
        Folder for ``models.csv``, ``correlations.csv``, ``k_curve.csv``, figures and
        ``report.html``.
    extra_figures : dict name → PNG path, optional
        More figures for the report (e.g. brain maps).

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


def write_analysis(res: AnalysisResult, out, *, scores=None, geometry=None, report: bool = True,
                   title: str = "brainlid analysis", notes: list[str] | None = None, extra_figures: dict | None = None) -> dict:
    """Write the tables (CSV), the figures (PNG + SVG) and the HTML report into ``out``."""
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
