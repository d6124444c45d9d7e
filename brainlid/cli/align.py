"""``brainlid align A B``: model–model similarity of two feature files, optionally null-calibrated.

Feature files are read with :func:`brainlid.io.read_features` (``.npy``, ``.npz``,
``.h5``, ``.parquet``, ``.csv``, ``.pt``, ``.safetensors``). When both files carry
stimulus ids, rows are joined on them (:func:`brainlid.data.ids.match_ids`; an
error gives the overlap count when too few are shared); otherwise rows are paired
by order, with a warning.
"""

from __future__ import annotations

import functools
import json
import warnings

import click

from ..errors import InputError

CLI_METRICS = ("mutual_knn", "cknna", "cka_linear", "cka_rbf", "ridge_r2", "rsa")
JSON_DIGITS = 6  # features are float32 (~7 digits); digits past these are rounding noise, differing by metric


def round_floats(obj, digits: int = JSON_DIGITS):
    """``obj`` with every float (in nested dicts/lists) rounded to ``digits`` significant digits."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: round_floats(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [round_floats(v, digits) for v in obj]
    return obj


def _metric_kwargs(metric, k, unbiased, rdm_method, compare, n_components, sigma, seed):
    if metric in ("mutual_knn",):
        return {"k": k}
    if metric == "cknna":
        return {"k": k, "unbiased": unbiased}
    if metric == "cka_linear":
        return {"unbiased": unbiased} if unbiased else {}
    if metric == "cka_rbf":
        return {"unbiased": unbiased, "sigma": sigma}
    if metric == "ridge_r2":
        return {"n_components": n_components or None, "seed": seed}
    return {"rdm_method": rdm_method, "compare": compare}


def load_pair(path_a: str, path_b: str, key_a=None, key_b=None):
    """Read two feature files and pair their rows by stimulus id (else by order, with a warning).

    Returns ``(A, B, info)`` with ``info`` = {"n_stimuli", "matched_by", "n_a", "n_b"}.
    """
    from ..data.ids import match_ids  # start-up: numpy, the data package
    from ..io import read_features  # start-up: numpy

    A, ids_a = read_features(path_a, key=key_a)
    B, ids_b = read_features(path_b, key=key_b)
    info = {"n_a": int(A.shape[0]), "n_b": int(B.shape[0])}
    if ids_a is not None and ids_b is not None:
        ia, ib = match_ids(ids_a, ids_b, min_overlap=4, names=(path_a, path_b), warn_partial=True)
        A, B = A[ia], B[ib]
        info["matched_by"] = "stimulus_id"
    else:
        if A.shape[0] != B.shape[0]:
            missing = path_a if ids_a is None else path_b
            raise InputError(
                f"{path_a} has {A.shape[0]} rows and {path_b} has {B.shape[0]}, and {missing} has no stimulus ids "
                "to match them by"
            )
        warnings.warn(
            "rows are paired by order: "
            + ("neither file has" if ids_a is None and ids_b is None else "only one file has")
            + " stimulus ids",
            UserWarning,
            stacklevel=2,
        )
        info["matched_by"] = "order"
    info["n_stimuli"] = int(A.shape[0])
    return A, B, info


@click.command("align")
@click.argument("a", type=click.Path(exists=True, dir_okay=False))
@click.argument("b", type=click.Path(exists=True, dir_okay=False))
@click.option("--metric", type=click.Choice(CLI_METRICS), default="mutual_knn", show_default=True,
              help="Similarity measure.")
@click.option("--k", "k", type=int, default=10, show_default=True, help="Neighbours (mutual_knn, cknna).")
@click.option("--key-a", default=None, help="Array name inside A (npz/h5/safetensors/pt/parquet column prefix).")
@click.option("--key-b", default=None, help="Array name inside B.")
@click.option("--unbiased/--biased", default=None,
              help="HSIC estimator (cknna: unbiased by default; cka: biased by default).")
@click.option("--rdm-method", type=click.Choice(["correlation", "euclidean", "cosine"]), default="correlation",
              show_default=True, help="RDM dissimilarity (rsa).")
@click.option("--compare", type=click.Choice(["spearman", "pearson", "kendall_tau_a", "cosine", "cosine_whitened",
                                               "pearson_whitened"]),
              default="spearman", show_default=True, help="RDM comparison (rsa).")
@click.option("--n-components", type=int, default=300, show_default=True,
              help="PCs per side for ridge_r2 (fit on training folds; 0 keeps all features).")
@click.option("--sigma", type=float, default=None, help="RBF bandwidth (cka_rbf; default: median distance).")
@click.option("--null", "n_null", type=click.IntRange(min=0), default=0, show_default=True,
              help="Permutations of B's stimulus labels for a null calibration (0: none).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the permutations / CV folds.")
@click.option("--json", "as_json", is_flag=True,
              help=f"Print the result as JSON (every number to {JSON_DIGITS} significant digits).")
def align(a, b, metric, k, key_a, key_b, unbiased, rdm_method, compare, n_components, sigma, n_null, seed, as_json):
    """Similarity between the representations in feature files A and B (rows = stimuli).

    \b
    Examples:
      brainlid align resnet50.npz vit_b16.npz --metric mutual_knn --k 10 --null 1000
      brainlid align a.h5 b.h5 --key-a layer4 --key-b blocks.11 --metric rsa --compare spearman --json
    """
    from ..alignment import similarity as sim  # start-up: numpy/scipy load when the command runs
    from ..alignment.null import permutation_null  # start-up: numpy

    if unbiased is None:
        unbiased = metric == "cknna"
    kwargs = _metric_kwargs(metric, k, unbiased, rdm_method, compare, n_components, sigma, seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        A, B, info = load_pair(a, b, key_a, key_b)
        sim_metric = "cka_linear_unbiased" if metric == "cka_linear" and unbiased else metric
        sim_kwargs = {} if sim_metric == "cka_linear_unbiased" else kwargs
        if n_null > 0:
            if sim_metric == "ridge_r2":  # its own `seed` (CV folds) would clash with the permutations' seed
                null_metric, null_kwargs = functools.partial(sim.ridge_r2, **sim_kwargs), {}
            else:
                null_metric, null_kwargs = sim_metric, sim_kwargs
            res = permutation_null(null_metric, A, B, n_null, seed=seed, **null_kwargs)
            score = res.score
            null = res.as_dict()
        else:
            score = sim.similarity(A, B, sim_metric, **sim_kwargs)
            null = None
    warn_msgs = [str(w.message) for w in caught]
    out = {
        "a": a,
        "b": b,
        "metric": metric,
        "params": {**kwargs, **({"unbiased": unbiased} if metric.startswith("cka") else {})},
        "score": float(score),
        **info,
        "warnings": warn_msgs,
    }
    if null is not None:
        out["null"] = {key: null[key] for key in ("n_permutations", "seed", "null_mean", "null_sd", "z", "p",
                                                   "calibrated")}
    if as_json:
        click.echo(json.dumps(round_floats(out), indent=2))
        return
    for msg in warn_msgs:
        click.echo(f"brainlid: warning: {msg}", err=True)
    params = ", ".join(f"{key}={val}" for key, val in out["params"].items() if val is not None)
    click.echo(f"{metric}({params}): {score:.6f}   [{info['n_stimuli']} stimuli, matched by {info['matched_by']}]")
    if null is not None:
        n0 = out["null"]
        click.echo(
            f"null ({n0['n_permutations']} permutations, seed {seed}): mean {n0['null_mean']:.6f}, "
            f"sd {n0['null_sd']:.6f}, z {n0['z']:.2f}, p {n0['p']:.4g}, calibrated {n0['calibrated']:.6f}"
        )
