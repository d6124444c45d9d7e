"""The per-model table of an analysis: one row per model with its LID, global measures and alignment targets."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .._docs import fill_doc
from ..errors import InputError
from ..geometry import DEFAULT_K, GLOBAL_MEASURES as _GEOMETRY_MEASURES
from .inputs import _match_generalization, assign_families, family_of, is_baseline, read_generalization

GLOBAL_MEASURES = tuple(m for m in _GEOMETRY_MEASURES if m != "twonn_mle")  # analysed: all but the TwoNN MLE


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


@fill_doc
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

    Without ``include_baselines``, baselines are listed apart with the family ``"baseline"``.

    Parameters
    ----------
    %(analysis_tables)s
    %(analysis_generalization)s
    %(analysis_selection)s

    Returns
    -------
    models : DataFrame
        One row per model: ``model``, ``family``, ``lid``, the global measures and one column per
        alignment target.
    baselines : DataFrame
        The baselines' rows, same columns (with ``include_baselines`` they are in ``models`` too).
    info : dict
        The chosen stimulus set, metric, target column names, the family source and the pairwise
        model–model matrices (``info["pairwise"]``: metric → ``(n_models, n_models)`` symmetrised
        alignment, NaN where a pair was not scored, in the order of ``models``).
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


