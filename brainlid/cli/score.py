"""``brainlid score``: models (or precomputed features) on benchmarks, through :func:`brainlid.scoring.score`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import InputError
from ._common import check_output_dir, check_output_file, echo_table, split_ids


def score_json_rows(scores) -> list[dict]:
    """The rows ``brainlid score --json`` prints: self-describing records.

    Every row of the layer chosen on the validation split (each split — ``val``, ``test`` and, for
    RDM benchmarks, ``all`` — and each subject, including the group-mean rows), plus the
    model–model rows, with every column of the score table
    (:data:`brainlid.scoring.SCORE_COLUMNS`: ``split``, ``subject``, ``n_stimuli``,
    ``ceiling``, ``ceiling_lower``, ``ceiling_method``, ``ci_method``, ``data_source``,
    ``benchmark_version`` …), so no number is read without the stimuli and ceiling it refers to.
    Missing values are ``null``.

    Parameters
    ----------
    scores : pandas.DataFrame
        A score table (:func:`brainlid.scoring.score_frame` columns), e.g. ``ScoreResult.scores``.

    Returns
    -------
    list of dict
        One JSON-ready record per row kept.
    """
    from ..scoring import score_frame  # start-up: pandas

    df = score_frame(scores)
    keep = df["selected"].astype(bool) | (df["dataset"] == "models")
    return json.loads(df[keep].to_json(orient="records"))


@click.command("score")
@click.option("--model", "models", multiple=True, metavar="SPEC",
              help="Model spec, e.g. torchvision:resnet18 or module:net.py:Net@w.pt (repeat for several; "
                   "with several, model–model alignment is scored too).")
@click.option("--features", "features", type=click.Path(path_type=Path), default=None, metavar="DIR|FILE",
              help="Instead of --model: precomputed features from any framework — a `brainlid extract --out` "
                   "folder, or .npz/.h5/.safetensors with one (n_stimuli, n_features) array per layer and a "
                   "'stimulus_ids' array. Needs --name.")
@click.option("--name", default=None, help="With --features: the model name in the tables and the store.")
@click.option("--benchmark", "benchmarks", multiple=True, required=True, metavar="ID",
              help="Benchmark id(s), e.g. nsd.subj01.EBA.encoding (repeat, or separate with spaces/commas).")
@click.option("--layers", default=None, help="Comma-separated layer names/globs, e.g. 'layer*,avgpool' (default: the model's top-level "
                   "modules). With several models each takes the ones that match it. With --features: the "
                   "arrays to score, in this order (default: all, in the file's order).")
@click.option("--data-root", type=click.Path(path_type=Path), default=None, help="Dataset root (default from $BRAINLID_DATA).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Folder for scores/geometry .parquet and .csv.")
@click.option("--store", type=click.Path(path_type=Path), default=None, help="Results store (default $BRAINLID_HOME/results.sqlite).")
@click.option("--no-store", is_flag=True, help="Do not write to the results store.")
@click.option("--no-baselines", is_flag=True, help="Skip the pixels / random-weights / shuffled baselines.")
@click.option("--replace", is_flag=True, help="Replace cells already in the store (default: keep them).")
@click.option("--pooling", default="avg", show_default=True, help="Spatial pooling of layer outputs.")
@click.option("--batch-size", default=64, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON records: every row (val, test, all splits; every subject) of the selected layer and "
                   "the model–model rows, with every score-table column (docs/score_columns.md).")
@click.option("--scheduler", default=None, metavar="local|tcp://HOST:PORT|slurm",
              help="Run the grid on Dask: a local cluster, a running scheduler, or SLURM jobs "
                   "([slurm] in $BRAINLID_HOME/config.toml). Default: serial, no Dask.")
@click.option("--workers", type=int, default=None, help="With --scheduler local: worker processes (default one per core); slurm: jobs.")
@click.option("--memory-per-worker", default=None, metavar="SIZE", help="With --scheduler: memory limit per worker, e.g. 8GB.")
@click.option("--voxel-batch", type=int, default=None, help="With --scheduler: units per encoding task (default from the worker memory).")
def score(models, features, name, benchmarks, layers, data_root, out, store, no_store, no_baselines, replace, pooling,
          batch_size, as_json, scheduler, workers, memory_per_worker, voxel_batch):
    """Score models on benchmarks: encoding/RSA per layer, best layer on a validation split, LID geometry.

    RDM benchmarks (k92.*, algonauts2019.*) score every layer on all images (split 'all') and
    choose the best layer on one half of the images, reporting it on the other half (split 'test').

    --features scores precomputed features (JAX, TensorFlow, ONNX, …) of the benchmark's stimuli
    (`brainlid benchmarks stimuli ID --out DIR` exports them) with the same rows, baselines
    (pixels, NAME#shuffled; no @random: there is no architecture), geometry and store.
    """
    from ..features import load_features, load_model  # heavy: torch when a model is built; numpy/pandas
    from ..report import data_source_banners  # start-up: pandas
    from ..scoring import get_benchmark, score as score_models  # start-up: numpy/pandas, the scoring code

    if bool(models) == (features is not None):
        raise InputError("give either --model (one or more) or --features, not both" if models else
                         "give --model SPEC or --features DIR|FILE")
    if (name is None) != (features is None):
        raise InputError("--features needs --name NAME (the model name in the tables)" if features is not None else
                         "--name goes with --features (a model spec names itself)")
    if features is not None and scheduler is not None:
        raise InputError("--scheduler runs feature extraction on workers; precomputed --features are scored "
                         "without it")

    check_output_dir(out, "--out")  # before any work: a wrong path used to fail after extraction
    if not no_store:
        check_output_file(store, "--store", "results.sqlite", b"SQLite format 3\x00", "an SQLite results store")
    ids = split_ids(benchmarks)
    for b in ids:
        get_benchmark(b)  # unknown id → one-line error listing close ones
    for m in models:
        load_model(m)  # a spec that cannot be built fails here, before any data is read
    extract_fn, layer_sel = None, [s for s in layers.split(",") if s.strip()] if layers else None
    if features is not None:  # read and checked before any benchmark data is loaded
        models = {name: load_features(features, layer_sel)}
        layer_sel = None
        click.echo(f"note: {features} — {len(models[name])} layer(s), {models[name].stimulus_ids.size} stimuli"
                   + ("" if no_baselines else "; baselines: pixels and the shuffled control (no @random: precomputed "
                      "features have no architecture to re-initialise)"), err=True)

        def extract_fn(feats, stimuli, layers=None, **_):  # the benchmark's rows of the features, by id
            return feats.for_stimuli(stimuli.ids, layers, what=f"the benchmark's stimulus set ({len(stimuli)} stimuli)",
                                     note=lambda m: click.echo(f"note: {m}", err=True))
    if scheduler is None and (workers is not None or memory_per_worker is not None or voxel_batch is not None):
        raise InputError("--workers, --memory-per-worker and --voxel-batch need --scheduler (local, tcp://HOST:PORT or slurm)")
    handle = None
    if scheduler is not None:  # Dask only from here (the distributed extra)
        from ..scoring.distributed import connect  # optional: dask (the distributed extra)

        handle = connect(scheduler, workers=workers, memory_per_worker=memory_per_worker, log=lambda m: click.echo(m, err=True))
    try:
        res = score_models(
            models if isinstance(models, dict) else list(models), ids, layers=layer_sel, data_root=data_root,
            out=out, store=False if no_store else (store or True), baselines=not no_baselines, pooling=pooling,
            batch_size=batch_size, if_exists="replace" if replace else "skip", return_result=True,
            extract_fn=extract_fn, **({"client": handle, "voxel_batch": voxel_batch} if handle is not None else {}),
        )
    finally:
        if handle is not None:
            handle.close()
    for banner in data_source_banners(res.scores):
        click.echo(f"note: {banner}", err=True)
    if as_json:
        click.echo(json.dumps(score_json_rows(res.scores), indent=1))
    else:
        test = res.scores[(res.scores["split"] == "test")]
        cols = ["model", "layer", "benchmark", "subject", "metric", "time", "value", "ci_low", "ci_high", "ceiling",
                "normalised", "n_stimuli", "data_source", "selected"]
        sel = test[test["selected"].astype(bool) | (test["dataset"] == "models")]
        echo_table(sel[cols].drop(columns=["selected"]), title="test scores (layer chosen on the validation split)")
        for p in res.paths:
            click.echo(f"wrote {p}")
        if res.store is not None:
            click.echo(f"store: {res.store.path}")
