"""``brainlid score``, ``brainlid benchmarks list|stimuli``, ``brainlid analyze``."""

from __future__ import annotations

import json
from pathlib import Path

import click


def _echo_table(df, title: str = "", max_rows: int = 60) -> None:
    from rich.console import Console
    from rich.table import Table

    df = df.loc[:, df.notna().any()]  # e.g. `time` for fMRI rows, `ceiling` where no benchmark has one
    table = Table(title=title or None, show_lines=False)
    for c in df.columns:
        table.add_column(str(c), overflow="fold")
    for rec in df.head(max_rows).itertuples(index=False):
        table.add_row(*[(f"{v:.3f}" if isinstance(v, float) else str(v)) for v in rec])
    Console(width=160).print(table)
    if len(df) > max_rows:
        click.echo(f"... {len(df) - max_rows} more rows")


def split_ids(args) -> list[str]:
    """Ids from a repeated option, each value holding one or more separated by spaces or commas."""
    return [b for arg in args for b in arg.replace(",", " ").split()]


def score_json_rows(scores) -> list[dict]:
    """The rows ``brainlid score --json`` prints: self-describing records.

    Every row of the layer chosen on the validation split (each split — ``val``, ``test`` and, for
    RDM benchmarks, ``all`` — and each subject, including the group-mean rows), plus the
    model–model rows, with every column of the score table
    (:data:`brainlid.scoring.tables.SCORE_COLUMNS`: ``split``, ``subject``, ``n_stimuli``,
    ``ceiling``, ``ceiling_lower``, ``ceiling_method``, ``ci_method``, ``data_source``,
    ``benchmark_version`` …), so no number is read without the stimuli and ceiling it refers to.
    Missing values are ``null``.
    """
    from ..scoring.tables import score_frame

    df = score_frame(scores)
    keep = df["selected"].astype(bool) | (df["dataset"] == "models")
    return json.loads(df[keep].to_json(orient="records"))


def register(cli: click.Group) -> None:
    @cli.command("score")
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
    def score_cmd(models, features, name, benchmarks, layers, data_root, out, store, no_store, no_baselines, replace, pooling,
                  batch_size, as_json, scheduler, workers, memory_per_worker, voxel_batch):
        """Score models on benchmarks: encoding/RSA per layer, best layer on a validation split, LID geometry.

        RDM benchmarks (k92.*, algonauts2019.*) score every layer on all images (split 'all') and
        choose the best layer on one half of the images, reporting it on the other half (split 'test').

        --features scores precomputed features (JAX, TensorFlow, ONNX, …) of the benchmark's stimuli
        (`brainlid benchmarks stimuli ID --out DIR` exports them) with the same rows, baselines
        (pixels, NAME#shuffled; no @random: there is no architecture), geometry and store.
        """
        from ..errors import InputError
        from ..scoring.benchmarks import get_benchmark
        from ..scoring.runner import score

        from ..features.models import load_model

        from ._paths import check_output_dir, check_output_file

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
            from ..features.files import load_features

            models = {name: load_features(features, layer_sel)}
            layer_sel = None
            click.echo(f"note: {features} — {len(models[name])} layer(s), {models[name].stimulus_ids.size} stimuli"
                       + ("" if no_baselines else "; baselines: pixels and the shuffled control (no @random: precomputed "
                          "features have no architecture to re-initialise)"), err=True)

            def extract_fn(feats, stimuli, layers=None, **_):  # the benchmark's rows of the features, by id
                return feats.for_stimuli(stimuli.ids, layers, what=f"the benchmark's stimulus set ({len(stimuli)} stimuli)",
                                         note=lambda m: click.echo(f"note: {m}", err=True))
        if scheduler is None and (workers is not None or memory_per_worker is not None or voxel_batch is not None):
            from ..errors import InputError

            raise InputError("--workers, --memory-per-worker and --voxel-batch need --scheduler (local, tcp://HOST:PORT or slurm)")
        handle = None
        if scheduler is not None:  # Dask only from here (the distributed extra)
            from ..scoring.distributed import connect

            handle = connect(scheduler, workers=workers, memory_per_worker=memory_per_worker, log=lambda m: click.echo(m, err=True))
        try:
            res = score(
                models if isinstance(models, dict) else list(models), ids, layers=layer_sel, data_root=data_root,
                out=out, store=False if no_store else (store or True), baselines=not no_baselines, pooling=pooling,
                batch_size=batch_size, if_exists="replace" if replace else "skip", return_result=True,
                extract_fn=extract_fn, **({"client": handle, "voxel_batch": voxel_batch} if handle is not None else {}),
            )
        finally:
            if handle is not None:
                handle.close()
        from ..report import data_source_banners

        for banner in data_source_banners(res.scores):
            click.echo(f"note: {banner}", err=True)
        if as_json:
            click.echo(json.dumps(score_json_rows(res.scores), indent=1))
        else:
            test = res.scores[(res.scores["split"] == "test")]
            cols = ["model", "layer", "benchmark", "subject", "metric", "time", "value", "ci_low", "ci_high", "ceiling",
                    "normalised", "n_stimuli", "data_source", "selected"]
            sel = test[test["selected"].astype(bool) | (test["dataset"] == "models")]
            _echo_table(sel[cols].drop(columns=["selected"]), title="test scores (layer chosen on the validation split)")
            for p in res.paths:
                click.echo(f"wrote {p}")
            if res.store is not None:
                click.echo(f"store: {res.store.path}")

    @cli.group("benchmarks")
    def benchmarks_grp():
        """Benchmark definitions (ids: dataset.subject.roi.metric)."""

    @benchmarks_grp.command("list")
    @click.option("--dataset", default=None, help="Only this dataset's benchmarks (e.g. nsd).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON records.")
    def benchmarks_list(dataset, as_json):
        """List the registered benchmarks and their versioned definitions."""
        from ..scoring.benchmarks import list_benchmarks

        df = list_benchmarks(dataset)
        if as_json:
            click.echo(df.to_json(orient="records", indent=1))
        else:
            _echo_table(df[["id", "kind", "space", "split", "ceiling", "version", "lid_stimulus_set"]], max_rows=10_000)

    @benchmarks_grp.command("stimuli")
    @click.argument("bench_id", metavar="ID")
    @click.option("--data-root", type=click.Path(path_type=Path), default=None, help="Dataset root (default from $BRAINLID_DATA).")
    @click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to write (new or empty).")
    @click.option("--overwrite", is_flag=True, help="Replace an earlier export in a non-empty --out.")
    def benchmarks_stimuli(bench_id, data_root, out, overwrite):
        """Export a benchmark's stimulus set so features can be computed in any framework.

        Writes OUT/stimulus_ids.npy (np.load(..., allow_pickle=False): int64 or unicode ids) and one
        lossless PNG per stimulus at its native resolution, named by position (00000.png, 00001.png, …)
        in the ids' order — exactly the stimuli `brainlid score --features` and `brainlid submit
        prepare --features` need. stimulus_ids.npy is written last.
        """
        from ..data.stimulus_folder import check_export_target, write_stimulus_folder
        from ..leaderboard.scoring import benchmark_stimulus_set
        from ..scoring.benchmarks import get_benchmark

        get_benchmark(bench_id)  # unknown id → one-line error listing close ones
        check_export_target(out, overwrite)  # before the data are read
        stimuli = benchmark_stimulus_set(bench_id, data_root)
        write_stimulus_folder(stimuli, out, overwrite=overwrite)
        kind = "string" if stimuli.ids.dtype.kind == "U" else "int64"
        click.echo(f"wrote {len(stimuli)} images and stimulus_ids.npy ({kind} ids) to {out}")

    @cli.command("analyze")
    @click.option("--store", type=click.Path(path_type=Path), default=None, help="Results store to read (default $BRAINLID_HOME/results.sqlite).")
    @click.option("--table", "tables", multiple=True, type=click.Path(path_type=Path),
                  help="Scores and geometry tables (.parquet/.csv) instead of the store (give both).")
    @click.option("--generalization", type=click.Path(path_type=Path), default=None,
                  help="CSV of accuracies (model, top1[, img_size, param_count]); timm's results-imagenet.csv works as is.")
    @click.option("--img-size", type=int, default=None, help="Pick this image size's rows of the generalization CSV.")
    @click.option("--k", "k", default=20, show_default=True, type=int, help="The K fixed in advance for the headline.")
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
    def analyze_cmd(store, tables, generalization, img_size, k, estimator, layer, reference, value, benchmark_filter,
                    families, family_rule, allow_mixed_sources, out, seed):
        """Correlate LID with brain alignment, model–model alignment and generalization across models.

        Every correlation is reported pooled, within model families and between family means, with
        family-aware intervals and p-values and warnings in words (correlations.csv, report.html).
        """
        import pandas as pd

        from ..analysis import analyze, read_generalization
        from ..errors import InputError
        from ..scoring.store import ResultsStore
        from ..scoring.tables import read_table

        if tables:
            frames = [read_table(t) for t in tables]
            scores = [f for f in frames if "benchmark" in f.columns]
            geom = [f for f in frames if "estimator" in f.columns]
            if not scores or not geom:
                raise InputError("--table needs both a scores table and a geometry table")
            scores, geom = pd.concat(scores, ignore_index=True), pd.concat(geom, ignore_index=True)
        else:
            from ..config import results_store_path

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
        import warnings

        with warnings.catch_warnings():  # the analysis' warnings are printed below, once, in words
            warnings.simplefilter("ignore", RuntimeWarning)
            res = analyze(scores, geom, gen, k=k, estimator=estimator, layer=layer, reference=reference, value=value,
                          families=families, family_rule=family_rule, allow_mixed_sources=allow_mixed_sources,
                          seed=seed, out=out)
        head = res.headline(scope=None)[["target", "scope", "n_models", "n_families", "pearson_r", "pearson_p",
                                         "pearson_ci_low", "pearson_ci_high", "spearman_r", "spearman_p", "partial_pearson_r"]]
        _echo_table(head, title=f"LID ({estimator}, K={k}) vs alignment, across models: pooled, within and between "
                                f"{res.settings['n_families']} families")
        for w in res.warnings(headline_only=True):
            click.echo(f"warning: {w}", err=True)
        click.echo(f"report: {res.files['report']}")
