"""``brainlid lid FEATURES``: local intrinsic dimension (with a K-sweep) and global dimension of a features file.

The file is read with :func:`brainlid.io.read_features`; every number comes from
:func:`brainlid.geometry.summarize` (one exact kNN at the largest K).
"""

from __future__ import annotations

import json
import warnings

import click

from ..errors import BrainlidError, InputError
from ._common import LazyChoice, LazyDefaultOption


MLE_FULL_REASON = ("not computed by `brainlid lid`: the MLE at K = N - 1 needs all N x (N - 1) neighbour distances; "
                   "brainlid.geometry.global_dimension(X, full_mle=True) computes it")


def parse_ks(text: str | None) -> list[int] | None:
    """``"5,10,20"`` → ``[5, 10, 20]``; None/empty → None (the default sweep)."""
    if text is None or not text.strip():
        return None
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(int(part))
        except ValueError:
            raise click.BadParameter(f"{part!r} is not an integer; give K values like 5,10,20", param_hint="--sweep") from None
    return out


def _geometry(name: str):
    """Reads ``brainlid.geometry.<name>`` when called: a registry (its keys) or a default (the value)."""
    def read():
        from .. import geometry  # start-up: numpy; `brainlid --help` lists commands without it

        value = getattr(geometry, name)
        return tuple(value) if isinstance(value, (dict, tuple, list)) else value

    return read


#: :data:`brainlid.geometry.DEFAULT_K`, read when ``--k`` needs it (``lid``, ``analyze``)
default_k = _geometry("DEFAULT_K")


def _render(result: dict, path: str) -> None:
    from rich.console import Console  # start-up: rich only when the tables are printed
    from rich.table import Table  # start-up: rich

    console = Console()
    g = result["global"]
    head = Table(title=f"brainlid lid — {path}", show_header=False, title_justify="left")
    head.add_column("what", style="bold")
    head.add_column("value", justify="right")
    n_text = f"{result['n']}" + (f" ({result['n_distinct']} distinct)" if result["n_distinct"] != result["n"] else "")
    head.add_row("points (n)", n_text)
    head.add_row("features (dim)", str(result["dim"]))
    norm = f", norm {result['norm']}" if result["estimator"] == "mle" else ""
    head.add_row(f"LID ({result['estimator']}, k={result['k']}, {result['aggregate']}{norm})", f"{result['lid']:.3f}")
    head.add_row("participation ratio", f"{g['participation_ratio']:.3f}")
    head.add_row("PCA dims 90 / 95 / 99 %", f"{g['pca90']} / {g['pca95']} / {g['pca99']}")
    head.add_row("TwoNN (linear fit / MLE)", f"{g['twonn']:.3f} / {g['twonn_mle']:.3f}")
    console.print(head)
    sweep = Table(title="K-sweep", title_justify="left")
    sweep.add_column("K", justify="right")
    sweep.add_column(f"LID ({result['estimator']})", justify="right")
    for k, v in result["sweep"].items():
        sweep.add_row(str(k), f"{v:.3f}")
    console.print(sweep)


@click.command("lid")
@click.argument("features", type=click.Path(dir_okay=False))
@click.option("--key", default=None, help="Array/dataset/tensor name inside FEATURES (.npz, .h5, .pt, .safetensors).")
@click.option("--k", "k", type=int, cls=LazyDefaultOption, default_from=default_k, show_default=True,
              help="Neighbourhood size of the headline LID.")
@click.option("--estimator", type=LazyChoice(_geometry("ESTIMATORS")), default="mle", show_default=True)
@click.option("--aggregate", type=LazyChoice(_geometry("AGGREGATES")), default="mean", show_default=True,
              help="Combine pointwise estimates (harmonic + mle = MacKay–Ghahramani).")
@click.option("--norm", type=LazyChoice(_geometry("NORMS")), default="k-1", show_default=True,
              help="MLE normalisation.")
@click.option("--sweep", "sweep", default=None, metavar="K1,K2,...",
              help="K values of the sweep [default: 5,10,20,50,100,200,500,1000 up to n-1].")
@click.option("--memory-budget", default=None, help="Bytes for temporary blocks, e.g. 512MB [default: $BRAINLID_MEMORY_BUDGET or 512MB].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def lid(features, key, k, estimator, aggregate, norm, sweep, memory_budget, as_json):
    """Local intrinsic dimension of the rows of FEATURES (.npy .npz .h5 .parquet .csv .pt .safetensors).

    Prints the LID at --k, a K-sweep from one exact kNN, and global measures
    (participation ratio, PCA dimensions, TwoNN).
    """
    from ..geometry import summarize  # start-up: numpy and the kNN kernels load when the command runs
    from ..io import read_features  # start-up: numpy

    ks = parse_ks(sweep)
    X, _ids = read_features(features, key=key, keep_float64=True)  # float64 files stay exact
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = summarize(X, k=k, estimator=estimator, aggregate=aggregate, norm=norm, ks=ks,
                               memory_budget=memory_budget, as_frame=False)  # no pandas import: fast start
        except BrainlidError as exc:
            raise InputError(f"{features}: {exc}") from exc
    for w in caught:
        click.echo(f"brainlid: warning: {features}: {w.message}", err=True)
    if as_json:
        out = {key_: result[key_] for key_ in ("n", "n_distinct", "dim", "estimator", "aggregate", "norm", "k", "lid")}
        out["file"] = str(features)
        out["sweep"] = {str(kk): v for kk, v in result["sweep"].items()}
        out["global"] = dict(result["global"])
        if out["global"].get("mle_full") is None:
            out["global"]["mle_full_reason"] = MLE_FULL_REASON
        click.echo(json.dumps(out))
    else:
        _render(result, features)
