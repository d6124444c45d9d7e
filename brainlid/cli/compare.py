"""``brainlid compare``: the paired difference of two models' scores, from the results store."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .._atomic import atomic_path
from ..config import results_store_path
from ..errors import InputError
from ._common import check_output_dir, echo_table, split_ids

#: Columns of the terminal table (the CSV / JSON carry every column of brainlid.comparison.COMPARISON_COLUMNS)
TERMINAL_COLUMNS = ["benchmark", "subject", "metric", "time", "value_a", "value_b", "difference", "ci_low", "ci_high",
                    "p_value", "p_holm", "normalised_difference"]


@click.command("compare")
@click.option("--model", "models", multiple=True, required=True, metavar="NAME",
              help="A model name as in the store (twice: A then B; the difference is A − B).")
@click.option("--benchmark", "benchmarks", multiple=True, required=True, metavar="ID",
              help="Benchmark id(s) both models were scored on (repeat, or separate with spaces/commas).")
@click.option("--store", type=click.Path(path_type=Path), default=None,
              help="Results store (default $BRAINLID_HOME/results.sqlite).")
@click.option("--layer", default="selected", show_default=True, metavar="selected|NAME",
              help="The layer chosen on the validation split, or a layer name (both models).")
@click.option("--n-boot", type=int, default=1000, show_default=True, help="Stimulus resamples (shared by A and B).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the resamples.")
@click.option("--level", type=float, default=0.95, show_default=True, help="Confidence level of the intervals.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison rows as JSON records.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Folder for comparison.csv.")
def compare(models, benchmarks, store, layer, n_boot, seed, level, as_json, out):
    """Compare two models: paired stimulus-bootstrap difference A − B, interval and p-value.

    Both models' held-out predictions (encoding) or model RDMs (RSA) on the test stimuli are read
    from the store, and the same stimulus resamples are applied to both. With several subjects
    on the same stimuli (an RDM benchmark's subjects, or e.g. nsd.subj01…subj08 of one ROI), a
    group-level row resamples subjects and stimuli together (dual bootstrap, Schütt et al. 2023).
    With several rows, p_holm is Holm-adjusted over the rows of each metric and level.
    """
    from ..comparison import compare_models  # start-up: numpy/pandas and the scoring code
    from ..scoring import ResultsStore  # start-up: pandas

    if len(models) != 2:
        raise InputError(f"give --model exactly twice (A and B), got {len(models)}")
    if not 0 < level < 1:
        raise InputError(f"--level must be in (0, 1), got {level}")
    check_output_dir(out, "--out")
    ids = split_ids(benchmarks)
    path = Path(store) if store is not None else results_store_path()
    if not path.exists():
        raise InputError(f"no results store at {path}: run `brainlid score` first (or pass --store)")
    df = compare_models(ResultsStore(path), models[0], models[1], ids, layer=layer, n_boot=n_boot, seed=seed,
                        level=level)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        with atomic_path(Path(out) / "comparison.csv") as tmp:
            df.to_csv(tmp, index=False)
    if as_json:
        click.echo(json.dumps(json.loads(df.to_json(orient="records")), indent=1))
        return
    echo_table(df[TERMINAL_COLUMNS], title=f"{models[0]} − {models[1]} (paired bootstrap, {n_boot} resamples, "
                                          f"{level:.0%} intervals)")
    if out is not None:
        click.echo(f"wrote {Path(out) / 'comparison.csv'}")
