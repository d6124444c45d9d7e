"""``brainlid compare``: the paired comparison of two models from the rows and arrays of a results store
(:func:`compare_models`, the table :data:`COMPARISON_COLUMNS`; conventions in :mod:`brainlid.comparison`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..alignment.uncertainty import bootstrap_counts
from ..errors import FileFormatError, InputError
from ..scoring.benchmarks import get_benchmark
from ..scoring.store import ResultsStore
from .paired import (_difference_excess, _shrink, encoding_replicates_by_units, group_summary, holm, paired_summary,
                     rsa_replicates)

__all__ = ["COMPARISON_COLUMNS", "compare_models", "CI_METHOD_PAIRED", "CI_METHOD_GROUP"]

CI_METHOD_PAIRED = "paired-stimulus-bootstrap"  #: ``ci_method`` of one benchmark's rows
CI_METHOD_GROUP = "dual-bootstrap-subjects-stimuli"  #: ``ci_method`` of group-level rows (Schütt et al. 2023)

#: Columns of the comparison table, in order.
COMPARISON_COLUMNS = [
    "model_a", "model_b", "layer_a", "layer_b", "benchmark", "benchmark_version", "dataset", "subject", "roi",
    "metric", "time", "level", "n_subjects", "n_stimuli", "value_a", "value_b", "difference", "ci_low", "ci_high",
    "p_value", "p_holm", "normalised_a", "normalised_b", "normalised_difference", "normalised_ci_low",
    "normalised_ci_high", "ci_method", "n_boot", "seed", "data_source",
]


# ----------------------------------------------------------------------------------- the store
def _rerun(store, model: str, bench: str, layer_choice: str) -> str:
    extra = "" if layer_choice == "selected" else " (other layers than the selected one: brainlid.score(..., keep_arrays='all'))"
    return (f"re-run `brainlid score --model <spec of {model}> --benchmark {bench} --store {store.path} --replace`"
            f"{extra}")


def _pick_rows(store, models: Sequence[str], bench: str, layer: str) -> dict:
    """model → its test rows of ``bench`` (newest version it has, the chosen layer)."""
    rows = store.scores(model=list(dict.fromkeys(models)), benchmark=bench, split="test", versions="all")
    out = {}
    for m in models:
        r = rows[rows["model"] == m]
        if r.empty:
            raise InputError(f"the store {store.path} has no test scores of model {m!r} on {bench}; "
                             f"score it first (brainlid score --model <spec> --benchmark {bench} --store {store.path})")
        r = r[r["benchmark_version"] == r["benchmark_version"].max()]
        r = r[r["selected"].astype(bool)] if layer == "selected" else r[r["layer"] == layer]
        if r.empty:
            have = sorted(rows.loc[rows["model"] == m, "layer"].astype(str).unique())
            raise InputError(f"model {m!r} has no {'selected layer' if layer == 'selected' else f'layer {layer!r}'} "
                             f"on {bench} in {store.path} (layers: {', '.join(have)})")
        out[m] = r.reset_index(drop=True)
    a, b = models
    va, vb = (int(out[m]["benchmark_version"].iloc[0]) for m in models)
    if va != vb:
        raise InputError(f"cannot compare on {bench}: {a!r} was scored on benchmark version {va} and {b!r} on version "
                         f"{vb} (the scores mean different things); re-score the older one with --replace")
    sa, sb = ("/".join(sorted(set(out[m]["data_source"].astype(str)))) for m in models)
    if sa != sb:
        raise InputError(f"cannot compare on {bench}: {a!r} was scored on {sa} data and {b!r} on {sb} data")
    return out


def _load(store, model: str, layer: str, bench: str, version: int, need: Sequence[str], layer_choice: str) -> dict:
    try:
        arrs = store.load_arrays(model, layer, bench, version)
    except FileFormatError as exc:  # e.g. the store file copied without its arrays folder
        raise InputError(f"{exc}; {_rerun(store, model or '<model>', bench, layer_choice)}") from exc
    if not any(k in arrs for k in need):
        what = f"held-out predictions of {model!r} (layer {layer})" if model else "observed test data"
        raise InputError(f"the store {store.path} has no {what} on {bench} version {version} (scored before "
                         f"`brainlid compare` existed, or without a store); {_rerun(store, model or '<model>', bench, layer_choice)}")
    return arrs


def _check_value(stored, recomputed, model: str, bench: str, store, layer_choice: str) -> None:
    s = np.asarray(stored, dtype=np.float64).reshape(-1)
    r = np.asarray(recomputed, dtype=np.float64).reshape(-1)
    if s.shape != r.shape or not np.allclose(s, r, atol=2e-4, rtol=1e-3, equal_nan=True):
        raise InputError(f"the stored arrays of {model!r} on {bench} do not reproduce its stored score "
                         f"({s[:3].round(4).tolist()} vs {r[:3].round(4).tolist()}); {_rerun(store, model, bench, layer_choice)}")


def _bench_record(store, a: str, b: str, bench: str, layer: str, n_boot: int, seed: int) -> dict:
    """One benchmark's per-metric estimates and difference replicates (see :func:`compare_models`)."""
    rows = _pick_rows(store, (a, b), bench, layer)
    ra, rb = rows[a], rows[b]
    version = int(ra["benchmark_version"].iloc[0])
    la, lb = str(ra["layer"].iloc[0]), str(rb["layer"].iloc[0])
    shared = _load(store, "", "", bench, version, ("responses", "brain_rdms"), layer)
    own_a = _load(store, a, la, bench, version, ("pred", "model_rdm"), layer)
    own_b = _load(store, b, lb, bench, version, ("pred", "model_rdm"), layer)
    try:
        params = get_benchmark(bench).params
    except Exception:  # a benchmark no longer registered: the defaults
        params = {}
    first = ra.iloc[0]
    rec = {"benchmark": bench, "benchmark_version": version, "dataset": str(first["dataset"]), "roi": str(first["roi"]),
           "subject": str(first["subject"]), "layer_a": la, "layer_b": lb,
           "data_source": str(first["data_source"]), "ids": np.asarray(shared["stimulus_ids"]), "metrics": {}}
    if "pred" in own_a:
        y, pa, pb = shared["responses"], own_a["pred"], own_b["pred"]
        n = int(y.shape[0])
        counts = bootstrap_counts(n, n_boot, np.random.default_rng(seed))
        nc = shared.get("noise_ceiling")
        unit_sets = [None]
        if nc is not None:  # the units above the ceiling floor (normalised difference), from the same pass
            ncz = np.nan_to_num(np.asarray(nc, dtype=np.float64), nan=0.0)
            unit_sets.append(ncz > float(params.get("ceiling_floor", 0.1)))
        allu, kept = (encoding_replicates_by_units(y, pa, pb, counts, unit_sets) + [None])[:2]
        for metric, key in (("encoding_r2", "r2"), ("encoding_r", "r")):
            xa, xb = ra[ra["metric"] == metric], rb[rb["metric"] == metric]
            ea, eb, rpa, rpb = allu[key]
            _check_value(xa["value"], ea, a, bench, store, layer)
            _check_value(xb["value"], eb, b, bench, store, layer)
            q = {"time": xa["time"].to_numpy(dtype=np.float64), "value": (ea, eb, rpa - rpb, 0.0), "norm": None}
            if kept is not None:
                ceil = xa["ceiling"].to_numpy(dtype=np.float64).reshape(np.shape(ea))
                ka, kb, kra, krb = kept[key]
                q["norm"] = (ka / ceil, kb / ceil, (kra - krb) / ceil, 0.0)
            rec["metrics"][metric] = q
        rec["n_stimuli"] = n
        return rec
    compare = str(params.get("rdm_compare", "spearman"))
    M_a, M_b, Bk = own_a["model_rdm"], own_b["model_rdm"], shared["brain_rdms"]
    est, dist, n = rsa_replicates(M_a, M_b, Bk, compare=compare, n_boot=n_boot, seed=seed)
    rec["n_stimuli"] = n
    metric = str(ra["metric"].iloc[0])
    subjects = [str(s) for s in shared["subjects"]] if "subjects" in shared else None
    if subjects is None:  # a single subject's responses (one RDM per time point)
        idx = slice(None)
        sel_a, sel_b = ra, rb
    else:  # an RDM benchmark: the stored test row is the group-mean RDM's (last row)
        idx = slice(len(subjects) - 1, len(subjects))
        sel_a, sel_b = ra[ra["subject"] == "mean"], rb[rb["subject"] == "mean"]
    ea, eb = est[0, idx], est[1, idx]
    _check_value(sel_a["value"], ea, a, bench, store, layer)
    _check_value(sel_b["value"], eb, b, bench, store, layer)
    ex = _difference_excess(M_a, M_b, np.asarray(Bk)[idx], n, compare)
    q = {"time": sel_a["time"].to_numpy(dtype=np.float64), "value": (ea, eb, dist[:, 0, idx] - dist[:, 1, idx], ex),
         "norm": None}
    if subjects is not None:  # normalised = value / ceiling (the group-split-half ceiling of the test half)
        ceil = sel_a["ceiling"].to_numpy(dtype=np.float64)
        if np.all(np.isfinite(ceil)):
            q["norm"] = (ea / ceil, eb / ceil, (dist[:, 0, idx] - dist[:, 1, idx]) / ceil, ex / ceil**2)
        rec["subject"] = "mean"
        S = len(subjects) - 1
        if S >= 2:  # group level over the benchmark's subjects (dual bootstrap)
            rec["within_group"] = {
                "metric": metric, "n_subjects": S,
                "d": est[0, :S] - est[1, :S], "a": est[0, :S].mean(), "b": est[1, :S].mean(),
                "reps": dist[:, 0, :S] - dist[:, 1, :S],
                "excess": _difference_excess(M_a, M_b, np.asarray(Bk)[:S], n, compare, np.full(S, 1.0 / S))[0]}
    rec["metrics"][metric] = q
    return rec


def _subject_counts(n_subjects: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, S) multinomial subject counts, from a stream independent of the stimulus counts."""
    return bootstrap_counts(n_subjects, n_boot, np.random.default_rng([int(seed), 18]))


def compare_models(store, model_a: str, model_b: str, benchmarks, *, layer: str = "selected", n_boot: int = 1000,
                   seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Paired comparison ``A − B`` of two models on benchmarks, from the arrays kept in a results store.

    Parameters
    ----------
    store : ResultsStore or path
    model_a, model_b : str
        Model names as in the store's ``model`` column.
    benchmarks : str or sequence of str
        Benchmark ids; each must hold both models' test rows of one benchmark version and data source.
    layer : "selected" or a layer name
        The layer chosen on the validation split (default), or a named layer (both models).
    n_boot, seed, level
        Stimulus resamples (the same for both models, and for every benchmark with the same number of
        test stimuli), their seed, the confidence level.

    Returns
    -------
    DataFrame
        DataFrame with :data:`COMPARISON_COLUMNS`: one row per benchmark × metric [× time] (``level =
        "subject"``; for an RDM benchmark the group-mean RDM's row, ``subject = "mean"``), and
        ``level = "group"`` rows (``subject = "group"``) for the mean over subjects seen on the same
        stimuli — the subjects of an RDM benchmark, or several benchmarks of one dataset, ROI and
        metric (e.g. ``nsd.subj01.EBA.encoding`` … ``nsd.subj08.EBA.encoding``) with the same test
        stimuli — with the dual bootstrap (module docstring). ``p_holm``: Holm over the rows of each
        (metric, level).

    Raises
    ------
    InputError
        A model or layer missing, different benchmark versions or data sources, arrays missing (the
        message says what to re-run) or not reproducing the stored score.
    """
    st = store if isinstance(store, ResultsStore) else ResultsStore(store)
    benches = [benchmarks] if isinstance(benchmarks, str) else list(dict.fromkeys(benchmarks))
    if not benches:
        raise InputError("give at least one benchmark")
    if int(n_boot) < 10:
        raise InputError(f"n_boot must be >= 10, got {n_boot}")
    recs = [_bench_record(st, model_a, model_b, b, layer, int(n_boot), int(seed)) for b in benches]
    common = {"model_a": model_a, "model_b": model_b, "n_boot": int(n_boot), "seed": int(seed)}
    rows: list[dict] = []

    def emit(meta, metric, times, ea, eb, low, high, p, norm, level_name, n_subjects, method):
        for t in range(np.size(ea)):
            pick = (lambda x: float(np.ravel(x)[t]) if x is not None and np.size(x) > 1 else
                    (float(np.ravel(x)[0]) if x is not None and np.size(x) else np.nan))
            row = {**common, **meta, "metric": metric, "time": pick(times) if np.size(times) else np.nan,
                   "level": level_name, "n_subjects": n_subjects, "value_a": pick(ea), "value_b": pick(eb),
                   "difference": pick(ea) - pick(eb), "ci_low": pick(low), "ci_high": pick(high), "p_value": pick(p),
                   "ci_method": method}
            if norm is not None:
                na, nb, nlo, nhi = norm
                row.update(normalised_a=pick(na), normalised_b=pick(nb), normalised_difference=pick(na) - pick(nb),
                           normalised_ci_low=pick(nlo), normalised_ci_high=pick(nhi))
            rows.append(row)

    for rec in recs:
        meta = {k: rec[k] for k in ("benchmark", "benchmark_version", "dataset", "subject", "roi", "layer_a",
                                    "layer_b", "data_source", "n_stimuli")}
        for metric, q in rec["metrics"].items():
            ea, eb, reps, ex = q["value"]
            f = _shrink(reps, ex)
            low, high, p = paired_summary(ea - eb, reps, shrink=f, level=level)
            norm = None
            if q["norm"] is not None:
                na, nb, nreps, nex = q["norm"]
                nlo, nhi, _ = paired_summary(na - nb, nreps, shrink=_shrink(nreps, nex), level=level)
                norm = (na, nb, nlo, nhi)
            emit(meta, metric, q["time"], ea, eb, low, high, p, norm, "subject", 1, CI_METHOD_PAIRED)
        g = rec.get("within_group")
        if g is not None:
            res = group_summary(g["d"], g["reps"], _subject_counts(g["n_subjects"], int(n_boot), seed),
                                rec["n_stimuli"], excess=g["excess"], level=level)
            emit({**meta, "subject": "group"}, g["metric"], np.array([np.nan]), np.array([g["a"]]),
                 np.array([g["b"]]), res["low"], res["high"], res["p"], None, "group", g["n_subjects"],
                 CI_METHOD_GROUP)
    rows += _across_benchmark_groups(recs, common, level, int(n_boot), int(seed))
    df = pd.DataFrame(rows)
    for c in COMPARISON_COLUMNS:
        if c not in df.columns:
            df[c] = np.nan
    df = df[COMPARISON_COLUMNS]
    df["p_holm"] = np.nan
    for _, part in df.groupby(["metric", "level"], sort=False):
        df.loc[part.index, "p_holm"] = holm(part["p_value"].to_numpy())
    return df


def _across_benchmark_groups(recs, common, level, n_boot, seed) -> list[dict]:
    """Group rows over benchmarks that are subjects of one dataset/ROI/metric/version on the same test stimuli.

    (RSA benchmarks of single subjects: the pair-level excess is not removed here — the shared model
    RDM makes the subjects' pair residuals dependent — so their group interval is conservative.)"""
    groups: dict = {}
    for rec in recs:
        if rec["subject"] in ("mean", "group", ""):
            continue
        for metric, q in rec["metrics"].items():
            key = (rec["dataset"], rec["roi"], metric, rec["benchmark_version"], rec["data_source"])
            groups.setdefault(key, []).append((rec, q))
    out = []
    for (dataset, roi, metric, version, source), members in groups.items():
        subjects = {r["subject"] for r, _ in members}
        if len(members) < 2 or len(subjects) < len(members):
            continue
        ids0 = members[0][0]["ids"]
        if any(r["ids"].shape != ids0.shape or not np.array_equal(r["ids"], ids0) for r, _ in members[1:]):
            continue  # not the same stimuli: no joint stimulus resampling
        S, n = len(members), int(members[0][0]["n_stimuli"])
        C = _subject_counts(S, n_boot, seed)
        la = {r["layer_a"] for r, _ in members}
        lb = {r["layer_b"] for r, _ in members}
        meta = {**common, "benchmark": ",".join(r["benchmark"] for r, _ in members), "benchmark_version": version,
                "dataset": dataset, "subject": "group", "roi": roi, "metric": metric, "level": "group",
                "n_subjects": S, "n_stimuli": n, "layer_a": ",".join(sorted(la)), "layer_b": ",".join(sorted(lb)),
                "data_source": source, "ci_method": CI_METHOD_GROUP}
        val = [q["value"] for _, q in members]
        D = np.stack([np.atleast_1d(v[0] - v[1]) for v in val])
        R = np.stack([np.asarray(v[2]).reshape(n_boot, -1) for v in val], axis=1)
        res = group_summary(D, R, C, n, level=level)
        nres = None
        if all(q["norm"] is not None for _, q in members):
            nv = [q["norm"] for _, q in members]
            ND = np.stack([np.atleast_1d(v[0] - v[1]) for v in nv])
            NR = np.stack([np.asarray(v[2]).reshape(n_boot, -1) for v in nv], axis=1)
            nres = group_summary(ND, NR, C, n, level=level)
            na = np.mean([np.atleast_1d(v[0]) for v in nv], axis=0)
            nb = np.mean([np.atleast_1d(v[1]) for v in nv], axis=0)
        ea = np.mean([np.atleast_1d(v[0]) for v in val], axis=0)
        eb = np.mean([np.atleast_1d(v[1]) for v in val], axis=0)
        times = members[0][1]["time"]
        for t in range(ea.size):
            row = {**meta, "time": float(times[t]) if np.size(times) > t else np.nan, "value_a": float(ea[t]),
                   "value_b": float(eb[t]), "difference": float(res["estimate"][t]), "ci_low": float(res["low"][t]),
                   "ci_high": float(res["high"][t]), "p_value": float(res["p"][t])}
            if nres is not None:
                row.update(normalised_a=float(na[t]), normalised_b=float(nb[t]),
                           normalised_difference=float(nres["estimate"][t]), normalised_ci_low=float(nres["low"][t]),
                           normalised_ci_high=float(nres["high"][t]))
            out.append(row)
    return out
