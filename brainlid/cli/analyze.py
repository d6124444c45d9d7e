"""``brainlid analyze``: LID against brain alignment, model–model alignment and generalization, across models."""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from ..config import results_store_path
from ..errors import InputError
from ._common import LazyDefaultOption, echo_table
from .geometry import default_k


@click.command("analyze")
@click.option("--store", type=click.Path(path_type=Path), default=None, help="Results store to read (default $BRAINLID_HOME/results.sqlite).")
@click.option("--table", "tables", multiple=True, type=click.Path(path_type=Path),
              help="Scores and geometry tables (.parquet/.csv) instead of the store (give both).")
@click.option("--generalization", type=click.Path(path_type=Path), default=None,
              help="CSV of accuracies (model, top1[, img_size, param_count]); timm's results-imagenet.csv works as is.")
@click.option("--img-size", type=int, default=None, help="Pick this image size's rows of the generalization CSV.")
@click.option("--k", "k", cls=LazyDefaultOption, default_from=default_k, show_default=True, type=int,
              help="The K fixed in advance for the headline.")
@click.option("--estimator", default="mle", show_default=True)
@click.option("--layer", default="last", show_default=True, help="'last', 'selected' or a layer name.")
@click.option("--reference", default=None, help="Reference model for model–model alignment.")
@click.option("--value", type=click.Choice(["value", "normalised"]), default="value", show_default=True)
@click.option("--benchmark", "benchmark_filter", multiple=True, help="Only these benchmarks' scores.")
@click.option("--families", type=click.Path(path_type=Path), default=None,
              help="CSV with columns model,family (default: a 'family' column of the generalization CSV, else --family-rule).")
@click.option("--family-rule", default=None, metavar="REGEX|model",
              help="Family from each model id by this regular expression on the architecture name (default: its "
                   "architecture prefix, e.g. convnext_atto -> convnext); 'model': every model its own family.")
@click.option("--allow-mixed-sources", is_flag=True, help="Analyse real and synthetic score rows together (refused by default).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("brainlid-analysis"), show_default=True)
@click.option("--seed", default=0, show_default=True, type=int)
def analyze(store, tables, generalization, img_size, k, estimator, layer, reference, value, benchmark_filter,
            families, family_rule, allow_mixed_sources, out, seed):
    """Correlate LID with brain alignment, model–model alignment and generalization across models.

    Every correlation is reported pooled, within model families and between family means, with
    family-aware intervals and p-values and warnings in words (correlations.csv, report.html).
    """
    import pandas as pd  # start-up: pandas

    from ..analysis import analyze as analyze_scores, read_generalization  # heavy: scipy, pandas
    from ..scoring import ResultsStore, read_table  # start-up: pandas

    if tables:
        frames = [read_table(t) for t in tables]
        scores = [f for f in frames if "benchmark" in f.columns]
        geom = [f for f in frames if "estimator" in f.columns]
        if not scores or not geom:
            raise InputError("--table needs both a scores table and a geometry table")
        scores, geom = pd.concat(scores, ignore_index=True), pd.concat(geom, ignore_index=True)
    else:
        path = Path(store) if store is not None else results_store_path()
        if not path.exists():
            raise InputError(f"no results store at {path}: run `brainlid score` (or pass --store / --table)")
        st = ResultsStore(path)
        scores, geom = st.scores(), st.geometry()
        if len(scores) == 0:
            raise InputError(f"the results store {st.path} is empty: run `brainlid score` (or `brainlid demo`) first")
    if benchmark_filter:
        keep = scores["benchmark"].isin(benchmark_filter) | (scores["dataset"] == "models")
        scores = scores[keep]
    gen = read_generalization(generalization, img_size=img_size) if generalization else None
    with warnings.catch_warnings():  # the analysis' warnings are printed below, once, in words
        warnings.simplefilter("ignore", RuntimeWarning)
        res = analyze_scores(scores, geom, gen, k=k, estimator=estimator, layer=layer, reference=reference, value=value,
                      families=families, family_rule=family_rule, allow_mixed_sources=allow_mixed_sources,
                      seed=seed, out=out)
    head = res.headline(scope=None)[["target", "scope", "n_models", "n_families", "pearson_r", "pearson_p",
                                     "pearson_ci_low", "pearson_ci_high", "spearman_r", "spearman_p", "partial_pearson_r"]]
    echo_table(head, title=f"LID ({estimator}, K={k}) vs alignment, across models: pooled, within and between "
                           f"{res.settings['n_families']} families")
    for w in res.warnings(headline_only=True):
        click.echo(f"warning: {w}", err=True)
    click.echo(f"report: {res.files['report']}")
